//! When the dispatcher busy-polls for requests instead of sleeping until woken.
//!
//! After each event the dispatcher may look at the request queue for a short window: a request
//! that comes meanwhile starts without a thread wake-up. That pays off when the caller answers
//! an outcome with its next request quickly (a lone caller waiting on each call), and only
//! burns a core when requests come further apart (a busy application doing other work between
//! calls, where the CPU is better left to it). So a window that runs out empty backs off: the
//! next 1, then 3, 7, ... up to [`MAX_SKIP`] events open no window. A request that comes
//! within the window, or would have come within it while no window was open, ends the
//! back-off. A window during which the thread was kept off its core for a while (every core
//! busy: a loaded machine, where polling only takes CPU from the work it waits for) counts as
//! empty. No window opens while the consumer is slow to take its outcomes (see
//! [`ConsumerLag`]): it is busy elsewhere and will not answer within a window. Nor while
//! [`MANY_RUNNING`] operations or more are running: their outcomes keep the dispatcher awake.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The most events in a row that open no window after windows ran out empty.
pub const MAX_SKIP: u32 = 63;

/// A pause between two looks longer than this means the polling thread was kept off its core:
/// the cores are all taken, and polling competes with the work that would answer it.
pub const PREEMPTED: Duration = Duration::from_micros(50);

/// With this many operations running, no window opens. Their outcomes come often enough to
/// wake the dispatcher for the requests queued meanwhile, so a window would save no wake-up;
/// its looks would only take CPU from Node's thread and Redis, which share the cores. One
/// caller, or a few, keeps its windows. (set+get at concurrency 64, medians of 7 interleaved
/// runs: 66.4k/s with a first form of the rule, which did not count the requests just
/// started, against 58.3k/s without it; 71.6k/s with this form against 64.8k/s with polling
/// off.)
pub const MANY_RUNNING: usize = 8;

/// What the dispatcher saw that ended its wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Requests were queued.
    Request,
    /// Anything else: an outcome, a timer, a wake-up with nothing queued.
    Other,
}

/// How long the consumer took to take the last outcomes it was handed: when it is slower
/// than a window, it is busy with other work, will not answer within the window either, and
/// is better left the CPU that polling would take.
#[derive(Debug)]
pub struct ConsumerLag {
    epoch: Instant,
    /// When the outcome queue last stopped being empty, in ns since `epoch`.
    handed: AtomicU64,
    /// How long the consumer took to take them, in ns.
    lag: AtomicU64,
}

impl ConsumerLag {
    /// A consumer not seen lagging yet.
    pub fn new() -> Self {
        Self { epoch: Instant::now(), handed: AtomicU64::new(0), lag: AtomicU64::new(0) }
    }

    /// The consumer was woken for new outcomes.
    pub fn handed(&self) {
        self.handed.store(self.nanos(), Ordering::Relaxed);
    }

    /// The consumer took the outcomes it was woken for.
    pub fn taken(&self) {
        let lag = self.nanos().saturating_sub(self.handed.load(Ordering::Relaxed));
        self.lag.store(lag, Ordering::Relaxed);
    }

    /// Whether the consumer took its last outcomes later than `window` after the wake-up.
    pub fn is_behind(&self, window: Duration) -> bool {
        self.lag.load(Ordering::Relaxed) > window.as_nanos() as u64
    }

    fn nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

impl Default for ConsumerLag {
    fn default() -> Self {
        Self::new()
    }
}

/// The busy-poll state of one dispatcher.
#[derive(Debug)]
pub struct BusyPoll {
    window: Duration,
    /// End of the open window, if one is open.
    until: Option<Instant>,
    /// Events to let pass without a window, after the last empty window.
    skip: u32,
    /// Events let pass since then.
    skipped: u32,
    last_event: Instant,
    /// The last time an open window was looked at.
    last_look: Instant,
}

impl BusyPoll {
    /// A state that opens windows of `window` (never, when zero).
    pub fn new(window: Duration, now: Instant) -> Self {
        Self { window, until: None, skip: 0, skipped: 0, last_event: now, last_look: now }
    }

    /// Whether a window is open at `now`. A window that ran out empty, or during which the
    /// thread was kept off its core, is closed here, and counted as a miss.
    pub fn is_open(&mut self, now: Instant) -> bool {
        let preempted = now.saturating_duration_since(self.last_look) > PREEMPTED;
        self.last_look = now;
        match self.until {
            Some(until) if now < until && !preempted => true,
            Some(_) => {
                self.until = None;
                self.skip = (self.skip * 2 + 1).min(MAX_SKIP);
                self.skipped = 0;
                false
            }
            None => false,
        }
    }

