//! "Log out everywhere": a user's sessions, listed and destroyed through the per-user index
//! of [`crate::user_index`], each entry checked against the session key it points to.
//!
//! Whether a session still belongs to the user is decided by the caller, who parses the
//! session JSON (with the application's serializer); this layer returns the candidates and
//! acts on the caller's verdict.

use crate::error::{Result, StoreError};
use crate::limits::check_sid;
use crate::migration::{self, Legacy};
use crate::store::SessionStore;
use crate::ttl;
use crate::user_index::{self, IndexEntry, IndexedSession, UserIndex, STALE_GRACE_MS};

/// One indexed session of a user, as read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// The session id.
    pub sid: String,
    /// The decrypted session JSON; `None` while its first write may still be on its way.
    pub json: Option<String>,
    /// Milliseconds left (-1: no expiry, -2: not written yet).
    pub ttl_ms: i64,
    /// When the session was last saved or touched, in epoch ms.
    pub last_write_ms: u64,
}

/// What was read for one index entry, and whether it came from connect-redis's key.
struct Found {
    read: IndexedSession,
    legacy: bool,
}

impl SessionStore {
    /// The sessions that `user`'s index points to. Entries whose session is gone (destroyed,
    /// expired) are removed from the index, unless recorded again meanwhile, and left out;
    /// only an entry younger than [`STALE_GRACE_MS`] without a session is returned, with no
    /// JSON, because its session write may still be on its way. Undecryptable sessions are
    /// left out and their entries kept (see `sort_out`).
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<UserSession>> {
        let index = self.user_index()?;
        let link = self.backend().link();

        let entries = index.entries(link, user).await?;
        let keys = entries.iter().map(|entry| self.key(&entry.sid)).collect();
        let found = user_index::read_sessions(link, keys, entries).await?;
        let found = self.with_legacy_copies(found).await?;

        let now = ttl::now_ms().max(0.0) as u64;
        let (sessions, stale) = self.sort_out(found, now);
        index.forget_unchanged(link, user, &stale).await?;
        Ok(sessions)
    }

    /// Destroys each of `sids` (leaving tombstones and announcing the ends, as `destroy`
    /// does) and removes them from `user`'s index.
    pub async fn destroy_user_sessions(&self, user: &str, sids: &[String]) -> Result<()> {
        let index = self.user_index()?;
        user_index::check_user(user)?;
        for sid in sids {
            check_sid(sid)?;
        }

        let destroys = sids.iter().map(|sid| self.destroy(sid));
        for result in futures_util::future::join_all(destroys).await {
            result?;
        }
        index.forget(self.backend().link(), user, sids).await
    }

    /// Removes `sids` from `user`'s index, leaving their sessions alone (they belong to
    /// someone else now).
    pub async fn forget_user_sessions(&self, user: &str, sids: &[String]) -> Result<()> {
        self.user_index()?.forget(self.backend().link(), user, sids).await
    }

    fn user_index(&self) -> Result<&UserIndex> {
        self.user_index.as_ref().ok_or(StoreError::UserIndexOff)
    }

    /// During a migration from connect-redis with its own prefix, a session not sealed yet
    /// lives at its legacy key: read it there for the entries that found nothing, so that
    /// "log out everywhere" ends it too. Each result says where its value came from.
    async fn with_legacy_copies(&self, found: Vec<IndexedSession>) -> Result<Vec<Found>> {
        let legacy = match &self.legacy {
            Some(legacy) if !legacy.shares_keys() => legacy,
            _ => return Ok(found.into_iter().map(|read| Found { read, legacy: false }).collect()),
        };
        let (sealed, missing): (Vec<_>, Vec<_>) =
            found.into_iter().partition(|read| read.value.is_some());

        let keys = missing.iter().map(|read| legacy.key(&read.entry.sid)).collect();
        let entries = missing.iter().map(|read| read.entry.clone()).collect();
        let copies = user_index::read_sessions(self.backend().link(), keys, entries).await?;

        let copies = missing.into_iter().zip(copies).map(|(read, copy)| match copy.value {
            Some(_) => Found { read: copy, legacy: true },
            None => Found { read, legacy: false },
        });
        Ok(sealed.into_iter().map(|read| Found { read, legacy: false }).chain(copies).collect())
    }

    /// The session JSON of what was read: a sealed session, or while migrating a plaintext
    /// one of connect-redis (at its legacy key, or at the store's own key when they share
    /// the prefix), as `get` reads them.
    fn session_json(&self, key: &[u8], value: &[u8], from_legacy: bool) -> Option<String> {
        if from_legacy {
            return migration::plaintext_session(value);
        }
        let shares_keys = self.legacy.as_ref().is_some_and(Legacy::shares_keys);
        match self.open(key, value) {
            Ok(json) => Some(json),
            Err(_) if shares_keys => migration::plaintext_session(value),
            Err(_) => None,
        }
    }

    /// Splits what was read into sessions to return and stale entries to forget. A value
    /// that opens with no key held here (a key newer than this instance's, during a
    /// deployment) is neither: its entry stays for the instances that can read it.
    fn sort_out(&self, found: Vec<Found>, now: u64) -> (Vec<UserSession>, Vec<IndexEntry>) {
        let mut sessions = Vec::new();
        let mut stale = Vec::new();
        for Found { read: IndexedSession { entry, value, ttl_ms }, legacy } in found {
            let key = self.key(&entry.sid);
            let json = match value {
                Some(value) => match self.session_json(&key, &value, legacy) {
                    Some(json) => Some(json),
                    None => continue,
                },
                None => None,
            };
            let young = now.saturating_sub(entry.last_write_ms) < STALE_GRACE_MS;
            if json.is_none() && !(young && ttl_ms == -2) {
                stale.push(entry);
                continue;
            }
            let IndexEntry { sid, last_write_ms, .. } = entry;
            sessions.push(UserSession { sid, json, ttl_ms, last_write_ms });
        }
        (sessions, stale)
    }
}
