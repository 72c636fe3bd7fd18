//! Native job callbacks: what runs in place of a job's Python `on_success`, `on_failure` or
//! `on_stopped` callback, looked up by the same dotted path.
//!
//! A callback that is not registered behaves as in RQ when the callback cannot be imported:
//! an `on_success` callback's error fails the job (then `on_failure` runs); an `on_failure`
//! callback's error replaces the job's exception text; an `on_stopped` callback's error is
//! logged.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{HandlerError, PyValue};

/// What happened to the job the callback is told about.
#[derive(Debug, Clone)]
pub enum CallbackEvent {
    /// The job returned this value.
    Success(PyValue),
    /// The job failed with this traceback text.
    Failure {
        /// The exception text that will be stored.
        exc_string: String,
    },
    /// The job was stopped by a command.
    Stopped,
}

/// The job a callback is about.
#[derive(Debug, Clone)]
pub struct CallbackContext {
    /// Job id.
    pub job_id: String,
    /// Queue (origin).
    pub queue: String,
    /// What happened.
    pub event: CallbackEvent,
}

/// The boxed future a callback returns.
pub type CallbackFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'static>>;

/// A native callback. Implemented for any `Fn(CallbackContext) -> impl Future<Output =
/// Result<(), HandlerError>>`.
pub trait Callback: Send + Sync + 'static {
    /// Runs the callback.
    fn call(&self, ctx: CallbackContext) -> CallbackFuture;
}

impl<F, Fut> Callback for F
where
    F: Fn(CallbackContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn call(&self, ctx: CallbackContext) -> CallbackFuture {
        Box::pin((self)(ctx))
    }
}

/// Callback path -> callback.
#[derive(Clone, Default)]
pub struct CallbackRegistry {
    callbacks: BTreeMap<String, Arc<dyn Callback>>,
}

impl CallbackRegistry {
    /// Registers `callback` for the dotted path `path`.
    pub fn register(&mut self, path: impl Into<String>, callback: impl Callback) -> &mut Self {
        self.callbacks.insert(path.into(), Arc::new(callback));
        self
    }

    /// The callback for `path`, if this binary has one.
    pub fn get(&self, path: &str) -> Option<Arc<dyn Callback>> {
        self.callbacks.get(path).cloned()
    }

    /// Every registered path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.callbacks.keys().map(String::as_str)
    }
}
