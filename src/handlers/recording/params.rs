//! The job's arguments: bound like the Python signature
//! `(call_sid, recording_url, business_id, from_number="", to_number="", recording_sid=None)`,
//! then checked, because the API passes on values it never validated. Identifiers end up in
//! file names and Redis keys, so they must have Twilio's exact shape.

use std::fmt;

use serde::Deserialize;

use crate::handlers::{HandlerError, JobArgs};

/// Parameter names of the Python function, in order.
pub const PARAMS: [&str; 6] = [
    "call_sid",
    "recording_url",
    "business_id",
    "from_number",
    "to_number",
    "recording_sid",
];

/// Longest textual business id accepted.
const MAX_BUSINESS_ID_LEN: usize = 64;

#[derive(Deserialize)]
#[serde(untagged)]
enum RawBusinessId {
    Int(i64),
    Text(String),
}

#[derive(Deserialize)]
struct RawParams {
    call_sid: String,
    recording_url: Option<String>,
    #[serde(default)]
    business_id: Option<RawBusinessId>,
    #[serde(default)]
    from_number: Option<String>,
    #[serde(default)]
    to_number: Option<String>,
    #[serde(default)]
    recording_sid: Option<String>,
}

/// A Twilio SID (`CA…`, `RE…`): two letters and 32 hex digits, safe in paths and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sid(String);

impl Sid {
    /// Checks `raw` against `<prefix>` + 32 hex digits.
    pub fn parse(prefix: &str, raw: &str) -> Option<Self> {
        let hex = raw.strip_prefix(prefix)?;
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(raw.to_string()))
    }

    /// The SID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The business a download counts against. Interpolated into the semaphore keys exactly as
/// Python's f-strings do: an int as decimal, a missing/None id as `None`
/// (`rec_slots:None`: old callers share one semaphore, as they did with the Python worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessId(String);

impl BusinessId {
    /// The id of jobs enqueued without one.
    pub fn none() -> Self {
        Self("None".to_string())
    }

    /// The text interpolated into keys and log lines.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BusinessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The checked arguments of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingParams {
    /// The call (`CA` + 32 hex); names the file `<call_sid>.mp3`.
    pub call_sid: Sid,
    /// The recording's URL as given (may be empty when `recording_sid` is given).
    pub recording_url: String,
    /// The business whose semaphore is used.
    pub business_id: BusinessId,
    /// Caller number (informational).
    pub from_number: String,
    /// Callee number (informational).
    pub to_number: String,
    /// The recording (`RE` + 32 hex), if given.
    pub recording_sid: Option<Sid>,
}

