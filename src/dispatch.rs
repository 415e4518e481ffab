//! Per-request operations, submitted from Node's thread and finished in batches.
//!
//! `submit` only queues the request, and `flush` wakes the dispatcher task once for all the
//! requests queued since (Node's side calls it once per turn of its event loop). The
//! dispatcher runs them concurrently on the store's one connection, and queues their
//! outcomes, waking the consumer (Node's event loop) once per batch. Neither side pays a
//! thread wake-up per operation.
//!
//! Sessions read are handed over cut into shape and values (see [`crate::json_split`]) when
//! the consumer builds them that way, so that Node's thread need not parse their JSON.
//!
//! After each event the dispatcher may busy-poll the request queue for a short while (the
//! `busyPollMicros` option, see [`crate::busy_poll`]) instead of sleeping: a request that
//! comes during that window starts without a wake-up at all, which is most of a round trip
//! at low concurrency, for some CPU of a Tokio thread spent looking.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Notify;

use crate::batch_queue::BatchQueue;
use crate::batch_wire::EncodedOutcomes;
use crate::busy_poll::{BusyPoll, ConsumerLag, Event};
use crate::connection::LinkEvent;
use crate::error::{Result, StoreError};
use crate::json_join::{Filled, Templates};
use crate::json_split;
use crate::shape_registry::ShapeRegistry;
use crate::store::{Lifetime, SessionStore};

/// While operations are running, how often the dispatcher looks for queued requests that
/// no outcome brought it to yet (see [`Dispatcher::flush`]): the most a request can wait.
const QUEUE_CHECK: Duration = Duration::from_millis(1);

/// Most outcomes handed over at once. Handing over every outcome of one read of replies
/// saves Node's thread a wake-up per few outcomes; handing them over in parts lets Node's
/// thread work on the first part (and send its next calls to Redis) while this thread
/// finishes the rest. Measured at concurrency 64, against all at once: set+get 1.4×, get
/// 1.7× the operations per second, for 0.4-0.8 µs more main-thread CPU per operation.
/// Parts of 8 measured within the noise of 16 in speed and CPU; parts of 4 cost more CPU
/// (get: 3.5 µs against 2.6) for no more speed.
const HAND_OVER: usize = 16;

/// A per-request operation of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `get(sid)`.
    Get,
    /// `set(sid, json, expiresAt, ttl)`.
    Set,
    /// `touch(sid, expiresAt, ttl)`.
    Touch,
    /// `destroy(sid)`.
    Destroy,
    /// The session named by a raw Cookie header (given in `key`).
    SessionFromCookie,
}

impl Op {
    /// The operation of a numeric code (0 to 4, in the order above).
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::Get,
            1 => Self::Set,
            2 => Self::Touch,
            3 => Self::Destroy,
            4 => Self::SessionFromCookie,
            _ => return None,
        })
    }
}

/// One submitted operation and its arguments.
#[derive(Debug)]
pub struct Request {
    /// The caller's id, returned with the outcome.
    pub id: u32,
    /// What to do.
    pub op: Op,
    /// The sid, or the Cookie header for [`Op::SessionFromCookie`].
    pub key: String,
    /// The session, for [`Op::Set`].
    pub json: Option<Written>,
    /// The cookie's expiry in epoch ms, for [`Op::Set`] and [`Op::Touch`].
    pub expires_at: Option<f64>,
    /// The TTL in seconds when there is no expiry, for [`Op::Set`] and [`Op::Touch`].
    pub ttl_secs: Option<f64>,
    /// The session's `userId`, for [`Op::Set`] and [`Op::Touch`] when the user index is on.
    pub user: Option<String>,
}

/// A session to write: its JSON, or its shape's values, written into JSON on the store's
/// thread (see [`crate::json_join`]).
#[derive(Debug)]
pub enum Written {
    /// The JSON.
    Json(String),
    /// The values of a shape.
    Filled(Filled),
}

impl Written {
    /// The session's JSON.
    pub fn into_json(self) -> Result<String> {
        match self {
            Self::Json(json) => Ok(json),
            Self::Filled(filled) => filled.to_json(),
        }
    }
}

/// What the consumer receives: an operation's outcome, or a change of the link.
#[derive(Debug)]
pub enum Outcome {
    /// Operation `id` finished with a session JSON (reads) or nothing.
    Done(u32, Option<String>),
    /// Operation `id` read a session, handed over cut into shape and values.
    Shaped(u32, ShapedSession),
    /// Operation `id` failed.
    Failed(u32, StoreError),
    /// The link is up.
    Connected,
    /// The link was lost, for the reason given.
    Disconnected(String),
}