    /// Records an event at `now`, after which `running` operations are running, and opens a
    /// window after it unless backing off, the consumer is `behind` (see [`ConsumerLag`]),
    /// or [`MANY_RUNNING`] operations run.
    pub fn record(&mut self, event: Event, now: Instant, behind: bool, running: usize) {
        let soon = now.saturating_duration_since(self.last_event) <= self.window;
        if event == Event::Request && soon {
            self.skip = 0;
        }
        self.last_event = now;

        if self.window.is_zero() || behind || running >= MANY_RUNNING {
            self.until = None;
            return;
        }
        if self.skipped >= self.skip {
            self.until = Some(now + self.window);
            self.last_look = now;
        } else {
            self.until = None;
            self.skipped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(100);

    fn micros(start: Instant, us: u64) -> Instant {
        start + Duration::from_micros(us)
    }

    #[test]
    fn a_zero_window_never_opens() {
        let start = Instant::now();
        let mut poll = BusyPoll::new(Duration::ZERO, start);
        poll.record(Event::Request, start, false, 0);
        assert!(!poll.is_open(start));
    }

    #[test]
    fn each_event_opens_a_window_while_requests_come_within_it() {
        let start = Instant::now();
        let mut poll = BusyPoll::new(WINDOW, start);
        for step in 1..100 {
            let now = micros(start, step * 95);
            poll.record(Event::Request, now, false, 0);
            for look in [30, 60, 90] {
                assert!(poll.is_open(micros(now, look)), "step {step}, {look} µs in");
            }
        }
    }

    #[test]
    fn empty_windows_back_off_up_to_the_cap() {
        let start = Instant::now();
        let mut poll = BusyPoll::new(WINDOW, start);
        let mut now = start;
        let mut opened = Vec::new();
        for _ in 0..200 {
            now = micros(now, 500);
            poll.record(Event::Other, now, false, 0);
            opened.push(poll.is_open(now));
            assert!(!poll.is_open(micros(now, 100)), "a window closes after its length");
        }
        let gaps: Vec<usize> = opened
            .iter()
            .enumerate()
            .filter(|(_, open)| **open)
            .map(|(at, _)| at)
            .collect::<Vec<_>>()
            .windows(2)
            .map(|pair| pair[1] - pair[0] - 1)
            .collect();
        assert_eq!(&gaps[..6], &[1, 3, 7, 15, 31, 63]);
        assert!(gaps[6..].iter().all(|&gap| gap == MAX_SKIP as usize), "{gaps:?}");
    }

    #[test]
    fn a_request_within_the_window_ends_the_back_off() {
        let start = Instant::now();
        let mut poll = BusyPoll::new(WINDOW, start);
        let mut now = start;
        for _ in 0..20 {
            now = micros(now, 500);
            poll.record(Event::Other, now, false, 0);
            poll.is_open(micros(now, 200));
        }
        assert!(!poll.is_open(now), "backing off");

        poll.record(Event::Request, micros(now, 50), false, 0);
        assert!(poll.is_open(micros(now, 60)), "a window is open again");
    }

    #[test]
    fn a_late_request_does_not_end_the_back_off() {
        let start = Instant::now();
        let mut poll = BusyPoll::new(WINDOW, start);
        poll.record(Event::Other, start, false, 0);
        assert!(!poll.is_open(micros(start, 150)), "the first window ran out");

        poll.record(Event::Request, micros(start, 400), false, 0);
        assert!(!poll.is_open(micros(start, 410)), "one event is skipped");
    }

    #[test]
    fn no_window_opens_while_the_consumer_is_behind() {
        let start = Instant::now();
        let mut poll = BusyPoll::new(WINDOW, start);
        poll.record(Event::Request, start, true, 0);
        assert!(!poll.is_open(start));
        poll.record(Event::Request, micros(start, 10), false, 0);
        assert!(poll.is_open(micros(start, 20)), "no back-off came of it");
    }

    #[test]
    fn no_window_opens_while_many_operations_run() {
        let start = Instant::now();
        let mut poll = BusyPoll::new(WINDOW, start);
        poll.record(Event::Request, start, false, MANY_RUNNING);
        assert!(!poll.is_open(micros(start, 10)));

        poll.record(Event::Other, micros(start, 20), false, MANY_RUNNING - 1);
        assert!(poll.is_open(micros(start, 30)), "a few running keep their window");
    }

    #[test]
    fn the_lag_is_the_time_from_hand_over_to_take() {
        let lag = ConsumerLag::new();
        assert!(!lag.is_behind(Duration::ZERO));
        lag.handed();
        std::thread::sleep(Duration::from_millis(2));
        lag.taken();
        assert!(lag.is_behind(Duration::from_millis(1)));
        assert!(!lag.is_behind(Duration::from_secs(1)));
        lag.handed();
        lag.taken();
        assert!(!lag.is_behind(Duration::from_millis(1)));
    }

    #[test]
    fn a_window_with_a_long_pause_between_looks_counts_as_empty() {
        let start = Instant::now();
        let mut poll = BusyPoll::new(Duration::from_micros(500), start);
        poll.record(Event::Request, start, false, 0);
        for us in (10..=100).step_by(10) {
            assert!(poll.is_open(micros(start, us)), "looked at {us} µs");
        }
        assert!(!poll.is_open(micros(start, 200)), "kept off the core for 100 µs");

        poll.record(Event::Other, micros(start, 1000), false, 0);
        assert!(!poll.is_open(micros(start, 1010)), "the next event is skipped");
    }
}
