//! The store's own connection to one Redis server over plain TCP, for the per-request
//! commands: every caller appends its command to one output buffer, one driver task writes
//! what has gathered in one system call and hands each reply back in order.
//!
//! It does what redis-rs's multiplexed connection does for these commands with less per
//! command: no command object, no channel message, no `redis::Value` for a bulk reply. Any
//! other command still goes through redis-rs's types ([`ConnectionLike`]) on this same
//! socket, so every command of the store keeps one order. TLS, Unix sockets and RESP3 keep
//! redis-rs's own connection (see [`RespConnection::supports`]).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use redis::aio::ConnectionLike;
use redis::{Cmd, ConnectionAddr, ConnectionInfo, Pipeline, ProtocolVersion, RedisFuture};
use redis::{RedisResult, Value};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

use crate::resp::{self, Shape};

/// Spare room kept in the read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;

/// A read buffer grown past this by a large reply (an MGET of many sessions) is given back
/// once the reply is read, so that one large reply does not hold memory for good.
const KEPT_CAPACITY: usize = 16 * READ_CHUNK;

/// The library name shown by `CLIENT LIST`.
const LIB_NAME: &[u8] = b"sealed-redis-session";

/// A handle on the connection; clones share it. The socket closes when the last one drops.
#[derive(Clone)]
pub struct RespConnection {
    handle: Arc<Handle>,
    db: i64,
}

/// Owned by the handles only: its drop tells the driver that no one is left to answer.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

/// What the callers and the driver share.
struct Shared {
    state: Mutex<State>,
    /// Wakes the driver: bytes to write, or the handles gone.
    wake: Notify,
    closed: AtomicBool,
}

/// The commands not yet written, and who waits for each reply, in the order sent.
struct State {
    out: Vec<u8>,
    waiting: VecDeque<oneshot::Sender<Vec<u8>>>,
    /// Why no more commands are taken (the connection was lost); `None` while they are.
    ended: Option<&'static str>,
}

impl RespConnection {
    /// Whether `info` is one this connection speaks: plain TCP and RESP2.
    pub fn supports(info: &ConnectionInfo) -> bool {
        let plain = matches!(info.addr(), ConnectionAddr::Tcp(..));
        plain && info.redis_settings().protocol() == ProtocolVersion::RESP2
    }

    /// Connects to the server of `info` (see [`RespConnection::supports`]), authenticates and
    /// selects its database. The caller bounds how long it may take.
    pub async fn connect(info: &ConnectionInfo) -> RedisResult<Self> {
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return Err(unsupported());
        };
        let stream = TcpStream::connect((host.as_str(), *port)).await?;
        stream.set_nodelay(true)?;

