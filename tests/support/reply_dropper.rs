//! A loopback TCP proxy in front of a `redis-server` that loses replies on demand: the fault
//! of a connection that drops after Redis ran a call (a restart, a failover, a network cut).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do to the next request that contains the armed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Forward it, drop its reply (and everything after on that connection), close.
    Reply,
    /// Do not forward it at all; close (the call never reaches Redis).
    Request,
}

#[derive(Default)]
struct Shared {
    armed: Mutex<Option<(Vec<u8>, Drop)>>,
    fired: AtomicUsize,
}

/// The proxy; stops when dropped.
pub struct ReplyDropper {
    port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplyDropper {
    /// Listens on a free loopback port and forwards to `127.0.0.1:<upstream>`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, s.clone()));
            }
        });
        Self { port, shared, task }
    }

    /// `redis://127.0.0.1:<proxy port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The next request whose bytes contain `pattern` is treated as `what` says (once).
    pub fn arm(&self, pattern: &[u8], what: Drop) {
        *self.shared.armed.lock().unwrap() = Some((pattern.to_vec(), what));
    }

    /// How many times an armed drop happened.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }
}

impl std::ops::Drop for ReplyDropper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let dropping = Arc::new(AtomicBool::new(false));
    let closing = tokio_util::sync::CancellationToken::new();
    let (d, c) = (dropping.clone(), closing.clone());
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let hit = {
                let mut armed = shared.armed.lock().unwrap();
                let hit = armed.as_ref().and_then(|(pattern, what)| {
                    buf[..n]
                        .windows(pattern.len())
                        .any(|w| w == pattern.as_slice())
                        .then_some(*what)
                });
                if hit.is_some() {
                    *armed = None;
                }
                hit
            };
            match hit {
                Some(Drop::Request) => {
                    shared.fired.fetch_add(1, Ordering::SeqCst);
                    c.cancel();
                    return;
                }
                Some(Drop::Reply) => {
                    d.store(true, Ordering::SeqCst);
                    shared.fired.fetch_add(1, Ordering::SeqCst);
                    let _ = server_write.write_all(&buf[..n]).await;
                    // Let Redis run it, then cut the connection.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    c.cancel();
                    return;
                }
                None => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if dropping.load(Ordering::SeqCst) {
                continue;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = closing.cancelled() => {}
    }
}
