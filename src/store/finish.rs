//! Recording how executions ended: `finish.lua`, one atomic call for a batch of outcomes
//! (issue 15). Every per-worker and per-registry write is made once per call, the writes into
//! each job's own keys once per job; see the script's header for the command sequence.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use crate::error::StoreError;
use crate::protocol::job_record::DEFAULT_JOB_TIMEOUT_SECS;
/// What RQ records for an execution, decided in the protocol room; this module writes it.
pub use crate::protocol::outcome::Outcome;
use crate::protocol::result::ResultEntry;
use crate::protocol::text::shown;
use crate::protocol::timestamp::RqTimestamp;

static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/lib/enqueue.lua"),
        include_str!("scripts/lib/dependents.lua"),
        include_str!("scripts/lib/failure.lua"),
        include_str!("scripts/finish.lua")
    ))
});

/// Most outcomes one [`finish_jobs`] call records (a longer batch is split).
pub const MAX_FINISH_BATCH: usize = 128;

/// The end of one execution, as the worker hands it to [`finish_jobs`].
#[derive(Debug, Clone)]
pub struct FinishRequest {
    /// The job id.
    pub job_id: String,
    /// The execution id.
    pub execution_id: String,
    /// The job's origin queue.
    pub queue: String,
    /// Registered under the plain job id (rq 1.x,
    /// [`crate::store::scripts::StartedJob::rq1_member`]).
    pub rq1_member: bool,
    /// When it ended.
    pub now: RqTimestamp,
    /// Seconds the execution took.
    pub working_time: f64,
    /// The job's rq 3.0 `rate_limit_key` as read when it started (`None` = no rate limit).
    pub rate_limit_key: Option<Vec<u8>>,
    /// Whether the job hash names dependencies (`dependency_ids`/`dependency_id`) as read
    /// when it started: only then can its dependencies set exist and need its TTL.
    pub has_dependencies: bool,
    /// What happened.
    pub outcome: Outcome,
}

/// What `finish.lua` did with one job's [`Outcome`] (what the store wrote back, not how the
/// job ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The outcome was written.
    Written,
    /// The job hash had been deleted meanwhile: only execution and worker bookkeeping written.
    JobMissing,
    /// The execution had already left the StartedJobRegistry (outcome recorded earlier, or
    /// taken over by RQ's abandoned-job cleanup): nothing written.
    AlreadyRecorded,
}

/// Writes one outcome ([`finish_jobs`] with one job).
pub async fn finish_job<C: ConnectionLike>(
    conn: &mut C,
    prefix: &str,
    worker_name: &str,
    job: &FinishRequest,
) -> Result<Recorded, StoreError> {
    let statuses = finish_jobs(conn, prefix, worker_name, &[job]).await?;
    statuses
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::UnexpectedReply {
            what: "finish.lua",
            detail: "no status".into(),
        })
}

/// Writes the outcomes of `jobs` (executions of worker `worker_name`) in one atomic call,
/// at most [`MAX_FINISH_BATCH`] per call (more are split into several calls), and returns
/// what was done for each, in order. Safe to call again after a lost reply, in any grouping:
/// a job whose outcome was written gets nothing written twice
/// ([`Recorded::AlreadyRecorded`]). A key of the wrong type that a producer controls
/// costs its own job only (logged with the job id, see `finish.lua`).
pub async fn finish_jobs<C: ConnectionLike>(
    conn: &mut C,
    prefix: &str,
    worker_name: &str,
    jobs: &[&FinishRequest],
) -> Result<Vec<Recorded>, StoreError> {
    let mut statuses = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(MAX_FINISH_BATCH) {
        statuses.extend(finish_chunk(conn, prefix, worker_name, chunk).await?);
    }
    Ok(statuses)
}

