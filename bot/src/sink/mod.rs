//! Where a bot's events go: the [`EventSink`] trait, an in-process channel (embedded mode and
//! the CLI) and a JSON-lines file (standalone bots).

pub mod channel;
pub mod jsonl;

use parley_shared::Event;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("event sink closed")]
    Closed,
    #[error("cannot write events: {0}")]
    Io(#[from] std::io::Error),
}

pub trait EventSink: Send {
    fn publish(&mut self, event: Event) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// Makes everything published so far durable (flushes buffers).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}
