//! One run of `process_recording_download_job`: arguments, cache check, slot, download,
//! release, result; and the failure marker the API reads when the job will not be retried.
//!
//! Log lines (the operators grep them, in this order), written exactly as the Python worker
//! writes them, leading marks included, so a log search or alert matches both workers:
//! `🎯 [RQ_RECORDING] Download job picked: call_sid=CA... business_id=42`,
//! `✅ [RQ_RECORDING] Slot acquired: business_id=42`,
//! `✅ [RQ_RECORDING] Downloaded: call_sid=CA... duration_ms=3245`,
//! `🔓 [RQ_RECORDING] Slot released: business_id=42`.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use serde_pickle::{HashableValue, Value};

use super::config::RecordingConfig;
use super::download::{DownloadError, Downloader};
use super::params::RecordingParams;
use super::semaphore::Semaphore;
use super::slot::{acquire_slot, SlotOutcome, CLEANUP_TIMEOUT};
use super::storage::cached_size;
use super::urls::recording_url;
use crate::handlers::{HandlerError, HandlerResult, JobArgs, JobContext, Measure};

/// Exception type of a failed download.
pub const DOWNLOAD_ERROR: &str = "rqw.errors.RecordingDownloadError";
/// Exception type of a job cancelled by its timeout or a worker stop.
pub const CANCELLED_ERROR: &str = "rqw.errors.Cancelled";
/// Exception type of a job run without credentials.
pub const CONFIG_ERROR: &str = "rqw.errors.ConfigurationError";

/// What every job shares: configuration, semaphore, and the downloader (or why there is none).
pub struct Shared {
    /// The configuration.
    pub config: RecordingConfig,
    /// The semaphore.
    pub semaphore: Semaphore,
    /// The downloader; an error message when credentials are missing or the client failed.
    pub downloader: Result<Downloader, String>,
}

/// Runs one job.
pub async fn run(shared: Arc<Shared>, ctx: JobContext, args: JobArgs) -> HandlerResult {
    let params = match RecordingParams::from_args(&args) {
        Ok(params) => params,
        Err(e) => {
            tracing::warn!("[RQ_RECORDING] Rejected job {}: {e}", ctx.job_id);
            return Err(e);
        }
    };
    tracing::info!(
        "🎯 [RQ_RECORDING] Download job picked: call_sid={} business_id={}",
        params.call_sid,
        params.business_id
    );
    let result = process(&shared, &ctx, &params).await;
    if let Err(e) = &result {
        let last_attempt = !e.is_retryable() || ctx.is_last_attempt();
        tracing::warn!(
            "[RQ_RECORDING] Download failed: call_sid={} business_id={} final={last_attempt} error={e}",
            params.call_sid,
            params.business_id
        );
        if last_attempt {
            let marked =
                shared
                    .semaphore
                    .mark_failed(&params.business_id, &params.call_sid, &e.message);
            match tokio::time::timeout(CLEANUP_TIMEOUT, marked).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "[RQ_RECORDING] Could not mark the call failed")
                }
                Err(_) => tracing::warn!("[RQ_RECORDING] Marking the call failed timed out"),
            }
        }
    }
    result
}

async fn process(shared: &Shared, ctx: &JobContext, params: &RecordingParams) -> HandlerResult {
    let dir = &shared.config.recordings_dir;
    let sid = &params.call_sid;
    if let Some(bytes) = cached_size(dir, sid).await {
        tracing::info!("[RQ_RECORDING] Already downloaded: call_sid={sid} bytes={bytes}");
        return Ok(cached_result(sid.as_str()));
    }
    let downloader = shared
        .downloader
        .as_ref()
        .map_err(|msg| HandlerError::permanent(CONFIG_ERROR, msg.clone()))?;
    let account_sid = shared
        .config
        .credentials
        .as_ref()
        .map(|c| c.account_sid.as_str())
        .unwrap_or_default();
    let url = recording_url(
        &shared.config.api_base,
        &params.recording_url,
        params.recording_sid.as_ref(),
        account_sid,
    )
    .map_err(|e| HandlerError::bad_argument(e.to_string()))?;

    let wait_started = Instant::now();
    let outcome = acquire_slot(
        &shared.semaphore,
        &params.business_id,
        sid,
        dir,
        shared.config.wait_poll_interval,
        &ctx.cancel,
        &ctx.recorder,
    )
    .await
    .map_err(|e| {
        if e.is_permanent() {
            HandlerError::permanent(DOWNLOAD_ERROR, e.to_string())
        } else {
            HandlerError::retryable(DOWNLOAD_ERROR, e.to_string())
        }
    })?;
    ctx.recorder.record(Measure::RecordingSlotWait(
        wait_started.elapsed().as_secs_f64(),
    ));
    let slot = match outcome {
        SlotOutcome::Acquired(slot) => slot,
        SlotOutcome::Cached(bytes) => {
            tracing::info!(
                "[RQ_RECORDING] Downloaded by another job: call_sid={sid} bytes={bytes}"
            );
            return Ok(cached_result(sid.as_str()));
        }
        SlotOutcome::Cancelled => return Err(cancelled()),
    };
    tracing::info!(
        "✅ [RQ_RECORDING] Slot acquired: business_id={}",
        params.business_id
    );

    // A duplicate job may have finished between the first check and the slot.
    if let Some(bytes) = cached_size(dir, sid).await {
        tracing::info!("[RQ_RECORDING] Already downloaded: call_sid={sid} bytes={bytes}");
        slot.release().await;
        return Ok(cached_result(sid.as_str()));
    }
    let started = Instant::now();
    let download = AssertUnwindSafe(downloader.download(sid, &url)).catch_unwind();
    let ended = tokio::select! {
        ended = download => Some(ended),
        _ = ctx.cancel.cancelled() => None,
    };
    let result = match ended {
        None => Err(cancelled()),
        Some(Err(panic)) => {
            slot.release().await;
            std::panic::resume_unwind(panic);
        }
        Some(Ok(Ok(done))) => {
            let duration_ms = started.elapsed().as_millis() as i64;
            tracing::info!(
                "✅ [RQ_RECORDING] Downloaded: call_sid={sid} duration_ms={duration_ms}"
            );
            tracing::debug!(bytes = done.bytes, format = done.format, "recording saved");
            ctx.recorder
                .record(Measure::RecordingDownloaded(done.bytes));
            Ok(success_result(sid.as_str(), duration_ms))
        }
        Some(Ok(Err(e))) => Err(download_error(&e)),
    };
    slot.release().await;
    result
}

fn download_error(e: &DownloadError) -> HandlerError {
    if e.is_permanent() {
        HandlerError::permanent(DOWNLOAD_ERROR, e.to_string())
    } else {
        HandlerError::retryable(DOWNLOAD_ERROR, e.to_string())
    }
}

fn cancelled() -> HandlerError {
    HandlerError::retryable(
        CANCELLED_ERROR,
        "recording download cancelled (job timeout or worker stop)",
    )
}

fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (HashableValue::String(k.to_string()), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// `{"success": True, "call_sid": ..., "duration_ms": ...}`.
pub fn success_result(call_sid: &str, duration_ms: i64) -> Value {
    dict(vec![
        ("success", Value::Bool(true)),
        ("call_sid", Value::String(call_sid.to_string())),
        ("duration_ms", Value::I64(duration_ms)),
    ])
}

/// `{"success": True, "call_sid": ..., "cached": True}`.
pub fn cached_result(call_sid: &str) -> Value {
    dict(vec![
        ("success", Value::Bool(true)),
        ("call_sid", Value::String(call_sid.to_string())),
        ("cached", Value::Bool(true)),
    ])
}
