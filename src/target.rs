//! Where the store's data lives: one Redis server, a primary found through Sentinel, or a
//! Redis Cluster reached through seed nodes. Every kind gives a cloneable connection that
//! multiplexes commands; the cluster one routes each command by its key's slot and follows
//! topology changes (failovers) itself, and a Sentinel one is checked against the primary
//! that Sentinel names, so that a failover makes the store reconnect to the new primary.

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, RedisResult, TlsCertificates, Value,
};

use crate::resp_connection::RespConnection;

/// How to reach Redis.
#[derive(Clone)]
pub enum Target {
    /// One server (`url`).
    Single(Box<Client>),
    /// A cluster (`cluster`: seed node URLs).
    Cluster(Box<ClusterTarget>),
    /// The primary that Sentinel names (`sentinel: { nodes, masterName }`).
    Sentinel(std::sync::Arc<SentinelTarget>),
}

/// A cluster's client, and a client per seed node (for subscriptions, which go to nodes).
#[derive(Clone)]
pub struct ClusterTarget {
    client: ClusterClient,
    seeds: Vec<Client>,
}

impl ClusterTarget {
    /// Clients of the seed nodes, with the cluster's credentials and TLS settings.
    pub fn seeds(&self) -> &[Client] {
        &self.seeds
    }
}

/// Sentinels to ask, and the name of the primary they watch.
pub struct SentinelTarget {
    sentinel: tokio::sync::Mutex<Sentinel>,
    master_name: String,
}

impl SentinelTarget {
    /// The primary's address as Sentinel reports it now.
    async fn primary(&self) -> RedisResult<Client> {
        let mut sentinel = self.sentinel.lock().await;
        let info = SentinelNodeConnectionInfo::default();
        sentinel.async_master_for(&self.master_name, Some(&info)).await
    }
}

impl Target {
    /// A cluster target from seed URLs, with the store's timing and TLS certificates.
    pub fn cluster(
        seeds: &[String],
        certificates: Option<TlsCertificates>,
        connect: Duration,
        command: Duration,
    ) -> RedisResult<Self> {
        let mut builder = ClusterClient::builder(seeds.iter().map(String::as_str))
            .connection_timeout(connect)
            .response_timeout(command);
        let seed_clients = seeds
            .iter()
            .map(|seed| match &certificates {
                Some(certificates) => Client::build_with_tls(seed.as_str(), certificates.clone()),
                None => Client::open(seed.as_str()),
            })
            .collect::<RedisResult<Vec<_>>>()?;
        if let Some(certificates) = certificates {
            builder = builder.certs(certificates);
        }
        let client = builder.build()?;
        Ok(Self::Cluster(Box::new(ClusterTarget { client, seeds: seed_clients })))
    }

    /// A Sentinel target from sentinel URLs and the watched primary's name.
    pub fn sentinel(nodes: &[String], master_name: &str) -> RedisResult<Self> {
        let sentinel = Sentinel::build(nodes.iter().map(String::as_str).collect())?;
        let target = SentinelTarget {
            sentinel: tokio::sync::Mutex::new(sentinel),
            master_name: master_name.to_owned(),
        };
        Ok(Self::Sentinel(std::sync::Arc::new(target)))
    }

    /// Opens a connection; the caller bounds how long it may take. Also returns the address
    /// connected to, when the target can move (Sentinel).
    pub async fn connect(&self, connect_timeout: Duration) -> RedisResult<(Conn, Option<String>)> {
        match self {
            Self::Single(client) => Ok((single(client, connect_timeout).await?, None)),
            Self::Cluster(cluster) => {
                Ok((Conn::Cluster(cluster.client.get_async_connection().await?), None))
            }
            Self::Sentinel(target) => {
                let client = target.primary().await?;
                let address = client.get_connection_info().addr().to_string();
                Ok((single(&client, connect_timeout).await?, Some(address)))
            }
        }
    }

    /// The client of the one server, or of the primary that Sentinel names now; an error on
    /// a cluster, which has no single primary.
    pub async fn primary_client(&self) -> RedisResult<Client> {
        match self {
            Self::Single(client) => Ok((**client).clone()),
            Self::Sentinel(target) => target.primary().await,
            Self::Cluster(_) => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "a cluster has no one primary",
            ))),
        }
    }

    /// A client of the cluster node at `address` (`host:port`), with the seeds' credentials
    /// and TLS settings; `None` on other targets.
    pub fn node_client(&self, address: &str) -> Option<Client> {
        let Self::Cluster(cluster) = self else {
            return None;
        };
        crate::session_events::aimed_at(cluster.seeds.first()?, address)
    }

    /// Whether the primary is still the one at `address` (always true but for Sentinel).
    pub async fn still_primary(&self, address: &str) -> bool {
        match self {
            Self::Sentinel(target) => match target.primary().await {
                Ok(client) => client.get_connection_info().addr().to_string() == address,
                // Sentinels unreachable: keep the connection; its own pings decide.
                Err(_) => true,
            },
            _ => true,
        }
    }
}

