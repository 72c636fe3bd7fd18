//! Log output: human-readable by default, JSON on request. Levels accept RQ's names.
//!
//! Every line goes through [`EscapingWriter`]: a control character inside a line (a `\n` or
//! `\r` a producer put into a job id, an origin, a function name, or that any dependency
//! logs) is written escaped, so one event is always exactly one line, in both formats. Values
//! from job hashes are also escaped and bounded where they are logged
//! ([`crate::protocol::text::shown`]); this is the net under that.

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Log output format (`--log-format`).
#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

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
    let ansi = matches!(format, LogFormat::Text) && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(EscapingStderr { ansi });
    let result = match format {
        LogFormat::Text => builder.with_target(false).with_ansi(ansi).try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}

/// Makes [`EscapingWriter`]s over stderr.
#[derive(Debug, Clone, Copy)]
pub struct EscapingStderr {
    /// Keep ESC (colours on a terminal); every other control character is escaped.
    pub ansi: bool,
}

impl<'a> MakeWriter<'a> for EscapingStderr {
    type Writer = EscapingWriter<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: std::io::stderr(),
            ansi: self.ansi,
        }
    }
}

/// Writes each formatted event (tracing-subscriber writes one event per `write` call) with
/// every control character but its final newline escaped (`\n`, `\r`, `\x1b`...).
#[derive(Debug)]
pub struct EscapingWriter<W> {
    inner: W,
    ansi: bool,
}

impl<W: Write> EscapingWriter<W> {
    /// A writer over `inner`; `ansi` keeps ESC for terminal colours.
    pub fn new(inner: W, ansi: bool) -> Self {
        Self { inner, ansi }
    }
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        let clean = |b: &u8| *b >= 0x20 && *b != 0x7f || *b == b'\t' || (self.ansi && *b == 0x1b);
        if body.iter().all(clean) {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b if clean(&b) => out.push(b),
                b => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        out.extend_from_slice(end);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_is_one_line() {
        let mut out = Vec::new();
        let mut w = EscapingWriter::new(&mut out, false);
        w.write_all(b"INFO job_id=a\nERROR forged\r\n\x1b[2J\tx\n")
            .unwrap();
        assert_eq!(out, b"INFO job_id=a\\nERROR forged\\r\\n\\x1b[2J\tx\n");
        let mut out = Vec::new();
        let mut w = EscapingWriter::new(&mut out, true);
        w.write_all(b"\x1b[32mINFO\x1b[0m a\rb\n").unwrap();
        assert_eq!(out, b"\x1b[32mINFO\x1b[0m a\\rb\n");
    }

    #[test]
    fn rq_level_names() {
        assert_eq!(filter_for("WARNING"), "warn");
        assert_eq!(filter_for("info"), "info");
        assert_eq!(filter_for("rqw=debug"), "rqw=debug");
    }
}
