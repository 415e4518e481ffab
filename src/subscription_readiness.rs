//! Whether a session-end watcher hears every end: each of its subscriptions is in place.
//!
//! A watcher needs one subscription on a single server or behind Sentinel, and on a cluster
//! the channel plus one per primary (see `session_events`). Each subscription reports when
//! it is in place and when its connection is lost; the watcher is ready while all it needs
//! are in place. On a cluster it is not ready before the primaries are known.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::watch;

/// The subscriptions a watcher needs, and those in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    needed: HashSet<String>,
    up: HashSet<String>,
    /// Whether `needed` is complete (a cluster's primaries have been looked up).
    known: bool,
}

impl Subscriptions {
    /// Needs exactly `names`, as far as known.
    pub fn needing<I: IntoIterator<Item = String>>(names: I, known: bool) -> Self {
        Self { needed: names.into_iter().collect(), up: HashSet::new(), known }
    }

    /// Whether every subscription needed is in place.
    pub fn is_ready(&self) -> bool {
        self.known && !self.needed.is_empty() && self.needed.is_subset(&self.up)
    }

    /// Subscription `name` is in place (ignored when it is no longer needed).
    pub fn up(&mut self, name: &str) {
        if self.needed.contains(name) {
            self.up.insert(name.to_owned());
        }
    }

    /// Subscription `name` lost its connection.
    pub fn down(&mut self, name: &str) {
        self.up.remove(name);
    }

    /// From now on `name` is needed as well.
    pub fn need(&mut self, name: &str) {
        self.needed.insert(name.to_owned());
    }

    /// `name` is no longer needed (a former primary).
    pub fn drop_need(&mut self, name: &str) {
        self.needed.remove(name);
        self.up.remove(name);
    }

    /// The list of needed subscriptions is now complete.
    pub fn mark_known(&mut self) {
        self.known = true;
    }
}

/// Waits until `readiness` says every subscription is in place (events from then on are
/// heard), at most `limit`; returns whether it is.
pub async fn wait_ready(mut readiness: watch::Receiver<Subscriptions>, limit: Duration) -> bool {
    let wait = readiness.wait_for(Subscriptions::is_ready);
    matches!(tokio::time::timeout(limit, wait).await, Ok(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_every_needed_subscription_is_up() {
        let mut subs = Subscriptions::needing(["server".to_owned()], true);
        assert!(!subs.is_ready());
        subs.up("server");
        assert!(subs.is_ready());
        subs.down("server");
        assert!(!subs.is_ready(), "a lost subscription is not ready");
        subs.up("server");
        assert!(subs.is_ready());
    }

    #[test]
    fn a_cluster_is_ready_once_its_primaries_are_known_and_all_subscribed() {
        let mut subs = Subscriptions::needing(["channel".to_owned()], false);
        subs.up("channel");
        assert!(!subs.is_ready(), "primaries not looked up yet");

        for primary in ["a:1", "b:1"] {
            subs.need(primary);
        }
        subs.mark_known();
        subs.up("a:1");
        assert!(!subs.is_ready(), "b:1 is not subscribed yet");
        subs.up("b:1");
        assert!(subs.is_ready());

        subs.need("c:1");
        assert!(!subs.is_ready(), "a new primary after a failover");
        subs.drop_need("b:1");
        subs.up("c:1");
        assert!(subs.is_ready());
        subs.up("b:1");
        assert!(subs.is_ready(), "a former primary is not taken back in");
    }

    #[test]
    fn nothing_needed_is_never_ready() {
        assert!(!Subscriptions::needing([], true).is_ready());
    }
}
