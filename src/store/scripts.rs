//! The Lua scripts of the job lifecycle and their typed wrappers. Each call is one atomic
//! round trip (`EVALSHA`, loading the script on `NOSCRIPT`).

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use crate::error::StoreError;
use crate::protocol::text::shown;
use crate::protocol::timestamp::RqTimestamp;

static START: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/start.lua")));
static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/heartbeat.lua")));

/// Who is starting a job, and how.
#[derive(Debug, Clone)]
pub struct StartRequest<'a> {
    /// Key prefix (`rq:`).
    pub prefix: &'a str,
    /// The worker's name.
    pub worker_name: &'a str,
    /// The new execution's id.
    pub execution_id: &'a str,
    /// The time of the start.
    pub now: RqTimestamp,
    /// `--job-monitoring-interval`, for the heartbeat TTL.
    pub monitoring_interval: u64,
    /// The default job timeout, for jobs without one.
    pub default_timeout: u64,
    /// The worker key's TTL while idle (`worker_ttl + 60`).
    pub worker_key_ttl: u64,
    /// `Some((queue, id))` when a blocking pop already moved `id` into the queue's
    /// intermediate list; `None` to pop from `queues` in order.
    pub claimed: Option<(&'a str, &'a str)>,
    /// Queues in priority order.
    pub queues: &'a [String],
    /// Longest `data`/`meta` value the script returns (`--max-payload-bytes`); a longer one
    /// stays in Redis and comes back empty, its length in the pseudo field
    /// [`crate::protocol::job_record::OVERSIZE_FIELD_PREFIX`]`<name>`.
    pub max_field_bytes: u64,
    /// Return every field of each job hash (a worker with Python horses, which build the job
    /// from it without a second read); `false`: only the fields the worker reads (issue 15:
    /// the reply is a large part of the call's Redis cost).
    pub whole_hash: bool,
}

/// Most jobs one [`start_jobs`] call starts.
pub const MAX_START_BATCH: usize = 64;

/// A job the script started.
#[derive(Debug, Clone)]
pub struct StartedJob {
    /// The queue it was taken from.
    pub queue: String,
    /// Its id.
    pub id: String,
    /// The fields of the job hash the worker reads, as read when it started (every field
    /// when [`StartRequest::whole_hash`]), oversized ones empty (see `start.lua`).
    pub fields: HashMap<String, Vec<u8>>,
    /// The execution id it was started with.
    pub execution_id: String,
}

impl StartedJob {
    /// True when start.lua entered this execution in the StartedJobRegistry under the plain
    /// job id, as rq 1.x does for the jobs it enqueues (their hash has no `group_id`, which
    /// every 2.x and 3.0 producer writes); else the member is `"<id>:<execution id>"`. The
    /// heartbeat and the finish name that member alone (one command, not one per form).
    pub fn rq1_member(&self) -> bool {
        !self.fields.contains_key("group_id")
    }
}

/// Starts up to `max` jobs (at most [`MAX_START_BATCH`]) in one round trip: the claimed one,
/// if any, then jobs popped from the queues in priority order. The first uses
/// `req.execution_id`, the others fresh ids. Empty when there was none. One call costs one
/// `EVALSHA`, and the worker record is written once per call, not once per job.
pub async fn start_jobs<C: ConnectionLike>(
    conn: &mut C,
    req: &StartRequest<'_>,
    max: usize,
) -> Result<Vec<StartedJob>, StoreError> {
    start_batch(conn, req, &execution_ids(req.execution_id, max)).await
}

/// The execution ids of one start call of up to `max` jobs (at most [`MAX_START_BATCH`]):
/// `first`, then fresh ones. A caller that keeps them can look the call up after a lost reply
/// ([`crate::store::reconcile::adopt_started`]).
pub fn execution_ids(first: &str, max: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(max.clamp(1, MAX_START_BATCH));
    ids.push(first.to_string());
    while ids.len() < max.min(MAX_START_BATCH) {
        ids.push(uuid::Uuid::new_v4().simple().to_string());
    }
    ids
}

/// [`start_jobs`] with the execution ids given (one per job that may start; the claimed job,
/// if any, uses the first). `req.execution_id` is not used.
pub async fn start_batch<C: ConnectionLike>(
    conn: &mut C,
    req: &StartRequest<'_>,
    execution_ids: &[String],
) -> Result<Vec<StartedJob>, StoreError> {
    let mut inv = START.prepare_invoke();
    inv.arg(req.prefix)
        .arg(req.worker_name)
        .arg(req.now.rq_format())
        .arg(req.now.unix_float().to_string())
        .arg(req.now.unix_seconds())
        .arg(req.monitoring_interval)
        .arg(req.default_timeout)
        .arg(req.worker_key_ttl);
    match req.claimed {
        Some((queue, id)) => inv.arg(queue).arg(id),
        None => inv.arg("").arg(""),
    };
    inv.arg(req.queues.len())
        .arg(req.max_field_bytes)
        .arg(if req.whole_hash { "1" } else { "0" });
    for q in req.queues {
        inv.arg(q);
    }
    for x in execution_ids {
        inv.arg(x);
    }
    let reply: Value = inv.invoke_async(conn).await?;
    parse_started("start.lua", reply)
}

