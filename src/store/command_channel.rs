//! The worker's command channel (`rq:pubsub:<name>`, where `rq.command.send_*` publishes):
//! opening a pub/sub connection to the master of the moment and subscribing. What a command
//! means is the worker's business.

use futures::{Stream, StreamExt};

use crate::error::StoreError;
use crate::store::connection::Endpoint;

/// A pub/sub connection to the endpoint's current master, not yet subscribed.
pub struct CommandChannel(redis::aio::PubSub);

impl CommandChannel {
    /// Opens a pub/sub connection to the master (asking the sentinels, if any, where it is).
    pub async fn open(endpoint: &Endpoint) -> Result<Self, StoreError> {
        let client = endpoint.master().await?;
        Ok(Self(client.get_async_pubsub().await?))
    }

    /// Subscribes to `channel` (`SUBSCRIBE`); the payloads of its messages, until the connection closes.
    pub async fn listen_to(
        mut self,
        channel: &str,
    ) -> Result<impl Stream<Item = Vec<u8>> + Unpin + Send, StoreError> {
        self.0.subscribe(channel).await?;
        Ok(self
            .0
            .into_on_message()
            .map(|message| message.get_payload_bytes().to_vec()))
    }
}
