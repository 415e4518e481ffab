//! The store's one Redis connection and the background task that keeps it alive.
//!
//! All commands share one multiplexed connection, so concurrent commands are pipelined on
//! one socket. A supervisor task connects, watches the link (a failed command reports the
//! loss at once; an idle link is pinged), and on loss reconnects by itself with capped
//! exponential backoff, reporting each change as a [`LinkEvent`]. Nothing waits on a call to
//! reconnect, and no call waits longer than the command timeout for a connection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::error::{Result, StoreError};
use crate::target::{Conn, Target};

/// A change of the link's state, for the `connect` / `disconnect` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A connection is up and answered its handshake.
    Connected,
    /// The connection was lost; the reason never contains data.
    Disconnected(String),
}

/// Receives link events; called from the supervisor task.
pub type EventSink = Arc<dyn Fn(LinkEvent) + Send + Sync>;

/// Timing of the link, all bounded.
#[derive(Debug, Clone)]
pub struct LinkTiming {
    /// Upper bound of one command, including the wait for a connection.
    pub command_timeout: Duration,
    /// Upper bound of one connection attempt (TCP, TLS, AUTH, SELECT).
    pub connect_timeout: Duration,
    /// First reconnection delay; doubled after each failed attempt.
    pub backoff_min: Duration,
    /// Cap of the reconnection delay.
    pub backoff_max: Duration,
    /// How often an idle link is pinged to notice a dead or hung server.
    pub health_interval: Duration,
}

impl Default for LinkTiming {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(2000),
            backoff_min: Duration::from_millis(25),
            backoff_max: Duration::from_millis(500),
            health_interval: Duration::from_millis(500),
        }
    }
}

/// A live connection together with its generation number (to ignore stale loss reports).
#[derive(Clone)]
struct Current {
    conn: Conn,
    generation: u64,
}

/// Shared state between callers and the supervisor.
struct Shared {
    current: watch::Sender<Option<Current>>,
    lost_generation: AtomicU64,
    lost: Notify,
    closed: AtomicBool,
    shutdown: Notify,
}

/// A handle on the supervised connection; cheap to share behind an `Arc`.
pub struct Link {
    shared: Arc<Shared>,
    timing: LinkTiming,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Link {
    /// Starts the supervisor on the current Tokio runtime. Returns at once: the first
    /// connection is made in the background and announced with [`LinkEvent::Connected`].
    pub fn start(target: Target, timing: LinkTiming, sink: EventSink) -> Self {
        let (current, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            current,
            lost_generation: AtomicU64::new(0),
            lost: Notify::new(),
            closed: AtomicBool::new(false),
            shutdown: Notify::new(),
        });

        let supervisor =
            Supervisor { target, timing: timing.clone(), shared: shared.clone(), sink };
        let task = tokio::spawn(supervisor.run());
        Self { shared, timing, task: std::sync::Mutex::new(Some(task)) }
    }

    /// The command timeout in force.
    pub fn command_timeout(&self) -> Duration {
        self.timing.command_timeout
    }

    /// Runs `command` on the connection, waiting at most the command timeout in all (for a
    /// connection, then for the answer). A broken connection is reported to the supervisor.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let limit = self.timing.command_timeout;
        let attempt = async {
            let current = self.connection().await?;
            // A cluster connection recovers from a lost node by itself; only a single
            // server's broken connection is rebuilt from here.
            let single = !current.conn.is_cluster();
            let result = command(current.conn).await;
            if let Err(err) = &result {
                // READONLY: the server became a replica (a Sentinel failover): reconnect to
                // the primary at once instead of at the next health check.
                let demoted = err.code() == Some("READONLY");
                if single && (err.is_unrecoverable_error() || err.is_io_error() || demoted) {
                    self.report_loss(current.generation);
                }
            }
            result.map_err(StoreError::from)
        };

        match tokio::time::timeout(limit, attempt).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Stops the supervisor and drops the shared connection. Commands already sent keep
    /// their handle and settle; new ones fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.shutdown.notify_one();
        self.shared.current.send_replace(None);

