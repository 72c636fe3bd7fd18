//! `rqw inspect`: per queue (`rq:queues`) and registry (queue list, scheduled, deferred,
//! failed, started), the function paths of the jobs waiting there, with a count per path and
//! whether this rqw runs each natively ([`native_paths`]).
//!
//! Read-only (through `crate::store::overview`: SMEMBERS, LLEN, LRANGE, ZCARD, ZRANGE, HGET)
//! and bounded: at most
//! [`SCAN_CAP`] jobs are read per registry, and the output says when a registry holds more.
//! Function names are decoded with [`decode_job_data`], which never executes anything; a
//! payload it refuses is reported as undecodable, with the reason.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::Context;
use redis::aio::ConnectionLike;

use super::RedisTarget;
use crate::handlers::native_paths;
use crate::keys::Keys;
use crate::protocol::payload::{decode_job_data, Serializer};
use crate::protocol::text::shown;
use crate::store::overview::{job_data, list_ids, queue_names, registry_ids};

/// Most jobs read per registry.
pub const SCAN_CAP: usize = 1000;

/// What a job waiting somewhere is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Waiting {
    /// A decoded function path.
    Function(String),
    /// A payload rqw refuses to decode (the reason); rqw fails such jobs, never runs them.
    Undecodable(String),
    /// The id has no job hash, or the hash no `data`.
    Missing,
}

/// One registry (or the queue list) of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `queued`, `scheduled`, `deferred`, `failed` or `started`.
    pub name: &'static str,
    /// Jobs it holds.
    pub total: u64,
    /// Jobs read (at most [`SCAN_CAP`]).
    pub scanned: u64,
    /// Count per kind of job among those read.
    pub waiting: BTreeMap<Waiting, u64>,
}

/// Everything `inspect` found for one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueReport {
    /// Queue name.
    pub name: String,
    /// Its sources, in a fixed order.
    pub sources: Vec<Source>,
}

/// What `rqw inspect` is asked (the command line fills it in).
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Where to read.
    pub target: RedisTarget,
    /// The producers' serializer (to read function paths of JSON jobs).
    pub serializer: Serializer,
    /// Count the diagnostic `rqw.testing.*` handlers as native.
    pub enable_testing_handlers: bool,
    /// The worker runs Python horses: paths without a native handler are Python's.
    pub python: bool,
}

/// Runs `rqw inspect`.
pub async fn run(args: InspectOptions) -> anyhow::Result<()> {
    let serializer = args.serializer;
    let (mut conn, masked) = super::connect(&args.target).await?;
    let queues = inspect(&mut conn, &Keys::default(), serializer, SCAN_CAP)
        .await
        .with_context(|| format!("cannot read from Redis at {masked}"))?;
    let native = native_paths(args.enable_testing_handlers);
    let header = format!(
        "rqw inspect {} (serializer: {}; read-only; at most {SCAN_CAP} jobs read per registry)",
        masked,
        match serializer {
            Serializer::Pickle => "pickle",
            Serializer::Json => "json",
        }
    );
    print!("{}", render(&header, &queues, &native, args.python));
    Ok(())
}

/// Reads every queue of `rq:queues` and its registries.
pub async fn inspect<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    serializer: Serializer,
    cap: usize,
) -> anyhow::Result<Vec<QueueReport>> {
    let names = queue_names(conn, keys).await?;
    let mut reports = Vec::new();
    for name in names {
        let mut sources = Vec::new();
        let (total, ids) = list_ids(conn, &keys.queue(&name), cap).await?;
        sources.push(source(conn, keys, serializer, "queued", total, ids).await?);
        for (label, key) in [
            ("scheduled", keys.scheduled(&name)),
            ("deferred", keys.deferred(&name)),
            ("failed", keys.failed(&name)),
            ("started", keys.started(&name)),
        ] {
            let (total, ids) = registry_ids(conn, &key, cap).await?;
            sources.push(source(conn, keys, serializer, label, total, ids).await?);
        }
        reports.push(QueueReport { name, sources });
    }
    Ok(reports)
}

async fn source<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    serializer: Serializer,
    name: &'static str,
    total: u64,
    ids: Vec<String>,
) -> anyhow::Result<Source> {
    let mut waiting = BTreeMap::new();
    for data in job_data(conn, keys, &ids).await? {
        *waiting
            .entry(classify(data.as_deref(), serializer))
            .or_insert(0) += 1;
    }
    Ok(Source {
        name,
        total,
        scanned: ids.len() as u64,
        waiting,
    })
}

