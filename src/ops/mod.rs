//! Read-only operator commands: `rqw info` (like `rq info`) and `rqw inspect` (what is
//! waiting, and whether rqw runs it natively), and `rqw healthcheck`. They take plain option
//! structs (the command line converts its flags) and read Redis only through the store
//! (`crate::store::overview`).

pub mod healthcheck;
pub mod info;
pub mod inspect;

/// Where an operator command reads from: a Redis URL, or the sentinels when any are given.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// Redis URL (redis://, rediss://, unix://).
    pub url: String,
    /// Redis Sentinel settings, instead of the URL's host.
    pub sentinel: Option<crate::config::SentinelSettings>,
    /// PEM CA certificate to trust for rediss:// URLs.
    pub tls_ca_cert: Option<std::path::PathBuf>,
}

/// The command connection of an operator command and the endpoint's description (passwords
/// masked), for its output and its error messages.
pub async fn connect(
    target: &RedisTarget,
) -> anyhow::Result<(crate::store::connection::CommandConnection, String)> {
    use anyhow::Context;
    let redis = endpoint(target)?;
    let described = redis.describe().to_string();
    let conn = crate::store::connection::command_connection(&redis)
        .await
        .with_context(|| format!("cannot connect to Redis at {described}"))?;
    Ok((conn, described))
}

/// The endpoint of an operator command: the sentinels when any are given, else the URL.
pub fn endpoint(target: &RedisTarget) -> anyhow::Result<crate::store::connection::Endpoint> {
    use anyhow::Context;
    crate::store::connection::Endpoint::from_settings(
        &target.url,
        target.sentinel.as_ref(),
        target.tls_ca_cert.as_deref(),
    )
    .with_context(|| match &target.sentinel {
        Some(s) => format!("invalid sentinel settings {}", s.describe()),
        None => format!("invalid Redis URL {}", crate::config::mask_url(&target.url)),
    })
}
