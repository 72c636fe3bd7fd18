//! Downloading one recording: the formats in the contract's order, each response classified,
//! the first good body streamed to disk.
//!
//! | response | meaning | next |
//! | --- | --- | --- |
//! | 2xx, body over 1000 bytes and within the cap | the recording | saved, done |
//! | 2xx, body of 1000 bytes or less | not a recording | next format |
//! | 2xx, body over the cap | too large in this format | next format (mp3 is smaller) |
//! | 401, 403 | credentials refused | stop: permanent |
//! | 404 | not this format / not ready yet (pause once, as Python did) | next format |
//! | 429, 5xx, timeout, stalled body, network error | transient | next format |
//! | other 4xx | not usable | next format |
//!
//! When every format failed: any transient problem makes the job retryable; otherwise a body
//! over the cap makes it permanent; otherwise (404s, tiny bodies) it is retryable, the
//! recording may not be ready yet. Memory stays flat: chunks go straight to the file
//! (see [`storage`](super::storage)).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio::sync::OnceCell;
use url::Url;

use super::config::{Credentials, RecordingConfig};
use super::fetch::{describe, ClientError, Fetcher, Response};
use super::params::Sid;
use super::storage::{
    final_path, sweep_stale_temp_files, TempRecording, WriteError, MIN_VALID_BYTES, STALE_TEMP_AGE,
};
use super::urls::candidates;

/// How a download ended without a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// Twilio refused the credentials (401/403): retrying cannot help.
    #[error("Twilio refused the credentials (HTTP {status}) for the {format} format")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// The format being tried.
        format: &'static str,
    },
    /// Every format was either unavailable or over the size cap, and at least one was over it.
    #[error("recording larger than the {max}-byte cap in every available format ({attempts})")]
    TooLarge {
        /// The cap.
        max: u64,
        /// What each format gave.
        attempts: String,
    },
    /// No format gave a recording; worth retrying later.
    #[error("recording not downloadable yet ({attempts})")]
    Unavailable {
        /// What each format gave.
        attempts: String,
    },
    /// The recordings folder cannot be written.
    #[error("cannot write the recording: {0}")]
    Storage(String),
}

impl DownloadError {
    /// True when retrying the job cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Unauthorized { .. } | Self::TooLarge { .. })
    }
}

/// A recording saved at its final path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Its size.
    pub bytes: u64,
    /// The format that worked (`wav2`, `wav`, `mp3`, `original`).
    pub format: &'static str,
    /// Where it is.
    pub path: PathBuf,
}

/// What one format gave.
enum Attempt {
    Saved(u64),
    NotFound,
    Denied(u16),
    TooSmall,
    TooLarge,
    Transient(String),
    Unusable(u16),
}

/// Downloads recordings into the recordings folder.
#[derive(Debug, Clone)]
pub struct Downloader {
    fetcher: Fetcher,
    dir: PathBuf,
    max_bytes: u64,
    stall_timeout: Duration,
    not_found_delay: Duration,
    /// Set once the leftovers of killed workers were swept from `dir` (first download).
    swept: Arc<OnceCell<()>>,
}

impl Downloader {
    /// Builds the downloader and its HTTP client.
    pub fn new(config: &RecordingConfig, credentials: Credentials) -> Result<Self, ClientError> {
        Ok(Self {
            fetcher: Fetcher::new(config, credentials)?,
            dir: config.recordings_dir.clone(),
            max_bytes: config.max_bytes,
            stall_timeout: config.request_timeout,
            not_found_delay: config.not_found_delay,
            swept: Arc::new(OnceCell::new()),
        })
    }

    /// Tries each format of the recording at `url` (already checked to be on the trusted
    /// origin) and saves the first good one as `<dir>/<call_sid>.mp3`.
    pub async fn download(&self, call_sid: &Sid, url: &Url) -> Result<Downloaded, DownloadError> {
        self.swept.get_or_init(|| self.sweep()).await;
        let mut attempts: Vec<String> = Vec::new();
        let (mut transient, mut too_large, mut paused) = (false, false, false);
        for candidate in candidates(url) {
            let attempt = self.try_format(call_sid, &candidate.url).await?;
            let note = match attempt {
                Attempt::Saved(bytes) => {
                    let path = final_path(&self.dir, call_sid);
                    return Ok(Downloaded {
                        bytes,
                        format: candidate.label,
                        path,
                    });
                }
                Attempt::Denied(status) => {
                    return Err(DownloadError::Unauthorized {
                        status,
                        format: candidate.label,
                    })
                }
                Attempt::NotFound => {
                    if !paused {
                        paused = true;
                        tokio::time::sleep(self.not_found_delay).await;
                    }
                    "HTTP 404".to_string()
                }
                Attempt::TooSmall => format!("body of {MIN_VALID_BYTES} bytes or less"),
                Attempt::TooLarge => {
                    too_large = true;
                    format!("over {} bytes", self.max_bytes)
                }
                Attempt::Transient(reason) => {
                    transient = true;
                    reason
                }
                Attempt::Unusable(status) => format!("HTTP {status}"),
            };
            tracing::debug!(call_sid = %call_sid, format = candidate.label, result = %note, "recording format not usable");
            attempts.push(format!("{}: {note}", candidate.label));
        }
        let attempts = attempts.join("; ");
        if too_large && !transient {
            return Err(DownloadError::TooLarge {
                max: self.max_bytes,
                attempts,
            });
        }
        Err(DownloadError::Unavailable { attempts })
    }

