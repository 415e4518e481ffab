//! Session ends, heard by every instance of the application: a destroyed session is
//! announced on the Redis channel `prefix + "ended"` (published by the destroy script
//! itself, so no destroy goes unannounced), and an expired or evicted one through Redis
//! keyspace notifications, when the server has them enabled (`notify-keyspace-events Ex`).
//!
//! A watcher keeps one subscription per server: on a single server or behind Sentinel, one
//! connection for both; on a cluster, the channel on one node (a cluster broadcasts
//! `PUBLISH` to every node) and the notifications on every primary, since each node only
//! reports its own keys. Each subscription reconnects by itself with capped backoff, and a
//! cluster's primaries are looked up again every few seconds, so failovers are followed.
//!
//! Each subscription reports itself in place or lost (see `subscription_readiness`).
//! Pub/sub delivers at most once: an event published while a subscription is down is lost.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::{Client, ConnectionAddr};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::connection::LinkTiming;
use crate::subscription_readiness::Subscriptions;
use crate::target::{split_address, Conn, Target};

/// The subscription of a single server (or of Sentinel's primary): channel and notifications.
const PRIMARY: &str = "primary";

/// A cluster's subscription to the end channel (the notifications are per primary, named by
/// the primary's address).
const CHANNEL: &str = "channel";

/// How often a cluster's primaries (and a Sentinel's primary) are looked up again.
const TOPOLOGY_INTERVAL: Duration = Duration::from_secs(2);

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Destroyed: a logout, "log out everywhere", or an explicit destroy.
    Destroyed,
    /// Its TTL ran out.
    Expired,
    /// Redis evicted it under memory pressure.
    Evicted,
}

impl EndReason {
    /// The name JS receives.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destroyed => "destroyed",
            Self::Expired => "expired",
            Self::Evicted => "evicted",
        }
    }
}

/// One ended session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// The session id.
    pub sid: String,
    /// Why it ended.
    pub reason: EndReason,
}

/// Receives ended sessions, from the watcher's delivery task.
pub type EndSink = Arc<dyn Fn(SessionEnd) + Send + Sync>;

/// What the watcher needs to know about the store.
#[derive(Clone)]
pub struct WatchSettings {
    /// Where Redis is.
    pub target: Target,
    /// The store's key prefix.
    pub prefix: String,
    /// How long a destroyed session's tombstone lives: its expiry is not a second end.
    pub tombstone_ms: u64,
    /// Connection timing.
    pub timing: LinkTiming,
}

/// The channel on which destroyed sessions are announced.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}ended")
}

/// A running watcher; dropping it (or [`Watcher::stop`]) ends its subscriptions.
pub struct Watcher {
    stopped: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    subscribed: watch::Receiver<Subscriptions>,
}

impl Watcher {
    /// Starts watching on the current Tokio runtime; ends go to `sink`.
    pub fn start(settings: WatchSettings, sink: EndSink) -> Self {
        let (events, received) = mpsc::unbounded_channel();
        let needs = match settings.target {
            Target::Cluster(_) => Subscriptions::needing([CHANNEL.to_owned()], false),
            _ => Subscriptions::needing([PRIMARY.to_owned()], true),
        };
        let (ready, subscribed) = watch::channel(needs);
        let (stopped, _) = watch::channel(false);
        let node = NodeSettings {
            channel: channel(&settings.prefix),
            prefix: settings.prefix.clone(),
            timing: settings.timing.clone(),
            events,
            ready: Arc::new(ready),
            stopped: stopped.subscribe(),
        };

        let deliver = tokio::spawn(deliver(received, settings.tombstone_ms, sink));
        let watch = tokio::spawn(watch_target(settings.target, node));
        Self { stopped, tasks: vec![deliver, watch], subscribed }
    }

    /// Which subscriptions are in place (see `subscription_readiness::wait_ready`).
    pub fn readiness(&self) -> watch::Receiver<Subscriptions> {
        self.subscribed.clone()
    }