/// Reads start.lua's reply (also the reply of `adopt.lua`, which has the same shape).
pub(crate) fn parse_started(
    what: &'static str,
    reply: Value,
) -> Result<Vec<StartedJob>, StoreError> {
    let bad = |detail: String| StoreError::UnexpectedReply { what, detail };
    let items = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) if !items.is_empty() && items.len() % 5 == 0 => items,
        other => return Err(bad(format!("{other:?}"))),
    };
    let text = |v: Option<Value>| -> Result<String, StoreError> {
        // Queues are the worker's own (UTF-8); ids of started jobs were checked by the script.
        match v {
            Some(Value::BulkString(b)) => {
                String::from_utf8(b).map_err(|_| bad("non-UTF-8 queue, job or execution id".into()))
            }
            other => Err(bad(format!("{other:?}"))),
        }
    };
    let mut jobs = Vec::with_capacity(items.len() / 5);
    let mut it = items.into_iter();
    while let Some(queue) = it.next() {
        let (id, ttl, fields, execution_id) = (it.next(), it.next(), it.next(), it.next());
        let queue = text(Some(queue))?;
        if let Some(Value::Int(0)) = ttl {
            log_refused(&queue, id, fields);
            let _ = execution_id;
            continue;
        }
        let id = text(id)?;
        // The heartbeat TTL the script used: 0 (above) marks a refusal, anything else but a
        // positive count is not start.lua's reply.
        match ttl {
            Some(Value::Int(n)) if n > 0 => {}
            other => return Err(bad(format!("ttl {other:?}"))),
        }
        let mut map = HashMap::new();
        if let Some(Value::Array(flat)) = fields {
            map.reserve(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) =
                (flat.next(), flat.next())
            {
                // A non-UTF-8 field name cannot be one RQ wrote; keep it visible but lossless enough.
                let key = String::from_utf8(k)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                map.insert(key, v);
            }
        }
        jobs.push(StartedJob {
            queue,
            id,
            fields: map,
            execution_id: text(execution_id)?,
        });
    }
    Ok(jobs)
}

/// Logs a job (or queue) `start.lua` refused: its id escaped and bounded, whatever its bytes.
fn log_refused(queue: &str, id: Option<Value>, reason: Option<Value>) {
    let bytes = |v: Option<Value>| match v {
        Some(Value::BulkString(b)) => b,
        Some(Value::SimpleString(s)) => s.into_bytes(),
        _ => Vec::new(),
    };
    let id = bytes(id);
    let reason = String::from_utf8_lossy(&bytes(reason)).into_owned();
    if id.is_empty() {
        // Polled again and again while the key stays broken: once a minute per queue.
        static LAST: std::sync::Mutex<Option<HashMap<String, std::time::Instant>>> =
            std::sync::Mutex::new(None);
        let due = match LAST.lock() {
            Ok(mut last) => {
                let last = last.get_or_insert_with(HashMap::new);
                let due = last
                    .get(queue)
                    .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(60));
                if due {
                    last.insert(queue.to_string(), std::time::Instant::now());
                }
                due
            }
            Err(_) => true,
        };
        if due {
            tracing::error!(queue = %shown(queue.as_bytes()), reason = %shown(reason.as_bytes()), "queue refused: its jobs cannot be taken (logged once a minute)");
        }
    } else {
        let utf8 = std::str::from_utf8(&id).is_ok();
        tracing::error!(
            job_id = %shown(&id),
            job_id_utf8 = utf8,
            queue = %shown(queue.as_bytes()),
            reason = %shown(reason.as_bytes()),
            "job refused at start"
        );
    }
}

/// One running execution, as the heartbeat script refreshes it.
#[derive(Debug, Clone)]
pub struct RunningExecution {
    /// Job id.
    pub job_id: String,
    /// Execution id.
    pub execution_id: String,
    /// The job's queue.
    pub queue: String,
    /// Heartbeat TTL to apply now (seconds).
    pub ttl: u64,
    /// Registered under the plain job id (rq 1.x, [`StartedJob::rq1_member`]).
    pub rq1_member: bool,
}

impl RunningExecution {
    /// Its StartedJobRegistry member: the plain id (rq 1.x) or `"<id>:<execution id>"`.
    pub fn registry_member(&self) -> String {
        registry_member(&self.job_id, &self.execution_id, self.rq1_member)
    }
}

/// A StartedJobRegistry member as start.lua writes it: `job_id` alone for a job enqueued by
/// rq 1.x (`rq1`), else `"<job_id>:<execution_id>"`.
pub fn registry_member(job_id: &str, execution_id: &str, rq1: bool) -> String {
    if rq1 {
        job_id.to_string()
    } else {
        format!("{job_id}:{execution_id}")
    }
}

/// Refreshes the worker key and every running execution. Returns `false` when the worker
/// hash no longer exists (it expired or was deleted), so the caller registers again.
pub async fn heartbeat<C: ConnectionLike>(
    conn: &mut C,
    prefix: &str,
    worker_name: &str,
    now: RqTimestamp,
    worker_key_ttl: u64,
    current_job_working_time: Option<f64>,
    running: &[RunningExecution],
) -> Result<bool, StoreError> {
    let mut inv = HEARTBEAT.prepare_invoke();
    inv.arg(prefix)
        .arg(worker_name)
        .arg(now.rq_format())
        .arg(now.unix_seconds())
        .arg(now.unix_float().to_string())
        .arg(worker_key_ttl)
        .arg(
            current_job_working_time
                .map(|t| t.to_string())
                .unwrap_or_default(),
        );
    for r in running {
        inv.arg(&r.job_id)
            .arg(&r.execution_id)
            .arg(&r.queue)
            .arg(r.ttl)
            .arg(r.registry_member());
    }
    let alive: i64 = inv.invoke_async(conn).await?;
    Ok(alive == 1)
}