        let settings = info.redis_settings();
        let connection = Self::start(stream, settings.db());
        connection.handshake(settings).await?;
        Ok(connection)
    }

    fn start(stream: TcpStream, db: i64) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { out: Vec::new(), waiting: VecDeque::new(), ended: None }),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(drive(shared.clone(), stream));
        Self { handle: Arc::new(Handle { shared }), db }
    }

    /// AUTH (with the username when there is one), SELECT, and the library's name, which a
    /// server older than 7.2 refuses harmlessly.
    async fn handshake(&self, settings: &redis::RedisConnectionInfo) -> RedisResult<()> {
        if let Some(password) = settings.password() {
            let reply = match settings.username() {
                Some(user) => self.call(&[b"AUTH", user.as_bytes(), password.as_bytes()]).await,
                None => self.call(&[b"AUTH", password.as_bytes()]).await,
            };
            value_of(&reply?)?.extract_error()?;
        }
        if settings.db() != 0 {
            let db = itoa::Buffer::new().format(settings.db()).to_owned();
            value_of(&self.call(&[b"SELECT", db.as_bytes()]).await?)?.extract_error()?;
        }
        self.call(&[b"CLIENT", b"SETINFO", b"LIB-NAME", LIB_NAME]).await.map(drop)
    }

    /// Sends the command `args` and returns its whole reply, unparsed.
    pub async fn call(&self, args: &[&[u8]]) -> RedisResult<Vec<u8>> {
        let mut reply = None;
        self.submit(|out| resp::encode(out, args), 1, |receiver| reply = Some(receiver))?;
        reply.ok_or_else(lost)?.await.map_err(|_| lost())
    }

    /// Sends the command `args`, whose reply is a bulk string or nil, and returns its bytes.
    /// An error reply comes back as the `RedisError` that redis-rs would give.
    pub async fn call_bulk(&self, args: &[&[u8]]) -> RedisResult<Option<Vec<u8>>> {
        let mut frame = self.call(args).await?;
        match resp::shape(&frame) {
            Shape::Nil => Ok(None),
            Shape::Bulk(range) => {
                frame.truncate(range.end);
                frame.drain(..range.start);
                Ok(Some(frame))
            }
            Shape::Error | Shape::Other => {
                redis::from_redis_value(value_of(&frame)?.extract_error()?)
                    .map_err(redis::RedisError::from)
            }
        }
    }

    /// Sends the bytes `packed`, which hold `replies` commands, and returns their replies.
    async fn call_packed(&self, packed: &[u8], replies: usize) -> RedisResult<Vec<Value>> {
        let mut receivers = Vec::with_capacity(replies);
        self.submit(|out| out.extend_from_slice(packed), replies, |r| receivers.push(r))?;
        let mut values = Vec::with_capacity(replies);
        for receiver in receivers {
            values.push(value_of(&receiver.await.map_err(|_| lost())?)?);
        }
        Ok(values)
    }

    /// Appends a command (or several, answered by `replies` replies) to the output, gives
    /// `keep` the receiver of each reply, and wakes the driver if the output was empty:
    /// otherwise a wake-up is already on its way.
    fn submit(
        &self,
        write: impl FnOnce(&mut Vec<u8>),
        replies: usize,
        mut keep: impl FnMut(oneshot::Receiver<Vec<u8>>),
    ) -> RedisResult<()> {
        let shared = &self.handle.shared;
        let mut state = shared.lock();
        if let Some(reason) = state.ended {
            return Err(lost_because(reason));
        }

        let was_empty = state.out.is_empty();
        write(&mut state.out);
        for _ in 0..replies {
            let (sender, receiver) = oneshot::channel();
            state.waiting.push_back(sender);
            keep(receiver);
        }
        drop(state);

        if was_empty {
            shared.wake.notify_one();
        }
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only plain buffers behind: go on with them.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes no more commands and fails the waiting ones (their senders are dropped).
    fn end(&self, reason: &'static str) {
        let waiting = {
            let mut state = self.lock();
            state.ended = Some(reason);
            state.out = Vec::new();
            std::mem::take(&mut state.waiting)
        };
        drop(waiting);
    }
}

/// The driver task: writes what the callers queued and hands out replies, until the socket
/// fails or the last handle is dropped.
async fn drive(shared: Arc<Shared>, stream: TcpStream) {
    let reason = exchange(&shared, &stream).await;
    shared.end(reason);
}

async fn exchange(shared: &Shared, stream: &TcpStream) -> &'static str {
    let mut input = Vec::with_capacity(READ_CHUNK);
    let mut output = Vec::new();
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            return "closed";
        }
        if output.is_empty() {
            std::mem::swap(&mut output, &mut shared.lock().out);
        }
        if let Err(reason) = write_some(stream, &mut output) {
            return reason;
        }

        tokio::select! {
            biased;
            ready = stream.readable() => {
                if ready.is_err() {
                    return "connection lost";
                }
                if let Err(reason) = read_replies(shared, stream, &mut input) {
                    return reason;
                }
            }
            ready = stream.writable(), if !output.is_empty() => {
                if ready.is_err() {
                    return "connection lost";
                }
            }
            () = shared.wake.notified() => {}
        }
    }
}

/// Writes as much of `output` as the socket takes now.
fn write_some(stream: &TcpStream, output: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut written = 0;
    while written < output.len() {
        match stream.try_write(&output[written..]) {
            Ok(0) => return Err("the socket took no bytes"),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("connection lost"),
        }
    }
    output.drain(..written);
    Ok(())
}

/// Reads what the socket has and hands every whole reply to its caller, in order.
fn read_replies(
    shared: &Shared,
    stream: &TcpStream,
    input: &mut Vec<u8>,
) -> Result<(), &'static str> {
    loop {
        input.reserve(READ_CHUNK);
        let spare = input.capacity() - input.len();
        match stream.try_read_buf(input) {
            Ok(0) => return Err("the server closed the connection"),
            Ok(n) if n < spare => break,
            Ok(_) => continue,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err("connection lost"),
        }
    }

    let mut frames = Vec::new();
    let mut at = 0;
    while let Some(len) = resp::frame_len(&input[at..]).map_err(|err| err.0)? {
        frames.push(input[at..at + len].to_vec());
        at += len;
    }
    input.drain(..at);
    release_spare(input);
    hand_out(shared, frames)
}

/// Gives back the room a large reply took, once what is left is small again.
fn release_spare(input: &mut Vec<u8>) {
    if input.capacity() > KEPT_CAPACITY && input.len() < READ_CHUNK {
        input.shrink_to(READ_CHUNK * 2);
    }
}