/// A session read, cut (see [`crate::json_split`]), with the number of its shape.
#[derive(Debug)]
pub struct ShapedSession {
    /// The shape's number (see [`ShapeRegistry`]).
    pub shape: u32,
    /// The shape's descriptor, on the first use of its number only.
    pub definition: Option<String>,
    /// The values: one number per slot.
    pub slots: Vec<f64>,
    /// The values' strings and raw JSON pieces.
    pub text: String,
}

/// Queues requests and outcomes around one dispatcher task.
pub struct Dispatcher {
    requests: Arc<BatchQueue<Vec<Request>>>,
    ready: Arc<Notify>,
    outcomes: Arc<BatchQueue<EncodedOutcomes>>,
    in_flight: Arc<AtomicUsize>,
    /// Operations started and not finished: while there are some, the dispatcher task will
    /// wake for their outcomes and take new requests then, so a flush needs no wake-up.
    started: Arc<AtomicUsize>,
    /// The dispatcher is busy-polling the queue: a flush needs no wake-up.
    polling: Arc<AtomicBool>,
    /// How long the dispatcher busy-polls after an event; zero never.
    busy_poll: Duration,
    /// How quickly the consumer takes its outcomes (polling waits while it is slow).
    lag: Arc<ConsumerLag>,
    /// The shapes of sessions read, when they are handed over cut.
    shapes: Option<Arc<ShapeRegistry>>,
    /// The templates of sessions written as values, as Node's side defined them.
    templates: Templates,
    closing: AtomicBool,
}

impl Dispatcher {
    /// A dispatcher whose outcomes wake the consumer through `wake`, and that busy-polls for
    /// requests during `busy_poll` after each event. With `shaped`, sessions read are handed
    /// over cut into shape and values; without, as JSON.
    pub fn new(
        wake: impl Fn() + Send + Sync + 'static,
        busy_poll: Duration,
        shaped: bool,
    ) -> Self {
        let lag = Arc::new(ConsumerLag::new());
        let handed = lag.clone();
        Self {
            requests: Arc::new(BatchQueue::new(|| {})),
            ready: Arc::new(Notify::new()),
            outcomes: Arc::new(BatchQueue::new(move || {
                handed.handed();
                wake()
            })),
            in_flight: Arc::new(AtomicUsize::new(0)),
            started: Arc::new(AtomicUsize::new(0)),
            polling: Arc::new(AtomicBool::new(false)),
            busy_poll,
            lag,
            shapes: shaped.then(|| Arc::new(ShapeRegistry::new())),
            templates: Templates::default(),
            closing: AtomicBool::new(false),
        }
    }

