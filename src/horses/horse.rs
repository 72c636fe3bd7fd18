//! One horse: a Python process running the embedded runner, owned by rqw. It is started,
//! greets with its protocol version, runs one request at a time, and is killed (SIGKILL) when
//! it must stop in the middle of a job. Its stderr (the app's prints and logs) is logged line
//! by line, in the span of the job it runs.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::task::TaskTracker;

use super::frame::{read_frame, write_frame, FrameError};
use super::message::{parse, HorseMessage, Reply, PROTOCOL};
use super::HorseConfig;

/// The runner module, shipped inside the binary and run with `<python> -c`.
pub const RUNNER: &str = include_str!("runner.py");

/// How long a new horse may take to import rq, run `--python-setup` and say hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of a horse's stderr kept to explain why it could not start.
const STDERR_TAIL: usize = 20;

/// Why a horse could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// The command could not be run at all.
    #[error("cannot run the Python command {command:?}: {reason}")]
    Spawn {
        /// The `--python` command.
        command: String,
        /// The OS error.
        reason: String,
    },
    /// The runner reported a failure (rq not importable, `--python-setup` raised).
    #[error("the Python horse failed to start:\n{0}")]
    Fatal(String),
    /// The process exited before greeting.
    #[error("the Python horse exited before it was ready ({status}){tail}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The last lines it wrote to stderr.
        tail: String,
    },
    /// It said something other than a hello of protocol [`PROTOCOL`].
    #[error("the Python horse does not speak rqw's horse protocol {PROTOCOL}: {0}")]
    Protocol(String),
    /// No hello within [`HELLO_TIMEOUT`].
    #[error("the Python horse did not become ready within {HELLO_TIMEOUT:?}")]
    Timeout,
}

/// Why a request to a horse did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The horse is gone (crashed, killed, exited); RQ's text for it.
    #[error("{0}")]
    Died(String),
    /// The horse answered something that is not a reply of the protocol.
    #[error("the Python horse answered garbage: {0}")]
    Garbage(String),
}

/// Where a horse's stderr lines go: the current job's span, and a short tail for errors.
#[derive(Debug)]
struct HorseLog {
    span: Mutex<tracing::Span>,
    tail: Mutex<VecDeque<String>>,
}

/// A running horse.
#[derive(Debug)]
pub struct Horse {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    pid: u32,
    log: Arc<HorseLog>,
    /// Requests it has completed.
    pub jobs_done: u64,
    /// The app's rq version, from its hello.
    pub rq_version: String,
}

