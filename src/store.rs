//! The session store: what express-session asks of a store, on sealed values in Redis.
//!
//! JSON stays a byte string here: it is produced and parsed by the caller (V8), and this
//! layer only checks its size, seals it under the key `prefix + sid`, and opens it again.

use crate::backend::{Acknowledgement, Backend};
use crate::connection::{EventSink, Link, LinkTiming};
use crate::cookie_header;
use crate::counters::{Counters, CountersSnapshot};
use crate::envelope;
use crate::error::{Result, StoreError};
use crate::keys::KeyRing;
use crate::limits::{self, check_payload, check_sid};
use crate::signature;
use crate::target::Target;
use crate::ttl::{self, Expiry};

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
}

impl SessionStore {
    /// Starts the store; the connection is made in the background and reported to `sink`.
    /// Must be called within a Tokio runtime.
    pub fn start(settings: StoreSettings, sink: EventSink) -> Self {
        let link = Link::start(settings.target, settings.timing, sink);
        Self {
            backend: Backend::new(link, settings.scan_count, settings.acknowledgement),
            prefix: settings.prefix,
            secrets: settings.secrets,
            keys: settings.keys,
            cookie_name: settings.cookie_name,
            max_session_bytes: settings.max_session_bytes,
            tombstone_ms: settings.tombstone_ms,
            counters: Counters::default(),
        }
    }

    /// The session JSON stored for `sid`, or `None` when there is none.
    /// A value that does not decrypt is a [`StoreError::Decrypt`].
    pub async fn get(&self, sid: &str) -> Result<Option<String>> {
        check_sid(sid)?;
        let key = self.key(sid);

        let Some(stored) = self.counted(self.backend.get(&key).await)? else {
            self.counters.miss();
            return Ok(None);
        };

        let json = self.open(&key, &stored);
        match &json {
            Ok(_) => self.counters.hit(),
            Err(_) => self.counters.undecryptable(envelope::key_id_of(&stored)),
        }
        json.map(Some)
    }

    /// Hits, misses, failed calls and undecryptable values since the store started.
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// Seals and writes `json` for `sid`, with the lifetime chosen by [`ttl::expiry`].
    pub async fn set(
        &self,
        sid: &str,
        json: &[u8],
        expires_at_ms: Option<f64>,
        ttl_secs: Option<f64>,
    ) -> Result<()> {
        check_sid(sid)?;
        check_payload(json, self.max_session_bytes)?;
        let key = self.key(sid);

        let expiry = ttl::expiry(expires_at_ms, ttl_secs, ttl::now_ms());
        let sealed = match expiry {
            Expiry::Delete => Vec::new(),
            _ => envelope::seal(&self.keys, &key, json)?,
        };

        // A refused write means the session was destroyed meanwhile: it stays destroyed.
        self.counted(self.backend.write(&key, &sealed, expiry).await).map(drop)
    }

    /// Renews the lifetime of an existing session; a missing one stays missing.
    pub async fn touch(
        &self,
        sid: &str,
        expires_at_ms: Option<f64>,
        ttl_secs: Option<f64>,
    ) -> Result<()> {
        check_sid(sid)?;
        let key = self.key(sid);

        match ttl::expiry(expires_at_ms, ttl_secs, ttl::now_ms()) {
            Expiry::Never => Ok(()),
            expiry => self.counted(self.backend.renew(&key, expiry).await).map(drop),
        }
    }

    /// Removes the session of `sid`, leaving a tombstone for the configured time so that a
    /// concurrent request that loaded it before cannot write it back.
    pub async fn destroy(&self, sid: &str) -> Result<()> {
        check_sid(sid)?;
        self.counted(self.backend.bury(&self.key(sid), self.tombstone_ms).await)
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

    /// Closes the connection; commands in flight settle, later ones fail with `Closed`.
    pub async fn close(&self) {
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
