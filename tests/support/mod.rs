//! The shared harness of the integration tests (`mod support;` in each tests/*.rs): a
//! throw-away `redis-server` on a free loopback port, a scriptable fake HTTP server built on a
//! tokio `TcpListener` (for the recording handler), and a reply-dropping Redis proxy
//! ([`reply_dropper`]).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rqw::protocol::timestamp::RqTimestamp;
use rqw::store::connection::{CommandConnection, Endpoint};
use rqw::store::scripts::StartRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A start by worker `worker_name` on `queues`, now, with the worker's defaults (heartbeat
/// interval 30 s, job timeout 180 s, worker key TTL 480 s, no claimed id, the default payload
/// limit, only the fields the worker reads); a test changes a field with `..start_request()`.
pub fn start_request<'a>(worker_name: &'a str, queues: &'a [String]) -> StartRequest<'a> {
    StartRequest {
        prefix: "rq:",
        worker_name,
        execution_id: "",
        now: RqTimestamp::now(),
        monitoring_interval: 30,
        default_timeout: 180,
        worker_key_ttl: 480,
        claimed: None,
        queues,
        max_field_bytes: rqw::protocol::payload::DEFAULT_MAX_FIELD_BYTES,
        whole_hash: false,
    }
}

/// A `redis-server` owned by one test; killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port, with no persistence.
    pub fn start() -> Self {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed");
            let mut server = Self {
                child,
                port,
                _dir: dir,
            };
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = server.child.kill();
        }
        panic!("could not start redis-server");
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A reconnecting connection to it (the worker's kind).
    pub async fn manager(&self) -> CommandConnection {
        let endpoint = Endpoint::fixed(&self.url(), None).unwrap();
        CommandConnection::open(&endpoint).await.unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request the fake server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path and query (`/R/RE1.wav?RequestedChannels=2`).
    pub target: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
}

/// What the fake server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status with an empty body.
    Status(u16),
    /// A status with a body (with `Content-Length`).
    Body(u16, Vec<u8>),
    /// A redirect (`302`) to `Location`.
    Redirect(String),
    /// `len` bytes of `fill`, streamed in 64 KiB chunks; `Content-Length` only when `declare`.
    Stream { len: u64, fill: u8, declare: bool },
    /// Declares `declared` bytes, sends `sent`, then stalls with the connection open.
    Stall { declared: u64, sent: usize },
    /// Waits, then answers.
    Delay(Duration, Box<Reply>),
}

type Router = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A loopback HTTP/1.1 server answering each request with `router(request)`.
pub struct FakeHttp {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHttp {
    /// Starts the server.
    pub async fn start(router: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let router: Router = Arc::new(router);
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, router.clone(), log.clone()));
            }
        });
        Self { addr, seen, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The targets requested so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.target).collect()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, router: Router, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.lines();
    let target = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let headers: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
    let header = |name: &str| {
        headers
            .iter()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.trim().to_string())
    };
    let request = Seen {
        target,
        authorization: header("authorization"),
        user_agent: header("user-agent"),
    };
    log.lock().unwrap().push(request.clone());
    let reply = router(&request);
    let _ = respond(&mut stream, reply).await;
}

async fn respond(stream: &mut TcpStream, mut reply: Reply) -> std::io::Result<()> {
    while let Reply::Delay(pause, next) = reply {
        tokio::time::sleep(pause).await;
        reply = *next;
    }
    match reply {
        Reply::Status(code) => head(stream, code, &[("Content-Length", "0".into())]).await,
        Reply::Body(code, body) => {
            head(stream, code, &[("Content-Length", body.len().to_string())]).await?;
            stream.write_all(&body).await
        }
        Reply::Redirect(location) => {
            head(
                stream,
                302,
                &[("Location", location), ("Content-Length", "0".into())],
            )
            .await
        }
        Reply::Stream { len, fill, declare } => {
            let headers = if declare {
                vec![("Content-Length", len.to_string())]
            } else {
                vec![]
            };
            head(stream, 200, &headers).await?;
            let block = vec![fill; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                stream.write_all(&block[..n]).await?;
                left -= n as u64;
            }
            stream.flush().await
        }
        Reply::Stall { declared, sent } => {
            head(stream, 200, &[("Content-Length", declared.to_string())]).await?;
            stream.write_all(&vec![7u8; sent]).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        Reply::Delay(..) => Ok(()),
    }
}

async fn head(
    stream: &mut TcpStream,
    code: u16,
    headers: &[(&str, String)],
) -> std::io::Result<()> {
    let mut text = format!("HTTP/1.1 {code} X\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).await
}

/// A valid call SID built from a number.
pub fn call_sid(n: u32) -> String {
    format!("CA{n:032x}")
}

/// Names of the files in `dir`, sorted.
pub fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

pub mod reply_dropper;
