//! The read-only reads of the operator commands (`rqw info`, `rqw inspect`): queue names,
//! queue and registry counts, worker records, registry members and job payloads. Nothing
//! here writes or cleans up.

use std::collections::HashMap;

use redis::aio::ConnectionLike;

use crate::error::StoreError;
use crate::keys::Keys;

/// Job hashes fetched per round trip by [`job_data`].
const FETCH_CHUNK: usize = 200;

/// The queue names of `rq:queues`, sorted, without duplicates.
pub async fn queue_names<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
) -> Result<Vec<String>, StoreError> {
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.queues())
        .query_async(conn)
        .await?;
    let prefix = keys.queue("");
    let mut names: Vec<String> = members
        .iter()
        .filter_map(|m| m.strip_prefix(&prefix).map(String::from))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// One queue's counts, as `rq info` would print them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Queue name.
    pub name: String,
    /// Jobs waiting (`LLEN rq:queue:<q>`).
    pub queued: i64,
    /// StartedJobRegistry entries not yet expired.
    pub started: i64,
    /// FinishedJobRegistry entries not yet expired.
    pub finished: i64,
    /// FailedJobRegistry entries not yet expired.
    pub failed: i64,
    /// DeferredJobRegistry entries.
    pub deferred: i64,
    /// ScheduledJobRegistry entries.
    pub scheduled: i64,
}

/// The counts of every queue of `names`, in that order, in one pipelined round trip. Where RQ
/// would first prune (started, finished, failed), the count is `ZCARD` minus what the prune
/// would remove (`ZCOUNT key 0 <now>`); deferred and scheduled are `ZCARD`.
pub async fn queue_counts<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    names: Vec<String>,
    now: i64,
) -> Result<Vec<QueueCounts>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for q in &names {
        pipe.llen(keys.queue(q));
        for registry in [keys.started(q), keys.finished(q), keys.failed(q)] {
            pipe.zcard(&registry).zcount(&registry, 0, now);
        }
        pipe.zcard(keys.deferred(q)).zcard(keys.scheduled(q));
    }
    let counts: Vec<i64> = pipe.query_async(conn).await?;
    if counts.len() != names.len() * 9 {
        return Err(StoreError::UnexpectedReply {
            what: "queue counts",
            detail: format!("{} values for {} queues", counts.len(), names.len()),
        });
    }
    Ok(names
        .into_iter()
        .zip(counts.chunks(9))
        .map(|(name, c)| QueueCounts {
            name,
            queued: c[0],
            started: (c[1] - c[2]).max(0),
            finished: (c[3] - c[4]).max(0),
            failed: (c[5] - c[6]).max(0),
            deferred: c[7],
            scheduled: c[8],
        })
        .collect())
}

/// One live worker record: its name, its hash and the members of its executions set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Worker name.
    pub name: String,
    /// `rq:worker:<name>`, every field.
    pub hash: HashMap<String, String>,
    /// `rq:worker:<name>:executions` (3.0: `<id>:<execution id>`).
    pub executions: Vec<String>,
}

/// Every worker of `rq:workers` whose hash still exists, sorted by key (a key still in the
/// set whose hash expired is a dead worker: RQ skips it too).
pub async fn worker_records<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
) -> Result<Vec<WorkerRecord>, StoreError> {
    let mut worker_keys: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.workers())
        .query_async(conn)
        .await?;
    worker_keys.sort();
    if worker_keys.is_empty() {
        return Ok(Vec::new());
    }
    let prefix = keys.worker("");
    let names: Vec<String> = worker_keys
        .iter()
        .map(|key| key.strip_prefix(&prefix).unwrap_or(key).to_string())
        .collect();
    let mut pipe = redis::pipe();
    for (key, name) in worker_keys.iter().zip(&names) {
        pipe.hgetall(key).smembers(keys.worker_executions(name));
    }
    let replies: Vec<(HashMap<String, String>, Vec<String>)> = pipe.query_async(conn).await?;
    Ok(names
        .into_iter()
        .zip(replies)
        .filter(|(_, (hash, _))| !hash.is_empty())
        .map(|(name, (hash, executions))| WorkerRecord {
            name,
            hash,
            executions,
        })
        .collect())
}

/// The length of the list `key` and its first `cap` ids.
pub async fn list_ids<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    cap: usize,
) -> Result<(u64, Vec<String>), StoreError> {
    let total: u64 = redis::cmd("LLEN").arg(key).query_async(conn).await?;
    let ids: Vec<String> = redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(cap as i64 - 1)
        .query_async(conn)
        .await?;
    Ok((total, ids))
}

/// The size of the registry `key` and the job ids of its first `cap` members
/// (StartedJobRegistry members `<id>:<execution id>` become job ids, once each).
pub async fn registry_ids<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    cap: usize,
) -> Result<(u64, Vec<String>), StoreError> {
    let total: u64 = redis::cmd("ZCARD").arg(key).query_async(conn).await?;
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(cap as i64 - 1)
        .query_async(conn)
        .await?;
    let mut ids: Vec<String> = Vec::with_capacity(members.len());
    for m in members {
        let id = m
            .rsplit_once(':')
            .map_or(m.as_str(), |(id, _)| id)
            .to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok((total, ids))
}

/// The `data` field of each job of `ids`, in order (`None`: no hash, or no `data`), a few
/// hundred per round trip.
pub async fn job_data<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    ids: &[String],
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(FETCH_CHUNK) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.hget(keys.job(id), "data");
        }
        let datas: Vec<Option<Vec<u8>>> = pipe.query_async(conn).await?;
        out.extend(datas);
    }
    Ok(out)
}