    /// A sink for link events that feeds this dispatcher's outcomes.
    pub fn event_sink(&self) -> impl Fn(LinkEvent) + Send + Sync + 'static {
        let outcomes = self.outcomes.clone();
        move |event| {
            outcomes.push(match event {
                LinkEvent::Connected => Outcome::Connected,
                LinkEvent::Disconnected(reason) => Outcome::Disconnected(reason),
            })
        }
    }

    /// Queues a batch of requests, to be started at the next [`Dispatcher::flush`]; all
    /// refused once closing started.
    pub fn submit_all(&self, requests: Vec<Request>) -> Result<()> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.in_flight.fetch_add(requests.len(), Ordering::SeqCst);
        self.requests.push_all(requests);
        Ok(())
    }

    /// The templates of sessions written as values (see [`crate::json_join`]).
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// Reports requests that could not be read, as failed outcomes.
    pub fn refuse(&self, refused: Vec<(u32, StoreError)>) {
        self.outcomes.push_all(refused.into_iter().map(|(id, err)| Outcome::Failed(id, err)));
    }

    /// Has the dispatcher start the requests queued so far. Waking its thread costs a system
    /// call on Node's thread, so it is only done when no started operation is left to
    /// finish: otherwise the next outcome wakes the dispatcher, and it takes the queued
    /// requests then, or at its next [`QUEUE_CHECK`] if no outcome comes sooner (a slow or
    /// unreachable server). (The dispatcher counts an outcome down before it looks at the
    /// queue, and the requests were queued before this count was read, so none is left
    /// behind.) Nor is it done while the dispatcher busy-polls: it lowers its flag before
    /// its last look at the queue, so either that look or this flush sees the other.
    pub fn flush(&self) {
        let running = self.started.load(Ordering::SeqCst) > 0;
        if !running && !self.polling.load(Ordering::SeqCst) {
            self.ready.notify_one();
        }
    }

    /// Takes the outcomes that are ready, already encoded for JS.
    pub fn drain_outcomes(&self) -> EncodedOutcomes {
        let outcomes = self.outcomes.drain();
        if !outcomes.numbers.is_empty() {
            self.lag.taken();
        }
        outcomes
    }

    /// The dispatcher task: runs until the store is closed and nothing is in flight.
    pub fn run(&self, store: Arc<SessionStore>) -> impl std::future::Future<Output = ()> {
        let (requests, outcomes) = (self.requests.clone(), self.outcomes.clone());
        let (ready, in_flight) = (self.ready.clone(), self.in_flight.clone());
        let (started, polling) = (self.started.clone(), self.polling.clone());
        let (busy_poll, lag, shapes) = (self.busy_poll, self.lag.clone(), self.shapes.clone());
        async move {
            let mut running = FuturesUnordered::new();
            let mut check = tokio::time::interval(QUEUE_CHECK);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut poll = BusyPoll::new(busy_poll, Instant::now());
            loop {
                // Lowered before the look at the queue below (see `flush`).
                let open = poll.is_open(Instant::now());
                polling.store(open, Ordering::SeqCst);
                let queued = requests.is_filled();

                let mut event = true;
                tokio::select! {
                    biased;
                    () = std::future::ready(()), if queued => {}
                    Some(outcome) = running.next(), if !running.is_empty() => {
                        // Outcomes that are ready too go in the same hand-over (up to
                        // HAND_OVER), so that Node's thread wakes once for many replies.
                        let mut done = vec![outcome];
                        while done.len() < HAND_OVER {
                            let Some(Some(more)) = running.next().now_or_never() else { break };
                            done.push(more);
                        }
                        let finished = done.len();
                        outcomes.push_all(done);
                        in_flight.fetch_sub(finished, Ordering::SeqCst);
                        started.fetch_sub(finished, Ordering::SeqCst);
                    }
                    _ = ready.notified() => {}
                    _ = check.tick(), if !running.is_empty() => {}
                    () = tokio::task::yield_now(), if open => event = false,
                }

                // Every event takes what was queued (see `flush`).
                let found = requests.is_filled();
                if found {
                    let queued = requests.drain();
                    started.fetch_add(queued.len(), Ordering::SeqCst);
                    for request in queued {
                        running.push(perform_guarded(store.clone(), request, shapes.clone()));
                    }
                }
                if event || found {
                    let kind = if found { Event::Request } else { Event::Other };
                    let behind = lag.is_behind(busy_poll);
                    poll.record(kind, Instant::now(), behind, running.len());
                }

                // Queued and running requests all count as in flight.
                if store.is_closed() && in_flight.load(Ordering::SeqCst) == 0 {
                    break;
                }
            }
        }
    }

    /// Refuses new requests, then waits (at most `limit`) for those in flight to finish.
    pub async fn drain(&self, limit: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Lets the dispatcher task see that the store was closed, so that it ends.
    pub fn stop(&self) {
        self.ready.notify_one();
    }
}

/// Runs one request, turning a panic into [`StoreError::Internal`]; a session read is cut
/// when `shapes` is given.
async fn perform_guarded(
    store: Arc<SessionStore>,
    request: Request,
    shapes: Option<Arc<ShapeRegistry>>,
) -> Outcome {
    let id = request.id;
    match AssertUnwindSafe(perform(&store, request)).catch_unwind().await {
        Ok(Ok(Some(json))) => match shapes {
            Some(shapes) => cut(id, json, &shapes),
            None => Outcome::Done(id, Some(json)),
        },
        Ok(Ok(None)) => Outcome::Done(id, None),
        Ok(Err(err)) => Outcome::Failed(id, err),
        Err(_) => Outcome::Failed(id, StoreError::Internal("a panic was caught".into())),
    }
}

/// The outcome of a read of `json`: cut, when it can be and its shape has a number.
fn cut(id: u32, json: String, shapes: &ShapeRegistry) -> Outcome {
    let split = json_split::split(&json);
    let numbered = split.as_ref().and_then(|split| shapes.number(&split.descriptor));
    match (split, numbered) {
        (Some(split), Some(numbered)) => Outcome::Shaped(
            id,
            ShapedSession {
                shape: numbered.number,
                definition: numbered.is_new.then_some(split.descriptor),
                slots: split.slots,
                text: split.text,
            },
        ),
        _ => Outcome::Done(id, Some(json)),
    }
}

