//! Every Redis key of the download semaphore, in one place. The first six are the contract
//! with the Python API (same names, same meaning); the last two are rqw's own additions,
//! which Python never reads.
//!
//! | key | type, TTL | written by |
//! | --- | --- | --- |
//! | `rec_slots:{b}` | SET of call_sids, max [`MAX_SLOTS_PER_BUSINESS`] | acquire, release, cleanup |
//! | `rec_inflight:{b}:{sid}` | STRING `processing`, [`INFLIGHT_TTL`] | acquire, release (handover) |
//! | `rec_queued:{b}` | SET, [`QUEUED_TTL`] (refreshed on add and while a waiter lives) | acquire, release |
//! | `rec_queue:{b}` | LIST, FIFO (RPUSH / LPOP) | acquire, release |
//! | `rec_failed:{b}:{sid}` | STRING message, [`FAILED_TTL`] | mark failed |
//! | `job:download:{b}:{sid}` | STRING (the API's dedup key) | deleted by mark failed |
//! | `rec_waiter:{b}:{sid}` | STRING token, [`WAITER_TTL`] (rqw) | the job waiting for this call's slot, or holding it (set by acquire, claim and a leave that finds the slot handed over, so a repeat after a lost reply finds its own slot; deleted by release) |
//! | `rec_handover:{b}:{sid}` | STRING, [`INFLIGHT_TTL`] (rqw) | release, when it hands a slot over |
//!
//! The Lua scripts build `rec_inflight:`/`rec_handover:` names of other calls themselves, from
//! the same templates ([`INFLIGHT_PREFIX`], [`HANDOVER_PREFIX`]).

use super::params::{BusinessId, Sid};

/// Slots per business (`MAX_SLOTS_PER_BUSINESS`).
pub const MAX_SLOTS_PER_BUSINESS: u32 = 5;
/// Seconds an in-flight marker lives.
pub const INFLIGHT_TTL: u64 = 900;
/// Seconds the waiting set lives after its last refresh.
pub const QUEUED_TTL: u64 = 1200;
/// Seconds a failure marker lives.
pub const FAILED_TTL: u64 = 3600;
/// Seconds a waiter's liveness key lives without a refresh (refreshed at every poll).
pub const WAITER_TTL: u64 = 30;
/// Prefix of in-flight markers.
pub const INFLIGHT_PREFIX: &str = "rec_inflight:";
/// Prefix of handover markers.
pub const HANDOVER_PREFIX: &str = "rec_handover:";

/// `rec_slots:{b}`.
pub fn slots(b: &BusinessId) -> String {
    format!("rec_slots:{b}")
}

/// `rec_inflight:{b}:{sid}`.
pub fn inflight(b: &BusinessId, sid: &Sid) -> String {
    format!("{INFLIGHT_PREFIX}{b}:{sid}")
}

/// `rec_queued:{b}`.
pub fn queued(b: &BusinessId) -> String {
    format!("rec_queued:{b}")
}

/// `rec_queue:{b}`.
pub fn queue(b: &BusinessId) -> String {
    format!("rec_queue:{b}")
}

/// `rec_failed:{b}:{sid}`.
pub fn failed(b: &BusinessId, sid: &Sid) -> String {
    format!("rec_failed:{b}:{sid}")
}

/// `job:download:{b}:{sid}`, the API's enqueue de-duplication key.
pub fn dedup(b: &BusinessId, sid: &Sid) -> String {
    format!("job:download:{b}:{sid}")
}

/// `rec_waiter:{b}:{sid}` (rqw only).
pub fn waiter(b: &BusinessId, sid: &Sid) -> String {
    format!("rec_waiter:{b}:{sid}")
}

/// `rec_handover:{b}:{sid}` (rqw only).
pub fn handover(b: &BusinessId, sid: &Sid) -> String {
    format!("{HANDOVER_PREFIX}{b}:{sid}")
}