impl RecordingParams {
    /// Binds and checks the job's arguments; every problem is a permanent `ValueError`/`TypeError`.
    pub fn from_args(args: &JobArgs) -> Result<Self, HandlerError> {
        let raw: RawParams = args.bind(&PARAMS)?;
        let call_sid = Sid::parse("CA", &raw.call_sid).ok_or_else(|| {
            HandlerError::bad_argument(format!(
                "call_sid must be 'CA' followed by 32 hex digits, got {:?}",
                raw.call_sid
            ))
        })?;
        let recording_sid = match raw
            .recording_sid
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(Sid::parse("RE", s).ok_or_else(|| {
                HandlerError::bad_argument(format!(
                    "recording_sid must be 'RE' followed by 32 hex digits, got {s:?}"
                ))
            })?),
        };
        let recording_url = raw.recording_url.unwrap_or_default().trim().to_string();
        if recording_url.is_empty() && recording_sid.is_none() {
            return Err(HandlerError::bad_argument(
                "recording_url is empty and no recording_sid was given",
            ));
        }
        let business_id = match raw.business_id {
            None => BusinessId::none(),
            Some(RawBusinessId::Int(n)) => BusinessId(n.to_string()),
            Some(RawBusinessId::Text(s)) => {
                let ok = !s.is_empty()
                    && s.len() <= MAX_BUSINESS_ID_LEN
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(HandlerError::bad_argument(format!(
                        "business_id must be an int or a short [A-Za-z0-9_-] string, got {s:?}"
                    )));
                }
                BusinessId(s)
            }
        };
        Ok(Self {
            call_sid,
            recording_url,
            business_id,
            from_number: raw.from_number.unwrap_or_default(),
            to_number: raw.to_number.unwrap_or_default(),
            recording_sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_pickle::Value;
    use std::collections::BTreeMap;

    const CALL: &str = "CA0123456789abcdef0123456789abcdef";
    const REC: &str = "RE0123456789abcdef0123456789abcdef";

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    fn kwargs(pairs: &[(&str, Value)]) -> JobArgs {
        JobArgs {
            args: vec![],
            kwargs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn binds_keywords_like_the_api() {
        let p = RecordingParams::from_args(&kwargs(&[
            ("call_sid", s(CALL)),
            (
                "recording_url",
                s("/2010-04-01/Accounts/AC1/Recordings/RE1.json"),
            ),
            ("business_id", Value::I64(42)),
        ]))
        .unwrap();
        assert_eq!(p.call_sid.as_str(), CALL);
        assert_eq!(p.business_id.as_str(), "42");
        assert_eq!(p.from_number, "");
        assert_eq!(p.recording_sid, None);
    }

    #[test]
    fn binds_positional_arguments() {
        let args = JobArgs {
            args: vec![
                s(CALL),
                s("https://api.twilio.com/x"),
                Value::I64(7),
                s("+1"),
                s("+2"),
                s(REC),
            ],
            kwargs: BTreeMap::new(),
        };
        let p = RecordingParams::from_args(&args).unwrap();
        assert_eq!(p.business_id.as_str(), "7");
        assert_eq!(p.to_number, "+2");
        assert_eq!(p.recording_sid.unwrap().as_str(), REC);
    }

    #[test]
    fn business_id_none_or_missing_is_interpolated_as_python_does() {
        let missing = RecordingParams::from_args(&kwargs(&[
            ("call_sid", s(CALL)),
            ("recording_url", s("/x")),
        ]))
        .unwrap();
        assert_eq!(missing.business_id.as_str(), "None");
        let none = RecordingParams::from_args(&kwargs(&[
            ("call_sid", s(CALL)),
            ("recording_url", s("/x")),
            ("business_id", Value::None),
        ]))
        .unwrap();
        assert_eq!(none.business_id, BusinessId::none());
        let text = RecordingParams::from_args(&kwargs(&[
            ("call_sid", s(CALL)),
            ("recording_url", s("/x")),
            ("business_id", s("42")),
        ]))
        .unwrap();
        assert_eq!(text.business_id.as_str(), "42");
    }

    #[test]
    fn rejects_unsafe_identifiers() {
        for bad in [
            "../../etc/passwd",
            "CA0123",
            "CA0123456789abcdef0123456789abcdeg",
            "XX0123456789abcdef0123456789abcdef",
        ] {
            let err = RecordingParams::from_args(&kwargs(&[
                ("call_sid", s(bad)),
                ("recording_url", s("/x")),
            ]))
            .unwrap_err();
            assert!(!err.is_retryable());
            assert!(err.message.contains("call_sid"), "{err}");
        }
        let err = RecordingParams::from_args(&kwargs(&[
            ("call_sid", s(CALL)),
            ("recording_url", s("/x")),
            ("recording_sid", s("RE/../x")),
        ]))
        .unwrap_err();
        assert!(err.message.contains("recording_sid"));
        let err = RecordingParams::from_args(&kwargs(&[
            ("call_sid", s(CALL)),
            ("recording_url", s("/x")),
            ("business_id", s("4 2\n")),
        ]))
        .unwrap_err();
        assert!(err.message.contains("business_id"));
    }

    #[test]
    fn missing_or_mistyped_arguments_are_permanent() {
        assert!(
            !RecordingParams::from_args(&kwargs(&[("recording_url", s("/x"))]))
                .unwrap_err()
                .is_retryable()
        );
        assert!(RecordingParams::from_args(&kwargs(&[("call_sid", Value::I64(1))])).is_err());
        let err =
            RecordingParams::from_args(&kwargs(&[("call_sid", s(CALL)), ("recording_url", s(""))]))
                .unwrap_err();
        assert!(err.message.contains("recording_url"));
        assert!(RecordingParams::from_args(&kwargs(&[
            ("call_sid", s(CALL)),
            ("recording_url", s("/x")),
            ("bogus", Value::None)
        ]))
        .is_err());
    }
}