        let task = self.task.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Whether [`Link::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    async fn connection(&self) -> Result<Current> {
        if self.is_closed() {
            return Err(StoreError::Closed);
        }

        // Fast path: a live connection, taken without registering as a watcher.
        if let Some(current) = self.shared.current.borrow().as_ref() {
            return Ok(current.clone());
        }

        let mut receiver = self.shared.current.subscribe();
        let current = receiver
            .wait_for(|current| current.is_some() || self.is_closed())
            .await
            .map_err(|_| StoreError::Closed)?
            .clone();
        current.ok_or(StoreError::Closed)
    }

    fn report_loss(&self, generation: u64) {
        self.shared.lost_generation.fetch_max(generation, Ordering::SeqCst);
        self.shared.lost.notify_one();
    }

    fn timeout_error(&self) -> StoreError {
        if self.is_closed() {
            return StoreError::Closed;
        }
        let connected = self.shared.current.borrow().is_some();
        let millis = self.timing.command_timeout.as_millis() as u64;
        if connected {
            StoreError::Timeout(millis)
        } else {
            StoreError::Redis(format!("not connected (no connection within {millis} ms)"))
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.shutdown.notify_one();
    }
}

/// The background task that owns connecting and reconnecting.
struct Supervisor {
    target: Target,
    timing: LinkTiming,
    shared: Arc<Shared>,
    sink: EventSink,
}

impl Supervisor {
    async fn run(self) {
        let mut generation = 0;
        let mut failures: u32 = 0;

        while !self.closed() {
            let Some((conn, address)) = self.connect_once().await else {
                failures = failures.saturating_add(1);
                if self.sleep_or_shutdown(self.backoff(failures)).await {
                    break;
                }
                continue;
            };

            failures = 0;
            generation += 1;
            self.shared.current.send_replace(Some(Current { conn: conn.clone(), generation }));
            (self.sink)(LinkEvent::Connected);

            let reason = self.watch(conn, address, generation).await;
            self.shared.current.send_replace(None);
            if self.closed() {
                break;
            }
            (self.sink)(LinkEvent::Disconnected(reason));
        }
    }

    fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    async fn connect_once(&self) -> Option<(Conn, Option<String>)> {
        let attempt = self.target.connect(self.timing.connect_timeout);
        let shutdown = self.shared.shutdown.notified();
        tokio::select! {
            result = tokio::time::timeout(self.timing.connect_timeout, attempt) => {
                result.ok().and_then(|connected| connected.ok())
            }
            _ = shutdown => None,
        }
    }

    /// Waits until the connection `generation` is lost or the link is closed; returns why.
    async fn watch(&self, mut conn: Conn, address: Option<String>, generation: u64) -> String {
        let mut tick = tokio::time::interval(self.timing.health_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            if self.closed() {
                return "closed".into();
            }
            if self.shared.lost_generation.load(Ordering::SeqCst) >= generation {
                return "connection lost".into();
            }

            tokio::select! {
                _ = self.shared.lost.notified() => {}
                _ = self.shared.shutdown.notified() => {}
                _ = tick.tick() => {
                    if let Err(reason) = self.ping(&mut conn).await {
                        return reason;
                    }
                    if let Some(address) = &address {
                        if !self.target.still_primary(address).await {
                            return "the primary changed".into();
                        }
                    }
                }
            }
        }
    }

    async fn ping(&self, conn: &mut Conn) -> std::result::Result<(), String> {
        match tokio::time::timeout(self.timing.command_timeout, conn.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) if err.is_unrecoverable_error() || err.is_io_error() => {
                Err("connection lost".into())
            }
            // A server error to PING (LOADING, BUSY) still means the server is there.
            Ok(Err(_)) => Ok(()),
            Err(_) => Err("server stopped answering".into()),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        let delay = self.timing.backoff_min.saturating_mul(1 << exponent);
        let capped = delay.min(self.timing.backoff_max);
        capped.mul_f64(0.8 + 0.2 * jitter())
    }

    /// Sleeps, returning `true` early if the link was closed meanwhile.
    async fn sleep_or_shutdown(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => self.closed(),
            _ = self.shared.shutdown.notified() => true,
        }
    }
}

/// A number in [0, 1) that varies between calls, to spread reconnection attempts of many
/// processes; it needs no cryptographic quality.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}
