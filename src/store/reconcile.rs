//! Calls whose reply was lost: the one mechanism that finds out what they did.
//!
//! A reply can be lost after Redis ran a script: the connection drops (a Redis restart, a
//! failover, a network cut, `CLIENT KILL`) or the response timeout fires while the script has
//! run or is about to. The caller cannot tell "not run" from "run, reply lost", and guessing
//! either way loses work (a started job nobody runs) or doubles it (an outcome counted twice).
//! So the caller keeps the ids it chose for the call and, once a connection works again, asks
//! Redis what became of them:
//!
//! | call | kept by the caller | after a lost reply |
//! | --- | --- | --- |
//! | `start.lua` | its execution ids ([`crate::store::scripts::execution_ids`]) | [`adopt_started`]: the executions that started are returned (their heartbeat renewed), to be run as if the reply had come; an id not found never started (its job, if any, is still queued) |
//! | `finish.lua` | the [`FinishRequest`]s of the batch | [`finish_until_known`]: the call is repeated until a reply comes; a repeat that finds an execution gone looks for its own result entry, so the log says whether the earlier call wrote it |
//!
//! Everything else whose reply can be lost is safe to repeat as it is, and is repeated by
//! its own loop: the heartbeat (next tick), the scheduler's lock script (the next tick finds
//! its own name: "refreshed"), `move_scheduled.lua` (a moved job is on its queue either
//! way), `recover.lua` (touches only jobs still `started`), the maintenance lock (a lease:
//! see [`crate::duties::maintenance`]).
//!
//! [`reply_may_be_lost`] says which errors need this. A Sentinel or cluster failover is one
//! more way to lose a reply: the same calls apply after connecting to the new primary.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Script, Value};
use tokio_util::sync::CancellationToken;

use super::finish::{finish_jobs, FinishRequest, Recorded};
use super::scripts::{parse_started, StartedJob};
use crate::error::StoreError;
use crate::protocol::job_record::DEFAULT_JOB_TIMEOUT_SECS;

static ADOPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/adopt.lua")));

/// How long a finish keeps being repeated when Redis answers with an error (a script error,
/// out of memory): such an answer means the reply was not lost, and repeating may not help.
/// Lost replies are repeated until one comes (see [`finish_until_known`]).
pub const ERROR_REPLY_RETRY_WINDOW: Duration = Duration::from_secs(120);
/// Longest pause between two repeats of a finish.
pub const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// True when `e` may hide a reply that was lost after Redis ran the call: the connection
/// dropped, an I/O error, or a timeout. False when Redis answered (even with an error), or
/// when the connection was refused (nothing was sent).
pub fn reply_may_be_lost(e: &StoreError) -> bool {
    match e {
        StoreError::Redis(r) => {
            !r.is_connection_refusal()
                && (r.is_connection_dropped() || r.is_timeout() || r.is_io_error())
        }
        _ => false,
    }
}

/// Which of `execution_ids`, asked of `start.lua` by worker `worker_name` in a call whose
/// reply was lost, did start (and are still this worker's: in the StartedJobRegistry, not
/// finished or taken over by RQ's abandoned-job cleanup). Returned as `start.lua` would have
/// returned them, with the job hash as it is now; the caller runs them. `queues` are the
/// worker's queues (looked in when a hash has no usable `origin`). The only write: each one
/// found gets its heartbeat now (registry score and execution TTLs, as `start.lua` set them),
/// so a long outage does not make it look abandoned before the worker's next heartbeat.
pub async fn adopt_started<C: ConnectionLike>(
    conn: &mut C,
    prefix: &str,
    worker_name: &str,
    monitoring_interval: u64,
    queues: &[String],
    execution_ids: &[String],
) -> Result<Vec<StartedJob>, StoreError> {
    let mut inv = ADOPT.prepare_invoke();
    inv.arg(prefix)
        .arg(worker_name)
        .arg(monitoring_interval)
        .arg(queues.len());
    for q in queues {
        inv.arg(q);
    }
    inv.arg(DEFAULT_JOB_TIMEOUT_SECS);
    for x in execution_ids {
        inv.arg(x);
    }
    let reply: Value = inv.invoke_async(conn).await?;
    parse_started("adopt.lua", reply)
}

/// What is known, in the end, of a finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishKnown {
    /// This call wrote the outcome (after `lost_replies` lost ones that had not run, if any).
    Written,
    /// A call whose reply was lost wrote it: its result entry (with this execution id) is in
    /// `rq:results:<id>`. Nothing was written twice.
    WrittenEarlier,
    /// After a lost reply, the execution had left the StartedJobRegistry and this outcome has
    /// no result entry to recognise (requeue, schedule, forward, `result_ttl` 0): the lost
    /// call wrote it, or RQ's abandoned-job cleanup took the job over. Nothing written twice.
    GoneAfterLostReply,
    /// Without any lost reply, the execution had already left the StartedJobRegistry (RQ's
    /// abandoned-job cleanup took it over): nothing written.
    AlreadyRecorded,
    /// The job hash was deleted meanwhile: only the execution's bookkeeping was written.
    JobMissing,
}

/// Whether job `id`, claimed by a blocking pop whose `start.lua` call was lost before it ran,
/// is still parked in `rq:queue:<queue>:intermediate` (so it may be started again), or has left
/// it (maintenance recovered it meanwhile).
pub async fn claimed_id_still_parked<C: ConnectionLike>(
    conn: &mut C,
    keys: &crate::keys::Keys,
    queue: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let position: Option<i64> = redis::cmd("LPOS")
        .arg(keys.intermediate(queue))
        .arg(id)
        .query_async(conn)
        .await?;
    Ok(position.is_some())
}

