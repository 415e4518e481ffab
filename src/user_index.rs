//! The per-user index behind "log out everywhere": which sessions belong to which user.
//!
//! Layout: one Redis hash per user, at `user_prefix + userId`, whose fields are session ids
//! and whose values are `"<expires-at ms or empty for never> <last write ms>"`. A single key
//! per user means every index update is one atomic script on one node, also on a cluster,
//! whatever slot the user's sessions hash to. The session keys themselves stay where they
//! are (`prefix + sid`); the index is only a pointer to them and is never trusted alone.
//!
//! Consistency: `set` and `touch` update the entry *before* writing the session, so the index
//! always covers every live session (a failure between the two leaves a stale entry, never a
//! missing one). An entry is dropped once its recorded expiry has passed, by a sweep that costs
//! each update O(1) on average (see [`RECORD_SCRIPT`]), and the index key itself expires with
//! its last session. Entries whose session was destroyed, or now belongs to another user, are
//! verified against the session keys whenever the index is read, and removed then; they are
//! never returned.

use std::collections::HashMap;

use redis::{cmd, Script};

use crate::connection::Link;
use crate::error::{Result, StoreError};
use crate::target::Conn;

/// A stale entry whose last write is younger than this is left for a while: its session
/// write may still be on its way (the index is written first).
pub const STALE_GRACE_MS: u64 = 60_000;

/// Longest user id accepted, in bytes.
const MAX_USER_ID_BYTES: usize = 256;

/// Records one session of a user. KEYS[1]: the user's index. ARGV[1]: sid; ARGV[2]: its
/// expiry in epoch ms, `""` for none; ARGV[3]: now in epoch ms; ARGV[4]: a random draw;
/// ARGV[5]: [`SWEEP_ALWAYS`]. Returns whether it swept (see below).
///
/// A recorded expiry is never lowered (a later one stays), so an entry can outlive its
/// session, which reads verify, but never die before it.
///
/// A sweep drops the entries past their expiry and sets the key's expiry to the latest one
/// left. An index of at most [`SWEEP_ALWAYS`] entries is swept at every update. A bigger one
/// is swept by one update in as many as it has entries, at random (the draw modulo the
/// count is zero): a user with n sessions pays O(n) about once per n updates, O(1) per
/// update on average, and expired entries are gone after about n updates. The other
/// updates only raise the key's expiry to cover the new entry (a key without expiry has an
/// entry without one, and keeps none).
const RECORD_SCRIPT: &str = r"
local now = tonumber(ARGV[3])
local old = redis.call('HGET', KEYS[1], ARGV[1])
local expiry = ARGV[2]
if old then
  local was = string.match(old, '^(%d*) ')
  if was == '' or (expiry ~= '' and tonumber(was) > tonumber(expiry)) then expiry = was end
end
redis.call('HSET', KEYS[1], ARGV[1], expiry .. ' ' .. ARGV[3])
local count = redis.call('HLEN', KEYS[1])
if count > tonumber(ARGV[5]) and tonumber(ARGV[4]) % count ~= 0 then
  if expiry == '' then
    redis.call('PERSIST', KEYS[1])
  else
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl >= 0 and now + ttl < tonumber(expiry) then
      redis.call('PEXPIREAT', KEYS[1], expiry)
    end
  end
  return 0
end
local entries = redis.call('HGETALL', KEYS[1])
local latest, forever = 0, false
for i = 1, #entries, 2 do
  local at = string.match(entries[i + 1], '^(%d*) ')
  if at == '' then
    forever = true
  elseif tonumber(at) < now then
    redis.call('HDEL', KEYS[1], entries[i])
  elseif tonumber(at) > latest then
    latest = tonumber(at)
  end
end
if forever then
  redis.call('PERSIST', KEYS[1])
elseif latest > 0 then
  redis.call('PEXPIREAT', KEYS[1], latest)
end
return 1
";

/// Indexes of at most this many entries are swept at every update (see [`RECORD_SCRIPT`]):
/// for them a sweep costs about what skipping it would.
pub const SWEEP_ALWAYS: usize = 8;

