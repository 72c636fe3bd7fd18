//! STUB (to be replaced): job `data` decoding.
use std::collections::BTreeMap;

use crate::handlers::PyValue;

/// Which serializer the queue's producers use. RQ does not record it in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serializer {
    /// `rq.serializers.DefaultSerializer`: pickle (protocol 5 on modern Python).
    #[default]
    Pickle,
    /// `rq.serializers.JSONSerializer`.
    Json,
}

/// The decoded `(func_name, instance, args, kwargs)` tuple of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobCall {
    /// Dotted Python path of the function.
    pub func_name: String,
    /// Positional arguments.
    pub args: Vec<PyValue>,
    /// Keyword arguments.
    pub kwargs: BTreeMap<String, PyValue>,
}

/// Why a payload could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Anything.
    #[error("{0}")]
    Invalid(String),
}

/// Decodes a job's `data` field.
pub fn decode_job_data(_raw: &[u8], _serializer: Serializer) -> Result<JobCall, PayloadError> {
    Err(PayloadError::Invalid("stub".into()))
}

/// Decodes a job's `meta` field.
pub fn decode_meta(_raw: &[u8], _serializer: Serializer) -> Result<PyValue, PayloadError> {
    Err(PayloadError::Invalid("stub".into()))
}

/// Serializes a handler's return value for the results stream (before base64).
pub fn encode_return_value(_value: &PyValue, _serializer: Serializer) -> Result<Vec<u8>, PayloadError> {
    Err(PayloadError::Invalid("stub".into()))
}
