//! Log output: human-readable by default, JSON on request. Levels accept RQ's names.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Maps RQ's level names (`WARNING`) to a tracing filter; anything else is used as a filter.
pub fn filter_for(level: &str) -> String {
    match level.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug".into(),
        "INFO" => "info".into(),
        "WARNING" | "WARN" => "warn".into(),
        "ERROR" | "CRITICAL" => "error".into(),
        _ => level.to_string(),
    }
}

/// Installs the global subscriber. Fails only if one is installed already or the filter is
/// invalid.
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter_for(level))
        .map_err(|e| format!("invalid --logging-level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rq_level_names() {
        assert_eq!(filter_for("WARNING"), "warn");
        assert_eq!(filter_for("info"), "info");
        assert_eq!(filter_for("rqw=debug"), "rqw=debug");
    }
}
