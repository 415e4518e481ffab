//! Operator tools: what is stored for one session, and statistics over all of them, for the
//! command-line tool. They read Redis only; nothing here changes a key.

use crate::envelope;
use crate::error::Result;
use crate::keys::hex;
use crate::limits::check_sid;
use crate::store::SessionStore;

/// What is stored under one sid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No key.
    Missing,
    /// A destroyed session's tombstone.
    Tombstone,
    /// A session that decrypts; its JSON and the id of the key that sealed it.
    Session {
        /// The decrypted session JSON.
        json: String,
        /// Hex fingerprint of the sealing key.
        key_id: String,
    },
    /// A value that does not decrypt with this store's keys.
    Undecryptable {
        /// Hex fingerprint of the sealing key, when the value has a readable header.
        key_id: Option<String>,
    },
}

/// One session as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// What is stored.
    pub stored: Stored,
    /// Milliseconds left (-1: no expiry, -2: no key).
    pub ttl_ms: i64,
}

/// Statistics over one SCAN step; the caller adds the pages up and shows progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsPage {
    /// Cursor of the next step; "0" when the walk is over.
    pub cursor: String,
    /// Session values seen.
    pub sessions: u32,
    /// Tombstones seen.
    pub tombstones: u32,
    /// `MEMORY USAGE` of the sessions seen, in bytes.
    pub session_bytes: u64,
    /// Milliseconds left of each session seen (-1 for none).
    pub ttls_ms: Vec<i64>,
    /// Sealing key fingerprint of each session seen (empty when unreadable).
    pub key_ids: Vec<String>,
}

impl SessionStore {
    /// What is stored for `sid`, decrypted when possible.
    pub async fn inspect(&self, sid: &str) -> Result<Inspection> {
        check_sid(sid)?;
        let key = self.key(sid);
        let facts = self.backend().describe(std::slice::from_ref(&key)).await?;
        let (kind, ttl_ms) = facts.first().map_or(("none", -2), |f| (f.kind.as_str(), f.ttl_ms));

        let stored = match kind {
            "none" => Stored::Missing,
            "hash" => Stored::Tombstone,
            _ => match self.backend().get(&key).await? {
                None => Stored::Missing,
                Some(value) => self.classify(&key, &value),
            },
        };
        Ok(Inspection { stored, ttl_ms })
    }

    /// Statistics of the keys found by one SCAN step from `cursor` ("0" to start).
    pub async fn stats_page(&self, cursor: &str) -> Result<StatsPage> {
        let (next, keys) = self.backend().scan_page(&self.scan_pattern(), cursor, None).await?;
        let facts = self.backend().describe(&keys).await?;

        let mut page = StatsPage { cursor: next, ..StatsPage::default() };
        let mut session_keys = Vec::new();
        for (key, fact) in keys.into_iter().zip(facts) {
            match fact.kind.as_str() {
                "string" => {
                    page.sessions += 1;
                    page.session_bytes += fact.bytes.unwrap_or(0);
                    page.ttls_ms.push(fact.ttl_ms);
                    session_keys.push(key);
                }
                "hash" => page.tombstones += 1,
                _ => {}
            }
        }

        let values = self.backend().mget(&session_keys).await?;
        page.key_ids = values
            .iter()
            .map(|value| {
                value.as_deref().and_then(envelope::key_id_of).map_or(String::new(), |id| hex(&id))
            })
            .collect();
        Ok(page)
    }

    fn classify(&self, key: &[u8], value: &[u8]) -> Stored {
        let key_id = envelope::key_id_of(value).map(|id| hex(&id));
        match (self.open(key, value), key_id) {
            (Ok(json), Some(key_id)) => Stored::Session { json, key_id },
            (_, key_id) => Stored::Undecryptable { key_id },
        }
    }
}
