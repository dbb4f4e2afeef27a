//! Where a bot's events go: the [`EventSink`] trait, an in-process channel (embedded mode and
//! the CLI), the Redis stream (production) and a JSON-lines file (standalone bots).

pub mod any;
pub mod channel;
pub mod jsonl;
pub mod redis;

use parley_shared::Event;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("event sink closed")]
    Closed,
    #[error("cannot write events: {0}")]
    Io(#[from] std::io::Error),
    #[error("redis: {0}")]
    Redis(String),
    #[error("shutting down with the event bus unreachable; the meeting is handed over")]
    ShuttingDown,
}

pub trait EventSink: Send {
    fn publish(&mut self, event: Event) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// Makes everything published so far durable (flushes buffers).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}