fn hand_out(shared: &Shared, frames: Vec<Vec<u8>>) -> Result<(), &'static str> {
    if frames.is_empty() {
        return Ok(());
    }
    let senders: Vec<_> = {
        let mut state = shared.lock();
        if state.waiting.len() < frames.len() {
            return Err("a reply came that no command waits for");
        }
        state.waiting.drain(..frames.len()).collect()
    };

    // A caller that stopped waiting (its timeout) dropped its receiver: nothing to do.
    for (sender, frame) in senders.into_iter().zip(frames) {
        let _ = sender.send(frame);
    }
    Ok(())
}

/// A whole reply as redis-rs's `Value`; an error reply becomes `Value::ServerError`.
fn value_of(frame: &[u8]) -> RedisResult<Value> {
    redis::parse_redis_value(frame)
}

/// The error of a call on a lost connection: an I/O error, so that the link reconnects.
fn lost() -> redis::RedisError {
    io::Error::new(io::ErrorKind::BrokenPipe, "the connection to Redis was lost").into()
}

/// [`lost`], with why the connection ended (never data: the reasons are fixed texts).
fn lost_because(reason: &'static str) -> redis::RedisError {
    let message = format!("the connection to Redis was lost ({reason})");
    io::Error::new(io::ErrorKind::BrokenPipe, message).into()
}

fn unsupported() -> redis::RedisError {
    let reason = "only plain TCP with RESP2 is supported on this connection";
    redis::RedisError::from((redis::ErrorKind::Client, reason))
}

impl ConnectionLike for RespConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let mut values = self.call_packed(&cmd.get_packed_command(), 1).await?;
            values.pop().ok_or_else(lost)
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let mut values = self.call_packed(&cmd.get_packed_pipeline(), offset + count).await?;
            Ok(values.split_off(offset.min(values.len())))
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

#[cfg(test)]
mod tests {
    //! Against a real `redis-server` started here on a free port of 127.0.0.1, but for a
    //! server that answers with bytes that are not RESP2, played by a bare socket.

    use super::*;
    use crate::test_redis::{start_server, start_server_with};
    use std::time::Duration;

    async fn connect(url: &str) -> RespConnection {
        let client = redis::Client::open(url).unwrap();
        assert!(RespConnection::supports(client.get_connection_info()));
        RespConnection::connect(client.get_connection_info()).await.unwrap()
    }

