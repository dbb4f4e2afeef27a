//! Replay connector: plays a folder of per-speaker files (Ogg/Opus or WAV, one speaker each, named
//! by file stem) into the pipeline the way a live SFU would deliver them: Opus packets become RTP
//! packets with sequence numbers and timestamps, paced in real time, `speed` times faster, or as
//! fast as the pipeline takes them.

use super::session::{SessionHandle, confirm_left, session};
use super::{ConnectorError, ConnectorEvent, Media, MeetingConnector};
use crate::audio::file::{AudioFile, FileFrame};
use crate::audio::jitter::RtpPacket;
use parley_shared::{Speaker, SpeakerKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events buffered between the reader threads and the pipeline.
const CHANNEL: usize = 512;

/// One speaker's file.
#[derive(Debug, Clone)]
pub struct ReplayTrack {
    pub speaker: Speaker,
    pub path: PathBuf,
}

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// `speed` × real time (1.0 is real time).
    Speed(f64),
    /// As fast as the pipeline takes it.
    Unpaced,
}

#[derive(Debug)]
pub struct ReplayConnector {
    events: mpsc::Receiver<ConnectorEvent>,
    stop: Arc<AtomicBool>,
    pace: Pace,
    duration_ms: u64,
    started: Instant,
    /// The latest meeting time seen, for the `Ended` event.
    last_at_ms: u64,
    ended: bool,
}

impl ReplayConnector {
    /// Finds the tracks of a folder or a list of files. Names come from a `reference.json` or
    /// `speakers.json` beside the files (`{"speakers":[{"key","name"}]}`) when there is one.
    pub fn discover(inputs: &[PathBuf]) -> Result<Vec<ReplayTrack>, ConnectorError> {
        let mut files = Vec::new();
        let mut names = HashMap::new();
        for input in inputs {
            if input.is_dir() {
                let entries = std::fs::read_dir(input).map_err(|e| {
                    ConnectorError::Setup(format!("cannot read folder {}: {e}", input.display()))
                })?;
                let mut found: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("opus" | "ogg" | "wav")
                        )
                    })
                    .collect();
                found.sort();
                // The same speaker as .wav and .opus: the Opus file wins (it is what an SFU sends).
                found.dedup_by(|b, a| a.file_stem() == b.file_stem());
                names.extend(speaker_names(input));
                files.extend(found);
            } else if input.is_file() {
                if let Some(dir) = input.parent() {
                    names.extend(speaker_names(dir));
                }
                files.push(input.clone());
            } else {
                return Err(ConnectorError::Setup(format!(
                    "{}: no such file or folder",
                    input.display()
                )));
            }
        }
        if files.is_empty() {
            return Err(ConnectorError::Setup(
                "no audio files found (expected .opus, .ogg or .wav)".into(),
            ));
        }
        let mut tracks: Vec<ReplayTrack> = Vec::new();
        for path in files {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let key = SpeakerKey::parse(stem.clone())
                .map_err(|e| ConnectorError::Setup(format!("{}: {e}", path.display())))?;
            if tracks.iter().any(|t| t.speaker.key == key) {
                return Err(ConnectorError::Setup(format!(
                    "two files for speaker {key}: names must differ"
                )));
            }
            let name = names.get(&stem).cloned().unwrap_or(stem);
            tracks.push(ReplayTrack {
                speaker: Speaker { key, name },
                path,
            });
        }
        Ok(tracks)
    }

    /// Opens every file (so a bad one fails before anything plays) and starts the playback,
    /// `skip_ms` into the recording (as a bot joining a running meeting hears it from then on;
    /// times stay relative to this playback's start).
    pub fn start(
        tracks: Vec<ReplayTrack>,
        pace: Pace,
        skip_ms: u64,
    ) -> Result<Self, ConnectorError> {
        let mut opened = Vec::new();
        for t in tracks {
            let file =
                AudioFile::open(&t.path).map_err(|e| ConnectorError::Setup(e.to_string()))?;
            opened.push((t.speaker, file));
        }
        let duration_ms = opened
            .iter()
            .filter_map(|(_, f)| f.duration_ms())
            .max()
            .unwrap_or(0);
        let (tx, rx) = mpsc::channel(CHANNEL);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        for (speaker, file) in opened {
            let tx = tx.clone();
            let stop = Arc::clone(&stop);
            let name = format!("replay-{}", speaker.key);
            std::thread::Builder::new()
                .name(name)
                .spawn(move || play(speaker, file, pace, skip_ms, started, &tx, &stop))
                .map_err(|e| ConnectorError::Setup(format!("cannot start a replay thread: {e}")))?;
        }
        Ok(Self {
            events: rx,
            stop,
            pace,
            duration_ms,
            started,
            last_at_ms: 0,
            ended: false,
        })
    }

    /// The longest track's length, when the files say.
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// When playback started: the meeting clock's zero.
    pub fn started(&self) -> Instant {
        self.started
    }
}

