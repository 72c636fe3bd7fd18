//! Turning a [`Snapshot`] into the text `rqw info` prints: a queue table, a worker table,
//! and a status line. Pure. Everything read from Redis is printed with control characters
//! replaced (a job id cannot move the cursor) and long cells shortened.

use chrono::{DateTime, Utc};

use super::snapshot::{QueueRow, Snapshot, WorkerKind, WorkerRow};

/// Longest cell printed; longer ones end in `…`.
pub const MAX_CELL: usize = 48;

/// The whole report. `redis` is the masked URL.
pub fn render(snapshot: &Snapshot, redis: &str) -> String {
    let mut out = String::new();
    out.push_str(&queue_table(&snapshot.queues));
    out.push('\n');
    out.push_str(&worker_table(&snapshot.workers, snapshot.taken_at));
    out.push('\n');
    out.push_str(&format!(
        "{} at {}\n",
        clean(redis),
        snapshot.taken_at.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    out
}

fn queue_table(queues: &[QueueRow]) -> String {
    if queues.is_empty() {
        return "0 queues\n".into();
    }
    let header = [
        "QUEUE",
        "QUEUED",
        "STARTED",
        "FINISHED",
        "FAILED",
        "DEFERRED",
        "SCHEDULED",
    ];
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                clean(&q.name),
                q.queued.to_string(),
                q.started.to_string(),
                q.finished.to_string(),
                q.failed.to_string(),
                q.deferred.to_string(),
                q.scheduled.to_string(),
            ]
        })
        .collect();
    let queued: i64 = queues.iter().map(|q| q.queued).sum();
    let started: i64 = queues.iter().map(|q| q.started).sum();
    format!(
        "{}{} queue{}, {queued} job{} queued, {started} started\n",
        table(&header, &rows, &[1, 2, 3, 4, 5, 6]),
        queues.len(),
        plural(queues.len()),
        plural(queued as usize),
    )
}

fn worker_table(workers: &[WorkerRow], now: DateTime<Utc>) -> String {
    if workers.is_empty() {
        return "0 workers\n".into();
    }
    let header = [
        "WORKER",
        "KIND",
        "STATE",
        "QUEUES",
        "CURRENT JOB",
        "OK",
        "FAILED",
        "WORKING",
        "HOST (PID)",
        "HEARTBEAT",
    ];
    let rows: Vec<Vec<String>> = workers.iter().map(|w| worker_cells(w, now)).collect();
    let rqw = workers.iter().filter(|w| w.kind.is_rqw()).count();
    format!(
        "{}{} worker{}: {rqw} rqw, {} python\n",
        table(&header, &rows, &[5, 6]),
        workers.len(),
        plural(workers.len()),
        workers.len() - rqw
    )
}

fn worker_cells(w: &WorkerRow, now: DateTime<Utc>) -> Vec<String> {
    let kind = match &w.kind {
        WorkerKind::Rqw(v) => format!("rqw {v}"),
        WorkerKind::Python(v) => format!("rq {v}"),
    };
    let current = if w.current_jobs.is_empty() {
        "-".to_string()
    } else {
        w.current_jobs.join(",")
    };
    let heartbeat = match w.last_heartbeat {
        Some(at) => format!("{}s ago", (now - at).num_seconds().max(0)),
        None => "-".into(),
    };
    vec![
        clean(&w.name),
        clean(&kind),
        clean(&w.state),
        clean(&w.queues.join(",")),
        clean(&current),
        w.successful.to_string(),
        w.failed.to_string(),
        format!("{:.1}s", w.working_time),
        clean(&format!("{} ({})", w.hostname, w.pid)),
        heartbeat,
    ]
}

/// Columns padded to their widest cell; the columns listed in `right` (counts) are
/// right-aligned.
fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let width = widths.get(i).copied().unwrap_or(0);
                if right.contains(&i) {
                    format!("{c:>width$}")
                } else {
                    format!("{c:<width$}")
                }
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Control characters replaced by `?`, and at most [`MAX_CELL`] characters.
pub fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_CELL)
        .collect();
    if text.chars().count() > MAX_CELL {
        out.pop();
        out.push('…');
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 10).unwrap()
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            taken_at: now(),
            queues: vec![
                QueueRow {
                    name: "default".into(),
                    queued: 2,
                    failed: 1,
                    ..Default::default()
                },
                QueueRow {
                    name: "recordings".into(),
                    started: 1,
                    finished: 12,
                    ..Default::default()
                },
            ],
            workers: vec![WorkerRow {
                name: "w1".into(),
                kind: WorkerKind::Rqw("0.1.0".into()),
                state: "busy".into(),
                queues: vec!["recordings".into()],
                current_jobs: vec!["job\x1b[2J".into()],
                successful: 12,
                failed: 0,
                working_time: 3.25,
                hostname: "h".into(),
                pid: "1".into(),
                last_heartbeat: Some(now() - chrono::Duration::seconds(4)),
            }],
        }
    }

    #[test]
    fn renders_tables_and_totals() {
        let text = render(&snapshot(), "redis://:***@r:6379/0");
        let expected = "\
QUEUE       QUEUED  STARTED  FINISHED  FAILED  DEFERRED  SCHEDULED
default          2        0         0       1         0          0
recordings       0        1        12       0         0          0
2 queues, 2 jobs queued, 1 started

WORKER  KIND       STATE  QUEUES      CURRENT JOB  OK  FAILED  WORKING  HOST (PID)  HEARTBEAT
w1      rqw 0.1.0  busy   recordings  job?[2J      12       0  3.2s     h (1)       4s ago
1 worker: 1 rqw, 0 python

redis://:***@r:6379/0 at 2026-11-28 12:00:10 UTC
";
        assert_eq!(text, expected);
    }

    #[test]
    fn empty_and_long_cells() {
        let empty = Snapshot {
            taken_at: now(),
            queues: vec![],
            workers: vec![],
        };
        assert!(render(&empty, "redis://r").starts_with("0 queues\n\n0 workers\n"));
        let long = clean(&"x".repeat(100));
        assert_eq!(long.chars().count(), MAX_CELL);
        assert!(long.ends_with('…'));
    }
}
