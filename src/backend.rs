//! The Redis commands the store needs, each one bounded by the link's command timeout.
//!
//! Keys are always passed as literal arguments; only SCAN takes a pattern, and its prefix is
//! escaped by the caller (see `limits::glob_escape`).

use redis::{cmd, Script};

use crate::connection::Link;
use crate::error::{Result, StoreError};
use crate::target::Conn;
use crate::ttl::Expiry;

/// Keys per MGET / DEL batch, to keep each command's reply and latency bounded.
const BATCH: usize = 500;

/// What a guarded command found at its key before it acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A string value: a session.
    Value,
    /// No key.
    Nothing,
    /// A hash: the tombstone of a destroyed session, left as it was.
    Tombstone,
}

/// Whether a reply is Redis refusing a string command on another type: a tombstone.
fn is_tombstone(err: &redis::RedisError) -> bool {
    err.code() == Some("WRONGTYPE")
}

/// Says what is missing when a server older than 6.2 does not know `SET ... GET`, `GETEX`
/// or `GETDEL` (a syntax error, an unknown command), instead of passing on a bare refusal.
/// The server's own words are dropped: an unknown-command reply quotes the arguments, and
/// the first one is the session's key.
fn explain_old_server(err: redis::RedisError) -> redis::RedisError {
    let detail = err.detail().unwrap_or_default().to_ascii_lowercase();
    if !(detail.contains("unknown command") || detail.contains("syntax error")) {
        return err;
    }
    let reason = "Redis 6.2 or later is needed (SET ... GET, GETEX, GETDEL)";
    redis::RedisError::from((redis::ErrorKind::Client, reason))
}

/// The command that writes `value` with `expiry` and fails with WRONGTYPE, changing
/// nothing, when the key holds a tombstone: `SET ... GET` aborts on a key that is not a
/// string, and so does `GETDEL`. One plain command, where a Lua script costs Redis about
/// four times as much CPU. `millis` holds the digits of the lifetime.
fn write_args<'a>(
    key: &'a [u8],
    value: &'a [u8],
    expiry: Expiry,
    millis: &'a mut itoa::Buffer,
) -> Vec<&'a [u8]> {
    match expiry {
        Expiry::Millis(ms) => {
            vec![b"SET", key, value, b"PX", millis.format(ms.max(1)).as_bytes(), b"GET"]
        }
        Expiry::Never => vec![b"SET", key, value, b"GET"],
        Expiry::Delete => vec![b"GETDEL", key],
    }
}

/// The command that sets the lifetime of a live value: `GETEX ... PX` (or `GETDEL`) leaves
/// a missing key missing (nil) and fails with WRONGTYPE, changing nothing, on a tombstone.
fn renew_args<'a>(key: &'a [u8], expiry: Expiry, millis: &'a mut itoa::Buffer) -> Vec<&'a [u8]> {
    match expiry {
        Expiry::Millis(ms) => vec![b"GETEX", key, b"PX", millis.format(ms.max(1)).as_bytes()],
        Expiry::Never => vec![b"GETEX", key, b"PERSIST"],
        Expiry::Delete => vec![b"GETDEL", key],
    }
}

/// Replaces the key with a tombstone and announces the end. KEYS[1]: the session key.
/// ARGV[1]: the tombstone's lifetime in ms; ARGV[2]: the channel; ARGV[3]: the sid.
const BURY_SCRIPT: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'destroyed', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

/// Compare-and-set for key rotation. KEYS[1]: the session key. ARGV[1]: the bytes read
/// before; ARGV[2]: the value to put in their place, keeping the key's lifetime. A key that
/// is gone, a tombstone, or a value changed meanwhile is left alone (returns 0).
const REPLACE_SCRIPT: &str = r"
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 0 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
";

/// The Lua scripts, hashed once; sent with EVALSHA, loaded again after a server restart.
struct Scripts {
    bury: Script,
    replace: Script,
}

/// Redis operations on one supervised connection.
pub struct Backend {
    link: Link,
    scan_count: u32,
    scripts: Scripts,
    acknowledgement: Option<Acknowledgement>,
    channel: String,
}

/// How many replicas must confirm each write before it is acknowledged (`WAIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledgement {
    /// Replicas that must have the write.
    pub replicas: u32,
    /// How long Redis may wait for them, in milliseconds.
    pub timeout_ms: u64,
}

