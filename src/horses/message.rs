//! The horse protocol's messages (version [`PROTOCOL`]), as JSON objects in frames. The
//! runner (`runner.py`) documents the same messages from its side.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;

/// The protocol version this rqw speaks; a horse announcing another one is not used.
pub const PROTOCOL: u32 = 1;

/// What a horse sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HorseMessage {
    /// First frame of a horse that is ready.
    Hello {
        /// Its protocol version.
        protocol: u32,
        /// The app's `rq.__version__`.
        rq_version: String,
        /// The Python version.
        python: String,
        /// Its process id.
        pid: u32,
    },
    /// The horse cannot start (rq not importable, setup failed): the traceback.
    Fatal {
        /// Python traceback text.
        error: String,
    },
    /// The end of one job or callback.
    Result(Reply),
}

/// The end of one job or callback in a horse.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    /// Returned (true) or raised (false).
    pub ok: bool,
    /// Base64 of the serialized return value; absent for `None`.
    #[serde(default)]
    pub return_value: Option<String>,
    /// RQ's `exc_string` (the real Python traceback) when `ok` is false.
    #[serde(default)]
    pub exc_string: Option<String>,
    /// The job's `func_name`, as Python resolved it.
    #[serde(default)]
    pub func_name: Option<String>,
}

impl Reply {
    /// The serialized return value's bytes (`None` for Python `None`); `Err` when the horse
    /// sent something that is not base64.
    pub fn return_bytes(&self) -> Result<Option<Vec<u8>>, base64::DecodeError> {
        self.return_value
            .as_deref()
            .map(|b| BASE64.decode(b))
            .transpose()
    }
}

/// Parses one frame from a horse.
pub fn parse(body: &[u8]) -> Result<HorseMessage, serde_json::Error> {
    serde_json::from_slice(body)
}

/// Which of a job's callbacks the horse runs after the job itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct HorseCallbacks {
    /// Run `on_success` (the job has one and rqw has no native callback for it).
    pub success: bool,
    /// Run `on_failure`.
    pub failure: bool,
}

fn encode_hash(hash: &HashMap<String, Vec<u8>>) -> serde_json::Map<String, serde_json::Value> {
    hash.iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(BASE64.encode(v))))
        .collect()
}

/// The request to run a job from its hash (as read when it started); `refetch`: the hash
/// lacks a field rqw left in Redis for its size, so the horse fetches the job itself.
pub fn job_request(
    id: &str,
    hash: &HashMap<String, Vec<u8>>,
    callbacks: HorseCallbacks,
    refetch: bool,
) -> Vec<u8> {
    serde_json::json!({
        "type": "job",
        "id": id,
        "hash": encode_hash(hash),
        "success_callback": callbacks.success,
        "failure_callback": callbacks.failure,
        "refetch": refetch,
    })
    .to_string()
    .into_bytes()
}

/// Which callback a [`callback_request`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// `on_stopped`, after a stop command killed the job's horse.
    Stopped,
    /// `on_failure` with a `JobTimeoutException`, after the job's horse was killed at its timeout.
    Timeout,
}

/// The request to run one callback of a job whose own horse was killed.
pub fn callback_request(
    kind: CallbackKind,
    id: &str,
    hash: &HashMap<String, Vec<u8>>,
    exc_message: &str,
) -> Vec<u8> {
    serde_json::json!({
        "type": "callback",
        "kind": match kind { CallbackKind::Stopped => "stopped", CallbackKind::Timeout => "timeout" },
        "id": id,
        "hash": encode_hash(hash),
        "exc_message": exc_message,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_horse_messages() {
        let hello = parse(
            br#"{"type":"hello","protocol":1,"rq_version":"2.12.0","python":"3.11.2","pid":7}"#,
        )
        .unwrap();
        assert!(matches!(
            hello,
            HorseMessage::Hello {
                protocol: 1,
                pid: 7,
                ..
            }
        ));
        let ok =
            parse(br#"{"type":"result","ok":true,"return_value":"gAVLBS4=","func_name":"m.f"}"#)
                .unwrap();
        match ok {
            HorseMessage::Result(r) => {
                assert_eq!(r.return_bytes().unwrap().unwrap(), b"\x80\x05K\x05.");
                assert_eq!(r.func_name.as_deref(), Some("m.f"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            parse(br#"{"type":"result","ok":true,"return_value":"***"}"#)
                .map(|m| matches!(m, HorseMessage::Result(r) if r.return_bytes().is_err()))
                .unwrap()
        );
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"type":"dance"}"#).is_err());
    }

    #[test]
    fn job_request_carries_the_hash_in_base64() {
        let hash = HashMap::from([("data".to_string(), b"\x00\xff".to_vec())]);
        let body = job_request(
            "j1",
            &hash,
            HorseCallbacks {
                success: true,
                failure: false,
            },
            false,
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "job");
        assert_eq!(v["hash"]["data"], "AP8=");
        assert_eq!(v["success_callback"], true);
        assert_eq!(v["refetch"], false);
    }
}
