//! Native handlers: the Rust code that runs a job in place of a Python function.
//!
//! A job names a Python function path (`server.jobs.recording_job.process_recording_download_job`).
//! The [`HandlerRegistry`] maps such paths to [`Handler`]s. A handler receives the job's
//! positional and keyword arguments ([`JobArgs`]) and a [`JobContext`], and returns either a
//! value ([`PyValue`], written back as the job's result in the queue's serializer) or a
//! [`HandlerError`] (the job fails; retryable or permanent).
//!
//! Handlers never see Redis job bookkeeping: the runtime (`crate::worker`) records outcomes.

pub mod args;
pub mod callbacks;
pub mod context;
pub mod error;
pub mod recording;
pub mod testing;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use args::JobArgs;
pub use context::{JobContext, Measure, Recorder};
pub use error::{HandlerError, HandlerErrorKind};

use crate::store::connection::CommandConnection;

/// Which native handlers a worker registers.
#[derive(Debug, Clone)]
pub struct HandlerOptions {
    /// Configuration of the recording download handler (from the environment).
    pub recording: recording::RecordingConfig,
    /// Also register the diagnostic `rqw.testing.*` handlers.
    pub enable_testing_handlers: bool,
}

/// The function paths a worker with these options runs natively (no Redis needed), sorted.
pub fn native_paths(enable_testing_handlers: bool) -> Vec<&'static str> {
    let mut paths = vec![recording::PATH];
    if enable_testing_handlers {
        paths.extend(testing::PATHS);
    }
    paths.sort_unstable();
    paths
}

/// Builds the registry of every native handler; `redis` is the connection handlers that
/// need Redis (the recording semaphore) use.
pub fn native_registry(redis: CommandConnection, options: HandlerOptions) -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    recording::register(&mut registry, redis, options.recording);
    if options.enable_testing_handlers {
        testing::register(&mut registry);
    }
    registry
}

/// A Python value as RQ's serializers carry it (None, bool, int, float, str, bytes, list,
/// tuple, set, dict): the protocol's own type, re-exported for handler authors.
pub use crate::protocol::value::{HashableValue, PyValue};

/// What a handler's future resolves to.
pub type HandlerResult = Result<PyValue, HandlerError>;

/// The boxed future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>;

/// A native implementation of one Python function path.
///
/// Implemented for any `Fn(JobContext, JobArgs) -> impl Future<Output = HandlerResult>`, so a
/// plain `async fn` can be registered; stateful handlers implement it on a struct.
pub trait Handler: Send + Sync + 'static {
    /// Runs the job. The future must stop promptly once `ctx.cancel` is cancelled.
    fn call(&self, ctx: JobContext, args: JobArgs) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(JobContext, JobArgs) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, ctx: JobContext, args: JobArgs) -> HandlerFuture {
        Box::pin((self)(ctx, args))
    }
}

/// Function path -> handler. Built once at start-up, then shared read-only by all jobs.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
    /// Native callbacks (`on_success` / `on_failure` / `on_stopped` paths).
    pub callbacks: callbacks::CallbackRegistry,
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for the Python function path `path`, replacing any earlier one.
    pub fn register(&mut self, path: impl Into<String>, handler: impl Handler) -> &mut Self {
        self.handlers.insert(path.into(), Arc::new(handler));
        self
    }

    /// The handler for `path`, if this binary has one.
    pub fn get(&self, path: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(path).cloned()
    }

    /// Every registered function path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// True when no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}
