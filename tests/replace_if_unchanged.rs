//! `Backend::replace_if_unchanged`, the compare-and-set that key rotation writes with, against
//! a real `redis-server` started here on a free port of 127.0.0.1.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealed_redis_session::backend::Backend;
use sealed_redis_session::connection::{Link, LinkTiming};
use sealed_redis_session::target::Target;
use sealed_redis_session::ttl::Expiry;

/// A throwaway server, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed for this test");

    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, url: format!("redis://127.0.0.1:{port}") }
}

fn backend(server: &Server) -> Backend {
    let client = redis::Client::open(server.url.as_str()).unwrap();
    let link =
        Link::start(Target::Single(Box::new(client)), LinkTiming::default(), Arc::new(drop));
    Backend::new(link, 100, None)
}

#[tokio::test]
async fn an_unchanged_value_is_replaced_and_keeps_its_lifetime() {
    let server = start_server();
    let backend = backend(&server);
    backend.write(b"s:a", b"sealed with the old key", Expiry::Millis(60_000)).await.unwrap();
    backend.write(b"s:b", b"no expiry", Expiry::Never).await.unwrap();

    let replaced = backend.replace_if_unchanged(b"s:a", b"sealed with the old key", b"new").await;
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
    backend.bury(b"s:a", 60_000).await.unwrap();

    assert!(!backend.replace_if_unchanged(b"s:a", b"version 1", b"revived").await.unwrap());
    assert!(!backend.replace_if_unchanged(b"s:none", b"", b"created").await.unwrap());

    let facts = backend.describe(&[b"s:a".to_vec(), b"s:none".to_vec()]).await.unwrap();
    assert_eq!((facts[0].kind.as_str(), facts[1].kind.as_str()), ("hash", "none"));
}
