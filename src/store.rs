//! The session store: what express-session asks of a store, on sealed values in Redis.
//!
//! JSON stays a byte string here: it is produced and read by the layers above (V8, or
//! `json_join` and `json_split` for sessions crossing by shape), and this layer only checks
//! its size, seals it under the key `prefix + sid`, and opens it again.

use crate::backend::{Acknowledgement, Backend};
use crate::connection::{EventSink, Link, LinkTiming};
use crate::cookie_header;
use crate::counters::{Counters, CountersSnapshot};
use crate::envelope;
use crate::error::{Result, StoreError};
use crate::keys::KeyRing;
use crate::limits::{self, check_payload, check_sid};
use crate::migration::{self, Legacy};
use crate::session_events::{self, EndSink, WatchSettings, Watcher};
use crate::signature;
use crate::subscription_readiness;
use crate::target::Target;
use crate::ttl::{self, Expiry};
use crate::user_index::{self, UserIndex};

/// Settings of a store, already validated by [`crate::config`].
pub struct StoreSettings {
    /// Where Redis is: one server (URL, TLS, credentials, database) or a cluster.
    pub target: Target,
    /// Prepended to every sid to form its Redis key.
    pub prefix: String,
    /// Cookie secrets, newest first: the first signs, all verify.
    pub secrets: Vec<String>,
    /// Encryption keys: the first seals, all open.
    pub keys: KeyRing,
    /// Name of the session cookie read from raw Cookie headers.
    pub cookie_name: String,
    /// Largest session JSON accepted, in bytes.
    pub max_session_bytes: usize,
    /// `COUNT` hint of each SCAN step.
    pub scan_count: u32,
    /// How long a destroyed session's tombstone refuses late writes, in milliseconds.
    pub tombstone_ms: u64,
    /// Replicas that must confirm each write (`WAIT`), if any.
    pub acknowledgement: Option<Acknowledgement>,
    /// Connection timing.
    pub timing: LinkTiming,
    /// Where the per-user indexes live (`user_prefix + userId`), when they are kept.
    pub user_index_prefix: Option<String>,
    /// Where connect-redis kept plaintext sessions, when they are to be migrated.
    pub legacy_prefix: Option<String>,
}

/// How long a session is to live: the cookie's expiry, else a TTL (see [`ttl::expiry`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Lifetime {
    /// The cookie's `expires`, in epoch milliseconds.
    pub expires_at_ms: Option<f64>,
    /// Seconds to live, when the cookie has no expiry.
    pub ttl_secs: Option<f64>,
}

/// One session as returned by [`SessionStore::all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// The session id (the key without the prefix).
    pub sid: String,
    /// The decrypted session JSON.
    pub json: String,
}

/// The result of [`SessionStore::all`]: readable sessions, and how many could not be opened.
#[derive(Debug, Default)]
pub struct AllSessions {
    /// Sessions that decrypted.
    pub sessions: Vec<SessionEntry>,
    /// Values under the prefix that did not decrypt (tampered, foreign, retired key).
    pub undecryptable: u32,
}

/// A session store bound to one Redis deployment.
pub struct SessionStore {
    backend: Backend,
    prefix: String,
    secrets: Vec<String>,
    keys: KeyRing,
    cookie_name: String,
    max_session_bytes: usize,
    tombstone_ms: u64,
    counters: Counters,
    pub(crate) user_index: Option<UserIndex>,
    pub(crate) legacy: Option<Legacy>,
    watch: WatchSettings,
    watcher: std::sync::Mutex<Option<Watcher>>,
}

impl SessionStore {
    /// Starts the store; the connection is made in the background and reported to `sink`.
    /// Must be called within a Tokio runtime.
    pub fn start(settings: StoreSettings, sink: EventSink) -> Self {
        let watch = WatchSettings {
            target: settings.target.clone(),
            prefix: settings.prefix.clone(),
            tombstone_ms: settings.tombstone_ms,
            timing: settings.timing.clone(),
        };
        let channel = session_events::channel(&settings.prefix);
        let legacy = settings.legacy_prefix.map(|legacy| Legacy::new(legacy, &settings.prefix));
        let link = Link::start(settings.target, settings.timing, sink);
        Self {
            backend: Backend::new(link, settings.scan_count, settings.acknowledgement, channel),
            prefix: settings.prefix,
            secrets: settings.secrets,
            keys: settings.keys,
            cookie_name: settings.cookie_name,
            max_session_bytes: settings.max_session_bytes,
            tombstone_ms: settings.tombstone_ms,
            counters: Counters::default(),
            user_index: settings.user_index_prefix.map(UserIndex::new),
            legacy,
            watch,
            watcher: std::sync::Mutex::new(None),
        }
    }