impl Horse {
    /// Starts a horse and waits for its hello. Its stderr reader runs on `tasks` (it ends
    /// when the process does).
    pub async fn start(config: &HorseConfig, tasks: &TaskTracker) -> Result<Horse, StartError> {
        let (program, args) = match config.command.split_first() {
            Some(split) => split,
            None => {
                return Err(StartError::Spawn {
                    command: String::new(),
                    reason: "empty command".into(),
                })
            }
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .arg("-c")
            .arg(RUNNER)
            .env("RQW_HORSE_REDIS_URL", &config.redis_url)
            .env("RQW_HORSE_SENTINEL", sentinel_env(config.sentinel.as_ref()))
            .env("RQW_HORSE_SERIALIZER", config.serializer_name)
            .env(
                "RQW_HORSE_SETUP",
                config.setup.as_deref().unwrap_or_default(),
            )
            .env(
                "RQW_HORSE_CA_CERT",
                config
                    .tls_ca_cert
                    .as_deref()
                    .unwrap_or(std::path::Path::new("")),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C on rqw's terminal is rqw's to handle (a warm
            // shutdown lets the horse's job finish), not a KeyboardInterrupt in the job.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| StartError::Spawn {
            command: config.command.join(" "),
            reason: e.to_string(),
        })?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(StartError::Protocol("no pipes to the child".into()));
        };
        let log = Arc::new(HorseLog {
            span: Mutex::new(tracing::info_span!(parent: None, "horse", pid)),
            tail: Mutex::new(VecDeque::new()),
        });
        tasks.spawn(log_stderr(stderr, log.clone()));
        let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut stdout)).await;
        let failure = match hello {
            Err(_) => StartError::Timeout,
            Ok(Err(FrameError::Closed)) => {
                let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await
                {
                    Ok(Ok(status)) => status.to_string(),
                    _ => "still running".to_string(),
                };
                // Let the stderr reader catch the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let tail: Vec<String> = lock(&log.tail).iter().cloned().collect();
                StartError::Exited {
                    status,
                    tail: if tail.is_empty() {
                        String::new()
                    } else {
                        format!(":\n{}", tail.join("\n"))
                    },
                }
            }
            Ok(Err(e)) => StartError::Protocol(e.to_string()),
            Ok(Ok(body)) => match parse(&body) {
                Ok(HorseMessage::Hello {
                    protocol: PROTOCOL,
                    rq_version,
                    python,
                    pid: _,
                }) => {
                    tracing::info!(pid, rq = %rq_version, python = %python, "Python horse ready");
                    return Ok(Horse {
                        child,
                        stdin,
                        stdout,
                        pid,
                        log,
                        jobs_done: 0,
                        rq_version,
                    });
                }
                Ok(HorseMessage::Fatal { error }) => StartError::Fatal(error),
                Ok(other) => StartError::Protocol(format!("{other:?}")),
                Err(e) => StartError::Protocol(e.to_string()),
            },
        };
        let _ = child.start_kill();
        let _ = child.wait().await;
        Err(failure)
    }

    /// False once the process has exited (reaped here), e.g. an idle horse the OOM killer took.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Logs its stderr lines in `span` from now on (the job it runs).
    pub fn attach_span(&self, span: tracing::Span) {
        *lock(&self.log.span) = span;
    }

    /// Sends one request and waits for its reply. Not cancel-safe: a horse whose call was
    /// abandoned must be killed.
    pub async fn call(&mut self, request: &[u8]) -> Result<Reply, CallError> {
        if write_frame(&mut self.stdin, request).await.is_err() {
            return Err(CallError::Died(self.death_text().await));
        }
        match read_frame(&mut self.stdout).await {
            Ok(body) => match parse(&body) {
                Ok(HorseMessage::Result(reply)) => {
                    self.jobs_done += 1;
                    Ok(reply)
                }
                Ok(other) => Err(CallError::Garbage(format!("unexpected message {other:?}"))),
                Err(e) => Err(CallError::Garbage(e.to_string())),
            },
            Err(FrameError::TooLarge(n)) => Err(CallError::Garbage(format!(
                "a frame of {n} bytes announced"
            ))),
            Err(_) => Err(CallError::Died(self.death_text().await)),
        }
    }

    /// RQ's text for a work-horse that ended on its own (`monitor_work_horse`), once it is
    /// reaped: `Work-horse terminated unexpectedly; waitpid returned <status>[ (signal N)]; `.
    async fn death_text(&mut self) -> String {
        let status = match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = self.child.start_kill();
                self.child.wait().await.ok()
            }
        };
        match status {
            Some(status) => death_text(status),
            None => "Work-horse terminated unexpectedly; waitpid returned None; ".to_string(),
        }
    }

    /// Kills it (SIGKILL) and reaps it.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Ends an idle horse: its stdin closes (the runner exits by itself), then SIGKILL if it
    /// is still there after `grace`.
    pub async fn retire(self, grace: Duration) {
        let Horse {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Its resident memory in bytes (`VmRSS` of `/proc/<pid>/status`), when readable.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        parse_vm_rss(&status)
    }
}

/// RQ's `Work-horse terminated unexpectedly` text for a wait status.
pub fn death_text(status: ExitStatus) -> String {
    let raw = status.into_raw();
    let signal = status
        .signal()
        .map(|s| format!(" (signal {s})"))
        .unwrap_or_default();
    format!("Work-horse terminated unexpectedly; waitpid returned {raw}{signal}; ")
}

/// `RQW_HORSE_SENTINEL` for the runner: the sentinel settings as JSON (the runner builds
/// redis-py's `Sentinel(...).master_for(...)` from them), or empty without sentinels.
fn sentinel_env(settings: Option<&crate::config::SentinelSettings>) -> String {
    let Some(s) = settings else {
        return String::new();
    };
    serde_json::json!({
        "sentinels": s.sentinels,
        "master_name": s.master_name,
        "db": s.db,
        "username": s.username,
        "password": s.password,
        "tls": s.tls,
        "socket_timeout": s.socket_timeout.map(|t| t.as_secs_f64()),
        "sentinels_username": s.sentinels_username,
        "sentinels_password": s.sentinels_password,
        "sentinels_tls": s.sentinels_tls,
    })
    .to_string()
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn log_stderr(stderr: tokio::process::ChildStderr, log: Arc<HorseLog>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let span = lock(&log.span).clone();
        span.in_scope(|| tracing::info!(target: "rqw::horse", "{line}"));
        let mut tail = lock(&log.tail);
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn death_texts_follow_rq() {
        assert_eq!(
            death_text(ExitStatus::from_raw(9)),
            "Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); "
        );
        assert_eq!(
            death_text(ExitStatus::from_raw(3 << 8)),
            "Work-horse terminated unexpectedly; waitpid returned 768; "
        );
    }

    #[test]
    fn reads_vm_rss() {
        assert_eq!(
            parse_vm_rss("Name:\tpython\nVmRSS:\t   12345 kB\n"),
            Some(12345 * 1024)
        );
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }
}
