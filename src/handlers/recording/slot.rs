//! Getting a download slot: acquire, or wait for one (without failing the job), and always
//! give it back.
//!
//! A job that finds all five slots taken is put in the wait list by `acquire`, exactly as
//! Python puts it (so the API reports "queued" with its position), and becomes the call's
//! waiter (`rec_waiter`, refreshed at every poll). It polls until `release` hands its call a
//! slot, then claims it. A job that finds its call already queued or in flight (a duplicate)
//! polls too: when the other job is done it finds the file (cached) or acquires afresh; if the
//! other job died, it adopts the place in the wait list or the handed-over slot.
//!
//! [`SlotGuard`] and the waiting guard clean up on every path: explicitly (awaited, bounded by
//! [`CLEANUP_TIMEOUT`] so a cancelled job returns within the runtime's grace period), or, if
//! the future is dropped first, from `Drop` on a spawned task.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::params::{BusinessId, Sid};
use super::semaphore::{Acquire, Leave, Poll, Semaphore};
use super::storage::cached_size;
use crate::handlers::{Measure, Recorder};

/// Longest a release or leave may take on a cancelled job's way out.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `acquire` may keep failing on Redis errors before the job gives up (retryable).
pub const ACQUIRE_ERROR_WINDOW: Duration = Duration::from_secs(30);

/// How the wait for a slot ended.
#[derive(Debug)]
pub enum SlotOutcome {
    /// The job holds a slot.
    Acquired(SlotGuard),
    /// While waiting, another job downloaded the call: the file is there (its size).
    Cached(u64),
    /// The job was cancelled while waiting; it left the wait list.
    Cancelled,
}

/// Waiting failed for a reason other than cancellation.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// Redis kept failing for [`ACQUIRE_ERROR_WINDOW`] (retryable).
    #[error("the download semaphore is unreachable: {0}")]
    Unreachable(#[from] redis::RedisError),
    /// A semaphore key of the business or call holds another type (`WRONGTYPE`): no retry
    /// can succeed until someone repairs it, so the job fails at once instead of spinning.
    #[error("the download semaphore keys of business {business} cannot be used (a key of the wrong type; rec_slots:{business} must be a set, rec_queued a set, rec_queue a list): {error}")]
    Unusable {
        /// The business whose keys are unusable.
        business: String,
        /// Redis's error.
        error: redis::RedisError,
    },
}

impl SlotError {
    /// Whether a retry cannot help (the keys are of the wrong type).
    pub fn is_permanent(&self) -> bool {
        matches!(self, SlotError::Unusable { .. })
    }
}

/// Whether `e` is Redis's `WRONGTYPE` (also when raised inside a script).
pub fn is_wrong_type(e: &redis::RedisError) -> bool {
    e.code() == Some("WRONGTYPE") || e.to_string().contains("WRONGTYPE")
}

/// A held slot. Release it with [`SlotGuard::release`]; dropping it releases it too.
#[derive(Debug)]
pub struct SlotGuard {
    sem: Semaphore,
    business: BusinessId,
    call_sid: Sid,
    armed: bool,
}

impl SlotGuard {
    fn new(sem: &Semaphore, business: &BusinessId, call_sid: &Sid) -> Self {
        Self {
            sem: sem.clone(),
            business: business.clone(),
            call_sid: call_sid.clone(),
            armed: true,
        }
    }

    /// Releases the slot (handing it to the next waiter, if any) and logs it.
    pub async fn release(mut self) {
        self.armed = false;
        release(
            self.sem.clone(),
            self.business.clone(),
            self.call_sid.clone(),
        )
        .await;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                // In the job's span, so the log lines keep its job id, queue and function.
                handle.spawn(
                    release(
                        self.sem.clone(),
                        self.business.clone(),
                        self.call_sid.clone(),
                    )
                    .in_current_span(),
                );
            }
        }
    }
}

