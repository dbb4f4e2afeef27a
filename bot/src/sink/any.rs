//! One sink type for every destination, chosen at run time.

use super::channel::ChannelSink;
use super::jsonl::JsonlSink;
use super::redis::RedisSink;
use super::{EventSink, SinkError};
use parley_shared::Event;
use tokio::sync::{mpsc, watch};

/// Where a process's bots publish: the in-process ingest (embedded mode) or a Redis stream.
#[derive(Debug, Clone)]
pub enum Bus {
    Channel(mpsc::Sender<Event>),
    Redis { url: String, stream: String },
}

impl Bus {
    pub async fn sink(&self) -> Result<AnySink, SinkError> {
        Ok(match self {
            Self::Channel(tx) => AnySink::Channel(ChannelSink::new(tx.clone())),
            Self::Redis { url, stream } => {
                AnySink::Redis(Box::new(RedisSink::connect(url, stream).await?))
            }
        })
    }
}

#[derive(Debug)]
pub enum AnySink {
    Channel(ChannelSink),
    Redis(Box<RedisSink>),
    Jsonl(JsonlSink),
}

impl AnySink {
    /// See [`RedisSink::give_up_on`]; the other sinks never wait on a server.
    pub fn give_up_on(&mut self, shutdown: watch::Receiver<bool>) {
        if let Self::Redis(s) = self {
            s.give_up_on(shutdown);
        }
    }
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
