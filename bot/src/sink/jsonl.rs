//! Events as JSON lines in a file, one per line, flushed as they are written so a killed bot
//! loses nothing it already published.

use super::{EventSink, SinkError};
use parley_shared::Event;
use std::path::Path;
use tokio::io::AsyncWriteExt;

#[derive(Debug)]
pub struct JsonlSink {
    file: tokio::fs::File,
}

impl JsonlSink {
    pub async fn create(path: &Path) -> Result<Self, SinkError> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        Ok(Self { file })
    }
}

impl EventSink for JsonlSink {
    async fn publish(&mut self, event: Event) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(&event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line).await?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.file.flush().await?;
        self.file.sync_data().await?;
        Ok(())
    }
}