/// The end of [`finish_until_known`] for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishReport {
    /// What is known.
    pub known: FinishKnown,
    /// How many calls lost their reply before one came.
    pub lost_replies: u32,
}

/// Writes outcomes (a batch, one `finish.lua` call) and does not stop before it knows what
/// happened to each: the call is repeated (backing off from 100 ms to [`MAX_RETRY_PAUSE`])
/// while its reply may have been lost, for as long as it takes, unless `give_up` is cancelled
/// (a forced shutdown). A repeat is safe: the script writes nothing for a job whose execution
/// has left the StartedJobRegistry. When Redis answers a batch with an error, each job is
/// repeated alone from then on (so what made the call fail stays with its job), each for
/// [`ERROR_REPLY_RETRY_WINDOW`]. One result per job, in order; `Err` only for a job it gave
/// up on: its execution is then still in the StartedJobRegistry (RQ's abandoned-job handling
/// recovers it) unless a lost call wrote it.
pub async fn finish_until_known<C: ConnectionLike + Clone>(
    conn: &C,
    prefix: &str,
    worker_name: &str,
    jobs: &[&FinishRequest],
    give_up: &CancellationToken,
) -> Vec<Result<FinishReport, StoreError>> {
    if jobs.len() <= 1 {
        return match repeat_until_known(conn, prefix, worker_name, jobs, give_up, 0, false).await {
            Ok(reports) => reports.into_iter().map(Ok).collect(),
            Err((e, _)) => vec![Err(e)],
        };
    }
    match repeat_until_known(conn, prefix, worker_name, jobs, give_up, 0, true).await {
        Ok(reports) => reports.into_iter().map(Ok).collect(),
        Err((e, lost_replies)) => {
            tracing::warn!(jobs = jobs.len(), error = %e, "Redis refused a batch of outcomes; recording each job alone");
            let alone = jobs.iter().map(|job| async move {
                repeat_until_known(
                    conn,
                    prefix,
                    worker_name,
                    &[*job],
                    give_up,
                    lost_replies,
                    false,
                )
                .await
                .map(|mut reports| reports.remove(0))
                .map_err(|(e, _)| e)
            });
            futures::future::join_all(alone).await
        }
    }
}

/// The loop of [`finish_until_known`]: `lost_replies` earlier calls lost their reply; with
/// `stop_at_error_reply`, the first error Redis answers ends it (with the lost replies so far).
async fn repeat_until_known<C: ConnectionLike + Clone>(
    conn: &C,
    prefix: &str,
    worker_name: &str,
    jobs: &[&FinishRequest],
    give_up: &CancellationToken,
    mut lost_replies: u32,
    stop_at_error_reply: bool,
) -> Result<Vec<FinishReport>, (StoreError, u32)> {
    let mut backoff = Duration::from_millis(100);
    let error_deadline = tokio::time::Instant::now() + ERROR_REPLY_RETRY_WINDOW;
    loop {
        let mut c = conn.clone();
        let e = match finish_jobs(&mut c, prefix, worker_name, jobs).await {
            Ok(statuses) => {
                let mut reports = Vec::with_capacity(jobs.len());
                for (job, status) in jobs.iter().zip(statuses) {
                    let known = match status {
                        Recorded::Written => FinishKnown::Written,
                        Recorded::JobMissing => FinishKnown::JobMissing,
                        Recorded::AlreadyRecorded if lost_replies == 0 => {
                            FinishKnown::AlreadyRecorded
                        }
                        Recorded::AlreadyRecorded => {
                            if has_result_entry(&mut c, prefix, job).await {
                                FinishKnown::WrittenEarlier
                            } else {
                                FinishKnown::GoneAfterLostReply
                            }
                        }
                    };
                    reports.push(FinishReport {
                        known,
                        lost_replies,
                    });
                }
                return Ok(reports);
            }
            Err(e) => e,
        };
        let lost = reply_may_be_lost(&e);
        if lost {
            lost_replies += 1;
        } else if stop_at_error_reply {
            return Err((e, lost_replies));
        }
        let out_of_time = !lost && tokio::time::Instant::now() + backoff >= error_deadline;
        if give_up.is_cancelled() || out_of_time {
            return Err((e, lost_replies));
        }
        let first = jobs.first();
        tracing::warn!(
            jobs = jobs.len(),
            job_id = %first.map_or("", |j| j.job_id.as_str()),
            execution_id = %first.map_or("", |j| j.execution_id.as_str()),
            error = %e,
            reply_lost = lost,
            retry_in = ?backoff,
            "could not record the job outcome; repeating the call"
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = give_up.cancelled() => {}
        }
        backoff = (backoff * 2).min(MAX_RETRY_PAUSE);
    }
}

/// Whether `rq:results:<id>` holds an entry of this execution (outcomes that write one).
async fn has_result_entry<C: ConnectionLike>(
    conn: &mut C,
    prefix: &str,
    req: &FinishRequest,
) -> bool {
    if !req.outcome.writes_result_entry() {
        return false;
    }
    // finish.lua trims the stream to about 10 entries; ours is the newest unless the job ran
    // again since.
    let entries: Result<Value, _> = redis::cmd("XREVRANGE")
        .arg(format!("{prefix}results:{}", req.job_id))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(10)
        .query_async(conn)
        .await;
    let needle = Value::BulkString(req.execution_id.as_bytes().to_vec());
    match entries {
        Ok(Value::Array(entries)) => entries.iter().any(|entry| match entry {
            Value::Array(parts) => parts.iter().any(|p| match p {
                Value::Array(fields) => fields.chunks(2).any(|kv| {
                    kv.len() == 2
                        && kv[0] == Value::BulkString(b"execution_id".to_vec())
                        && kv[1] == needle
                }),
                _ => false,
            }),
            _ => false,
        }),
        _ => false,
    }
}
