//! The fields of a job hash (`rq:job:<id>`) that the worker reads, parsed leniently:
//! a malformed field is recorded as a problem (the job then fails with a clear message)
//! and a safe default is used, so even a broken job can be failed and inspected.

use std::collections::HashMap;

/// RQ's `Queue.DEFAULT_TIMEOUT`, applied when a job has no usable `timeout`.
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 180;

/// How long a job may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTimeout {
    /// At most this many seconds.
    Seconds(u64),
    /// `timeout = -1`: no limit.
    Unlimited,
}

impl JobTimeout {
    /// The value as RQ writes it (`-1` for unlimited).
    pub fn as_rq_int(&self) -> i64 {
        match self {
            JobTimeout::Seconds(s) => *s as i64,
            JobTimeout::Unlimited => -1,
        }
    }
}

/// RQ's `CALLBACK_TIMEOUT`: seconds a callback may run when the job sets no timeout for it.
pub const DEFAULT_CALLBACK_TIMEOUT_SECS: u64 = 60;

/// A callback named by a job (`on_success=`, `on_failure=`, `on_stopped=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSpec {
    /// Dotted Python path of the callback.
    pub path: String,
    /// Seconds it may run.
    pub timeout_secs: u64,
}

/// What the worker needs from a job hash.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Job id.
    pub id: String,
    /// The queue it was taken from (`origin`, or the queue popped if `origin` is missing).
    pub origin: String,
    /// The zlib-compressed serialized call tuple (`data`).
    pub data: Option<Vec<u8>>,
    /// The serialized `meta` dict, if any.
    pub meta: Option<Vec<u8>>,
    /// `timeout`.
    pub timeout: JobTimeout,
    /// `result_ttl`, if set on the job.
    pub result_ttl: Option<i64>,
    /// `failure_ttl`, if set on the job.
    pub failure_ttl: Option<i64>,
    /// `retries_left`, if the job has a retry policy.
    pub retries_left: Option<u32>,
    /// `retry_intervals` (seconds).
    pub retry_intervals: Vec<u64>,
    /// `enqueue_at_front_on_retry` (2.12+).
    pub enqueue_at_front_on_retry: bool,
    /// `repeats_left` (2.12+ `Repeat`).
    pub repeats_left: Option<u32>,
    /// `repeat_intervals` (seconds).
    pub repeat_intervals: Vec<u64>,
    /// `success_callback_name` with its timeout, if set.
    pub success_callback: Option<CallbackSpec>,
    /// `failure_callback_name` with its timeout, if set.
    pub failure_callback: Option<CallbackSpec>,
    /// `stopped_callback_name` with its timeout, if set.
    pub stopped_callback: Option<CallbackSpec>,
    /// rq 3.0's `rate_limit_key` (raw bytes), if set and non-empty: the slot to release
    /// once the outcome is final.
    pub rate_limit_key: Option<Vec<u8>>,
    /// Whether the hash has a non-empty `dependency_ids` (or legacy `dependency_id`): RQ
    /// writes them for every job it registers dependencies of, so only such a job can have a
    /// `rq:job::<id>:dependencies` set.
    pub has_dependencies: bool,
    /// `data`/`meta` values the start script left in Redis for their length (see
    /// [`OVERSIZE_FIELD_PREFIX`]): the field name and its length in bytes. (Other fields it
    /// left there are reported in `problems` when the worker reads them, else ignored.)
    pub oversize: Vec<(&'static str, u64)>,
    /// Fields that could not be parsed, as human-readable descriptions.
    pub problems: Vec<String>,
}

/// Longest value of a field [`JobRecord::parse`] reads (besides `data` and `meta`) that the
/// start script returns (`MAX_READ_FIELD` in `start.lua`).
pub const MAX_READ_FIELD_BYTES: u64 = 65536;

/// The fields [`JobRecord::parse`] reads besides `data`, `meta` and the callbacks.
const READ_FIELDS: &[&str] = &[
    "origin",
    "status",
    "timeout",
    "result_ttl",
    "failure_ttl",
    "retries_left",
    "retry_intervals",
    "enqueue_at_front_on_retry",
    "repeats_left",
    "repeat_intervals",
    "rate_limit_key",
];