/// Removes entries only where they still hold what was read. KEYS[1]: the user's index.
/// ARGV: sid, value read, sid, value read, ... A `set` that recorded one of them again
/// since keeps its fresh entry.
const FORGET_UNCHANGED_SCRIPT: &str = r"
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 1
";

/// One entry of a user's index, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The session id.
    pub sid: String,
    /// When the session was last saved or touched, in epoch ms.
    pub last_write_ms: u64,
    /// The entry's value as read, for removing it only if unchanged.
    pub raw: String,
}

/// Where the per-user indexes live and how to update them.
pub struct UserIndex {
    user_prefix: String,
    record: Script,
    forget_unchanged: Script,
}

impl UserIndex {
    /// An index whose keys are `user_prefix + userId`.
    pub fn new(user_prefix: String) -> Self {
        Self {
            user_prefix,
            record: Script::new(RECORD_SCRIPT),
            forget_unchanged: Script::new(FORGET_UNCHANGED_SCRIPT),
        }
    }

    /// The index key of `user`, after checking the id.
    pub fn key(&self, user: &str) -> Result<Vec<u8>> {
        check_user(user)?;
        Ok([self.user_prefix.as_bytes(), user.as_bytes()].concat())
    }

    /// Records that `sid` belongs to `user` and lives until `expires_at_ms` (`None`: no
    /// expiry); now and then, as `draw` decides (see [`RECORD_SCRIPT`] and [`sweep_draw`]),
    /// also drops the user's entries that are past their expiry. Returns whether it did.
    pub async fn record(
        &self,
        link: &Link,
        user: &str,
        sid: &str,
        expires_at_ms: Option<u64>,
        now_ms: u64,
        draw: u32,
    ) -> Result<bool> {
        let key = self.key(user)?;
        let expiry = expires_at_ms.map_or_else(String::new, |at| at.to_string());

        link.run(|mut conn| async move {
            let mut invocation = self.record.prepare_invoke();
            invocation.key(&key).arg(sid).arg(expiry).arg(now_ms).arg(draw).arg(SWEEP_ALWAYS);
            invocation.invoke_async::<bool>(&mut conn).await
        })
        .await
    }

    /// Every entry of `user`'s index, unverified.
    pub async fn entries(&self, link: &Link, user: &str) -> Result<Vec<IndexEntry>> {
        let key = self.key(user)?;
        let raw: HashMap<String, String> = link
            .run(|mut conn| async move { cmd("HGETALL").arg(&key).query_async(&mut conn).await })
            .await?;
        Ok(raw.into_iter().map(|(sid, value)| parse_entry(sid, &value)).collect())
    }

