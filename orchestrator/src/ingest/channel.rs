//! The in-process bus of embedded mode: bots and the ingest share a bounded channel.

use super::{Entry, Source};
use parley_shared::Event;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};

/// Events the channel holds before bots wait on the ingest.
pub const CAPACITY: usize = 4096;
const MAX_BATCH: usize = 1000;

/// Reads the channel; shared, so an ingest restarted after a failure reads on where the failed
/// one stopped (the batch it held when it failed is lost: the in-process bus keeps nothing).
#[derive(Debug)]
pub struct ChannelSource {
    rx: Arc<Mutex<mpsc::Receiver<Event>>>,
}

impl ChannelSource {
    pub fn new(rx: Arc<Mutex<mpsc::Receiver<Event>>>) -> Self {
        Self { rx }
    }
}

impl Source for ChannelSource {
    async fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Entry>>> {
        let mut events = Vec::new();
        if self.rx.lock().await.recv_many(&mut events, MAX_BATCH).await == 0 {
            return Ok(None);
        }
        Ok(Some(
            events
                .into_iter()
                .map(|e| Entry {
                    event: Ok(e),
                    published_ms: None,
                })
                .collect(),
        ))
    }

    /// Nothing of an in-process batch outlives it, so there is nothing to erase.
    async fn settle(&mut self, dead: &[(usize, String)], _erase: &[usize]) -> anyhow::Result<()> {
        for (_, reason) in dead {
            tracing::warn!(reason, "in-process event dropped");
        }
        Ok(())
    }
}