    /// Ends every subscription.
    pub fn stop(&self) {
        self.stopped.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What every subscription task shares.
#[derive(Clone)]
struct NodeSettings {
    channel: String,
    prefix: String,
    timing: LinkTiming,
    events: mpsc::UnboundedSender<SessionEnd>,
    ready: Arc<watch::Sender<Subscriptions>>,
    stopped: watch::Receiver<bool>,
}

/// Which subscriptions one connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Role {
    channel: bool,
    notifications: bool,
}

async fn watch_target(target: Target, node: NodeSettings) {
    match &target {
        Target::Cluster(cluster) => watch_cluster(cluster.seeds().to_vec(), &target, node).await,
        _ => {
            let role = Role { channel: true, notifications: true };
            subscribe_loop(|| primary_client(&target), role, PRIMARY, node).await
        }
    }
}

/// The client of the one server, or of the primary Sentinel names now.
async fn primary_client(target: &Target) -> Option<Client> {
    target.primary_client().await.ok()
}

/// On a cluster: the channel through the seeds, the notifications on every primary, the
/// primaries looked up again every few seconds.
async fn watch_cluster(seeds: Vec<Client>, target: &Target, node: NodeSettings) {
    let channel_role = Role { channel: true, notifications: false };
    let seed_node = node.clone();
    let channel_task = tokio::spawn(async move {
        let mut turn = 0usize;
        let next_seed = move || {
            turn += 1;
            let seed = seeds.get(turn % seeds.len().max(1)).cloned();
            async move { seed }
        };
        subscribe_loop(next_seed, channel_role, CHANNEL, seed_node).await
    });

    let mut per_node: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut conn: Option<Conn> = None;
    let mut stopped = node.stopped.clone();
    loop {
        if let Some(primaries) = cluster_primaries(target, &mut conn).await {
            follow_primaries(&mut per_node, &primaries, target, &node);
        }
        tokio::select! {
            _ = tokio::time::sleep(TOPOLOGY_INTERVAL) => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
    }
    channel_task.abort();
    per_node.values().for_each(JoinHandle::abort);
}

async fn cluster_primaries(target: &Target, conn: &mut Option<Conn>) -> Option<Vec<String>> {
    if conn.is_none() {
        *conn = Some(target.connect(Duration::from_secs(2)).await.ok()?.0);
    }
    let primaries = conn.as_mut()?.primaries().await;
    if primaries.is_err() {
        *conn = None;
    }
    primaries.ok()
}

/// Starts a notification subscription on each new primary, ends those of former ones.
fn follow_primaries(
    per_node: &mut HashMap<String, JoinHandle<()>>,
    primaries: &[String],
    target: &Target,
    node: &NodeSettings,
) {
    let current: HashSet<&String> = primaries.iter().collect();
    per_node.retain(|address, task| {
        let keep = current.contains(address);
        if !keep {
            task.abort();
            node.ready.send_modify(|subs| subs.drop_need(address));
        }
        keep
    });

    let role = Role { channel: false, notifications: true };
    for address in primaries {
        if per_node.contains_key(address) {
            continue;
        }
        node.ready.send_modify(|subs| subs.need(address));
        let client = target.node_client(address);
        let (node, name) = (node.clone(), address.clone());
        let task = tokio::spawn(async move {
            let Some(client) = client else { return };
            subscribe_loop(|| std::future::ready(Some(client.clone())), role, &name, node).await
        });
        per_node.insert(address.clone(), task);
    }
    node.ready.send_modify(Subscriptions::mark_known);
}

/// Subscribes through the clients `client_for` gives, again after every loss, with capped
/// backoff, until the watcher stops; reports itself in place or lost as `name`.
async fn subscribe_loop<F, Fut>(mut client_for: F, role: Role, name: &str, node: NodeSettings)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Client>>,
{
    let mut failures: u32 = 0;
    let mut stopped = node.stopped.clone();

    while !*stopped.borrow() {
        let session = async {
            let client = client_for().await?;
            listen(&client, role, name, &node).await
        };
        let heard = tokio::select! {
            heard = session => heard,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        node.ready.send_modify(|subs| subs.down(name));

        failures = if heard.is_some() { 1 } else { failures.saturating_add(1) };
        let exponent = failures.saturating_sub(1).min(16);
        let delay = node.timing.backoff_min.saturating_mul(1 << exponent);
        tokio::time::sleep(delay.min(node.timing.backoff_max)).await;
    }
}

/// One subscription, until its connection is lost. `Some` when it was established.
async fn listen(client: &Client, role: Role, name: &str, node: &NodeSettings) -> Option<()> {
    let connect = client.get_async_pubsub();
    let mut pubsub =
        tokio::time::timeout(node.timing.connect_timeout, connect).await.ok()?.ok()?;
    let db = client.get_connection_info().redis_settings().db();

    if role.channel {
        pubsub.subscribe(&node.channel).await.ok()?;
    }
    if role.notifications {
        pubsub.subscribe(format!("__keyevent@{db}__:expired")).await.ok()?;
        pubsub.subscribe(format!("__keyevent@{db}__:evicted")).await.ok()?;
    }
    node.ready.send_modify(|subs| subs.up(name));

    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let channel = message.get_channel_name().to_owned();
        let Ok(payload) = message.get_payload::<Vec<u8>>() else { continue };
        if let Some(end) = classify(&channel, &payload, node) {
            let _ = node.events.send(end);
        }
    }
    Some(())
}

/// The session end a message announces, if it is one of this store's.
fn classify(channel: &str, payload: &[u8], node: &NodeSettings) -> Option<SessionEnd> {
    let text = std::str::from_utf8(payload).ok()?;
    if channel == node.channel {
        return Some(SessionEnd { sid: text.to_owned(), reason: EndReason::Destroyed });
    }
    let reason = if channel.ends_with(":expired") {
        EndReason::Expired
    } else if channel.ends_with(":evicted") {
        EndReason::Evicted
    } else {
        return None;
    };
    let sid = text.strip_prefix(node.prefix.as_str())?;
    (!sid.is_empty()).then(|| SessionEnd { sid: sid.to_owned(), reason })
}

/// Hands events to `sink`, leaving out the expiry of a tombstone: that session was already
/// reported destroyed.
async fn deliver(
    mut events: mpsc::UnboundedReceiver<SessionEnd>,
    tombstone_ms: u64,
    sink: EndSink,
) {
    let mut buried = Buried::new(Duration::from_millis(tombstone_ms) + Duration::from_secs(60));
    while let Some(end) = events.recv().await {
        if buried.is_second_end(&end) {
            continue;
        }
        sink(end);
    }
}

/// Destroyed sessions remembered at most, so that memory stays bounded under any rate of
/// logouts; past it the oldest are forgotten first (their tombstone's expiry would then be
/// reported as an expiry).
const MAX_BURIED: usize = 65_536;

/// Sessions reported destroyed recently, whose tombstone's expiry is not news. Kept in
/// arrival order too, so that forgetting the old ones costs nothing per event.
struct Buried {
    since: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
    keep: Duration,
    cap: usize,
}

impl Buried {
    fn new(keep: Duration) -> Self {
        Self::with_cap(keep, MAX_BURIED)
    }

    fn with_cap(keep: Duration, cap: usize) -> Self {
        Self { since: HashMap::new(), order: VecDeque::new(), keep, cap }
    }

    /// Records destroyed sessions; true for the expiry of one recorded.
    fn is_second_end(&mut self, end: &SessionEnd) -> bool {
        match end.reason {
            EndReason::Destroyed => {
                let now = Instant::now();
                self.forget_old(now);
                self.since.insert(end.sid.clone(), now);
                self.order.push_back((now, end.sid.clone()));
                false
            }
            EndReason::Expired => self.since.remove(&end.sid).is_some(),
            EndReason::Evicted => false,
        }
    }

    /// Drops what is older than `keep`, and the oldest beyond the cap. An entry of `order`
    /// whose sid was destroyed again later, or has expired, no longer matches `since`.
    fn forget_old(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            let fresh = now.duration_since(*at) < self.keep;
            if fresh && self.order.len() < self.cap {
                break;
            }
            if let Some((at, sid)) = self.order.pop_front() {
                if self.since.get(&sid) == Some(&at) {
                    self.since.remove(&sid);
                }
            }
        }
    }
}

/// A copy of `seed`'s connection settings (credentials, TLS) aimed at `address`.
pub fn aimed_at(seed: &Client, address: &str) -> Option<Client> {
    let (host, port) = split_address(address)?;
    let info = seed.get_connection_info().clone();
    let addr = match info.addr().clone() {
        ConnectionAddr::TcpTls { insecure, tls_params, .. } => {
            ConnectionAddr::TcpTls { host, port, insecure, tls_params }
        }
        _ => ConnectionAddr::Tcp(host, port),
    };
    Client::open(info.set_addr(addr)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_client_is_aimed_at_ipv6_nodes_without_brackets() {
        let seed = Client::open("redis://:pw@127.0.0.1:7000/").unwrap();
        for address in ["[::1]:7005", "::1:7005"] {
            let client = aimed_at(&seed, address).unwrap();
            let info = client.get_connection_info();
            assert_eq!(info.addr(), &ConnectionAddr::Tcp("::1".to_owned(), 7005), "{address}");
            assert_eq!(info.redis_settings().password(), Some("pw"), "credentials are kept");
        }
        assert!(aimed_at(&seed, "no-port").is_none());
    }

    fn node() -> NodeSettings {
        let (events, _) = mpsc::unbounded_channel();
        let (ready, _) = watch::channel(Subscriptions::default());
        let (_, stopped) = watch::channel(false);
        NodeSettings {
            channel: channel("session:"),
            prefix: "session:".into(),
            timing: LinkTiming::default(),
            events,
            ready: Arc::new(ready),
            stopped,
        }
    }

    #[test]
    fn messages_are_classified() {
        let node = node();
        let destroyed = classify("session:ended", b"abc", &node).unwrap();
        assert_eq!(destroyed.reason, EndReason::Destroyed);
        assert_eq!(destroyed.sid, "abc");
        let expired = classify("__keyevent@0__:expired", b"session:abc", &node).unwrap();
        assert_eq!((expired.sid.as_str(), expired.reason), ("abc", EndReason::Expired));
        assert!(classify("__keyevent@0__:expired", b"other:abc", &node).is_none());
        assert!(classify("__keyevent@0__:expired", b"session:", &node).is_none());
        assert!(classify("elsewhere", b"abc", &node).is_none());
    }

    #[test]
    fn old_and_excess_destroys_are_forgotten() {
        let end = |sid: &str, reason| SessionEnd { sid: sid.into(), reason };
        let mut buried = Buried::with_cap(Duration::from_secs(60), 3);
        for sid in ["a", "b", "c", "d"] {
            buried.is_second_end(&end(sid, EndReason::Destroyed));
        }
        assert!(!buried.is_second_end(&end("a", EndReason::Expired)), "past the cap");
        assert!(buried.is_second_end(&end("d", EndReason::Expired)));
        assert!(buried.since.len() <= 3 && buried.order.len() <= 3);

        let mut brief = Buried::with_cap(Duration::ZERO, 100);
        brief.is_second_end(&end("a", EndReason::Destroyed));
        brief.is_second_end(&end("b", EndReason::Destroyed));
        assert!(!brief.is_second_end(&end("a", EndReason::Expired)), "past keep");
    }

    #[test]
    fn a_tombstone_expiry_is_not_a_second_end() {
        let mut buried = Buried::new(Duration::from_secs(60));
        let end = |reason| SessionEnd { sid: "abc".into(), reason };
        assert!(!buried.is_second_end(&end(EndReason::Destroyed)));
        assert!(buried.is_second_end(&end(EndReason::Expired)));
        assert!(!buried.is_second_end(&end(EndReason::Expired)));
    }
}