    async fn try_format(&self, call_sid: &Sid, url: &Url) -> Result<Attempt, DownloadError> {
        let response = match self.fetcher.get(url).await {
            Ok(response) => response,
            Err(e) => return Ok(Attempt::Transient(e.to_string())),
        };
        let status = response.status();
        if !status.is_success() {
            return Ok(classify_failure(status));
        }
        match response.content_length() {
            Some(len) if len > self.max_bytes => return Ok(Attempt::TooLarge),
            Some(len) if len <= MIN_VALID_BYTES => return Ok(Attempt::TooSmall),
            _ => {}
        }
        self.save_body(call_sid, response).await
    }

    /// Removes the temporary files killed workers left (see [`sweep_stale_temp_files`]).
    async fn sweep(&self) {
        match sweep_stale_temp_files(&self.dir, STALE_TEMP_AGE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "[RQ_RECORDING] Removed {n} temporary file(s) left by an interrupted download"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot sweep old temporary files"),
        }
    }

    async fn save_body(
        &self,
        call_sid: &Sid,
        mut response: Response,
    ) -> Result<Attempt, DownloadError> {
        let storage = |e: std::io::Error| DownloadError::Storage(e.to_string());
        let mut temp = TempRecording::create(&self.dir, call_sid, self.max_bytes)
            .await
            .map_err(storage)?;
        loop {
            let chunk = match tokio::time::timeout(self.stall_timeout, response.chunk()).await {
                Err(_) => {
                    return Ok(Attempt::Transient(format!(
                        "body stalled for {:?}",
                        self.stall_timeout
                    )))
                }
                Ok(Err(e)) => {
                    return Ok(Attempt::Transient(format!(
                        "body interrupted: {}",
                        describe(&e)
                    )))
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            match temp.write_chunk(chunk).await {
                Ok(()) => {}
                Err(WriteError::TooLarge { .. }) => return Ok(Attempt::TooLarge),
                Err(WriteError::Io(e)) => return Err(storage(e)),
            }
        }
        if temp.written() <= MIN_VALID_BYTES {
            return Ok(Attempt::TooSmall);
        }
        let bytes = temp
            .commit(&final_path(&self.dir, call_sid))
            .await
            .map_err(storage)?;
        Ok(Attempt::Saved(bytes))
    }
}

fn classify_failure(status: StatusCode) -> Attempt {
    match status.as_u16() {
        401 | 403 => Attempt::Denied(status.as_u16()),
        404 => Attempt::NotFound,
        429 | 500..=599 => Attempt::Transient(format!("HTTP {}", status.as_u16())),
        other => Attempt::Unusable(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_contract_says() {
        let code = |c: u16| classify_failure(StatusCode::from_u16(c).unwrap());
        assert!(matches!(code(401), Attempt::Denied(401)));
        assert!(matches!(code(403), Attempt::Denied(403)));
        assert!(matches!(code(404), Attempt::NotFound));
        assert!(matches!(code(500), Attempt::Transient(_)));
        assert!(matches!(code(503), Attempt::Transient(_)));
        assert!(matches!(code(429), Attempt::Transient(_)));
        assert!(matches!(code(410), Attempt::Unusable(410)));
    }

    #[test]
    fn permanence() {
        assert!(DownloadError::Unauthorized {
            status: 401,
            format: "wav"
        }
        .is_permanent());
        assert!(DownloadError::TooLarge {
            max: 1,
            attempts: String::new()
        }
        .is_permanent());
        assert!(!DownloadError::Unavailable {
            attempts: String::new()
        }
        .is_permanent());
        assert!(!DownloadError::Storage(String::new()).is_permanent());
    }
}
