//! The native `server.jobs.recording_job.process_recording_download_job`: downloads a call
//! recording from Twilio into the folder the API serves, under a per-business semaphore
//! shared with the API.
//!
//! ## Layout
//! - [`config`]: environment -> [`RecordingConfig`] (token masked in `Debug`).
//! - [`params`]: the Python signature, bound and checked (SID shapes, business id).
//! - [`urls`]: pure URL rules: trusted origin, formats in order, redirect policy.
//! - [`fetch`]: one GET with hand-followed redirects; credentials only to the trusted origin.
//! - [`storage`]: cached check; temp file -> fsync -> atomic rename to `<call_sid>.mp3`.
//! - [`download`]: the formats loop and the classification of responses.
//! - [`keys`], [`semaphore`]: the Redis semaphore (Lua scripts in `scripts/`).
//! - [`slot`]: acquiring a slot, waiting for one, releasing it on every path.
//! - [`job`]: one job from arguments to result.
//!
//! ## Decisions
//! - **Waiting**: a job that finds no free slot waits in Python's wait list (the API shows
//!   "queued") and claims the slot `release` hands to its call; no retry is burnt.
//! - **Missing `business_id`** (old callers): keys use `None`, as Python's f-strings do
//!   (`rec_slots:None`), so those jobs share one semaphore of five slots.
//! - **Missing credentials**: the handler is still registered; each job that needs a download
//!   fails permanently with [`config::MISSING_CREDENTIALS`] (the call is marked failed so the
//!   UI stops polling). An already-downloaded file is still reported as cached.
//! - **Cancellation** (timeout, stop, forced shutdown): the job leaves the wait list or
//!   releases its slot, removes its temp file, and returns an error well within the
//!   runtime's grace period; guards clean up from `Drop` if the future is dropped instead.
//! - **Final failures** (permanent, or no retries left): `rec_failed:{b}:{sid}` is set and the
//!   API's dedup key deleted, as Python's mark-failed does.

pub mod config;
pub mod download;
pub mod fetch;
pub mod job;
pub mod keys;
pub mod params;
pub mod semaphore;
pub mod slot;
pub mod storage;
pub mod urls;

use std::sync::Arc;

use crate::store::connection::CommandConnection;

pub use config::{Credentials, RecordingConfig, RecordingConfigError};

use crate::handlers::{Handler, HandlerFuture, HandlerRegistry, JobArgs, JobContext};
use download::Downloader;
use job::Shared;
use semaphore::Semaphore;

/// The Python function path this handler implements.
pub const PATH: &str = "server.jobs.recording_job.process_recording_download_job";

/// Registers the recording handler for [`PATH`]. Never fails: without credentials (see
/// [`RecordingConfig::missing_credentials`]) the jobs themselves fail, permanently.
pub fn register(registry: &mut HandlerRegistry, redis: CommandConnection, config: RecordingConfig) {
    registry.register(PATH, RecordingHandler::new(redis, config));
}

/// The handler: shared configuration, semaphore and HTTP client.
#[derive(Clone)]
pub struct RecordingHandler {
    shared: Arc<Shared>,
}

impl RecordingHandler {
    /// Builds the handler (and its HTTP client, when credentials are configured).
    pub fn new(redis: CommandConnection, config: RecordingConfig) -> Self {
        let downloader = match &config.credentials {
            None => Err(config::MISSING_CREDENTIALS.to_string()),
            Some(credentials) => Downloader::new(&config, credentials.clone())
                .map_err(|e| format!("cannot build the HTTP client: {e}")),
        };
        if let Err(e) = &downloader {
            tracing::warn!("[RQ_RECORDING] {e}");
        }
        let shared = Shared {
            config,
            semaphore: Semaphore::new(redis),
            downloader,
        };
        Self {
            shared: Arc::new(shared),
        }
    }
}

impl Handler for RecordingHandler {
    fn call(&self, ctx: JobContext, args: JobArgs) -> HandlerFuture {
        Box::pin(job::run(self.shared.clone(), ctx, args))
    }
}
