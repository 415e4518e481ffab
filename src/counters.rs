//! Counters an operator reads to know how the store is doing: hits and misses of reads,
//! values that did not decrypt (by the key that sealed them, so that an old key can be
//! retired once nothing sealed with it is read any more), and failed calls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::keys::{hex, KEY_ID_LEN};

/// Live counters of one store, updated without blocking the hot path (atomics), except for
/// decrypt failures, which are rare.
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    legacy: AtomicU64,
    undecryptable: Mutex<BTreeMap<String, u64>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Reads that found a session.
    pub hits: u64,
    /// Reads that found none (missing, expired, destroyed).
    pub misses: u64,
    /// Calls that failed on Redis (unreachable, timeout, server error).
    pub errors: u64,
    /// Reads served from a plaintext session of the `legacyPrefix` (not yet re-encrypted);
    /// also counted in `hits`. When it stops growing, the migration is over.
    pub legacy: u64,
    /// Values that did not decrypt, by the hex id of the key that sealed them (`unknown`
    /// when the value has no readable header).
    pub undecryptable: BTreeMap<String, u64>,
}

impl Counters {
    /// A read found a session.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// A read found none.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// A call failed on Redis.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A read was served from a legacy plaintext session.
    pub fn legacy(&self) {
        self.legacy.fetch_add(1, Ordering::Relaxed);
    }

    /// A value sealed with key `key_id` (if readable) did not decrypt.
    pub fn undecryptable(&self, key_id: Option<[u8; KEY_ID_LEN]>) {
        let name = key_id.map_or_else(|| "unknown".to_owned(), |id| hex(&id));
        let mut map = self.undecryptable.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *map.entry(name).or_default() += 1;
    }

    /// The counters now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let map = self.undecryptable.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        CountersSnapshot {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            legacy: self.legacy.load(Ordering::Relaxed),
            undecryptable: map.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_key() {
        let counters = Counters::default();
        counters.hit();
        counters.hit();
        counters.miss();
        counters.error();
        counters.legacy();
        counters.undecryptable(Some([0xab, 0xcd, 0x01, 0x02]));
        counters.undecryptable(Some([0xab, 0xcd, 0x01, 0x02]));
        counters.undecryptable(None);

        let snapshot = counters.snapshot();
        assert_eq!((snapshot.hits, snapshot.misses, snapshot.errors), (2, 1, 1));
        assert_eq!(snapshot.legacy, 1);
        assert_eq!(snapshot.undecryptable.get("abcd0102"), Some(&2));
        assert_eq!(snapshot.undecryptable.get("unknown"), Some(&1));
    }
}
