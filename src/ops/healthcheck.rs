//! `rqw healthcheck`: asks a running worker's `/healthz` (on its `--metrics-addr`) and exits
//! 0 when it says healthy, 1 otherwise. Meant for a container `HEALTHCHECK`, where no HTTP
//! client is installed: one HTTP/1.0 request over a plain TCP connection, no proxy, no TLS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response read; `/healthz` answers a few hundred bytes.
pub const MAX_RESPONSE: u64 = 64 * 1024;

/// Flags of `rqw healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The worker's --metrics-addr (default: `$RQW_METRICS_ADDR`, as the worker reads it); an
    /// unspecified address (0.0.0.0, [::]) means this host.
    #[arg(long, env = "RQW_METRICS_ADDR", value_name = "ADDR")]
    pub addr: Option<SocketAddr>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5, value_name = "S")]
    pub timeout: u64,
}

/// Runs `rqw healthcheck`: prints the worker's JSON verdict, fails unless it is HTTP 200.
pub async fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let Some(addr) = args.addr else {
        bail!(
            "no address to ask: pass --addr ADDR or set RQW_METRICS_ADDR to the worker's \
             --metrics-addr (the image sets RQW_METRICS_ADDR=0.0.0.0:9108)"
        );
    };
    let target = reachable(addr);
    let (status, body) = fetch_healthz(target, Duration::from_secs(args.timeout.max(1)))
        .await
        .with_context(|| format!("no answer from http://{target}/healthz"))?;
    println!("{}", body.trim_end());
    if status != 200 {
        bail!("unhealthy (HTTP {status})");
    }
    Ok(())
}

/// The address to connect to: the loopback address when `addr` is unspecified.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// `GET /healthz` at `target`: the status code and body.
pub async fn fetch_healthz(target: SocketAddr, timeout: Duration) -> anyhow::Result<(u16, String)> {
    get(target, "/healthz", timeout).await
}

/// `GET <path>` at `target` over HTTP/1.0: the status code and body.
pub async fn get(
    target: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(target).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {}s", timeout.as_secs()))??;
    parse_response(&raw)
}

/// Splits an HTTP/1.x response into its status code and body.
pub fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("not an HTTP response: {status_line:?}");
    };
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1 response: {status_line:?}");
    }
    let code = code
        .parse::<u16>()
        .with_context(|| format!("bad status line {status_line:?}"))?;
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_mean_loopback() {
        let any: SocketAddr = "0.0.0.0:9108".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:9108".parse().unwrap());
        let any6: SocketAddr = "[::]:9108".parse().unwrap();
        assert_eq!(reachable(any6), "[::1]:9108".parse().unwrap());
        let given: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert_eq!(reachable(given), given);
    }

    #[test]
    fn parses_status_and_body() {
        let (code, body) =
            parse_response(b"HTTP/1.0 503 Service Unavailable\r\nx: y\r\n\r\n{\"status\":1}\n")
                .unwrap();
        assert_eq!(code, 503);
        assert_eq!(body, "{\"status\":1}\n");
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_response(b"").is_err());
    }

    #[tokio::test]
    async fn nobody_listening_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(fetch_healthz(addr, Duration::from_secs(2)).await.is_err());
    }
}
