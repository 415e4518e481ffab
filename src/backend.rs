//! The Redis commands the store needs, each one bounded by the link's command timeout.
//!
//! Keys are always passed as literal arguments; only SCAN takes a pattern, and its prefix is
//! escaped by the caller (see `limits::glob_escape`).

use redis::aio::MultiplexedConnection;
use redis::{cmd, Value};

use crate::connection::Link;
use crate::error::Result;

/// Keys per MGET / DEL batch, to keep each command's reply and latency bounded.
const BATCH: usize = 500;

/// Redis operations on one supervised connection.
pub struct Backend {
    link: Link,
    scan_count: u32,
}

impl Backend {
    /// Wraps a started link; `scan_count` is the `COUNT` hint of each SCAN step.
    pub fn new(link: Link, scan_count: u32) -> Self {
        Self { link, scan_count }
    }

    /// The underlying link (for closing and timing).
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// `GET key`.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.link
            .run(|mut conn| async move { cmd("GET").arg(key).query_async(&mut conn).await })
            .await
    }

    /// `SET key value PX millis`, or without expiry when `millis` is `None`.
    pub async fn set(&self, key: &[u8], value: &[u8], millis: Option<u64>) -> Result<()> {
        let mut command = cmd("SET");
        command.arg(key).arg(value);
        if let Some(millis) = millis {
            command.arg("PX").arg(millis);
        }
        self.link.run(|mut conn| async move { command.exec_async(&mut conn).await }).await
    }

    /// `PEXPIRE key millis`; `true` when the key existed.
    pub async fn pexpire(&self, key: &[u8], millis: u64) -> Result<bool> {
        self.link
            .run(|mut conn| async move {
                cmd("PEXPIRE").arg(key).arg(millis).query_async(&mut conn).await
            })
            .await
    }

    /// `DEL key...`, in batches; returns how many keys existed.
    pub async fn del(&self, keys: &[Vec<u8>]) -> Result<u64> {
        let mut removed = 0;
        for batch in keys.chunks(BATCH) {
            removed +=
                self.link
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

    /// Every key matching `pattern`, walked with `SCAN` (never `KEYS`); a key reported twice
    /// by SCAN (it may do so while the keyspace is rehashed) is kept once.
    pub async fn scan(&self, pattern: &str) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut cursor: u64 = 0;

        loop {
            let step = |conn| scan_step(conn, cursor, pattern, self.scan_count);
            let (next, page) = self.link.run(step).await?;
            for key in page {
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

async fn scan_step(
    mut conn: MultiplexedConnection,
    cursor: u64,
    pattern: &str,
    count: u32,
) -> redis::RedisResult<(u64, Vec<Vec<u8>>)> {
    let reply: Value = cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count)
        .query_async(&mut conn)
        .await?;
    Ok(redis::from_redis_value(reply)?)
}
