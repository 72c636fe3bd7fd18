//! Commands sent to a worker on `rq:pubsub:<name>` (`rq.command.send_*`), as JSON:
//!
//! | payload | effect in rqw |
//! | --- | --- |
//! | `{"command": "shutdown"}` | warm shutdown, as on SIGTERM |
//! | `{"command": "kill-horse"}` | every running job is cancelled and fails as a killed work-horse (retries apply) |
//! | `{"command": "stop-job", "job_id": ...}` | that job is cancelled: status `stopped`, failed registry, never retried |
//! | `{"command": "stop-execution", "job_id": ..., "execution_id": ...}` | the same, for one execution (rq 3.0) |

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::context::WorkerContext;
use super::running::StopReason;
use crate::protocol::text::shown;
use crate::store::command_channel::CommandChannel;
use crate::store::connection::Endpoint;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Warm shutdown.
    Shutdown,
    /// Kill the running jobs.
    KillHorse,
    /// Stop one job.
    StopJob {
        /// The job id.
        job_id: String,
    },
    /// Stop one execution of a job.
    StopExecution {
        /// The job id.
        job_id: String,
        /// The execution id.
        execution_id: String,
    },
}

/// Parses a pubsub payload; `None` for anything RQ would not send (logged by the caller).
pub fn parse(payload: &[u8]) -> Option<Command> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
    match text("command")?.as_str() {
        "shutdown" => Some(Command::Shutdown),
        "kill-horse" => Some(Command::KillHorse),
        "stop-job" => Some(Command::StopJob {
            job_id: text("job_id")?,
        }),
        "stop-execution" => Some(Command::StopExecution {
            job_id: text("job_id")?,
            execution_id: text("execution_id")?,
        }),
        _ => None,
    }
}

/// Carries out a command.
pub fn handle(ctx: &WorkerContext, command: Command) {
    match command {
        Command::Shutdown => {
            tracing::info!("shutdown command received: warm shut down");
            ctx.shutdown.request_warm();
        }
        Command::KillHorse => {
            let n = ctx
                .running
                .stop_matching(|_, _| true, StopReason::HorseKilled);
            tracing::info!(jobs = n, "kill-horse command received");
        }
        Command::StopJob { job_id } => {
            let n = ctx
                .running
                .stop_matching(|id, _| id == job_id, StopReason::StoppedByUser);
            tracing::info!(job_id = %shown(job_id.as_bytes()), stopped = n, "stop-job command received");
        }
        Command::StopExecution {
            job_id,
            execution_id,
        } => {
            let n = ctx.running.stop_matching(
                |id, x| id == job_id && x == execution_id,
                StopReason::StoppedByUser,
            );
            tracing::info!(job_id = %shown(job_id.as_bytes()), execution_id = %shown(execution_id.as_bytes()), stopped = n, "stop-execution command received");
        }
    }
}

/// Listens on `rq:pubsub:<name>` until `stop`, reconnecting with backoff, to the endpoint's
/// master of the moment (and again when the master moves).
pub async fn listen(ctx: Arc<WorkerContext>, endpoint: Endpoint, stop: CancellationToken) {
    let channel = ctx.keys.pubsub(&ctx.identity.name);
    let mut backoff = Duration::from_millis(200);
    let mut moved = endpoint.watch_generation();
    loop {
        moved.borrow_and_update();
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = CommandChannel::open(&endpoint) => c,
        };
        match connected {
            Ok(channel_connection) => match channel_connection.listen_to(&channel).await {
                Ok(mut messages) => {
                    backoff = Duration::from_millis(200);
                    loop {
                        let message = tokio::select! {
                            _ = stop.cancelled() => return,
                            m = messages.next() => m,
                            _ = moved.changed() => None,
                        };
                        let Some(payload) = message else { break };
                        match parse(&payload) {
                            Some(command) => handle(&ctx, command),
                            None => tracing::warn!(
                                payload = %shown(&payload),
                                "ignoring an unknown command"
                            ),
                        }
                    }
                    tracing::warn!(
                        "command channel closed (or the Redis master moved); resubscribing"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "could not subscribe to the command channel"),
            },
            Err(e) => tracing::warn!(error = %e, "could not open the command channel"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rq_commands() {
        assert_eq!(
            parse(br#"{"command": "shutdown"}"#),
            Some(Command::Shutdown)
        );
        assert_eq!(
            parse(br#"{"command": "kill-horse"}"#),
            Some(Command::KillHorse)
        );
        assert_eq!(
            parse(br#"{"command": "stop-job", "job_id": "j"}"#),
            Some(Command::StopJob { job_id: "j".into() })
        );
        assert_eq!(
            parse(br#"{"command": "stop-execution", "job_id": "j", "execution_id": "x"}"#),
            Some(Command::StopExecution {
                job_id: "j".into(),
                execution_id: "x".into()
            })
        );
        assert_eq!(parse(br#"{"command": "stop-job"}"#), None);
        assert_eq!(parse(b"not json"), None);
        assert_eq!(parse(br#"{"command": "dance"}"#), None);
    }
}
