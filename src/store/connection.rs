//! Opening Redis connections.
//!
//! Two kinds: a [`ConnectionManager`] for ordinary commands (reconnects by itself, bounded
//! response timeout), and a dedicated connection for blocking pops, whose response timeout is
//! longer than any pop it issues (redis-rs' default of 500 ms would cut a blocking pop short).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};

use crate::error::StoreError;

/// How long an ordinary command may take before it counts as failed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a blocking pop may block; the worker checks for shutdown between pops.
pub const MAX_BLOCK: Duration = Duration::from_secs(5);

/// Parses the URL into a client (no I/O).
pub fn client(url: &str) -> Result<Client, StoreError> {
    Ok(Client::open(url)?)
}

/// Like [`client`], trusting the PEM CA certificate at `ca_cert` for `rediss://` (a private
/// CA) instead of the public web roots.
pub fn client_with_ca(url: &str, ca_cert: Option<&std::path::Path>) -> Result<Client, StoreError> {
    let Some(path) = ca_cert else {
        return client(url);
    };
    let pem = std::fs::read(path).map_err(|e| {
        StoreError::Tls(format!(
            "cannot read CA certificate {}: {e}",
            path.display()
        ))
    })?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    Ok(Client::build_with_tls(url, certificates)?)
}

/// A reconnecting connection for ordinary commands and scripts.
pub async fn command_connection(client: &Client) -> Result<ConnectionManager, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    Ok(client.get_connection_manager_with_config(config).await?)
}

/// A connection reserved for blocking pops, and its server-side client id (so another
/// connection can end a pop early with `CLIENT UNBLOCK` at shutdown).
pub struct BlockingConnection {
    /// The connection.
    pub conn: MultiplexedConnection,
    /// `CLIENT ID` of the connection.
    pub client_id: i64,
}

/// Opens a [`BlockingConnection`].
pub async fn blocking_connection(client: &Client) -> Result<BlockingConnection, StoreError> {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(MAX_BLOCK + COMMAND_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let client_id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    Ok(BlockingConnection { conn, client_id })
}
