//! Python-style exception texts for failed jobs.
//!
//! RQ stores `''.join(traceback.format_exception(...))`: a traceback whose last line is
//! `<ExceptionType>: <message>`. Python users read that last line (`job.exc_info`,
//! `latest_result().exc_string`); rq-dashboard shows the whole text. rqw writes a short
//! traceback naming the native handler, ending with the same kind of last line.

use super::text;

/// The exception type RQ reports when a job's payload cannot be deserialized.
pub const DESERIALIZATION_ERROR: &str = "rq.exceptions.DeserializationError";
/// The exception type RQ reports when a job exceeds its timeout.
pub const JOB_TIMEOUT_EXCEPTION: &str = "rq.timeouts.JobTimeoutException";
/// The exception type rqw reports for a function path with no native handler
/// (RQ itself reports the `ImportError`/`AttributeError` of the failed import).
pub const UNKNOWN_FUNCTION_ERROR: &str = "rqw.errors.UnknownFunctionError";
/// The exception type rqw reports for a handler that panicked.
pub const HANDLER_PANIC: &str = "rqw.errors.HandlerPanic";
/// The exception type rqw reports for a job hash it cannot use (missing or mistyped fields).
pub const INVALID_JOB_ERROR: &str = "rqw.errors.InvalidJobError";
/// The exception type rqw reports for a Python job when no horse can start (`--python`).
pub const HORSE_START_ERROR: &str = "rqw.errors.HorseStartError";
/// The exception type rqw reports for a Python job whose horse broke the protocol.
pub const HORSE_PROTOCOL_ERROR: &str = "rqw.errors.HorseProtocolError";
/// The exception type rqw reports when a forced shutdown interrupts a job.
pub const SHUTDOWN_ERROR: &str = "rqw.errors.WorkerShutdown";

/// Longest function path quoted in a traceback's `in <location>` line (escaped characters).
pub const MAX_LOCATION_CHARS: usize = 200;

/// Builds the traceback text stored for a failed job.
///
/// `location` names where it happened (a function path, or `rqw` for the runtime itself). It
/// and `message` may come from a hostile job hash: both are escaped onto one line and bounded
/// (`location` to [`MAX_LOCATION_CHARS`], `message` to [`text::MAX_MESSAGE_CHARS`], with a
/// `…[+N bytes]` marker), so the last line is always one `<Type>: <message>` line.
pub fn format_exception(location: &str, exc_type: &str, message: &str) -> String {
    let location = text::one_line(location, MAX_LOCATION_CHARS);
    let exc_type = text::one_line(exc_type, MAX_LOCATION_CHARS);
    let message = text::one_line(message, text::MAX_MESSAGE_CHARS);
    format!(
        "Traceback (most recent call last):\n  File \"<rqw native>\", line 1, in {location}\n{exc_type}: {message}\n"
    )
}

/// RQ's message for a job that exceeded its timeout (`rq/timeouts.py`).
pub fn timeout_message(timeout_seconds: i64) -> String {
    format!("Task exceeded maximum timeout value ({timeout_seconds} seconds)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_is_type_and_message() {
        let text = format_exception("jobs.add", "ValueError", "bad");
        assert!(text.starts_with("Traceback (most recent call last):\n"));
        assert!(text.ends_with("\nValueError: bad\n"));
        assert!(text.contains("in jobs.add"));
    }

    #[test]
    fn hostile_names_and_messages_keep_the_last_line_valid() {
        let text = format_exception("jobs.evil\n", "ValueError", "line one\r\nline two");
        assert_eq!(text.lines().count(), 3, "{text:?}");
        assert!(text.contains("in jobs.evil\\n\n"), "{text:?}");
        assert_eq!(
            text.lines().last(),
            Some("ValueError: line one\\r\\nline two")
        );
        let huge = "f".repeat(1 << 20);
        let text = format_exception(&huge, "rqw.errors.UnknownFunctionError", &huge);
        assert!(text.len() < 1000, "{}", text.len());
        assert!(text.contains(&format!("…[+{} bytes]", (1 << 20) - 200)));
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("rqw.errors.UnknownFunctionError: fff"),
            "{last}"
        );
        assert!(last.ends_with(&format!("…[+{} bytes]", (1 << 20) - 500)));
    }

    #[test]
    fn timeout_text_matches_rq() {
        assert_eq!(
            timeout_message(2),
            "Task exceeded maximum timeout value (2 seconds)"
        );
    }
}
