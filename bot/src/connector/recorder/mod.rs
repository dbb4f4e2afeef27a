//! Recordings: each speaker's received Opus packets remuxed into an Ogg/Opus file (no
//! re-encode), spooled to a temporary file while the meeting runs and uploaded to an object store
//! (a local folder by default, S3 in production) when the speaker's track ends.
//! Objects are `MEETING_ID/SPEAKER_KEY-N.ogg`, N counting the speaker's (re)joins.

pub mod ogg_opus;

use crate::connector::{ConnectorEvent, Media};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use ogg_opus::OggOpusWriter;
use parley_shared::{MeetingId, SpeakerKey};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Where recordings go.
#[derive(Clone)]
pub struct RecordingStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    description: String,
}

impl std::fmt::Debug for RecordingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl RecordingStore {
    /// `s3://BUCKET[/PREFIX]` (credentials, region and endpoint from the usual `AWS_*`
    /// variables; `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint), or a local folder (a path or
    /// `file://PATH`).
    pub fn open(location: &str) -> Result<Self, String> {
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// recording location needs a bucket".to_owned());
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| format!("S3 recording store: {e}"))?;
            return Ok(Self {
                store: Arc::new(store),
                prefix: ObjectPath::from(prefix),
                description: format!("s3://{bucket}/{prefix}"),
            });
        }
        let dir = location.strip_prefix("file://").unwrap_or(location);
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("recording folder {dir}: {e}"))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: ObjectPath::from(""),
            description: dir.to_owned(),
        })
    }

    fn path(&self, name: &str) -> ObjectPath {
        name.split('/')
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// Uploads, retrying twice.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        let path = self.path(name);
        let payload = object_store::PutPayload::from(bytes);
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(2 * attempt)).await;
            }
            match self.store.put(&path, payload.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    pub async fn get(&self, name: &str) -> Result<Vec<u8>, String> {
        let r = self
            .store
            .get(&self.path(name))
            .await
            .map_err(|e| e.to_string())?;
        r.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    }

    pub async fn list(&self, meeting: MeetingId) -> Result<Vec<String>, String> {
        use futures_util::StreamExt;
        let prefix = self.path(&meeting.to_string());
        let mut names = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| e.to_string())?;
            names.push(format!(
                "{meeting}/{}",
                meta.location.filename().unwrap_or_default()
            ));
        }
        names.sort();
        Ok(names)
    }

    /// Deletes every recording of a meeting; the number deleted.
    pub async fn delete_meeting(&self, meeting: MeetingId) -> Result<usize, String> {
        let names = self.list(meeting).await?;
        for name in &names {
            self.store
                .delete(&self.path(name))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(names.len())
    }
}

struct Track {
    writer: OggOpusWriter<BufWriter<File>>,
    spool: tempfile::NamedTempFile,
    name: String,
}

/// Records one meeting: fed every connector event, it writes each speaker's packets and
/// uploads their file when their track ends.
pub struct Recorder {
    store: RecordingStore,
    meeting: MeetingId,
    first_part: u32,
    tracks: HashMap<SpeakerKey, Track>,
    parts: HashMap<SpeakerKey, u32>,
    uploads: JoinSet<()>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("store", &self.store)
            .field("meeting", &self.meeting)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// `first_part`: the number after which this recorder numbers its files; a bot that
    /// replaces another starts above the parts its predecessor wrote (it passes the seconds the
    /// meeting had run), so no recording is overwritten.
    pub fn new(store: RecordingStore, meeting: MeetingId, first_part: u32) -> Self {
        Self {
            store,
            meeting,
            first_part,
            tracks: HashMap::new(),
            parts: HashMap::new(),
            uploads: JoinSet::new(),
        }
    }

    /// Writes media and closes ended tracks (their uploads run in the background). Never waits,
    /// so a connector calling it stays cancellation-safe.
    pub fn observe(&mut self, event: &ConnectorEvent) {
        match event {
            ConnectorEvent::Media {
                key,
                media: Media::Rtp(packet),
                ..
            } => {
                if let Err(e) = self.write(key, packet.timestamp, &packet.payload) {
                    tracing::warn!(speaker = %key, error = %e, "recording stopped for this track");
                    self.tracks.remove(key);
                }
            }
            ConnectorEvent::Left { key, .. } => self.close(key),
            ConnectorEvent::Ended { .. } => self.close_all(),
            _ => {}
        }
    }

    fn write(&mut self, key: &SpeakerKey, timestamp: u32, payload: &[u8]) -> std::io::Result<()> {
        if !self.tracks.contains_key(key) {
            let part = self.parts.entry(key.clone()).or_insert(self.first_part);
            *part += 1;
            let spool = tempfile::Builder::new()
                .prefix("parley-rec-")
                .suffix(".ogg")
                .tempfile()?;
            let serial = u32::try_from(self.tracks.len()).unwrap_or(0) ^ 0x5041_524c;
            let writer = OggOpusWriter::new(BufWriter::new(spool.reopen()?), serial)?;
            let name = format!("{}/{}-{part}.ogg", self.meeting, key);
            self.tracks.insert(
                key.clone(),
                Track {
                    writer,
                    spool,
                    name,
                },
            );
        }
        if let Some(track) = self.tracks.get_mut(key) {
            track.writer.write(timestamp, payload)?;
        }
        Ok(())
    }

    /// Ends a speaker's file and uploads it in the background.
    fn close(&mut self, key: &SpeakerKey) {
        let Some(track) = self.tracks.remove(key) else {
            return;
        };
        let store = self.store.clone();
        self.uploads.spawn(async move {
            let stats = track.writer.stats();
            let bytes = track
                .writer
                .finish()
                .and_then(|mut w| std::io::Write::flush(&mut w))
                .and_then(|()| std::fs::read(track.spool.path()));
            match bytes {
                Ok(bytes) => match store.put(&track.name, bytes).await {
                    Ok(()) => tracing::info!(
                        recording = track.name,
                        packets = stats.packets,
                        late = stats.late,
                        "recording stored"
                    ),
                    Err(e) => tracing::error!(recording = track.name, error = e, "recording upload failed"),
                },
                Err(e) => tracing::error!(recording = track.name, error = %e, "recording could not be finished"),
            }
        });
    }

    fn close_all(&mut self) {
        let keys: Vec<SpeakerKey> = self.tracks.keys().cloned().collect();
        for key in keys {
            self.close(&key);
        }
    }

    /// Ends every file and waits for the uploads. Cancellation-safe: calling it again goes on
    /// waiting.
    pub async fn finish(&mut self) {
        self.close_all();
        while self.uploads.join_next().await.is_some() {}
    }
}