/// Releases, repeating the call while its reply may have been lost (a repeat hands nothing
/// over twice, see `release.lua`), within [`CLEANUP_TIMEOUT`].
async fn release_until_known(
    sem: &Semaphore,
    business: &BusinessId,
    call_sid: &Sid,
) -> redis::RedisResult<Option<String>> {
    let mut lost = 0u32;
    loop {
        match sem.release(business, call_sid).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() || e.is_timeout() => {
                lost += 1;
                tracing::warn!(error = %e, lost_replies = lost, "[RQ_RECORDING] Slot release reply lost; repeating: business_id={business} call_sid={call_sid}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn release(sem: Semaphore, business: BusinessId, call_sid: Sid) {
    match tokio::time::timeout(
        CLEANUP_TIMEOUT,
        release_until_known(&sem, &business, &call_sid),
    )
    .await
    {
        Ok(Ok(next)) => {
            tracing::info!("🔓 [RQ_RECORDING] Slot released: business_id={business}");
            if let Some(next) = next {
                tracing::info!("[RQ_RECORDING] Slot handed over: business_id={business} call_sid={next}");
            }
        }
        Ok(Err(e)) => tracing::warn!(
            error = %e,
            "[RQ_RECORDING] Slot release failed: business_id={business} call_sid={call_sid} (it expires with its in-flight marker)"
        ),
        Err(_) => tracing::warn!(
            "[RQ_RECORDING] Slot release timed out: business_id={business} call_sid={call_sid} (it expires with its in-flight marker)"
        ),
    }
}

/// This job's place in the wait list; leaves it when dropped while armed.
struct WaitGuard {
    sem: Semaphore,
    business: BusinessId,
    call_sid: Sid,
    token: String,
    armed: bool,
}

impl WaitGuard {
    async fn leave(mut self) {
        self.armed = false;
        leave(
            self.sem.clone(),
            self.business.clone(),
            self.call_sid.clone(),
            self.token.clone(),
        )
        .await;
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let (sem, b, sid, token) = (
                    self.sem.clone(),
                    self.business.clone(),
                    self.call_sid.clone(),
                    self.token.clone(),
                );
                handle.spawn(leave(sem, b, sid, token).in_current_span());
            }
        }
    }
}

async fn leave(sem: Semaphore, business: BusinessId, call_sid: Sid, token: String) {
    // Repeated while its reply may have been lost: a repeat of 'left' answers 'not waiting',
    // of 'handed' 'handed' again (the token stays until the release).
    let leave_until_known = async {
        loop {
            match sem.leave(&business, &call_sid, &token).await {
                Err(e) if e.is_connection_dropped() || e.is_io_error() || e.is_timeout() => {
                    tracing::warn!(error = %e, "[RQ_RECORDING] Leaving the wait list: reply lost; repeating: call_sid={call_sid}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    };
    match tokio::time::timeout(CLEANUP_TIMEOUT, leave_until_known).await {
        Ok(Ok(Leave::Handed)) => release(sem, business, call_sid).await,
        Ok(Ok(Leave::Left)) => {
            tracing::info!(
                "[RQ_RECORDING] Left the wait list: call_sid={call_sid} business_id={business}"
            )
        }
        Ok(Ok(Leave::NotWaiting)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "[RQ_RECORDING] Could not leave the wait list: call_sid={call_sid}")
        }
        Err(_) => {
            tracing::warn!("[RQ_RECORDING] Leaving the wait list timed out: call_sid={call_sid}")
        }
    }
}

/// Gets a slot for `call_sid`, waiting as long as it takes (bounded by the job's timeout,
/// which cancels `cancel`). Checks `dir` for the file whenever the call is free again.
/// A wait in the wait list is reported to `recorder` ([`Measure::RecordingSemaphoreWait`]).
pub async fn acquire_slot(
    sem: &Semaphore,
    business: &BusinessId,
    call_sid: &Sid,
    dir: &Path,
    poll_interval: Duration,
    cancel: &CancellationToken,
    recorder: &Recorder,
) -> Result<SlotOutcome, SlotError> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut errors_since: Option<tokio::time::Instant> = None;
    loop {
        // Not raced against `cancel`: a dropped script call may still run on the server, and
        // its slot or queue place would then have no guard. Cancellation is checked below.
        let acquired = sem.acquire(business, call_sid, &token).await;
        let mut waiting = None;
        match acquired {
            Ok(Acquire::Acquired) => return Ok(SlotOutcome::Acquired(SlotGuard::new(sem, business, call_sid))),
            Ok(Acquire::Queued { position }) => {
                recorder.record(Measure::RecordingSemaphoreWait);
                tracing::info!(
                    "[RQ_RECORDING] Waiting for a slot: call_sid={call_sid} business_id={business} position={position}"
                );
                waiting = Some(WaitGuard {
                    sem: sem.clone(),
                    business: business.clone(),
                    call_sid: call_sid.clone(),
                    token: token.clone(),
                    armed: true,
                });
            }
            Ok(status) => tracing::info!(
                "[RQ_RECORDING] Call handled by another job, waiting: call_sid={call_sid} business_id={business} state={status:?}"
            ),
            Err(e) if is_wrong_type(&e) => {
                return Err(SlotError::Unusable {
                    business: business.to_string(),
                    error: e,
                });
            }
            Err(e) => {
                let since = *errors_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > ACQUIRE_ERROR_WINDOW {
                    return Err(SlotError::Unreachable(e));
                }
                // Had it run and its reply been lost, the repeat finds the slot taken and
                // the poll below gives it back to this job (its token holds it).
                let reply_lost = e.is_connection_dropped() || e.is_io_error() || e.is_timeout();
                tracing::warn!(error = %e, reply_lost, "[RQ_RECORDING] Slot acquire failed, retrying: call_sid={call_sid}");
                if sleep_or_cancel(poll_interval, cancel).await {
                    return Ok(SlotOutcome::Cancelled);
                }
                continue;
            }
        }
        errors_since = None;
        // Poll until the call is ours or free again.
        loop {
            if sleep_or_cancel(poll_interval, cancel).await {
                if let Some(guard) = waiting.take() {
                    guard.leave().await;
                }
                return Ok(SlotOutcome::Cancelled);
            }
            match sem.poll(business, call_sid, &token).await {
                Ok(Poll::Claimed) => {
                    if let Some(mut guard) = waiting.take() {
                        guard.armed = false;
                    }
                    return Ok(SlotOutcome::Acquired(SlotGuard::new(
                        sem, business, call_sid,
                    )));
                }
                Ok(Poll::Queued { .. }) if waiting.is_none() => {
                    // The waiter died; this job adopted its place.
                    waiting = Some(WaitGuard {
                        sem: sem.clone(),
                        business: business.clone(),
                        call_sid: call_sid.clone(),
                        token: token.clone(),
                        armed: true,
                    });
                }
                Ok(Poll::Queued { .. }) | Ok(Poll::Other) => {}
                Ok(Poll::Free) => {
                    if let Some(mut guard) = waiting.take() {
                        guard.armed = false;
                    }
                    if let Some(size) = cached_size(dir, call_sid).await {
                        return Ok(SlotOutcome::Cached(size));
                    }
                    break;
                }
                Err(e) if is_wrong_type(&e) => {
                    if let Some(guard) = waiting.take() {
                        guard.leave().await;
                    }
                    return Err(SlotError::Unusable {
                        business: business.to_string(),
                        error: e,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "[RQ_RECORDING] Slot poll failed: call_sid={call_sid}")
                }
            }
        }
    }
}

/// Sleeps `interval`; true when cancelled first.
async fn sleep_or_cancel(interval: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(interval) => false,
    }
}