    /// The session JSON stored for `sid`, or `None` when there is none.
    /// A value that does not decrypt is a [`StoreError::Decrypt`].
    pub async fn get(&self, sid: &str) -> Result<Option<String>> {
        check_sid(sid)?;
        let key = self.key(sid);

        let Some(stored) = self.counted(self.backend.get(&key).await)? else {
            return self.get_legacy(sid).await;
        };

        let json = self.open(&key, &stored);
        match (&json, &self.legacy) {
            (Ok(_), _) => self.counters.hit(),
            (Err(_), Some(legacy)) if legacy.shares_keys() => {
                if let Some(plain) = migration::plaintext_session(&stored) {
                    return Ok(Some(self.legacy_hit(plain)));
                }
                self.counters.undecryptable(envelope::key_id_of(&stored));
            }
            (Err(_), _) => self.counters.undecryptable(envelope::key_id_of(&stored)),
        }
        json.map(Some)
    }

    /// A miss at the store's own key: the plaintext session connect-redis left, if migration
    /// is on and there is one.
    async fn get_legacy(&self, sid: &str) -> Result<Option<String>> {
        let plain = match &self.legacy {
            Some(legacy) if !legacy.shares_keys() => {
                let stored = self.counted(self.backend.get(&legacy.key(sid)).await)?;
                stored.as_deref().and_then(migration::plaintext_session)
            }
            _ => None,
        };
        match plain {
            Some(plain) => Ok(Some(self.legacy_hit(plain))),
            None => {
                self.counters.miss();
                Ok(None)
            }
        }
    }

    fn legacy_hit(&self, plain: String) -> String {
        self.counters.hit();
        self.counters.legacy();
        plain
    }

    /// Hits, misses, failed calls and undecryptable values since the store started.
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// Seals and writes `json` for `sid`, with the lifetime chosen by [`ttl::expiry`].
    /// With the user index on, `user` (the session's `userId`) is recorded first.
    pub async fn set(
        &self,
        sid: &str,
        json: &[u8],
        lifetime: Lifetime,
        user: Option<&str>,
    ) -> Result<()> {
        check_sid(sid)?;
        check_payload(json, self.max_session_bytes)?;
        let key = self.key(sid);

        let now = ttl::now_ms();
        let expiry = ttl::expiry(lifetime.expires_at_ms, lifetime.ttl_secs, now);
        let sealed = match expiry {
            Expiry::Delete => Vec::new(),
            _ => envelope::seal(&self.keys, &key, json)?,
        };

        self.record_owner(sid, user, expiry, now).await?;
        // A refused write means the session was destroyed meanwhile: it stays destroyed.
        self.counted(self.backend.write(&key, &sealed, expiry).await)?;
        self.drop_legacy(sid).await
    }

    /// Records `sid` in `user`'s index, when the index is kept and the session lives on.
    async fn record_owner(
        &self,
        sid: &str,
        user: Option<&str>,
        expiry: Expiry,
        now: f64,
    ) -> Result<()> {
        let (Some(index), Some(user)) = (&self.user_index, user) else {
            return Ok(());
        };
        // An id that cannot name an index key (empty, control characters, over 256 bytes)
        // cannot be asked for either: the session is saved, unindexed.
        if user_index::check_user(user).is_err() {
            return Ok(());
        }
        let now = now.max(0.0) as u64;
        let expires_at = match expiry {
            Expiry::Delete => return Ok(()),
            Expiry::Never => None,
            Expiry::Millis(millis) => Some(now.saturating_add(millis)),
        };
        let draw = user_index::sweep_draw();
        let recorded = index.record(self.backend.link(), user, sid, expires_at, now, draw).await;
        self.counted(recorded).map(drop)
    }