/// How a bot replays a `replay:` link.
#[derive(Debug, Clone, Copy)]
pub struct ReplayConfig {
    pub pace: Pace,
    /// Start this far into the recording (a bot joining a running meeting).
    pub skip_ms: u64,
}

/// Joins a replayed meeting the way a bot joins a live one: the playback runs as a session task
/// the handle owns.
pub async fn join(folder: PathBuf, config: ReplayConfig) -> Result<SessionHandle, ConnectorError> {
    let tracks = ReplayConnector::discover(&[folder])?;
    let mut replay = ReplayConnector::start(tracks, config.pace, config.skip_ms)?;
    let (mut handle, tx, mut leave) = session(CHANNEL);
    if !replay.real_time() {
        handle.not_real_time();
    }
    handle.start(async move {
        loop {
            let next = tokio::select! {
                done = &mut leave => break confirm_left(done),
                next = replay.next_event() => next,
            };
            let item = match next {
                Ok(Some(event)) => Ok(event),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            let last = item.is_err();
            // Sending waits while the pipeline is busy; a leave must not wait behind it.
            tokio::select! {
                done = &mut leave => break confirm_left(done),
                sent = tx.send(item) => if sent.is_err() || last { return },
            }
        }
        replay.leave().await;
    });
    Ok(handle)
}

impl Drop for ReplayConnector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl MeetingConnector for ReplayConnector {
    /// When every track has played to its end, the recorded meeting is over: one `Ended`, then
    /// nothing. A bot that left early sees no `Ended` (the meeting went on without it).
    async fn next_event(&mut self) -> Result<Option<ConnectorEvent>, ConnectorError> {
        match self.events.recv().await {
            Some(event) => {
                if let ConnectorEvent::Media { at_ms, .. } | ConnectorEvent::Left { at_ms, .. } =
                    &event
                {
                    self.last_at_ms = self.last_at_ms.max(*at_ms);
                }
                Ok(Some(event))
            }
            None if !self.ended && !self.stop.load(Ordering::Relaxed) => {
                self.ended = true;
                Ok(Some(ConnectorEvent::Ended {
                    at_ms: self.last_at_ms,
                    reason: "the recording ended".to_owned(),
                }))
            }
            None => Ok(None),
        }
    }

    async fn leave(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.events.close();
    }

    fn real_time(&self) -> bool {
        self.pace == Pace::Speed(1.0)
    }
}

fn speaker_names(dir: &Path) -> HashMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Names {
        speakers: Vec<Named>,
    }
    #[derive(serde::Deserialize)]
    struct Named {
        key: String,
        name: String,
    }
    ["speakers.json", "reference.json"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .filter_map(|text| serde_json::from_str::<Names>(&text).ok())
        .flat_map(|n| n.speakers)
        .map(|n| (n.key, n.name))
        .collect()
}

/// Reads one file and sends its media, paced. Runs on its own thread: file reads block.
fn play(
    speaker: Speaker,
    mut file: AudioFile,
    pace: Pace,
    skip_ms: u64,
    started: Instant,
    tx: &mpsc::Sender<ConnectorEvent>,
    stop: &AtomicBool,
) {
    let key = speaker.key.clone();
    if tx
        .blocking_send(ConnectorEvent::Joined { speaker, at_ms: 0 })
        .is_err()
    {
        return;
    }
    let mut seq: u16 = rand_seq(&key);
    let mut last_ms = 0;
    let mut reason = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let frame = match file.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(track = %key, error = %e, "replay track ended early");
                reason = Some(e.to_string());
                break;
            }
        };
        let (at_ms, media) = match frame {
            FileFrame::Opus { pos, payload } => {
                seq = seq.wrapping_add(1);
                (
                    pos / 48,
                    Media::Rtp(RtpPacket {
                        seq,
                        timestamp: pos as u32,
                        payload,
                    }),
                )
            }
            FileFrame::Pcm { pos, samples } => {
                let rate = file.pcm_rate().unwrap_or(16_000);
                (
                    pos * 1000 / u64::from(rate),
                    Media::Pcm { rate, pos, samples },
                )
            }
        };
        if at_ms < skip_ms {
            continue;
        }
        let at_ms = at_ms - skip_ms;
        if let Pace::Speed(speed) = pace {
            let due = started + Duration::from_secs_f64(at_ms as f64 / 1000.0 / speed.max(0.01));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        last_ms = at_ms;
        if tx
            .blocking_send(ConnectorEvent::Media {
                key: key.clone(),
                at_ms,
                media,
            })
            .is_err()
        {
            return;
        }
    }
    let _ = tx.blocking_send(ConnectorEvent::Left {
        key,
        at_ms: last_ms + 20,
        reason,
    });
}

/// RTP sequence numbers start at a value derived from the key, as senders pick them at random.
fn rand_seq(key: &SpeakerKey) -> u16 {
    key.as_str()
        .bytes()
        .fold(0x5a5au16, |h, b| h.rotate_left(5) ^ u16::from(b))
}
