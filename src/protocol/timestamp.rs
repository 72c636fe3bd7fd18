//! RQ's time formats.
//!
//! - Hash timestamps: `%Y-%m-%dT%H:%M:%S.%fZ` (UTC, six fractional digits, literal `Z`).
//!   Anything else (RFC 3339 `+00:00`, nine digits) makes RQ's `utcparse` raise.
//! - Registry scores: integer unix seconds.
//! - Execution and result timestamps: float unix seconds.

use chrono::{DateTime, NaiveDateTime, Utc};

/// A wall-clock time as RQ records it (not a monotonic `std`/`tokio` `Instant`): captured once
/// and rendered in each of RQ's formats, so every field written for one event carries the
/// same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RqTimestamp {
    at: DateTime<Utc>,
}

impl RqTimestamp {
    /// The current time.
    pub fn now() -> Self {
        Self { at: Utc::now() }
    }

    /// A given time (for tests).
    pub fn at(at: DateTime<Utc>) -> Self {
        Self { at }
    }

    /// `2026-11-28T13:31:33.171040Z`: the format of `utcformat` in `rq/utils.py`.
    pub fn rq_format(&self) -> String {
        self.at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    /// Integer unix seconds, as `current_timestamp()` writes registry scores.
    pub fn unix_seconds(&self) -> i64 {
        self.at.timestamp()
    }

    /// Float unix seconds, as executions and results write them.
    pub fn unix_float(&self) -> f64 {
        self.at.timestamp_micros() as f64 / 1_000_000.0
    }

    /// Seconds elapsed from `earlier` to `self` (0 if negative).
    pub fn seconds_since(&self, earlier: &RqTimestamp) -> f64 {
        let micros = (self.at - earlier.at).num_microseconds().unwrap_or(0);
        (micros.max(0) as f64) / 1_000_000.0
    }
}

/// Parses an RQ hash timestamp as `utcparse` accepts it (1-6 fractional digits, or none).
/// Returns `None` for `''` and anything `utcparse` would reject.
pub fn parse_rq_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let body = text.strip_suffix('Z')?;
    let parsed = NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    if let Some((_, frac)) = body.split_once('.') {
        if frac.is_empty() || frac.len() > 6 {
            return None;
        }
    }
    Some(parsed.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_like_rq_utcformat() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 13, 31, 33).unwrap()
            + chrono::Duration::microseconds(171_040);
        let i = RqTimestamp::at(t);
        assert_eq!(i.rq_format(), "2026-11-28T13:31:33.171040Z");
        assert_eq!(i.unix_seconds(), t.timestamp());
        assert!((i.unix_float() - (t.timestamp() as f64 + 0.17104)).abs() < 1e-6);
        let whole = RqTimestamp::at(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        assert_eq!(whole.rq_format(), "2026-01-02T03:04:05.000000Z");
    }

    #[test]
    fn parses_what_utcparse_accepts_only() {
        assert!(parse_rq_timestamp("2026-11-28T13:31:33.171040Z").is_some());
        assert!(parse_rq_timestamp("2026-11-28T13:31:33.1Z").is_some());
        assert!(parse_rq_timestamp("2026-11-28T13:31:33Z").is_some());
        assert!(parse_rq_timestamp("").is_none());
        assert!(parse_rq_timestamp("2026-11-28T13:31:33+00:00").is_none());
        assert!(parse_rq_timestamp("2026-11-28T13:31:33.171040123Z").is_none());
    }
}