    /// Removes connect-redis's plaintext copy of `sid`, once the sealed one is written.
    async fn drop_legacy(&self, sid: &str) -> Result<()> {
        match &self.legacy {
            Some(legacy) if !legacy.shares_keys() => {
                self.counted(self.backend.del(&[legacy.key(sid)]).await).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Renews the lifetime of an existing session; a missing one stays missing. A plaintext
    /// session being migrated is renewed where it is.
    pub async fn touch(&self, sid: &str, lifetime: Lifetime, user: Option<&str>) -> Result<()> {
        check_sid(sid)?;
        let key = self.key(sid);

        let now = ttl::now_ms();
        let expiry = ttl::expiry(lifetime.expires_at_ms, lifetime.ttl_secs, now);
        if expiry == Expiry::Never {
            return Ok(());
        }
        self.record_owner(sid, user, expiry, now).await?;
        if self.counted(self.backend.renew(&key, expiry).await)? {
            return Ok(());
        }
        match &self.legacy {
            Some(legacy) if !legacy.shares_keys() => {
                self.counted(self.backend.renew(&legacy.key(sid), expiry).await).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Removes the session of `sid`, leaving a tombstone for the configured time so that a
    /// concurrent request that loaded it before cannot write it back, and announces the end
    /// to every instance (see `session_events`).
    pub async fn destroy(&self, sid: &str) -> Result<()> {
        check_sid(sid)?;
        self.counted(self.backend.bury(&self.key(sid), sid, self.tombstone_ms).await)?;
        self.drop_legacy(sid).await
    }

    /// Starts hearing session ends (from every instance), delivered to `sink`; replaces the
    /// previous watcher. Must be called within a Tokio runtime.
    pub fn watch_ends(&self, sink: EndSink) -> Result<()> {
        if self.is_closed() {
            return Err(StoreError::Closed);
        }
        let watcher = Watcher::start(self.watch.clone(), sink);
        drop(self.replace_watcher(Some(watcher)));
        Ok(())
    }

    /// Whether every subscription of the watcher is in place, waiting for that at most the
    /// connect and command timeouts (it keeps trying in the background after that).
    pub async fn ends_subscribed(&self) -> bool {
        let readiness = {
            let slot = self.watcher.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match slot.as_ref() {
                Some(watcher) => watcher.readiness(),
                None => return false,
            }
        };
        let limit = self.watch.timing.connect_timeout + self.command_timeout();
        subscription_readiness::wait_ready(readiness, limit).await
    }

    /// Stops hearing session ends.
    pub fn unwatch_ends(&self) {
        drop(self.replace_watcher(None));
    }

    fn replace_watcher(&self, next: Option<Watcher>) -> Option<Watcher> {
        let mut slot = self.watcher.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::replace(&mut *slot, next)
    }

    /// The ids of every session under the prefix.
    pub async fn ids(&self) -> Result<Vec<String>> {
        let keys = self.scan().await?;
        Ok(keys.iter().filter_map(|key| self.sid_of(key)).collect())
    }

    /// How many sessions are under the prefix.
    pub async fn length(&self) -> Result<u32> {
        Ok(self.ids().await?.len() as u32)
    }

    /// Every readable session under the prefix.
    pub async fn all(&self) -> Result<AllSessions> {
        let keys = self.scan().await?;
        let values = self.backend.mget(&keys).await?;

        let mut out = AllSessions::default();
        for (key, value) in keys.iter().zip(values) {
            let (Some(sid), Some(stored)) = (self.sid_of(key), value) else {
                continue;
            };
            match self.open(key, &stored) {
                Ok(json) => out.sessions.push(SessionEntry { sid, json }),
                Err(_) => out.undecryptable += 1,
            }
        }
        Ok(out)
    }

    /// Deletes every session under the prefix, and nothing else (tombstones stay until they
    /// expire, so they keep protecting against late writes).
    pub async fn clear(&self) -> Result<u64> {
        let keys = self.scan().await?;
        self.backend.del(&keys).await
    }

    /// The session named by the signed cookie in a raw `Cookie` header, or `None` when the
    /// cookie is missing, badly signed, or names no session.
    pub async fn session_from_cookie(&self, header: &str) -> Result<Option<String>> {
        let Some(sid) = self.sid_from_cookie(header) else {
            return Ok(None);
        };
        if check_sid(&sid).is_err() {
            return Ok(None);
        }
        self.get(&sid).await
    }

    /// The verified session id in a raw `Cookie` header, if any.
    pub fn sid_from_cookie(&self, header: &str) -> Option<String> {
        let value = cookie_header::find_cookie(header, &self.cookie_name)?;
        let signed = cookie_header::signed_payload(&value)?;
        signature::unsign(signed, &self.secrets).map(str::to_owned)
    }

    /// Whether [`SessionStore::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.backend.link().is_closed()
    }

    /// The bound of one command.
    pub fn command_timeout(&self) -> std::time::Duration {
        self.backend.link().command_timeout()
    }

    /// Closes the connection and the session-end watcher; commands in flight settle, later
    /// ones fail with `Closed`.
    pub async fn close(&self) {
        self.unwatch_ends();
        self.backend.link().close().await;
    }

    /// Counts a failed call on Redis, and passes the result on.
    fn counted<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.counters.error();
        }
        result
    }

    /// The Redis operations of this store (for the operator tools in `inspect`).
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The encryption keys: the first seals, all open (for key rotation).
    pub(crate) fn key_ring(&self) -> &KeyRing {
        &self.keys
    }

    /// The Redis key of `sid`.
    pub(crate) fn key(&self, sid: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + sid.len());
        key.extend_from_slice(self.prefix.as_bytes());
        key.extend_from_slice(sid.as_bytes());
        key
    }

    /// The sid of a Redis key under the prefix.
    pub(crate) fn sid_of(&self, key: &[u8]) -> Option<String> {
        let sid = key.strip_prefix(self.prefix.as_bytes())?;
        String::from_utf8(sid.to_vec()).ok()
    }

    /// Decrypts a stored value read from `key`.
    pub(crate) fn open(&self, key: &[u8], stored: &[u8]) -> Result<String> {
        let plaintext = envelope::open(&self.keys, key, stored)?;
        String::from_utf8(plaintext).map_err(|_| StoreError::Decrypt("payload is not UTF-8"))
    }

    async fn scan(&self) -> Result<Vec<Vec<u8>>> {
        self.backend.scan(&self.scan_pattern()).await
    }

    /// The SCAN pattern of every key under the prefix.
    pub(crate) fn scan_pattern(&self) -> String {
        format!("{}*", limits::glob_escape(&self.prefix))
    }
}