    /// Removes the entries of `sids` from `user`'s index.
    pub async fn forget(&self, link: &Link, user: &str, sids: &[String]) -> Result<()> {
        if sids.is_empty() {
            return Ok(());
        }
        let key = self.key(user)?;
        link.run(|mut conn| async move {
            cmd("HDEL").arg(&key).arg(sids).query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Removes `entries` from `user`'s index, each only if it still holds the value read:
    /// for cleaning up after a read, which may race with a `set` recording the same sid.
    pub async fn forget_unchanged(
        &self,
        link: &Link,
        user: &str,
        entries: &[IndexEntry],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = self.key(user)?;
        link.run(|mut conn| async move {
            let mut invocation = self.forget_unchanged.prepare_invoke();
            invocation.key(&key);
            for entry in entries {
                invocation.arg(&entry.sid).arg(&entry.raw);
            }
            invocation.invoke_async::<()>(&mut conn).await
        })
        .await
    }
}

/// A random number for the sweep of [`RECORD_SCRIPT`]. It only spreads work, so it needs
/// no secrecy: the standard library's hasher, randomly keyed anew for each call, is enough.
pub fn sweep_draw() -> u32 {
    use std::hash::BuildHasher;

    std::collections::hash_map::RandomState::new().hash_one(()) as u32
}

/// What a read found at one indexed session's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedSession {
    /// The entry in the index.
    pub entry: IndexEntry,
    /// The stored value, when a live session is there.
    pub value: Option<Vec<u8>>,
    /// Milliseconds left (-1: no expiry, -2: no key).
    pub ttl_ms: i64,
}

/// Reads the value and the TTL of each entry's session key, all keys concurrently (each to
/// its own node on a cluster). A tombstone reads as no value.
pub async fn read_sessions(
    link: &Link,
    keys: Vec<Vec<u8>>,
    entries: Vec<IndexEntry>,
) -> Result<Vec<IndexedSession>> {
    let facts = link.run(|conn| read_batch(conn, keys)).await?;
    Ok(entries
        .into_iter()
        .zip(facts)
        .map(|(entry, (value, ttl_ms))| IndexedSession { entry, value, ttl_ms })
        .collect())
}

async fn read_batch(conn: Conn, keys: Vec<Vec<u8>>) -> redis::RedisResult<Vec<ReadFacts>> {
    let each = keys.into_iter().map(|key| {
        let mut conn = conn.clone();
        async move {
            let mut pipe = redis::pipe();
            pipe.cmd("TYPE").arg(&key).cmd("PTTL").arg(&key);
            let (kind, ttl_ms): (String, i64) = pipe.query_async(&mut conn).await?;
            if kind != "string" {
                return Ok((None, ttl_ms));
            }
            let value: Option<Vec<u8>> = cmd("GET").arg(&key).query_async(&mut conn).await?;
            Ok((value, ttl_ms))
        }
    });
    futures_util::future::join_all(each).await.into_iter().collect()
}

/// A stored value and its milliseconds left.
type ReadFacts = (Option<Vec<u8>>, i64);

/// Parses one stored entry; a malformed one reads as written at time zero (so it is old
/// enough to be cleaned up if its session is gone).
fn parse_entry(sid: String, value: &str) -> IndexEntry {
    let last_write_ms =
        value.split_once(' ').and_then(|(_, written)| written.parse().ok()).unwrap_or(0);
    IndexEntry { sid, last_write_ms, raw: value.to_owned() }
}

/// A user id must be non-empty, at most 256 bytes, without control characters: it becomes
/// part of a Redis key.
pub fn check_user(user: &str) -> Result<()> {
    if user.is_empty() {
        return Err(StoreError::argument("userId", "must not be empty"));
    }
    if user.len() > MAX_USER_ID_BYTES {
        return Err(StoreError::argument("userId", "must be at most 256 bytes"));
    }
    if user.chars().any(char::is_control) {
        return Err(StoreError::argument("userId", "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_redis::start_server;
    use crate::ttl;

    #[tokio::test]
    async fn cleaning_up_spares_an_entry_recorded_again_after_the_read() {
        let server = start_server();
        let link = server.link();
        let index = UserIndex::new("u:".into());
        index.record(&link, "ann", "gone", None, 1_000, 1).await.unwrap();
        index.record(&link, "ann", "relogged", None, 1_000, 1).await.unwrap();
        let read = index.entries(&link, "ann").await.unwrap();

        // A save of `relogged` records it again between the read and the clean-up.
        index.record(&link, "ann", "relogged", None, 2_000, 1).await.unwrap();
        index.forget_unchanged(&link, "ann", &read).await.unwrap();

        let left = index.entries(&link, "ann").await.unwrap();
        let sids: Vec<_> = left.iter().map(|entry| entry.sid.as_str()).collect();
        assert_eq!(sids, ["relogged"]);
        assert_eq!(left[0].last_write_ms, 2_000);
    }

    async fn pttl(link: &Link, key: &str) -> i64 {
        let key = key.to_owned();
        link.run(|mut conn| async move { cmd("PTTL").arg(key).query_async(&mut conn).await })
            .await
            .unwrap()
    }

    /// Records `count` entries `name-0`, `name-1`, ... of `user` at `now`, entry n expiring
    /// at `expiry(n)`, with a draw that sweeps only an index of one entry.
    async fn fill(
        index: &UserIndex,
        link: &Link,
        user: &str,
        name: &str,
        count: u64,
        now: u64,
        expiry: impl Fn(u64) -> u64,
    ) {
        for n in 0..count {
            let sid = format!("{name}-{n}");
            index.record(link, user, &sid, Some(expiry(n)), now, 1).await.unwrap();
        }
    }

    /// Past the entries swept at every update, and with draws that do not sweep, an update
    /// only ever raises the key's expiry.
    #[tokio::test]
    async fn the_index_key_lives_as_long_as_its_longest_entry() {
        let server = start_server();
        let (link, index, now) =
            (server.link(), UserIndex::new("u:".into()), ttl::now_ms() as u64);
        fill(&index, &link, "bo", "filler", SWEEP_ALWAYS as u64 + 1, now, |_| now + 2_000).await;
        let record = |sid: &'static str, at: Option<u64>| {
            let (index, link) = (&index, &link);
            async move {
                let swept = index.record(link, "bo", sid, at, now, 1).await.unwrap();
                assert!(!swept, "{sid}: a draw of 1 never sweeps more than one entry");
            }
        };

        record("a", Some(now + 10_000)).await;
        assert!((9_000..=10_000).contains(&pttl(&link, "u:bo").await));
        record("b", Some(now + 100_000)).await;
        assert!((99_000..=100_000).contains(&pttl(&link, "u:bo").await));
        record("c", Some(now + 5_000)).await;
        assert!((99_000..=100_000).contains(&pttl(&link, "u:bo").await), "never lowered");
        record("d", None).await;
        assert_eq!(pttl(&link, "u:bo").await, -1, "an entry without expiry keeps the key");
        record("e", Some(now + 50_000)).await;
        assert_eq!(pttl(&link, "u:bo").await, -1);
    }

    /// Expired entries stay until a draw sweeps (one in as many as there are entries), and
    /// the sweep then drops them all and sets the key's expiry to the latest entry left.
    #[tokio::test]
    async fn a_sweep_drops_expired_entries_and_fits_the_key_expiry() {
        let server = start_server();
        let (link, index, now) =
            (server.link(), UserIndex::new("u:".into()), ttl::now_ms() as u64);
        fill(&index, &link, "cy", "old", 40, now, |n| now + 30_000 + n).await;
        // Recorded as if 40 s had passed: the old entries are past their expiry.
        let (keep, now) = (Some(now + 60_000), now + 40_000);
        let swept = index.record(&link, "cy", "new", keep, now, 41 * 3 + 1).await;
        assert!(!swept.unwrap(), "a draw that is not a multiple of the count does not sweep");
        assert_eq!(index.entries(&link, "cy").await.unwrap().len(), 41);

        assert!(index.record(&link, "cy", "new", keep, now, 41 * 7).await.unwrap());
        let left = index.entries(&link, "cy").await.unwrap();
        assert_eq!(left.iter().map(|e| e.sid.as_str()).collect::<Vec<_>>(), ["new"]);
        assert!((59_000..=60_000).contains(&pttl(&link, "u:cy").await));
    }

    #[test]
    fn sweep_draws_vary() {
        let draws: std::collections::HashSet<u32> = (0..1000).map(|_| sweep_draw()).collect();
        assert!(draws.len() > 990, "{} distinct of 1000", draws.len());
    }

    #[test]
    fn entries_parse_their_last_write() {
        assert_eq!(parse_entry("a".into(), "1700 1600").last_write_ms, 1600);
        assert_eq!(parse_entry("a".into(), " 1600").last_write_ms, 1600);
        assert_eq!(parse_entry("a".into(), "garbage").last_write_ms, 0);
    }

    #[test]
    fn user_ids_are_checked() {
        assert!(check_user("64f123456789abcdef123456").is_ok());
        assert!(check_user("").is_err());
        assert!(check_user("a\nb").is_err());
        assert!(check_user(&"x".repeat(257)).is_err());
    }

    #[test]
    fn index_keys_are_prefixed() {
        let index = UserIndex::new("user-sessions:session:".into());
        assert_eq!(index.key("42").unwrap(), b"user-sessions:session:42".to_vec());
    }
}