impl Backend {
    /// Wraps a started link; `scan_count` is the `COUNT` hint of each SCAN step, and
    /// `channel` is where destroyed sessions are announced.
    pub fn new(
        link: Link,
        scan_count: u32,
        acknowledgement: Option<Acknowledgement>,
        channel: String,
    ) -> Self {
        let scripts =
            Scripts { bury: Script::new(BURY_SCRIPT), replace: Script::new(REPLACE_SCRIPT) };
        Self { link, scan_count, scripts, acknowledgement, channel }
    }

    /// The underlying link (for closing and timing).
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// `GET key`; a tombstone (see [`Backend::bury`]) reads as no value.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.link
            .run(|mut conn| async move {
                match conn.call_bulk(&[b"GET", key]).await {
                    Err(err) if is_tombstone(&err) => Ok(None),
                    other => other,
                }
            })
            .await
    }

    /// Writes `value` with the given lifetime, unless the key holds a tombstone; returns
    /// whether it was written. [`Expiry::Delete`] removes a live value instead.
    pub async fn write(&self, key: &[u8], value: &[u8], expiry: Expiry) -> Result<bool> {
        let mut millis = itoa::Buffer::new();
        let found = self.guarded(write_args(key, value, expiry, &mut millis)).await?;
        Ok(found != Found::Tombstone)
    }

    /// Sets the lifetime of a live value ([`Expiry::Delete`] removes it); a missing key or a
    /// tombstone is left alone. Returns whether a live value was there.
    pub async fn renew(&self, key: &[u8], expiry: Expiry) -> Result<bool> {
        let mut millis = itoa::Buffer::new();
        let found = self.guarded(renew_args(key, expiry, &mut millis)).await?;
        Ok(found == Found::Value)
    }

    /// Runs a command of [`write_args`] or [`renew_args`], then `WAIT` when asked for; tells
    /// what the command found at its key.
    async fn guarded(&self, args: Vec<&[u8]>) -> Result<Found> {
        let ack = self.acknowledgement;
        let (found, reached) = self
            .link
            .run(|mut conn| async move {
                let found = match conn.call_bulk(&args).await {
                    Err(err) if is_tombstone(&err) => Found::Tombstone,
                    Err(err) => return Err(explain_old_server(err)),
                    Ok(None) => Found::Nothing,
                    Ok(Some(_)) => Found::Value,
                };
                Ok((found, replicated(&mut conn, ack).await?))
            })
            .await?;
        check_replication(ack, reached).map(|()| found)
    }

    /// Replaces whatever is at `key` with a tombstone living `millis`: a small hash that a
    /// late [`Backend::write`] or [`Backend::renew`] will not overwrite, so a destroyed
    /// session cannot be brought back by a request that loaded it before. Being a single key
    /// of another type, it needs no second key (so it works on Redis Cluster) and `SCAN ...
    /// TYPE string` skips it. The same script publishes `sid` on the end channel.
    pub async fn bury(&self, key: &[u8], sid: &str, millis: u64) -> Result<()> {
        let ack = self.acknowledgement;
        let reached = self
            .link
            .run(|mut conn| async move {
                let mut invocation = self.scripts.bury.prepare_invoke();
                invocation.key(key).arg(millis).arg(&self.channel).arg(sid);
                invocation.invoke_async::<()>(&mut conn).await?;
                replicated(&mut conn, ack).await
            })
            .await?;
        check_replication(ack, reached)
    }

    /// Puts `new` at `key` only if the key still holds exactly `old` (a string value), and
    /// keeps its lifetime (`KEEPTTL`); returns whether it was replaced. A value rewritten,
    /// destroyed (tombstone) or expired since `old` was read is left as it is, so a newer
    /// session is never replaced by an older one.
    pub async fn replace_if_unchanged(&self, key: &[u8], old: &[u8], new: &[u8]) -> Result<bool> {
        let ack = self.acknowledgement;
        let (replaced, reached) = self
            .link
            .run(|mut conn| async move {
                let mut invocation = self.scripts.replace.prepare_invoke();
                invocation.key(key).arg(old).arg(new);
                let replaced: bool = invocation.invoke_async(&mut conn).await?;
                Ok((replaced, replicated(&mut conn, ack).await?))
            })
            .await?;
        check_replication(ack, reached).map(|()| replaced)
    }

    /// `DEL key...`, in batches; returns how many keys existed.
    pub async fn del(&self, keys: &[Vec<u8>]) -> Result<u64> {
        let mut removed = 0;
        for batch in keys.chunks(BATCH) {
            removed += self
                .link
                .run(|mut conn| async move {
                    cmd("DEL").arg(batch).query_async::<u64>(&mut conn).await
                })
                .await?;
        }
        Ok(removed)
    }

    /// `MGET key...`, in batches, in the order of `keys`.
    pub async fn mget(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut values = Vec::with_capacity(keys.len());
        for batch in keys.chunks(BATCH) {
            let part: Vec<Option<Vec<u8>>> = self
                .link
                .run(|mut conn| async move { cmd("MGET").arg(batch).query_async(&mut conn).await })
                .await?;
            values.extend(part);
        }
        Ok(values)
    }

    /// One `SCAN` step from `cursor` ("0" to start), optionally only keys of type `kind`;
    /// returns the next cursor ("0" at the end) and the keys found. On a cluster the cursor
    /// also names the primary being walked (`index:cursor:address`), one primary after the
    /// other; a walk whose primaries changed starts over (see `place_cursor`).
    pub async fn scan_page(
        &self,
        pattern: &str,
        cursor: &str,
        kind: Option<&str>,
    ) -> Result<(String, Vec<Vec<u8>>)> {
        let count = self.scan_count;
        self.link.run(|conn| scan_step(conn, cursor.to_owned(), pattern, count, kind)).await
    }

    /// `TYPE`, `PTTL` and `MEMORY USAGE` of each key; each key's three commands go together
    /// (to its own node on a cluster), all keys concurrently.
    pub async fn describe(&self, keys: &[Vec<u8>]) -> Result<Vec<KeyFacts>> {
        let mut facts = Vec::with_capacity(keys.len());
        for batch in keys.chunks(BATCH) {
            facts.extend(self.link.run(|conn| describe_batch(conn, batch)).await?);
        }
        Ok(facts)
    }

    /// Every string key matching `pattern` (tombstones are hashes, so they are skipped),
    /// walked with `SCAN` (never `KEYS`); a key SCAN reports twice is kept once.
    pub async fn scan(&self, pattern: &str) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut cursor = String::from("0");

        loop {
            let (next, page) = self.scan_page(pattern, &cursor, Some("string")).await?;
            for key in page {
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
            if next == "0" {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

/// What [`Backend::describe`] reports of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    /// `TYPE`: `string` for a session, `hash` for a tombstone, `none` when gone.
    pub kind: String,
    /// `PTTL`: milliseconds left, -1 without expiry, -2 when gone.
    pub ttl_ms: i64,
    /// `MEMORY USAGE` in bytes, when the key exists.
    pub bytes: Option<u64>,
}

/// `WAIT replicas timeout` after a write, when acknowledgement is asked for; returns how
/// many replicas have it. On one connection `WAIT` covers every write sent before it.
async fn replicated(
    conn: &mut Conn,
    ack: Option<Acknowledgement>,
) -> redis::RedisResult<Option<u32>> {
    let Some(Acknowledgement { replicas, timeout_ms }) = ack else {
        return Ok(None);
    };
    cmd("WAIT").arg(replicas).arg(timeout_ms).query_async(conn).await.map(Some)
}

/// The write is acknowledged only when enough replicas had it.
fn check_replication(ack: Option<Acknowledgement>, reached: Option<u32>) -> Result<()> {
    match (ack, reached) {
        (Some(ack), Some(reached)) if reached < ack.replicas => Err(StoreError::NotReplicated {
            reached,
            wanted: ack.replicas,
            timeout_ms: ack.timeout_ms,
        }),
        _ => Ok(()),
    }
}

async fn scan_step(
    mut conn: Conn,
    cursor: String,
    pattern: &str,
    count: u32,
    kind: Option<&str>,
) -> redis::RedisResult<(String, Vec<Vec<u8>>)> {
    let primaries = conn.primaries().await?;
    let (node, node_cursor) = place_cursor(&cursor, &primaries);

    let mut command = cmd("SCAN");
    command.arg(node_cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
    if let Some(kind) = kind {
        command.arg("TYPE").arg(kind);
    }
    let address = primaries.get(node).map(String::as_str);
    let reply = conn.send_to(address, command).await?;
    let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply)?;

    let next = match (next, primaries.get(node + 1)) {
        _ if primaries.is_empty() => next.to_string(),
        (0, Some(following)) => format!("{}:0:{following}", node + 1),
        (0, None) => "0".to_owned(),
        (next, _) => format!("{node}:{next}:{}", address.unwrap_or_default()),
    };
    Ok((next, keys))
}

/// Where a cursor continues: the index of the primary and that primary's own cursor. On a
/// cluster a cursor is `index:cursor:address`; when the primary at `index` is no longer the
/// one at `address` (a failover, a node added or removed since), the walk starts over from
/// the first primary, since a node cursor means nothing on another node and a walk resumed
/// elsewhere could skip a whole primary. On one server it is a bare cursor.
fn place_cursor(cursor: &str, primaries: &[String]) -> (usize, u64) {
    let mut parts = cursor.splitn(3, ':');
    let (first, second, address) = (parts.next(), parts.next(), parts.next());
    let Some(second) = second else {
        return (0, first.and_then(|at| at.parse().ok()).unwrap_or(0));
    };
    let node: usize = first.and_then(|node| node.parse().ok()).unwrap_or(usize::MAX);
    let same_primary = match (primaries.get(node), address) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !same_primary {
        return (0, 0);
    }
    (node, second.parse().unwrap_or(0))
}

async fn describe_batch(conn: Conn, keys: &[Vec<u8>]) -> redis::RedisResult<Vec<KeyFacts>> {
    let each = keys.iter().map(|key| {
        let mut conn = conn.clone();
        async move {
            let mut pipe = redis::pipe();
            pipe.cmd("TYPE").arg(key).cmd("PTTL").arg(key).cmd("MEMORY").arg("USAGE").arg(key);
            let (kind, ttl_ms, bytes): (String, i64, Option<u64>) =
                pipe.query_async(&mut conn).await?;
            Ok(KeyFacts { kind, ttl_ms, bytes })
        }
    });
    futures_util::future::join_all(each).await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    //! The guarded writes and the compare-and-set that key rotation writes with, against a
    //! real `redis-server` started here on a free port of 127.0.0.1.

    use super::*;
    use crate::test_redis::{start_server, start_server_with, Server};

    fn backend(server: &Server) -> Backend {
        Backend::new(server.link(), 100, None, "s:ended".into())
    }

    #[test]
    fn cluster_cursors_continue_only_on_the_same_primary() {
        let primaries = ["10.0.0.1:7000".to_owned(), "10.0.0.2:7000".to_owned()];
        assert_eq!(place_cursor("0", &primaries), (0, 0));
        assert_eq!(place_cursor("1:77:10.0.0.2:7000", &primaries), (1, 77));
        assert_eq!(place_cursor("1:77", &primaries), (1, 77));

        // Failed over (another address at that place), or the place is gone: start over.
        assert_eq!(place_cursor("1:77:10.0.0.9:7000", &primaries), (0, 0));
        assert_eq!(place_cursor("5:77:10.0.0.2:7000", &primaries), (0, 0));
        assert_eq!(place_cursor("x:77", &primaries), (0, 0));

        // One server: a bare cursor.
        assert_eq!(place_cursor("123", &[]), (0, 123));
    }

    #[tokio::test]
    async fn an_unchanged_value_is_replaced_and_keeps_its_lifetime() {
        let server = start_server();
        let backend = backend(&server);
        backend.write(b"s:a", b"sealed with the old key", Expiry::Millis(60_000)).await.unwrap();
        backend.write(b"s:b", b"no expiry", Expiry::Never).await.unwrap();

        let replaced =
            backend.replace_if_unchanged(b"s:a", b"sealed with the old key", b"new").await;
        assert!(replaced.unwrap());
        assert!(backend.replace_if_unchanged(b"s:b", b"no expiry", b"new too").await.unwrap());

        assert_eq!(backend.get(b"s:a").await.unwrap().as_deref(), Some(&b"new"[..]));
        let facts = backend.describe(&[b"s:a".to_vec(), b"s:b".to_vec()]).await.unwrap();
        assert!((55_000..=60_000).contains(&facts[0].ttl_ms), "{}", facts[0].ttl_ms);
        assert_eq!(facts[1].ttl_ms, -1);
    }

    #[tokio::test]
    async fn a_value_rewritten_after_it_was_read_is_not_replaced() {
        let server = start_server();
        let backend = backend(&server);
        backend.write(b"s:a", b"version 1", Expiry::Millis(60_000)).await.unwrap();
        let read = backend.get(b"s:a").await.unwrap().unwrap();

        // The application saves a newer version between the rotation's read and its write.
        backend.write(b"s:a", b"version 2", Expiry::Millis(60_000)).await.unwrap();
        let replaced = backend.replace_if_unchanged(b"s:a", &read, b"version 1 re-sealed").await;

        assert!(!replaced.unwrap());
        assert_eq!(backend.get(b"s:a").await.unwrap().as_deref(), Some(&b"version 2"[..]));
    }

    #[tokio::test]
    async fn tombstones_and_missing_keys_are_left_alone_without_error() {
        let server = start_server();
        let backend = backend(&server);
        backend.write(b"s:a", b"version 1", Expiry::Millis(60_000)).await.unwrap();
        backend.bury(b"s:a", "a", 60_000).await.unwrap();

        assert!(!backend.replace_if_unchanged(b"s:a", b"version 1", b"revived").await.unwrap());
        assert!(!backend.replace_if_unchanged(b"s:none", b"", b"created").await.unwrap());

        let facts = backend.describe(&[b"s:a".to_vec(), b"s:none".to_vec()]).await.unwrap();
        assert_eq!((facts[0].kind.as_str(), facts[1].kind.as_str()), ("hash", "none"));
    }

    #[tokio::test]
    async fn a_tombstone_refuses_writes_renewals_and_deletes_alike() {
        let server = start_server();
        let backend = backend(&server);
        backend.write(b"s:a", b"live", Expiry::Millis(60_000)).await.unwrap();
        backend.bury(b"s:a", "a", 60_000).await.unwrap();

        assert!(!backend.write(b"s:a", b"revived", Expiry::Millis(60_000)).await.unwrap());
        assert!(!backend.write(b"s:a", b"revived", Expiry::Never).await.unwrap());
        assert!(!backend.write(b"s:a", b"", Expiry::Delete).await.unwrap());
        assert!(!backend.renew(b"s:a", Expiry::Millis(999_000)).await.unwrap());
        assert!(!backend.renew(b"s:a", Expiry::Delete).await.unwrap());

        let facts = backend.describe(&[b"s:a".to_vec()]).await.unwrap();
        assert_eq!(facts[0].kind, "hash");
        assert!((55_000..=60_000).contains(&facts[0].ttl_ms), "{}", facts[0].ttl_ms);
    }

    #[tokio::test]
    async fn renewing_changes_only_the_lifetime_of_a_live_value() {
        let server = start_server();
        let backend = backend(&server);
        backend.write(b"s:a", b"live", Expiry::Millis(5_000)).await.unwrap();

        assert!(backend.renew(b"s:a", Expiry::Millis(90_000)).await.unwrap());
        assert!(!backend.renew(b"s:none", Expiry::Millis(90_000)).await.unwrap());

        let facts = backend.describe(&[b"s:a".to_vec(), b"s:none".to_vec()]).await.unwrap();
        assert!((85_000..=90_000).contains(&facts[0].ttl_ms), "{}", facts[0].ttl_ms);
        assert_eq!(facts[1].kind, "none");
        assert_eq!(backend.get(b"s:a").await.unwrap().as_deref(), Some(&b"live"[..]));

        assert!(backend.renew(b"s:a", Expiry::Delete).await.unwrap());
        assert_eq!(backend.get(b"s:a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn writes_set_the_lifetime_asked_for() {
        let server = start_server();
        let backend = backend(&server);
        assert!(backend.write(b"s:a", b"one", Expiry::Millis(30_000)).await.unwrap());
        assert!(backend.write(b"s:b", b"two", Expiry::Never).await.unwrap());
        assert!(backend.write(b"s:b", b"", Expiry::Delete).await.unwrap());

        let facts = backend.describe(&[b"s:a".to_vec(), b"s:b".to_vec()]).await.unwrap();
        assert!((25_000..=30_000).contains(&facts[0].ttl_ms), "{}", facts[0].ttl_ms);
        assert_eq!(facts[1].kind, "none");
    }

    #[tokio::test]
    async fn a_server_without_the_commands_is_named_as_too_old() {
        let server = start_server_with(&["--rename-command", "GETEX", ""]);
        let backend = backend(&server);
        backend.write(b"s:a", b"live", Expiry::Millis(5_000)).await.unwrap();

        let err = backend.renew(b"s:a", Expiry::Millis(9_000)).await.unwrap_err();

        assert_eq!(err.code(), "ERR_REDIS");
        assert!(err.to_string().contains("Redis 6.2 or later is needed"), "{err}");
        assert!(!err.to_string().contains("s:a"), "the key leaked: {err}");
    }
}