async fn finish_chunk<C: ConnectionLike>(
    conn: &mut C,
    prefix: &str,
    worker_name: &str,
    jobs: &[&FinishRequest],
) -> Result<Vec<Recorded>, StoreError> {
    let mut inv = FINISH.prepare_invoke();
    inv.arg(prefix)
        .arg(worker_name)
        .arg(DEFAULT_JOB_TIMEOUT_SECS);
    for job in jobs {
        push_job(&mut inv, job);
    }
    let reply: Value = inv.invoke_async(conn).await?;
    let bad = |detail: String| StoreError::UnexpectedReply {
        what: "finish.lua",
        detail,
    };
    let items = match reply {
        Value::Array(items) if items.len() == 2 * jobs.len() => items,
        other => return Err(bad(format!("{other:?}"))),
    };
    let mut statuses = Vec::with_capacity(jobs.len());
    for (job, pair) in jobs.iter().zip(items.chunks(2)) {
        // Written, but a key a producer controls had the wrong type (issue 13): the notes
        // say what the script did instead.
        if let Value::BulkString(notes) = &pair[1] {
            if !notes.is_empty() {
                tracing::error!(
                    job_id = %shown(job.job_id.as_bytes()),
                    notes = %crate::protocol::text::escaped(notes, crate::protocol::text::MAX_MESSAGE_CHARS),
                    "outcome recorded around unusable keys"
                );
            }
        }
        statuses.push(match pair[0] {
            Value::Int(1) => Recorded::Written,
            Value::Int(0) => Recorded::JobMissing,
            Value::Int(2) => Recorded::AlreadyRecorded,
            ref other => return Err(bad(format!("status {other:?}"))),
        });
    }
    Ok(statuses)
}

/// The 17 items of one job (see `finish.lua`'s ARGV).
fn push_job(inv: &mut redis::ScriptInvocation<'_>, job: &FinishRequest) {
    let (mode, ttl, a12, a13, entry): (&str, String, String, String, Option<&ResultEntry>) =
        match &job.outcome {
            Outcome::Finished {
                result_ttl,
                result,
                repeat,
            } => (
                "finished",
                result_ttl.to_string(),
                repeat.map(|(left, _)| left.to_string()).unwrap_or_default(),
                repeat.map(|(_, at)| at.to_string()).unwrap_or_default(),
                Some(result),
            ),
            Outcome::Failed {
                failure_ttl,
                result,
            } => (
                "failed",
                opt(failure_ttl),
                String::new(),
                String::new(),
                Some(result),
            ),
            Outcome::Stopped {
                failure_ttl,
                result,
            } => (
                "stopped",
                opt(failure_ttl),
                String::new(),
                String::new(),
                Some(result),
            ),
            Outcome::Requeue {
                retries_left,
                at_front,
            } => (
                "requeue",
                String::new(),
                retries_left.to_string(),
                if *at_front { "1" } else { "0" }.to_string(),
                None,
            ),
            Outcome::Schedule {
                retries_left,
                run_at,
            } => (
                "schedule",
                String::new(),
                retries_left.to_string(),
                run_at.to_string(),
                None,
            ),
            Outcome::Forward { queue } => {
                ("forward", String::new(), String::new(), queue.clone(), None)
            }
        };
    let kind = entry.map_or("", |e| e.kind.code());
    inv.arg(&job.job_id)
        .arg(&job.execution_id)
        .arg(&job.queue)
        .arg(if job.rq1_member { "1" } else { "" })
        .arg(job.now.rq_format())
        .arg(job.now.unix_seconds())
        .arg(mode)
        .arg(ttl)
        .arg(job.working_time.to_string())
        .arg(a12)
        .arg(a13)
        .arg(job.rate_limit_key.as_deref().unwrap_or_default())
        .arg(if job.has_dependencies { "1" } else { "0" })
        .arg(kind)
        .arg(entry.and_then(|e| e.value.as_deref()).unwrap_or_default())
        .arg(entry.map(|e| e.started_at.as_str()).unwrap_or_default())
        .arg(entry.map(|e| e.ended_at.as_str()).unwrap_or_default());
}

fn opt(v: &Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}