async fn perform(store: &SessionStore, request: Request) -> Result<Option<String>> {
    let Request { op, key, json, expires_at, ttl_secs, user, .. } = request;
    let lifetime = Lifetime { expires_at_ms: expires_at, ttl_secs };
    let user = user.as_deref();
    match op {
        Op::Get => store.get(&key).await,
        Op::Set => {
            let json = json.ok_or_else(|| StoreError::argument("session", "is missing"))?;
            let json = json.into_json()?;
            store.set(&key, json.as_bytes(), lifetime, user).await.map(|()| None)
        }
        Op::Touch => store.touch(&key, lifetime, user).await.map(|()| None),
        Op::Destroy => store.destroy(&key).await.map(|()| None),
        Op::SessionFromCookie => store.session_from_cookie(&key).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_wire::{OUTCOME_LEN, STATUS_DONE};
    use crate::config::{options_for, validate};
    use crate::test_redis::{start_server, Server};
    use std::sync::mpsc;

    fn get(id: u32) -> Request {
        let key = format!("sid-{id}");
        Request { id, op: Op::Get, key, json: None, expires_at: None, ttl_secs: None, user: None }
    }

    /// A dispatcher running on a store of its own Redis server, with `workers` Tokio threads.
    struct Running {
        dispatcher: Arc<Dispatcher>,
        store: Arc<SessionStore>,
        runtime: tokio::runtime::Runtime,
        _server: Server,
    }

    impl Running {
        fn start(
            wake: impl Fn() + Send + Sync + 'static,
            busy_poll: Duration,
            workers: usize,
        ) -> Self {
            let server = start_server();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap();
            let dispatcher = Arc::new(Dispatcher::new(wake, busy_poll, false));
            let settings = validate(options_for(&server.url)).unwrap();
            let store = runtime.block_on(async { SessionStore::start(settings, Arc::new(drop)) });
            let store = Arc::new(store);
            runtime.spawn(dispatcher.run(store.clone()));
            Self { dispatcher, store, runtime, _server: server }
        }

        fn stop(self) {
            self.runtime.block_on(self.store.close());
            self.dispatcher.stop();
        }
    }

    /// Submits `rounds` requests one at a time, each after the previous outcome and a pause
    /// that ends before, near and after the end of the busy-poll window, and checks that each
    /// one finishes: a flush that skipped its wake-up while the dispatcher stopped polling
    /// would leave a request waiting for good.
    fn one_at_a_time(busy_poll: Duration, rounds: u32) {
        let (woke, wake_ups) = mpsc::channel();
        let running = Running::start(
            move || {
                let _ = woke.send(());
            },
            busy_poll,
            2,
        );
        let dispatcher = &running.dispatcher;

        for id in 1..=rounds {
            std::thread::sleep(busy_poll.mul_f64(f64::from(id % 7) / 4.0));
            dispatcher.submit_all(vec![get(id)]).unwrap();
            dispatcher.flush();
            let outcome = wake_ups.recv_timeout(Duration::from_secs(3));
            assert!(outcome.is_ok(), "request {id} of {rounds} never finished");

            let numbers = dispatcher.drain_outcomes().numbers;
            assert_eq!(numbers.len(), OUTCOME_LEN, "one outcome per wake-up");
            assert_eq!((numbers[0], numbers[1]), (f64::from(id), STATUS_DONE));
        }
        running.stop();
    }

    /// A consumer that takes the outcomes as soon as it is woken, as Node's thread does when
    /// idle: the replies of one read must still reach it together.
    #[test]
    fn outcomes_ready_together_are_handed_over_together() {
        let slot: Arc<std::sync::Mutex<Option<Arc<Dispatcher>>>> = Arc::default();
        let (sizes, batches) = mpsc::channel();
        let consumer = slot.clone();
        let running = Running::start(
            move || {
                let taken = consumer.lock().unwrap().as_ref().map(|d| d.drain_outcomes());
                let _ = sizes.send(taken.map_or(0, |taken| taken.numbers.len() / OUTCOME_LEN));
            },
            Duration::ZERO,
            1,
        );
        *slot.lock().unwrap() = Some(running.dispatcher.clone());

        let mut largest = 0;
        for _ in 0..5 {
            running.dispatcher.submit_all((1..=64).map(get).collect()).unwrap();
            running.dispatcher.flush();
            let mut seen = 0;
            while seen < 64 {
                let size = batches.recv_timeout(Duration::from_secs(3)).expect("outcomes");
                seen += size;
                largest = largest.max(size);
            }
        }
        assert!(largest > HAND_OVER / 2, "at most {largest} outcomes were handed over together");
        assert!(largest <= HAND_OVER, "{largest} outcomes were handed over together");
        *slot.lock().unwrap() = None;
        running.stop();
    }

    #[test]
    fn requests_finish_while_busy_polling() {
        one_at_a_time(Duration::from_micros(100), 2000);
    }

    #[test]
    fn requests_finish_without_busy_polling() {
        one_at_a_time(Duration::ZERO, 300);
    }
}
