//! Diagnostic handlers for tests, demos and benchmarks. Registered only with
//! `--enable-testing-handlers`, so production workers never run them by accident.
//!
//! | path | behaviour |
//! | --- | --- |
//! | `rqw.testing.noop` | returns `None` |
//! | `rqw.testing.echo` | returns `{"args": [...], "kwargs": {...}}` |
//! | `rqw.testing.fail` | fails with the text of its `message` kwarg (`RuntimeError`) |
//! | `rqw.testing.sleep` | sleeps `seconds` (first positional or kwarg), returns them |
//! | `rqw.testing.panic` | panics: proves a panicking handler fails only its job |

use std::collections::BTreeMap;
use std::time::Duration;

use serde_pickle::{HashableValue, Value};

use super::callbacks::{CallbackContext, CallbackEvent};
use super::{HandlerError, HandlerRegistry, HandlerResult, JobArgs, JobContext};

/// Path of the handler that returns `None`.
pub const NOOP: &str = "rqw.testing.noop";
/// Path of the handler that returns its arguments.
pub const ECHO: &str = "rqw.testing.echo";
/// Path of the handler that always fails.
pub const FAIL: &str = "rqw.testing.fail";
/// Path of the handler that sleeps.
pub const SLEEP: &str = "rqw.testing.sleep";
/// Path of the handler that panics.
pub const PANIC: &str = "rqw.testing.panic";

/// Path of a callback that logs the event it is told about.
pub const CALLBACK_LOG: &str = "rqw.testing.callback_log";
/// Path of a callback that always fails.
pub const CALLBACK_FAIL: &str = "rqw.testing.callback_fail";

/// Every diagnostic handler path.
pub const PATHS: [&str; 5] = [NOOP, ECHO, FAIL, SLEEP, PANIC];

/// Adds every diagnostic handler to `registry`.
pub fn register(registry: &mut HandlerRegistry) {
    registry
        .register(NOOP, noop)
        .register(ECHO, echo)
        .register(FAIL, fail)
        .register(SLEEP, sleep)
        .register(PANIC, panic);
    registry
        .callbacks
        .register(CALLBACK_LOG, callback_log)
        .register(CALLBACK_FAIL, callback_fail);
}

async fn callback_log(ctx: CallbackContext) -> Result<(), HandlerError> {
    let event = match ctx.event {
        CallbackEvent::Success(_) => "success",
        CallbackEvent::Failure { .. } => "failure",
        CallbackEvent::Stopped => "stopped",
    };
    tracing::info!(
        "rqw.testing.callback_log: {event} callback for job {}",
        ctx.job_id
    );
    Ok(())
}

async fn callback_fail(_ctx: CallbackContext) -> Result<(), HandlerError> {
    Err(HandlerError::retryable("RuntimeError", "callback failed"))
}

async fn noop(_ctx: JobContext, _args: JobArgs) -> HandlerResult {
    Ok(Value::None)
}

async fn echo(_ctx: JobContext, args: JobArgs) -> HandlerResult {
    let kwargs: BTreeMap<HashableValue, Value> = args
        .kwargs
        .into_iter()
        .map(|(k, v)| (HashableValue::String(k), v))
        .collect();
    Ok(Value::Dict(BTreeMap::from([
        (HashableValue::String("args".into()), Value::List(args.args)),
        (HashableValue::String("kwargs".into()), Value::Dict(kwargs)),
    ])))
}

async fn fail(_ctx: JobContext, args: JobArgs) -> HandlerResult {
    let message = match args.kwargs.get("message").or_else(|| args.args.first()) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "rqw.testing.fail was asked to fail".to_string(),
    };
    Err(HandlerError::retryable("RuntimeError", message))
}

async fn sleep(ctx: JobContext, args: JobArgs) -> HandlerResult {
    let value = args
        .kwargs
        .get("seconds")
        .or_else(|| args.args.first())
        .cloned()
        .unwrap_or(Value::I64(0));
    let seconds = match value {
        Value::I64(i) => i as f64,
        Value::F64(f) => f,
        other => {
            return Err(HandlerError::bad_argument(format!(
                "seconds must be a number, got {other}"
            )))
        }
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(HandlerError::bad_argument(format!(
            "seconds out of range: {seconds}"
        )));
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(seconds)) => Ok(value),
        _ = ctx.cancel.cancelled() => Err(HandlerError::retryable("rqw.errors.Cancelled", "sleep cancelled")),
    }
}

async fn panic(_ctx: JobContext, _args: JobArgs) -> HandlerResult {
    panic!("rqw.testing.panic was asked to panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_list_every_registered_handler() {
        let mut registry = HandlerRegistry::new();
        register(&mut registry);
        let mut expected = PATHS.to_vec();
        expected.sort_unstable();
        assert_eq!(registry.paths().collect::<Vec<_>>(), expected);
    }
}