    async fn text(conn: &RespConnection, args: &[&[u8]]) -> String {
        let reply = conn.call_bulk(args).await.unwrap().unwrap_or_default();
        String::from_utf8(reply).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_each_get_their_own_reply() {
        let server = start_server();
        let conn = connect(&server.url).await;

        let each = (0..2000).map(|n| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let (key, value) = (format!("k{n}"), format!("value {n} ").repeat(n % 50));
                conn.call(&[b"SET", key.as_bytes(), value.as_bytes()]).await.unwrap();
                let read = conn.call_bulk(&[b"GET", key.as_bytes()]).await.unwrap();
                assert_eq!(read.as_deref(), Some(value.as_bytes()), "{key}");
            })
        });
        for task in futures_util::future::join_all(each).await {
            task.unwrap();
        }
        assert_eq!(conn.call_bulk(&[b"GET", b"missing"]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn unix_sockets_and_resp3_are_left_to_redis_rs() {
        for url in ["unix:///tmp/redis.sock", "redis://127.0.0.1:6379/?protocol=resp3"] {
            let client = redis::Client::open(url).unwrap();
            assert!(!RespConnection::supports(client.get_connection_info()), "{url}");
        }
        let unix = redis::Client::open("unix:///tmp/redis.sock").unwrap();
        let refused = RespConnection::connect(unix.get_connection_info()).await;
        assert_eq!(refused.err().map(|err| err.kind()), Some(redis::ErrorKind::Client));
    }

    #[tokio::test]
    async fn a_reply_that_is_not_resp2_ends_the_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 256];
            let _ = socket.read(&mut request).await.unwrap(); // CLIENT SETINFO
            socket.write_all(b"+OK\r\n").await.unwrap();
            let _ = socket.read(&mut request).await.unwrap(); // GET
            socket.write_all(b"%1\r\n+a\r\n+b\r\n").await.unwrap();
            socket
        });
        let conn = connect(&url).await;

        let call = tokio::time::timeout(Duration::from_secs(2), conn.call_bulk(&[b"GET", b"a"]));
        let err = call.await.expect("the call waited on a broken reply").unwrap_err();
        assert!(err.is_io_error(), "{err}");
        let err = conn.call(&[b"PING"]).await.unwrap_err();
        assert!(err.to_string().contains("an unknown reply type"), "{err}");
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn values_larger_than_one_read_arrive_whole() {
        let server = start_server();
        let conn = connect(&server.url).await;
        let value: Vec<u8> = (0..3 * READ_CHUNK + 17).map(|n| (n % 251) as u8).collect();

        conn.call(&[b"SET", b"big", &value]).await.unwrap();

        assert_eq!(conn.call_bulk(&[b"GET", b"big"]).await.unwrap(), Some(value));
    }

    #[test]
    fn the_room_of_a_large_reply_is_given_back() {
        let mut input = vec![7u8; 40 * READ_CHUNK];
        input.drain(..input.len() - 10);
        release_spare(&mut input);
        assert!(input.capacity() <= 2 * READ_CHUNK, "{}", input.capacity());
        assert_eq!(input, vec![7u8; 10]);

        let mut small = Vec::with_capacity(READ_CHUNK);
        small.extend_from_slice(b"+OK");
        release_spare(&mut small);
        assert!(small.capacity() >= READ_CHUNK, "a usual buffer is kept");
    }

    #[tokio::test]
    async fn redis_rs_commands_pipelines_and_scripts_share_the_socket() {
        let server = start_server();
        let mut conn = connect(&server.url).await;

        redis::cmd("SET").arg("a").arg("1").query_async::<()>(&mut conn).await.unwrap();
        let (a, b): (String, Option<String>) =
            redis::pipe().get("a").get("b").query_async(&mut conn).await.unwrap();
        assert_eq!((a.as_str(), b), ("1", None));

        // EVALSHA first fails with NOSCRIPT; redis-rs then loads the script and retries.
        let script = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
        let sum: i64 = script.key("a").arg(41).invoke_async(&mut conn).await.unwrap();
        assert_eq!(sum, 42);
    }

    #[tokio::test]
    async fn error_replies_keep_their_code() {
        let server = start_server();
        let mut conn = connect(&server.url).await;
        redis::cmd("HSET").arg("h").arg("f").arg("v").query_async::<()>(&mut conn).await.unwrap();

        let err = conn.call_bulk(&[b"GET", b"h"]).await.unwrap_err();
        assert_eq!(err.code(), Some("WRONGTYPE"));
        let err = redis::cmd("GET").arg("h").query_async::<()>(&mut conn).await.unwrap_err();
        assert_eq!(err.code(), Some("WRONGTYPE"));

        // The connection goes on after an error.
        assert_eq!(conn.call_bulk(&[b"GET", b"none"]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_password_database_and_library_name_are_set() {
        let server = start_server_with(&["--requirepass", "s3cret"]);
        let url = server.url.replace("redis://", "redis://:s3cret@") + "/3";
        let conn = connect(&url).await;

        let info = text(&conn, &[b"CLIENT", b"INFO"]).await;
        assert!(info.contains(" db=3 "), "{info}");
        // Redis before 7.2 has no library name to show.
        let named = info.contains("lib-name=sealed-redis-session");
        assert!(named || !info.contains("lib-name="), "{info}");

        let wrong = server.url.replace("redis://", "redis://:wrong@");
        let client = redis::Client::open(wrong).unwrap();
        let refused = RespConnection::connect(client.get_connection_info()).await;
        assert!(refused.is_err(), "a wrong password was accepted");
    }

    #[tokio::test]
    async fn a_lost_server_fails_calls_with_an_io_error_at_once() {
        let mut server = start_server();
        let conn = connect(&server.url).await;
        assert_eq!(conn.call_bulk(&[b"GET", b"a"]).await.unwrap(), None);

        server.kill();
        tokio::time::sleep(Duration::from_millis(100)).await;

        for _ in 0..2 {
            let call = tokio::time::timeout(Duration::from_secs(2), conn.call(&[b"PING"]));
            let err = call.await.expect("a call on a lost connection hung").unwrap_err();
            assert!(err.is_io_error(), "{err}");
            assert!(err.to_string().contains("was lost ("), "the reason is missing: {err}");
        }
    }

    #[tokio::test]
    async fn the_socket_closes_when_the_last_handle_drops() {
        let server = start_server();
        let watcher = connect(&server.url).await;
        let clients = || text(&watcher, &[b"CLIENT", b"LIST"]);

        let conn = connect(&server.url).await;
        let copy = conn.clone();
        assert_eq!(clients().await.lines().count(), 2);
        drop(conn);
        assert_eq!(clients().await.lines().count(), 2, "closed while a clone lives");

        drop(copy);
        let mut count = 2;
        for _ in 0..100 {
            count = clients().await.lines().count();
            if count == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(count, 1, "the socket stayed open");
    }
}
