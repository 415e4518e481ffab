//! "Log out everywhere": a user's sessions, listed and destroyed through the per-user index
//! of [`crate::user_index`], each entry checked against the session key it points to.
//!
//! Whether a session still belongs to the user is decided by the caller, who parses the
//! session JSON (with the application's serializer); this layer returns the candidates and
//! acts on the caller's verdict.

use crate::error::{Result, StoreError};
use crate::limits::check_sid;
use crate::store::SessionStore;
use crate::ttl;
use crate::user_index::{self, IndexedSession, UserIndex, STALE_GRACE_MS};

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

impl SessionStore {
    /// The sessions that `user`'s index points to. Entries whose session is gone (destroyed,
    /// expired, undecryptable) are removed from the index and left out; only an entry
    /// younger than [`STALE_GRACE_MS`] without a session is returned, with no JSON, because
    /// its session write may still be on its way.
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<UserSession>> {
        let index = self.user_index()?;
        let link = self.backend().link();

        let entries = index.entries(link, user).await?;
        let keys = entries.iter().map(|entry| self.key(&entry.sid)).collect();
        let found = user_index::read_sessions(link, keys, entries).await?;

        let now = ttl::now_ms().max(0.0) as u64;
        let (sessions, stale) = self.sort_out(found, now);
        index.forget(link, user, &stale).await?;
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

    /// Splits what was read into sessions to return and stale entries to forget.
    fn sort_out(&self, found: Vec<IndexedSession>, now: u64) -> (Vec<UserSession>, Vec<String>) {
        let mut sessions = Vec::new();
        let mut stale = Vec::new();
        for IndexedSession { entry, value, ttl_ms } in found {
            let key = self.key(&entry.sid);
            let json = value.and_then(|value| self.open(&key, &value).ok());
            let young = now.saturating_sub(entry.last_write_ms) < STALE_GRACE_MS;
            match json {
                Some(_) => {}
                None if young && ttl_ms == -2 => {}
                None => {
                    stale.push(entry.sid);
                    continue;
                }
            }
            let last_write_ms = entry.last_write_ms;
            sessions.push(UserSession { sid: entry.sid, json, ttl_ms, last_write_ms });
        }
        (sessions, stale)
    }
}
