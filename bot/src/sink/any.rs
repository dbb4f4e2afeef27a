//! One sink type for every destination, chosen at run time.

use super::channel::ChannelSink;
use super::jsonl::JsonlSink;
use super::redis::RedisSink;
use super::{EventSink, SinkError};
use parley_shared::Event;

#[derive(Debug)]
pub enum AnySink {
    Channel(ChannelSink),
    Redis(Box<RedisSink>),
    Jsonl(JsonlSink),
}

impl EventSink for AnySink {
    async fn publish(&mut self, event: Event) -> Result<(), SinkError> {
        match self {
            Self::Channel(s) => s.publish(event).await,
            Self::Redis(s) => s.publish(event).await,
            Self::Jsonl(s) => s.publish(event).await,
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Self::Channel(s) => s.flush().await,
            Self::Redis(s) => s.flush().await,
            Self::Jsonl(s) => s.flush().await,
        }
    }
}