/// What a job's `data` field says it runs.
pub fn classify(data: Option<&[u8]>, serializer: Serializer) -> Waiting {
    match data {
        None => Waiting::Missing,
        Some(raw) => match decode_job_data(raw, serializer) {
            Ok(call) => Waiting::Function(call.func_name),
            Err(e) => Waiting::Undecodable(e.to_string()),
        },
    }
}

/// The report as text: one block per queue, one line per source and per kind of job.
/// `python`: the worker runs Python horses, so paths without a native handler (and payloads
/// rqw cannot decode) run in Python.
pub fn render(header: &str, queues: &[QueueReport], native: &[&str], python: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "native handlers: {}", native.join(", "));
    if python {
        let _ = writeln!(out, "every other function path: Python horses (--python)");
    }
    if queues.is_empty() {
        let _ = writeln!(out, "\nno queues (rq:queues is empty)");
    }
    let (mut runnable, mut foreign, mut undecodable, mut missing) = (0u64, 0u64, 0u64, 0u64);
    for q in queues {
        let _ = writeln!(out, "\nqueue {}", q.name);
        for s in &q.sources {
            let more = if s.total > s.scanned {
                format!(" (first {} read)", s.scanned)
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {}: {} job(s){more}", s.name, s.total);
            for (what, count) in &s.waiting {
                let (label, verdict) = match what {
                    Waiting::Function(path) if native.contains(&path.as_str()) => {
                        runnable += count;
                        (shown(path.as_bytes()), "native".to_string())
                    }
                    Waiting::Function(path) if python => {
                        foreign += count;
                        (path.clone(), "python".to_string())
                    }
                    Waiting::Function(path) => {
                        foreign += count;
                        // A producer's text: escaped and bounded, it cannot forge a line.
                        (shown(path.as_bytes()), "no native handler".to_string())
                    }
                    Waiting::Undecodable(reason) if python => {
                        foreign += count;
                        (
                            "(not decodable by rqw)".to_string(),
                            format!("python: {reason}"),
                        )
                    }
                    Waiting::Undecodable(reason) => {
                        undecodable += count;
                        (
                            "(undecodable)".to_string(),
                            format!("undecodable, never run by rqw: {reason}"),
                        )
                    }
                    Waiting::Missing => {
                        missing += count;
                        ("(no job hash)".to_string(), "job missing".to_string())
                    }
                };
                let _ = writeln!(out, "    {count:>8}  {label}  [{verdict}]");
            }
        }
    }
    let total = runnable + foreign + undecodable + missing;
    let _ = if python {
        writeln!(
            out,
            "\nsummary: {total} job(s) read: {runnable} native, {foreign} python, {missing} missing"
        )
    } else {
        writeln!(
            out,
            "\nsummary: {total} job(s) read: {runnable} native, {foreign} without a native handler, {undecodable} undecodable, {missing} missing"
        )
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::result::zlib_compress;

    #[test]
    fn classifies_json_payloads() {
        let data = zlib_compress(br#"["app.jobs.add", null, [1, 2], {}]"#);
        assert_eq!(
            classify(Some(&data), Serializer::Json),
            Waiting::Function("app.jobs.add".into())
        );
        assert!(matches!(
            classify(Some(b"not a payload"), Serializer::Json),
            Waiting::Undecodable(_)
        ));
        assert_eq!(classify(None, Serializer::Pickle), Waiting::Missing);
    }

    #[test]
    fn renders_counts_and_verdicts() {
        let mut waiting = BTreeMap::new();
        waiting.insert(Waiting::Function("rqw.testing.echo".into()), 2);
        waiting.insert(Waiting::Function("app.other".into()), 1);
        waiting.insert(Waiting::Undecodable("bad".into()), 1);
        let queues = vec![QueueReport {
            name: "default".into(),
            sources: vec![Source {
                name: "queued",
                total: 1500,
                scanned: 4,
                waiting,
            }],
        }];
        let text = render("h", &queues, &["rqw.testing.echo"], false);
        assert!(text.contains("  queued: 1500 job(s) (first 4 read)\n"));
        assert!(text.contains("           2  rqw.testing.echo  [native]\n"));
        assert!(text.contains("           1  app.other  [no native handler]\n"));
        assert!(text.contains("[undecodable, never run by rqw: bad]"));
        assert!(text.contains("summary: 4 job(s) read: 2 native, 1 without a native handler, 1 undecodable, 0 missing"));
        let text = render("h", &queues, &["rqw.testing.echo"], true);
        assert!(text.contains("           2  rqw.testing.echo  [native]\n"));
        assert!(text.contains("           1  app.other  [python]\n"));
        assert!(text.contains("[python: bad]"));
        assert!(text.contains("summary: 4 job(s) read: 2 native, 2 python, 0 missing"));
    }
}
