//! The `/healthz` verdict, pure: from what Redis holds about this worker to a status code
//! and a short JSON body.
//!
//! Healthy means Redis answered and the worker hash `rq:worker:<name>` exists, has no
//! `death`, and its `last_heartbeat` is at most `stale_after` old.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::protocol::timestamp::parse_rq_timestamp;

/// What `/healthz` reads from the worker hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatFields {
    /// `last_heartbeat` (None when the hash or the field is missing).
    pub last_heartbeat: Option<String>,
    /// `death` is set (the worker deregistered).
    pub dead: bool,
}

/// The verdict, serialized as the response body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
    /// The worker's name.
    pub worker: String,
    /// Redis answered.
    pub redis: bool,
    /// Seconds since the worker's last heartbeat, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_seconds: Option<f64>,
    /// Why it is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl HealthReport {
    /// True when healthy.
    pub fn is_healthy(&self) -> bool {
        self.status == "ok"
    }

    /// 200 when healthy, 503 otherwise.
    pub fn status_code(&self) -> u16 {
        if self.is_healthy() {
            200
        } else {
            503
        }
    }

    /// The JSON body (one line).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| format!("{{\"status\":\"{}\"}}", self.status))
    }
}

/// Judges what was read (`Err` = Redis did not answer, with the reason).
pub fn judge(
    worker: &str,
    read: Result<HeartbeatFields, String>,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> HealthReport {
    let report = |redis, age, reason: Option<String>| HealthReport {
        status: if reason.is_none() { "ok" } else { "unhealthy" },
        worker: worker.to_string(),
        redis,
        heartbeat_age_seconds: age,
        reason,
    };
    let fields = match read {
        Ok(fields) => fields,
        Err(e) => return report(false, None, Some(format!("redis unreachable: {e}"))),
    };
    if fields.dead {
        return report(true, None, Some("the worker has deregistered".into()));
    }
    let Some(raw) = fields.last_heartbeat else {
        return report(true, None, Some("no worker record in redis".into()));
    };
    let Some(at) = parse_rq_timestamp(&raw) else {
        return report(true, None, Some("unreadable last_heartbeat".into()));
    };
    let age = (now - at).num_milliseconds().max(0) as f64 / 1000.0;
    if age > stale_after.as_secs_f64() {
        let reason = format!(
            "heartbeat is {age:.0}s old (limit {}s)",
            stale_after.as_secs()
        );
        return report(true, Some(age), Some(reason));
    }
    report(true, Some(age), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 30).unwrap()
    }

    fn beat(ts: &str) -> Result<HeartbeatFields, String> {
        Ok(HeartbeatFields {
            last_heartbeat: Some(ts.into()),
            dead: false,
        })
    }

    const LIMIT: Duration = Duration::from_secs(90);

    #[test]
    fn a_recent_heartbeat_is_healthy() {
        let r = judge("w", beat("2026-11-28T12:00:00.000000Z"), now(), LIMIT);
        assert_eq!(r.status_code(), 200);
        assert_eq!(
            r.to_json(),
            r#"{"status":"ok","worker":"w","redis":true,"heartbeat_age_seconds":30.0}"#
        );
    }

    #[test]
    fn stale_dead_missing_or_unreachable_is_unhealthy() {
        let stale = judge("w", beat("2026-11-28T11:58:00.000000Z"), now(), LIMIT);
        assert_eq!(stale.status_code(), 503);
        assert!(stale.to_json().contains("150s old"), "{}", stale.to_json());
        let dead = judge(
            "w",
            Ok(HeartbeatFields {
                last_heartbeat: Some("2026-11-28T12:00:00Z".into()),
                dead: true,
            }),
            now(),
            LIMIT,
        );
        assert_eq!(dead.status_code(), 503);
        let missing = judge("w", Ok(HeartbeatFields::default()), now(), LIMIT);
        assert!(missing.to_json().contains("no worker record"));
        let down = judge("w", Err("timed out".into()), now(), LIMIT);
        assert!(!down.redis);
        assert!(down.to_json().contains("redis unreachable: timed out"));
        let garbage = judge("w", beat("yesterday"), now(), LIMIT);
        assert_eq!(garbage.status_code(), 503);
    }
}
