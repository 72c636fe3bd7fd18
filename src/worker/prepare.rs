//! Preparing a started job, once: check its hash, decode its `data`, and decide where it
//! runs (its native handler, a Python horse with `--python`) or that it ends without running
//! (unusable hash, payload refused, unknown function, `--forward-unknown`). The one place the
//! worker decodes a job's `data` and `meta`: what is decoded here is what the handler is
//! given, and a job that runs natively under `--python` is decoded once, not once to choose
//! and once to run.

use std::sync::Arc;

use super::context::WorkerContext;
use super::execute::failed;
use crate::handlers::Handler;
use crate::metrics::JobProbe;
use crate::protocol::exception::{
    DESERIALIZATION_ERROR, INVALID_JOB_ERROR, UNKNOWN_FUNCTION_ERROR,
};
use crate::protocol::job_record::JobRecord;
use crate::protocol::outcome::RunResult;
use crate::protocol::payload::{decode_job_data_within, decode_meta_within, JobCall, PayloadError};
use crate::protocol::text::shown;
use crate::protocol::value::PyValue;

/// Where a prepared job goes: the dispatch, with one arm per kind of handler.
pub enum Plan {
    /// It ends without running (its failure, or its forward).
    End(RunResult),
    /// Its native handler runs it with the decoded call.
    Native {
        /// The decoded `data`.
        call: JobCall,
        /// The decoded `meta` (`None` when absent, refused for its size, or undecodable).
        meta: Option<PyValue>,
        /// The handler registered for `call.func_name`.
        handler: Arc<dyn Handler>,
    },
    /// A Python horse runs it (`--python`, no native handler); `call` is the decoded `data`
    /// when rqw could read it (else the horse reads the job itself).
    Python {
        /// The decoded `data`, if rqw could decode it.
        call: Option<JobCall>,
    },
}

/// Prepares `record`: decodes its `data` at most once and decides its [`Plan`]. Names the
/// job's function on `probe` and the current span as soon as it is known.
pub fn prepare(ctx: &WorkerContext, record: &JobRecord, probe: &JobProbe) -> Plan {
    if !record.problems.is_empty() {
        let message = format!("unusable job hash: {}", record.problems.join("; "));
        return Plan::End(failed("rqw", INVALID_JOB_ERROR, &message, false));
    }
    let python = ctx.horses.is_some();
    // A field start.lua left in Redis for its size: a horse reads the job itself.
    if python && !record.oversize.is_empty() {
        return Plan::Python { call: None };
    }
    let limits = &ctx.config.decode_limits;
    let decoded = match record.oversize.iter().find(|(field, _)| *field == "data") {
        // start.lua left it in Redis: refused for its length without reading it.
        Some(&(field, size)) => Err(PayloadError::FieldTooLarge {
            field,
            size,
            limit: limits.max_field_bytes,
        }),
        None => decode_job_data_within(
            record.data.as_deref().unwrap_or_default(),
            ctx.config.serializer,
            limits,
        ),
    };
    let call = match decoded {
        Ok(call) => call,
        // The horse may read what rqw cannot (its own app's serializer, classes).
        Err(_) if python => return Plan::Python { call: None },
        Err(e) => {
            // A size refusal names the job: its text says which limit, and for which job.
            let text = if e.is_too_large() {
                format!("job {}: {e}", shown(record.id.as_bytes()))
            } else {
                e.to_string()
            };
            if let Some(queue) = &ctx.config.forward_unknown {
                // The hash is untouched in Redis: forwarded intact, never both lost and kept.
                tracing::info!(forward_to = %queue, error = %text, "payload not decodable here: forwarding the job");
                return Plan::End(RunResult::Forwarded(queue.clone()));
            }
            tracing::warn!(error = %text, "payload refused");
            // The same bytes will never decode on a retry: fail for good (re-queueable).
            return Plan::End(failed("rqw", DESERIALIZATION_ERROR, &text, false));
        }
    };
    let function_shown = shown(call.func_name.as_bytes());
    if probe.set_function(&call.func_name) {
        tracing::Span::current().record("function", function_shown.as_str());
    }
    if let Some(handler) = ctx.handlers.get(&call.func_name) {
        if let Some((_, size)) = record.oversize.iter().find(|(field, _)| *field == "meta") {
            tracing::warn!(
                size,
                limit = limits.max_field_bytes,
                "meta field over --max-payload-bytes: left in Redis, not given to the handler"
            );
        }
        let meta = record
            .meta
            .as_deref()
            .and_then(|m| decode_meta_within(m, ctx.config.serializer, &limits.for_meta()).ok());
        return Plan::Native {
            call,
            meta,
            handler,
        };
    }
    if python {
        return Plan::Python { call: Some(call) };
    }
    if let Some(queue) = &ctx.config.forward_unknown {
        tracing::info!(forward_to = %queue, "no native handler for {function_shown}: forwarding the job");
        return Plan::End(RunResult::Forwarded(queue.clone()));
    }
    let known: Vec<&str> = ctx.handlers.paths().collect();
    let message = format!(
        "no native handler for '{}'; this rqw has handlers for: {}",
        function_shown,
        if known.is_empty() {
            "(none)".to_string()
        } else {
            known.join(", ")
        }
    );
    Plan::End(failed(
        &call.func_name,
        UNKNOWN_FUNCTION_ERROR,
        &message,
        true,
    ))
}
