//! In-process event bus: events go to a bounded tokio channel.

use super::{EventSink, SinkError};
use parley_shared::Event;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: mpsc::Sender<Event>,
}

impl ChannelSink {
    pub fn new(tx: mpsc::Sender<Event>) -> Self {
        Self { tx }
    }
}

impl EventSink for ChannelSink {
    async fn publish(&mut self, event: Event) -> Result<(), SinkError> {
        self.tx.send(event).await.map_err(|_| SinkError::Closed)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
