//! What `rqw info` shows, read-only through the store (`crate::store::overview`): queue
//! lengths, registry counts and worker records. Nothing is written or cleaned up (unlike `rq info`, which prunes expired
//! registry entries and handles abandoned jobs as it counts).
//!
//! Where RQ's count would first prune (`ZREMRANGEBYSCORE key 0 <now>` for the started,
//! finished and failed registries), the count here is `ZCARD` minus the entries that prune
//! would remove (`ZCOUNT key 0 <now>`): the number `rq info` would print. Deferred and
//! scheduled registries are not pruned by RQ 2.12+: `ZCARD`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionLike;

use crate::error::StoreError;
use crate::keys::Keys;
use crate::protocol::timestamp::parse_rq_timestamp;
use crate::store::overview::{queue_counts, queue_names, worker_records};

/// How rqw's `version` field starts (see [`crate::store::worker_record::VERSION_FIELD`]).
pub const RQW_VERSION_PREFIX: &str = "rqw-";

/// One queue's counts (read by the store).
pub use crate::store::overview::QueueCounts as QueueRow;

/// Which program a worker record belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerKind {
    /// rqw, with its version (the `version` field is `rqw-<version>`).
    Rqw(String),
    /// Python's `rq worker`, with the rq version it reports.
    Python(String),
}

impl WorkerKind {
    /// Tells the kind from the `version` field.
    pub fn from_version(version: Option<&str>) -> Self {
        match version {
            Some(v) => match v.strip_prefix(RQW_VERSION_PREFIX) {
                Some(rest) => Self::Rqw(rest.to_string()),
                None => Self::Python(v.to_string()),
            },
            None => Self::Python("?".into()),
        }
    }

    /// True for rqw.
    pub fn is_rqw(&self) -> bool {
        matches!(self, Self::Rqw(_))
    }
}

/// One worker record.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// Worker name.
    pub name: String,
    /// rqw or Python.
    pub kind: WorkerKind,
    /// `idle`, `busy`, `suspended`, ...
    pub state: String,
    /// Queues in priority order.
    pub queues: Vec<String>,
    /// Ids of the jobs it runs (2.x `current_job`, 3.0 `executions` set).
    pub current_jobs: Vec<String>,
    /// `successful_job_count`.
    pub successful: i64,
    /// `failed_job_count`.
    pub failed: i64,
    /// `total_working_time`, seconds.
    pub working_time: f64,
    /// `hostname`.
    pub hostname: String,
    /// `pid`.
    pub pid: String,
    /// `last_heartbeat`.
    pub last_heartbeat: Option<DateTime<Utc>>,
}

impl WorkerRow {
    /// Builds the row from the worker hash and its executions set.
    pub fn from_hash(name: &str, hash: &HashMap<String, String>, executions: &[String]) -> Self {
        let get = |field: &str| hash.get(field).map(String::as_str).unwrap_or_default();
        let mut current_jobs: Vec<String> = Vec::new();
        let mut add = |id: &str| {
            if !id.is_empty() && !current_jobs.iter().any(|j| j == id) {
                current_jobs.push(id.to_string());
            }
        };
        add(get("current_job"));
        let mut from_set: Vec<&str> = executions
            .iter()
            .map(|m| m.rsplit_once(':').map(|(id, _)| id).unwrap_or(m))
            .collect();
        from_set.sort_unstable();
        for id in from_set {
            add(id);
        }
        Self {
            name: name.to_string(),
            kind: WorkerKind::from_version(hash.get("version").map(String::as_str)),
            state: if get("state").is_empty() {
                "?".into()
            } else {
                get("state").to_string()
            },
            queues: get("queues")
                .split(',')
                .filter(|q| !q.is_empty())
                .map(String::from)
                .collect(),
            current_jobs,
            successful: get("successful_job_count").parse().unwrap_or(0),
            failed: get("failed_job_count").parse().unwrap_or(0),
            working_time: get("total_working_time").parse().unwrap_or(0.0),
            hostname: get("hostname").to_string(),
            pid: get("pid").to_string(),
            last_heartbeat: parse_rq_timestamp(get("last_heartbeat")),
        }
    }
}

/// Everything `rqw info` shows, read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When it was read.
    pub taken_at: DateTime<Utc>,
    /// Queues, sorted by name (or in the order asked for).
    pub queues: Vec<QueueRow>,
    /// Live worker records, sorted by name.
    pub workers: Vec<WorkerRow>,
}

/// Reads a snapshot. `only` limits it to these queues (and the workers listening on them).
pub async fn read<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    only: &[String],
    now: DateTime<Utc>,
) -> Result<Snapshot, StoreError> {
    let names = if only.is_empty() {
        queue_names(conn, keys).await?
    } else {
        only.to_vec()
    };
    let queues = queue_counts(conn, keys, names, now.timestamp()).await?;
    let mut workers: Vec<WorkerRow> = worker_records(conn, keys)
        .await?
        .iter()
        .map(|w| WorkerRow::from_hash(&w.name, &w.hash, &w.executions))
        .collect();
    if !only.is_empty() {
        workers.retain(|w| w.queues.iter().any(|q| only.contains(q)));
    }
    Ok(Snapshot {
        taken_at: now,
        queues,
        workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_the_version_field() {
        assert_eq!(
            WorkerKind::from_version(Some("rqw-0.1.0")),
            WorkerKind::Rqw("0.1.0".into())
        );
        assert_eq!(
            WorkerKind::from_version(Some("2.12.0")),
            WorkerKind::Python("2.12.0".into())
        );
        assert_eq!(
            WorkerKind::from_version(Some("rqwx")),
            WorkerKind::Python("rqwx".into())
        );
        assert!(!WorkerKind::from_version(None).is_rqw());
    }

    #[test]
    fn worker_rows_from_2x_and_3x_hashes() {
        let hash: HashMap<String, String> = [
            ("version", "3.0.0"),
            ("state", "busy"),
            ("queues", "high,low"),
            ("successful_job_count", "4"),
            ("failed_job_count", "1"),
            ("total_working_time", "2.5"),
            ("hostname", "h"),
            ("pid", "7"),
            ("last_heartbeat", "2026-11-28T12:00:00.000000Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let row = WorkerRow::from_hash("w", &hash, &["job:1:abc".into(), "job2:def".into()]);
        assert_eq!(row.kind, WorkerKind::Python("3.0.0".into()));
        assert_eq!(row.queues, vec!["high", "low"]);
        assert_eq!(row.current_jobs, vec!["job2", "job:1"]);
        assert_eq!((row.successful, row.failed), (4, 1));
        assert!(row.last_heartbeat.is_some());

        let mut hash2 = hash.clone();
        hash2.insert("current_job".into(), "job2".into());
        hash2.insert("version".into(), "rqw-0.1.0".into());
        hash2.remove("state");
        let row = WorkerRow::from_hash("w", &hash2, &["job2:def".into()]);
        assert_eq!(row.current_jobs, vec!["job2"]);
        assert!(row.kind.is_rqw());
        assert_eq!(row.state, "?");
    }
}