/// Prefix of the pseudo field by which `start.lua` reports a `data` or `meta` value it did
/// not return for its length (`\0rqw.oversize.data` = the length). A NUL-led name, which no
/// RQ version writes.
pub const OVERSIZE_FIELD_PREFIX: &str = "\0rqw.oversize.";

impl JobRecord {
    /// Parses the `HGETALL` reply of a job hash. `queue` is the queue the id was popped from.
    pub fn parse(id: &str, queue: &str, mut fields: HashMap<String, Vec<u8>>) -> Self {
        let mut problems = Vec::new();
        let text = |name: &str, problems: &mut Vec<String>| -> Option<String> {
            let raw = fields.get(name)?;
            match std::str::from_utf8(raw) {
                Ok(s) => Some(s.to_string()),
                Err(_) => {
                    problems.push(format!("field '{name}' is not UTF-8"));
                    None
                }
            }
        };
        let int = |name: &str, problems: &mut Vec<String>| -> Option<i64> {
            let s = text(name, problems)?;
            if s.is_empty() {
                return None;
            }
            match s.parse::<i64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    problems.push(format!(
                        "field '{name}' is not an integer: {}",
                        truncate(&s)
                    ));
                    None
                }
            }
        };

        let origin = text("origin", &mut problems)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| queue.to_string());
        let timeout = match int("timeout", &mut problems) {
            None | Some(0) => JobTimeout::Seconds(DEFAULT_JOB_TIMEOUT_SECS),
            Some(t) if t < 0 => JobTimeout::Unlimited,
            Some(t) => JobTimeout::Seconds(t as u64),
        };
        let retries_left = match int("retries_left", &mut problems) {
            Some(n) if n < 0 => {
                problems.push(format!("field 'retries_left' is negative: {n}"));
                None
            }
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => None,
        };
        let retry_intervals = int_list(
            "retry_intervals",
            text("retry_intervals", &mut problems),
            &mut problems,
        );
        let enqueue_at_front_on_retry =
            int("enqueue_at_front_on_retry", &mut problems).unwrap_or(0) != 0;
        let repeats_left =
            int("repeats_left", &mut problems).map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
        let repeat_intervals = int_list(
            "repeat_intervals",
            text("repeat_intervals", &mut problems),
            &mut problems,
        );
        let mut callback = |kind: &str| -> Option<CallbackSpec> {
            let path =
                text(&format!("{kind}_callback_name"), &mut problems).filter(|p| !p.is_empty())?;
            let timeout = int(&format!("{kind}_callback_timeout"), &mut problems)
                .filter(|t| *t > 0)
                .map_or(DEFAULT_CALLBACK_TIMEOUT_SECS, |t| t as u64);
            Some(CallbackSpec {
                path,
                timeout_secs: timeout,
            })
        };
        let success_callback = callback("success");
        let failure_callback = callback("failure");
        let stopped_callback = callback("stopped");
        let result_ttl = int("result_ttl", &mut problems);
        let failure_ttl = int("failure_ttl", &mut problems);
        // `status` is not kept (nothing acts on it), but like every field read here it must be
        // text, or the hash is not one RQ wrote.
        text("status", &mut problems);
        let non_empty = |name: &str| fields.get(name).filter(|v| !v.is_empty());
        let rate_limit_key = non_empty("rate_limit_key").cloned();
        let has_dependencies =
            non_empty("dependency_ids").is_some() || non_empty("dependency_id").is_some();
        let oversize: Vec<(&'static str, u64)> = ["data", "meta"]
            .into_iter()
            .filter_map(|name| {
                let raw = fields.get(&format!("{OVERSIZE_FIELD_PREFIX}{name}"))?;
                let len = std::str::from_utf8(raw).ok()?.parse().ok()?;
                Some((name, len))
            })
            .collect();
        // Other fields left in Redis for their length: a problem when the worker reads them
        // (their value came back empty), else nothing (the hash in Redis is untouched).
        let mut has_dependencies = has_dependencies;
        for (name, raw) in &fields {
            let Some(field) = name.strip_prefix(OVERSIZE_FIELD_PREFIX) else {
                continue;
            };
            let len = String::from_utf8_lossy(raw);
            match field {
                "data" | "meta" => {}
                "dependency_ids" | "dependency_id" => has_dependencies = true,
                f if READ_FIELDS.contains(&f) || f.contains("_callback_") => {
                    problems.push(format!(
                        "field '{}' is {len} bytes, over the {MAX_READ_FIELD_BYTES}-byte limit of the fields rqw reads",
                        crate::text::shown(f.as_bytes())
                    ));
                }
                _ => {}
            }
        }
        // Moved, not copied: a payload is held once.
        let data = fields.remove("data");
        if data.is_none() {
            problems.push("the job hash has no 'data' field".to_string());
        }
        let meta = fields.remove("meta");
        Self {
            id: id.to_string(),
            origin,
            data,
            meta,
            oversize,
            timeout,
            result_ttl,
            failure_ttl,
            retries_left,
            retry_intervals,
            enqueue_at_front_on_retry,
            repeats_left,
            repeat_intervals,
            success_callback,
            failure_callback,
            stopped_callback,
            rate_limit_key,
            has_dependencies,
            problems,
        }
    }

    /// The delay before the next retry, as `Job.get_retry_interval` computes it (using
    /// `retries_left` before the decrement). `None` when no retry is left.
    pub fn next_retry_interval(&self) -> Option<u64> {
        let left = self.retries_left.filter(|n| *n > 0)? as usize;
        if self.retry_intervals.is_empty() {
            return Some(0);
        }
        let index = self.retry_intervals.len().saturating_sub(left);
        self.retry_intervals.get(index).copied().or(Some(0))
    }
}

