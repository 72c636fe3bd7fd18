//! The recording handler's configuration, read from the environment as the Python worker
//! read it, validated once at start-up.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TWILIO_ACCOUNT_SID` | none | basic-auth user; jobs fail permanently while unset |
//! | `TWILIO_AUTH_TOKEN` | none | basic-auth password; never logged (masked in `Debug`) |
//! | `RECORDINGS_DIR` | [`DEFAULT_RECORDINGS_DIR`] | folder shared with the API (`<call_sid>.mp3`) |
//! | `TWILIO_API_BASE` | [`DEFAULT_API_BASE`] | the only origin that gets credentials |
//! | `RECORDING_MAX_BYTES` | [`DEFAULT_MAX_BYTES`] | a download larger than this is aborted |
//! | `RECORDING_REQUEST_TIMEOUT_SECS` | [`DEFAULT_REQUEST_TIMEOUT`] | wait for headers, and for each body chunk |

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Folder used when `RECORDINGS_DIR` is unset (relative to the working directory).
pub const DEFAULT_RECORDINGS_DIR: &str = "recordings";
/// Twilio's REST API, used when `TWILIO_API_BASE` is unset.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// Largest recording accepted (512 MiB; a 4-hour two-channel WAV is about 460 MB).
pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// Per-request timeout, as Python's `requests.get(..., timeout=30)`: time allowed for the
/// response headers, and for each chunk of the body (a stalled body fails after this long).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to open a TCP/TLS connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after the first 404 (Twilio may still be finalising the recording), as Python did.
pub const DEFAULT_NOT_FOUND_DELAY: Duration = Duration::from_secs(2);
/// Redirects followed per request (Twilio redirects media requests to its storage).
pub const DEFAULT_MAX_REDIRECTS: usize = 5;
/// How often a job waiting for a download slot looks at the semaphore.
pub const DEFAULT_WAIT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The message of every job run without credentials (and of the start-up warning).
pub const MISSING_CREDENTIALS: &str =
    "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not both set; recording downloads cannot run";

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingConfigError {
    /// `TWILIO_API_BASE` is not an absolute http(s) URL with a host.
    #[error("invalid TWILIO_API_BASE {value:?}: {reason}")]
    InvalidApiBase {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A numeric variable that does not parse or is out of range.
    #[error("invalid {var} {value:?}: {reason}")]
    InvalidNumber {
        /// The variable's name.
        var: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `RECORDINGS_DIR` is set but empty.
    #[error("RECORDINGS_DIR is set but empty")]
    EmptyRecordingsDir,
}

/// Twilio credentials for HTTP basic auth. `Debug` masks the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `TWILIO_ACCOUNT_SID` (basic-auth user).
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN` (basic-auth password). Never log it.
    pub auth_token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"***")
            .finish()
    }
}

/// Everything the recording handler needs, validated.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// Twilio credentials; `None` when either variable is unset or empty (every job then
    /// fails permanently, see [`RecordingConfig::missing_credentials`]).
    pub credentials: Option<Credentials>,
    /// Where `<call_sid>.mp3` files go (created when missing).
    pub recordings_dir: PathBuf,
    /// Base for relative recording URLs; its origin is the only one trusted with credentials.
    pub api_base: Url,
    /// Largest body accepted for one format.
    pub max_bytes: u64,
    /// Time allowed for response headers, and between two body chunks.
    pub request_timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Pause after the first 404.
    pub not_found_delay: Duration,
    /// Redirects followed per request.
    pub max_redirects: usize,
    /// Polling interval of a job waiting for a slot.
    pub wait_poll_interval: Duration,
}

impl RecordingConfig {
    /// Reads the process environment (see the module table).
    pub fn from_env() -> Result<Self, RecordingConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RecordingConfigError> {
        let non_empty = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let credentials = match (
            non_empty("TWILIO_ACCOUNT_SID"),
            non_empty("TWILIO_AUTH_TOKEN"),
        ) {
            (Some(account_sid), Some(auth_token)) => Some(Credentials {
                account_sid,
                auth_token,
            }),
            _ => None,
        };
        let recordings_dir = match lookup("RECORDINGS_DIR") {
            None => PathBuf::from(DEFAULT_RECORDINGS_DIR),
            Some(v) if v.trim().is_empty() => return Err(RecordingConfigError::EmptyRecordingsDir),
            Some(v) => PathBuf::from(v.trim()),
        };
        let api_base = parse_api_base(
            non_empty("TWILIO_API_BASE")
                .as_deref()
                .unwrap_or(DEFAULT_API_BASE),
        )?;
        let max_bytes = match non_empty("RECORDING_MAX_BYTES") {
            None => DEFAULT_MAX_BYTES,
            Some(v) => parse_number("RECORDING_MAX_BYTES", &v, 1001)?,
        };
        let request_timeout = match non_empty("RECORDING_REQUEST_TIMEOUT_SECS") {
            None => DEFAULT_REQUEST_TIMEOUT,
            Some(v) => Duration::from_secs(parse_number("RECORDING_REQUEST_TIMEOUT_SECS", &v, 1)?),
        };
        Ok(Self {
            credentials,
            recordings_dir,
            api_base,
            max_bytes,
            request_timeout,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT.min(request_timeout),
            not_found_delay: DEFAULT_NOT_FOUND_DELAY,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            wait_poll_interval: DEFAULT_WAIT_POLL_INTERVAL,
        })
    }

    /// Why every job will fail, when the credentials are missing (for the start-up warning);
    /// `None` when they are configured.
    pub fn missing_credentials(&self) -> Option<&'static str> {
        self.credentials.is_none().then_some(MISSING_CREDENTIALS)
    }
}

/// Parses and checks a `TWILIO_API_BASE` value: absolute http(s), with a host, no credentials.
pub fn parse_api_base(raw: &str) -> Result<Url, RecordingConfigError> {
    let invalid = |reason: &str| RecordingConfigError::InvalidApiBase {
        value: raw.to_string(),
        reason: reason.into(),
    };
    let url = Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(invalid("a host is required"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials do not belong in the URL"));
    }
    Ok(url)
}

fn parse_number(var: &'static str, value: &str, min: u64) -> Result<u64, RecordingConfigError> {
    let invalid = |reason: String| RecordingConfigError::InvalidNumber {
        var,
        value: value.to_string(),
        reason,
    };
    let n: u64 = value
        .parse()
        .map_err(|e: std::num::ParseIntError| invalid(e.to_string()))?;
    if n < min {
        return Err(invalid(format!("must be at least {min}")));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<RecordingConfig, RecordingConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RecordingConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert!(c.credentials.is_none());
        assert_eq!(c.missing_credentials(), Some(MISSING_CREDENTIALS));
        assert_eq!(c.recordings_dir, PathBuf::from(DEFAULT_RECORDINGS_DIR));
        assert_eq!(c.api_base.as_str(), "https://api.twilio.com/");
        assert_eq!(c.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(c.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    }

    #[test]
    fn reads_every_variable() {
        let c = config(&[
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("TWILIO_AUTH_TOKEN", "tok"),
            ("RECORDINGS_DIR", "/data/rec"),
            ("TWILIO_API_BASE", "http://127.0.0.1:8081"),
            ("RECORDING_MAX_BYTES", "5000"),
            ("RECORDING_REQUEST_TIMEOUT_SECS", "3"),
        ])
        .unwrap();
        assert_eq!(c.credentials.as_ref().unwrap().account_sid, "AC123");
        assert_eq!(c.recordings_dir, PathBuf::from("/data/rec"));
        assert_eq!(c.api_base.port(), Some(8081));
        assert_eq!(c.max_bytes, 5000);
        assert_eq!(c.request_timeout, Duration::from_secs(3));
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn half_credentials_count_as_missing() {
        assert!(config(&[("TWILIO_ACCOUNT_SID", "AC1")])
            .unwrap()
            .credentials
            .is_none());
        assert!(
            config(&[("TWILIO_ACCOUNT_SID", "AC1"), ("TWILIO_AUTH_TOKEN", " ")])
                .unwrap()
                .credentials
                .is_none()
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(matches!(
            config(&[("TWILIO_API_BASE", "ftp://x")]),
            Err(RecordingConfigError::InvalidApiBase { .. })
        ));
        assert!(config(&[("TWILIO_API_BASE", "https://u:p@api.twilio.com")]).is_err());
        assert!(config(&[("TWILIO_API_BASE", "api.twilio.com")]).is_err());
        assert!(matches!(
            config(&[("RECORDING_MAX_BYTES", "lots")]),
            Err(RecordingConfigError::InvalidNumber { .. })
        ));
        assert!(config(&[("RECORDING_MAX_BYTES", "10")]).is_err());
        assert!(config(&[("RECORDING_REQUEST_TIMEOUT_SECS", "0")]).is_err());
        assert_eq!(
            config(&[("RECORDINGS_DIR", "")]).unwrap_err(),
            RecordingConfigError::EmptyRecordingsDir
        );
    }

    #[test]
    fn debug_masks_the_token() {
        let c = config(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "s3cr3t-token"),
        ])
        .unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(text.contains("AC1"));
    }
}