/// A live connection of any kind.
#[derive(Clone)]
pub enum Conn {
    /// To one server over plain TCP, on the store's own pipelined connection.
    Resp(RespConnection),
    /// To one server by redis-rs (TLS, a Unix socket, RESP3).
    Single(MultiplexedConnection),
    /// To a cluster.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Sends the command `args` (its name first), whose reply is a bulk string or nil: the
    /// per-request commands (GET, SET ... GET, GETEX, GETDEL). On the store's own connection
    /// no command object is built and the reply is not parsed into a `Value`.
    pub async fn call_bulk(&mut self, args: &[&[u8]]) -> RedisResult<Option<Vec<u8>>> {
        if let Self::Resp(conn) = self {
            return conn.call_bulk(args).await;
        }
        let (name, rest) = args.split_first().ok_or_else(no_command)?;
        let mut command = redis::cmd(std::str::from_utf8(name).map_err(|_| no_command())?);
        for arg in rest {
            command.arg(*arg);
        }
        command.query_async(self).await
    }

    /// Whether commands go to a cluster (SCAN must then walk every primary).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A liveness probe: PING to the server, or to any node of the cluster (a failing
    /// primary is the cluster's to handle, not a reason to drop the whole connection).
    pub async fn ping(&mut self) -> RedisResult<()> {
        let ping = redis::cmd("PING");
        match self {
            Self::Resp(conn) => ping.query_async(conn).await,
            Self::Single(conn) => ping.query_async(conn).await,
            Self::Cluster(conn) => {
                let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                conn.route_command(ping, random).await.map(drop)
            }
        }
    }

    /// The addresses (`host:port`) of the cluster's primaries, sorted; empty for one server.
    pub async fn primaries(&mut self) -> RedisResult<Vec<String>> {
        let Self::Cluster(conn) = self else {
            return Ok(Vec::new());
        };
        let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let reply = conn.route_command(redis::cmd("PING"), all).await?;
        let mut addresses: Vec<String> = match reply {
            Value::Map(pairs) => pairs.into_iter().filter_map(|(k, _)| text(k)).collect(),
            _ => Vec::new(),
        };
        addresses.sort();
        Ok(addresses)
    }

    /// Sends `cmd` to the node at `address` (`host:port`); a plain send for one server.
    pub async fn send_to(&mut self, address: Option<&str>, cmd: Cmd) -> RedisResult<Value> {
        match (self, address.and_then(split_address)) {
            (Self::Cluster(conn), Some((host, port))) => {
                let node = SingleNodeRoutingInfo::ByAddress { host, port };
                conn.route_command(cmd, RoutingInfo::SingleNode(node)).await
            }
            (conn, _) => cmd.query_async(conn).await,
        }
    }
}

fn no_command() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "a command needs an ASCII name"))
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Resp(conn) => conn.req_packed_command(cmd),
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Resp(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Resp(conn) => conn.get_db(),
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

async fn single(client: &Client, connect_timeout: Duration) -> RedisResult<Conn> {
    let info = client.get_connection_info();
    if RespConnection::supports(info) {
        return Ok(Conn::Resp(RespConnection::connect(info).await?));
    }

    // Commands are bounded by `Link::run`; a second timer per command inside redis-rs would
    // only cost time.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(None);
    Ok(Conn::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

/// The host and port of a cluster node's `host:port`. An IPv6 host comes as `::1:7000` or
/// `[::1]:7000`; either way the host is returned without brackets, as sockets want it.
pub fn split_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_split_in_every_form() {
        let split = |address| split_address(address);
        assert_eq!(split("10.0.0.1:7000"), Some(("10.0.0.1".to_owned(), 7000)));
        assert_eq!(split("redis-1.internal:6379"), Some(("redis-1.internal".to_owned(), 6379)));
        assert_eq!(split("::1:7001"), Some(("::1".to_owned(), 7001)));
        assert_eq!(split("[::1]:7001"), Some(("::1".to_owned(), 7001)));
        assert_eq!(split("[fe80::2]:7002"), Some(("fe80::2".to_owned(), 7002)));
        for bad in ["", "7000", ":7000", "[]:7000", "host:", "host:70000", "host:x"] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
    }
}