/// The delay before the next repeat, as `Repeat.schedule` computes it: the interval at
/// index `repeats_left - 1` (the last one when the list is shorter). `None` when no repeat is
/// left.
impl JobRecord {
    pub fn next_repeat_interval(&self) -> Option<u64> {
        let left = self.repeats_left.filter(|n| *n > 0)? as usize;
        let index = left - 1;
        Some(
            self.repeat_intervals
                .get(index)
                .or(self.repeat_intervals.last())
                .copied()
                .unwrap_or(0),
        )
    }
}

fn int_list(name: &str, raw: Option<String>, problems: &mut Vec<String>) -> Vec<u64> {
    match raw {
        Some(s) if !s.is_empty() => serde_json::from_str::<Vec<u64>>(&s).unwrap_or_else(|_| {
            problems.push(format!(
                "field '{name}' is not a JSON list of seconds: {}",
                truncate(&s)
            ));
            Vec::new()
        }),
        _ => Vec::new(),
    }
}

/// The first 40 characters of a field's value, quoted and escaped, so that an error text
/// stays on one line whatever the field holds (it ends up in the job's `exc_string`).
fn truncate(s: &str) -> String {
    let head: String = s.chars().take(40).collect();
    format!("{head:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, &str)]) -> JobRecord {
        let mut fields: HashMap<String, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        fields.entry("data".into()).or_insert_with(|| b"x".to_vec());
        JobRecord::parse("j1", "default", fields)
    }

    #[test]
    fn fields_the_start_script_left_in_redis() {
        let r = record(&[
            ("data", ""),
            ("\0rqw.oversize.data", "73400320"),
            ("\0rqw.oversize.description", "5242880"),
        ]);
        assert_eq!(r.oversize, vec![("data", 73_400_320)]);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let r = record(&[
            ("origin", ""),
            ("\0rqw.oversize.origin", "5242880"),
            ("\0rqw.oversize.dependency_ids", "9000000"),
        ]);
        assert_eq!(
            r.problems,
            ["field 'origin' is 5242880 bytes, over the 65536-byte limit of the fields rqw reads"]
        );
        assert!(r.has_dependencies);
        assert_eq!(r.origin, "default");
    }

    #[test]
    fn problems_quote_values_on_one_line() {
        let r = record(&[("timeout", "1\n2"), ("retry_intervals", "[1,\r\n\"x\"]")]);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        for problem in &r.problems {
            assert!(
                !problem.contains('\n') && !problem.contains('\r'),
                "{problem}"
            );
        }
        assert_eq!(
            r.problems[0],
            "field 'timeout' is not an integer: \"1\\n2\""
        );
    }

    #[test]
    fn timeouts_follow_rq() {
        assert_eq!(record(&[("timeout", "7")]).timeout, JobTimeout::Seconds(7));
        assert_eq!(record(&[("timeout", "-1")]).timeout, JobTimeout::Unlimited);
        assert_eq!(record(&[]).timeout, JobTimeout::Seconds(180));
        let bad = record(&[("timeout", "180.0")]);
        assert_eq!(bad.timeout, JobTimeout::Seconds(180));
        assert_eq!(bad.problems.len(), 1);
    }

    #[test]
    fn retry_interval_uses_retries_left_before_decrement() {
        let r = record(&[("retries_left", "5"), ("retry_intervals", "[10, 30]")]);
        assert_eq!(r.next_retry_interval(), Some(10));
        let r = record(&[("retries_left", "1"), ("retry_intervals", "[10, 30]")]);
        assert_eq!(r.next_retry_interval(), Some(30));
        let r = record(&[("retries_left", "2"), ("retry_intervals", "[0]")]);
        assert_eq!(r.next_retry_interval(), Some(0));
        assert_eq!(record(&[("retries_left", "0")]).next_retry_interval(), None);
        assert_eq!(record(&[]).next_retry_interval(), None);
    }

    #[test]
    fn repeat_interval_counts_from_the_end_like_rq() {
        let r = record(&[("repeats_left", "3"), ("repeat_intervals", "[10, 20, 30]")]);
        assert_eq!(r.next_repeat_interval(), Some(30));
        let r = record(&[("repeats_left", "5"), ("repeat_intervals", "[10, 20]")]);
        assert_eq!(r.next_repeat_interval(), Some(20));
        let r = record(&[("repeats_left", "1"), ("repeat_intervals", "[10, 20]")]);
        assert_eq!(r.next_repeat_interval(), Some(10));
        assert_eq!(
            record(&[("repeats_left", "0")]).next_repeat_interval(),
            None
        );
    }

    #[test]
    fn callbacks_with_default_timeout() {
        let r = record(&[
            ("success_callback_name", "m.cb"),
            ("failure_callback_name", ""),
            ("stopped_callback_name", "m.s"),
            ("stopped_callback_timeout", "5"),
        ]);
        assert_eq!(
            r.success_callback,
            Some(CallbackSpec {
                path: "m.cb".into(),
                timeout_secs: 60
            })
        );
        assert_eq!(r.failure_callback, None);
        assert_eq!(
            r.stopped_callback,
            Some(CallbackSpec {
                path: "m.s".into(),
                timeout_secs: 5
            })
        );
    }

    #[test]
    fn missing_data_is_a_problem() {
        let r = JobRecord::parse("j", "q", HashMap::new());
        assert!(r.problems.iter().any(|p| p.contains("'data'")));
        assert_eq!(r.origin, "q");
    }

    #[test]
    fn rate_limit_key_and_dependencies_are_read_as_finish_lua_needs_them() {
        let plain = record(&[("rate_limit_key", ""), ("dependency_ids", "")]);
        assert_eq!(plain.rate_limit_key, None);
        assert!(!plain.has_dependencies);
        let r = record(&[
            ("rate_limit_key", "tenant-1"),
            ("dependency_ids", "[\"a\"]"),
        ]);
        assert_eq!(r.rate_limit_key.as_deref(), Some(&b"tenant-1"[..]));
        assert!(r.has_dependencies);
        assert!(record(&[("dependency_id", "a")]).has_dependencies);
        // Raw bytes, not text: a non-UTF-8 key is passed on, and is no problem of the job.
        let mut fields = HashMap::new();
        fields.insert("data".to_string(), b"x".to_vec());
        fields.insert("rate_limit_key".to_string(), vec![0xff, 0x01]);
        let raw = JobRecord::parse("j", "q", fields);
        assert_eq!(raw.rate_limit_key, Some(vec![0xff, 0x01]));
        assert!(raw.problems.is_empty(), "{:?}", raw.problems);
    }
}
