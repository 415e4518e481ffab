//! A throwaway `redis-server` for the unit tests that need a real one: started on a free
//! port of 127.0.0.1 with persistence off, killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::{Link, LinkTiming};
use crate::target::Target;

/// A running server, killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens: `redis://127.0.0.1:<port>`.
    pub url: String,
}

impl Server {
    /// A link to this server with the default timing, its events dropped.
    pub fn link(&self) -> Link {
        let client = redis::Client::open(self.url.as_str()).expect("a valid test URL");
        Link::start(Target::Single(Box::new(client)), LinkTiming::default(), Arc::new(drop))
    }

    /// Stops the server at once, as a crash would (connections are reset).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a server with the default settings.
pub fn start_server() -> Server {
    start_server_with(&[])
}

/// Starts a server with `extra` command-line arguments (`--rename-command GETEX ""`, ...).
pub fn start_server_with(extra: &[&str]) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
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
