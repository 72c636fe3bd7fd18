//! `rqw info`: queues, registries and workers (Python's and rqw's), like `rq info`, but
//! read-only.
//!
//! - [`snapshot`]: reads Redis (no cleanup side effects).
//! - [`render`]: formats a snapshot.
//!
//! With `--interval S` the report is redrawn every S seconds until Ctrl-C; a Redis error then
//! prints a line and the next round tries again.

pub mod render;
pub mod snapshot;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context};

use super::RedisTarget;
use crate::keys::Keys;

/// Shortest `--interval` accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// What `rqw info` is asked (the command line fills it in).
#[derive(Debug, Clone)]
pub struct InfoOptions {
    /// Where to read.
    pub target: RedisTarget,
    /// Redraw every this many seconds (validated by [`interval`]); `None`: print once.
    pub interval: Option<f64>,
    /// Only these queues (empty: all).
    pub queues: Vec<String>,
}

/// Runs `rqw info`.
pub async fn run(args: InfoOptions) -> anyhow::Result<()> {
    let interval = args.interval.map(interval).transpose()?;
    let (mut conn, masked) = super::connect(&args.target).await?;
    let keys = Keys::default();
    let Some(every) = interval else {
        let snapshot = snapshot::read(&mut conn, &keys, &args.queues, chrono::Utc::now())
            .await
            .with_context(|| format!("cannot read from Redis at {masked}"))?;
        print!("{}", render::render(&snapshot, &masked));
        return Ok(());
    };
    let clear = std::io::stdout().is_terminal();
    loop {
        let text = match snapshot::read(&mut conn, &keys, &args.queues, chrono::Utc::now()).await {
            Ok(snapshot) => render::render(&snapshot, &masked),
            Err(e) => format!("cannot read from Redis at {masked}: {e}\n"),
        };
        let mut out = std::io::stdout().lock();
        let written = if clear {
            write!(out, "\x1b[2J\x1b[H{text}")
        } else {
            writeln!(out, "{text}")
        };
        if written.and_then(|()| out.flush()).is_err() {
            return Ok(()); // stdout closed (e.g. piped into `head`)
        }
        drop(out);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Validates `--interval`.
pub fn interval(seconds: f64) -> anyhow::Result<Duration> {
    if !seconds.is_finite() || seconds < MIN_INTERVAL.as_secs_f64() {
        bail!(
            "invalid --interval {seconds}: must be at least {}",
            MIN_INTERVAL.as_secs_f64()
        );
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_bounds() {
        assert_eq!(interval(2.0).unwrap(), Duration::from_secs(2));
        assert!(interval(0.0).is_err());
        assert!(interval(f64::NAN).is_err());
        assert!(interval(-1.0).is_err());
    }
}
