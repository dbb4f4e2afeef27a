//! Runs one meeting: connector events through per-track decoding and the streaming transcriber,
//! decodes on the shared Whisper pool, events out to the sink. The same code serves the replay
//! demo, the CLI, the benchmark and live meetings.

use crate::asr::pool::{AsrPool, Job, JobDone};
use crate::asr::transcriber::{Purpose, Transcriber, TranscriberConfig};
use crate::audio::jitter::JitterConfig;
use crate::audio::samples_to_ms;
use crate::audio::track::{AudioChunk, PcmTrack, RtpOpusTrack, TrackError};
use crate::connector::{ConnectorError, ConnectorEvent, Media, MeetingConnector};
use crate::sink::{EventSink, SinkError};
use parley_shared::{BotState, Event, EventBody, MeetingId, Speaker, SpeakerKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Pool stream ids are unique per process: each meeting gets a block of them.
static NEXT_MEETING_BLOCK: AtomicU64 = AtomicU64::new(1);
const STREAMS_PER_MEETING: u64 = 1 << 20;

#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub transcriber: TranscriberConfig,
    pub jitter: JitterConfig,
    /// Stop reading media while this many finals are waiting for Whisper (backpressure for
    /// faster-than-real-time replay; live, the connector's own buffer then drops packets).
    pub max_pending_finals: usize,
    /// How long the meeting had been recorded when this bot joined: zero for the first bot, the
    /// time since the first bot's join for one that replaces it. Every published time is on the
    /// meeting's clock, and sequence numbers continue above the earlier bot's.
    pub clock_offset_ms: u64,
    /// When results are due, for a meeting heard in real time; `None` for audio read faster
    /// or slower than that, whose decodes have no deadline and are never degraded.
    pub deadlines: Option<Deadlines>,
}

/// How long after the end of its speech a decode's result is due. Past it, the pool degrades
/// (see `asr::schedule`): late partials are dropped, finals decoded cheaply rather than late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub final_after: Duration,
    pub partial_after: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            final_after: Duration::from_millis(1800),
            partial_after: Duration::from_millis(1000),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            transcriber: TranscriberConfig::default(),
            jitter: JitterConfig::default(),
            max_pending_finals: 8,
            clock_offset_ms: 0,
            deadlines: Some(Deadlines::default()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Track(#[from] TrackError),
}

/// What a finished meeting run saw.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    pub speakers: usize,
    pub finals: u64,
    pub partials: u64,
    pub audio_ms: u64,
    pub corrupt_packets: u64,
    pub lost_packets: u64,
}

enum TrackDecoder {
    Rtp(Box<RtpOpusTrack>),
    Pcm(Box<PcmTrack>),
}

struct Track {
    stream: usize,
    decoder: Option<TrackDecoder>,
    last_at_ms: u64,
}

struct Run<'a, S> {
    meeting: MeetingId,
    config: PipelineConfig,
    pool: &'a AsrPool,
    sink: S,
    transcriber: Transcriber,
    tracks: HashMap<SpeakerKey, Track>,
    block: u64,
    seq: u64,
    chunks: Vec<AudioChunk>,
    reply: mpsc::UnboundedSender<JobDone>,
    in_meeting: bool,
    /// Events other than segments, waiting to be published in order.
    pending_bodies: Vec<EventBody>,
    /// Set when the platform ended the meeting; published after the last final, so whoever
    /// acts on the end (the summary) sees the whole transcript.
    ended_at_ms: Option<u64>,
    /// 16 kHz samples fed to the transcriber, all tracks.
    audio_samples: u64,
    report: RunReport,
}

/// Runs the meeting until the connector ends or `shutdown` resolves; then every utterance in
/// progress is finalised and flushed before returning.
pub async fn run_meeting<C: MeetingConnector, S: EventSink>(
    meeting: MeetingId,
    mut connector: C,
    pool: &AsrPool,
    config: PipelineConfig,
    sink: S,
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, PipelineError> {
    let (reply, mut results) = mpsc::unbounded_channel();
    let mut config = config;
    if !connector.real_time() {
        config.deadlines = None;
    }
    let mut run = Run {
        meeting,
        config,
        pool,
        sink,
        transcriber: Transcriber::new(meeting, config.transcriber),
        tracks: HashMap::new(),
        block: NEXT_MEETING_BLOCK.fetch_add(1, Ordering::Relaxed) * STREAMS_PER_MEETING,
        // A bot publishes far fewer than a thousand events a millisecond, so a replacement's
        // numbers start above everything its predecessor can have sent.
        seq: config.clock_offset_ms.saturating_mul(1000),
        chunks: Vec::new(),
        reply,
        in_meeting: false,
        pending_bodies: Vec::new(),
        ended_at_ms: None,
        audio_samples: 0,
        report: RunReport::default(),
    };
    run.status(BotState::Joining, None, 0).await?;
    let clock = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    let mut connected = true;
    let mut last_at_ms = 0;
    loop {
        let backpressure = run.transcriber.pending_finals() >= run.config.max_pending_finals;
        tokio::select! {
            event = connector.next_event(), if connected && !backpressure => match event? {
                Some(event) => {
                    last_at_ms = last_at_ms.max(event_time(&event));
                    run.handle(event)?;
                }
                None => {
                    connected = false;
                    run.finish_all()?;
                }
            },
            Some(done) = results.recv() => match done.result {
                Some(result) => run.transcriber.on_result(done.stream, done.utterance, done.end, done.purpose, result),
                None => run.transcriber.on_dropped(done.stream, done.utterance, done.end),
            },
            _ = tick.tick(), if connected => run.poll_tracks(last_at_ms.max(clock.elapsed().as_millis() as u64))?,
            () = &mut shutdown, if connected => {
                connector.leave().await;
                connected = false;
                run.finish_all()?;
            }
        }
        run.dispatch();
        run.publish_segments().await?;
        if !connected && run.transcriber.pending_finals() == 0 {
            break;
        }
    }
    if let Some(at_ms) = run.ended_at_ms {
        run.emit(EventBody::MeetingEnded { at_ms }).await?;
    }
    run.status(BotState::Left, None, last_at_ms).await?;
    run.sink.flush().await?;
    Ok(run.report)
}

fn event_time(event: &ConnectorEvent) -> u64 {
    match event {
        ConnectorEvent::Joined { at_ms, .. }
        | ConnectorEvent::Media { at_ms, .. }
        | ConnectorEvent::Quiet { at_ms, .. }
        | ConnectorEvent::Left { at_ms, .. }
        | ConnectorEvent::Capture { at_ms, .. }
        | ConnectorEvent::Ended { at_ms, .. } => *at_ms,
    }
}

impl<S: EventSink> Run<'_, S> {
    async fn emit(&mut self, body: EventBody) -> Result<(), SinkError> {
        let body = body.shifted(self.meeting, self.config.clock_offset_ms);
        let event = Event::new(self.meeting, self.seq, body);
        self.seq += 1;
        self.sink.publish(event).await
    }

    async fn status(
        &mut self,
        state: BotState,
        reason: Option<String>,
        at_ms: u64,
    ) -> Result<(), SinkError> {
        self.emit(EventBody::BotStatus {
            state,
            reason,
            at_ms,
        })
        .await
    }

    fn handle(&mut self, event: ConnectorEvent) -> Result<(), PipelineError> {
        match event {
            ConnectorEvent::Joined { speaker, at_ms } => {
                let stream = self.transcriber.add_speaker(speaker.clone());
                self.tracks.entry(speaker.key.clone()).or_insert(Track {
                    stream,
                    decoder: None,
                    last_at_ms: at_ms,
                });
                self.pending_bodies
                    .push(EventBody::ParticipantJoined { speaker, at_ms });
            }
            ConnectorEvent::Media { key, at_ms, media } => self.media(key, at_ms, media)?,
            ConnectorEvent::Quiet { key, .. } => {
                // The track stays; its next audio starts a new timeline and utterance.
                if let Some(mut track) = self.tracks.remove(&key) {
                    self.finish_track(&mut track)?;
                    self.tracks.insert(key, track);
                }
            }
            ConnectorEvent::Left { key, at_ms, .. } => {
                if let Some(mut track) = self.tracks.remove(&key) {
                    self.finish_track(&mut track)?;
                    if let Some(speaker) = self.transcriber.speaker(track.stream).cloned() {
                        self.pending_bodies
                            .push(EventBody::ParticipantLeft { speaker, at_ms });
                    }
                }
            }
            ConnectorEvent::Capture {
                healthy,
                at_ms,
                reason,
            } => {
                let state = if healthy {
                    BotState::InMeeting
                } else {
                    BotState::CaptureStalled
                };
                self.pending_bodies.push(EventBody::BotStatus {
                    state,
                    reason,
                    at_ms,
                });
            }
            ConnectorEvent::Ended { at_ms, .. } => {
                self.finish_all()?;
                self.ended_at_ms = Some(at_ms);
            }
        }
        Ok(())
    }

    fn media(&mut self, key: SpeakerKey, at_ms: u64, media: Media) -> Result<(), PipelineError> {
        let Some(track) = self.tracks.get_mut(&key) else {
            // Media before Joined: register the speaker under its key.
            let speaker = Speaker {
                name: key.to_string(),
                key: key.clone(),
            };
            let stream = self.transcriber.add_speaker(speaker.clone());
            self.tracks.insert(
                key.clone(),
                Track {
                    stream,
                    decoder: None,
                    last_at_ms: at_ms,
                },
            );
            self.pending_bodies
                .push(EventBody::ParticipantJoined { speaker, at_ms });
            return self.media(key, at_ms, media);
        };
        if !self.in_meeting {
            self.in_meeting = true;
            self.pending_bodies.push(EventBody::BotStatus {
                state: BotState::InMeeting,
                reason: None,
                at_ms,
            });
        }
        track.last_at_ms = at_ms;
        match (media, &mut track.decoder) {
            (Media::Rtp(packet), Some(TrackDecoder::Rtp(dec))) => {
                dec.push(packet, at_ms);
                dec.poll(at_ms, &mut self.chunks)?;
            }
            (Media::Rtp(packet), slot) => {
                let mut dec = Box::new(RtpOpusTrack::new(self.config.jitter)?);
                dec.push(packet, at_ms);
                dec.poll(at_ms, &mut self.chunks)?;
                *slot = Some(TrackDecoder::Rtp(dec));
            }
            (Media::Pcm { rate, pos, samples }, slot) => {
                let rebuild = !matches!(slot, Some(TrackDecoder::Pcm(p)) if p.rate() == rate);
                if rebuild {
                    *slot = Some(TrackDecoder::Pcm(Box::new(PcmTrack::new(rate)?)));
                }
                if let Some(TrackDecoder::Pcm(dec)) = slot {
                    dec.push(pos, &samples, &mut self.chunks)?;
                }
            }
        }
        let stream = track.stream;
        self.feed(stream);
        Ok(())
    }

    fn feed(&mut self, stream: usize) {
        for chunk in self.chunks.drain(..) {
            self.audio_samples += chunk.samples.len() as u64;
            self.transcriber.push_audio(stream, &chunk);
        }
        self.report.audio_ms = samples_to_ms(self.audio_samples);
    }

    /// Lets reorder buffers declare losses when packets stop coming.
    fn poll_tracks(&mut self, now_ms: u64) -> Result<(), PipelineError> {
        let mut fed = Vec::new();
        for track in self.tracks.values_mut() {
            if let Some(TrackDecoder::Rtp(dec)) = &mut track.decoder {
                dec.poll(now_ms, &mut self.chunks)?;
                if !self.chunks.is_empty() {
                    fed.push((track.stream, std::mem::take(&mut self.chunks)));
                }
            }
        }
        for (stream, chunks) in fed {
            self.chunks = chunks;
            self.feed(stream);
        }
        Ok(())
    }

    fn finish_track(&mut self, track: &mut Track) -> Result<(), PipelineError> {
        match track.decoder.take() {
            Some(TrackDecoder::Rtp(mut dec)) => {
                dec.finish(&mut self.chunks)?;
                self.report.corrupt_packets += dec.corrupt_packets();
                self.report.lost_packets += dec.jitter_stats().lost;
            }
            Some(TrackDecoder::Pcm(mut dec)) => dec.finish(&mut self.chunks)?,
            None => {}
        }
        self.feed(track.stream);
        self.transcriber.finish_stream(track.stream);
        Ok(())
    }

    fn finish_all(&mut self) -> Result<(), PipelineError> {
        let keys: Vec<SpeakerKey> = self.tracks.keys().cloned().collect();
        for key in keys {
            if let Some(mut track) = self.tracks.remove(&key) {
                self.finish_track(&mut track)?;
            }
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        let now = Instant::now();
        while let Some(request) = self.transcriber.poll_request() {
            let due = self.config.deadlines.map(|d| {
                // The speech ended this long ago: the stream has been heard past it.
                let heard = self.transcriber.position(request.stream);
                let age = samples_to_ms(heard.unwrap_or(request.end).saturating_sub(request.end));
                let after = match request.purpose {
                    Purpose::Partial => d.partial_after,
                    _ => d.final_after,
                };
                (now + after)
                    .checked_sub(Duration::from_millis(age))
                    .unwrap_or(now)
            });
            self.pool.submit(Job {
                stream: self.block + request.stream as u64,
                request,
                due,
                reply: self.reply.clone(),
            });
        }
    }

    async fn publish_segments(&mut self) -> Result<(), SinkError> {
        for body in std::mem::take(&mut self.pending_bodies) {
            self.emit(body).await?;
        }
        while let Some(segment) = self.transcriber.poll_segment() {
            if segment.is_final {
                self.report.finals += 1;
            } else {
                self.report.partials += 1;
            }
            self.emit(EventBody::Segment(segment)).await?;
        }
        self.report.speakers = self.report.speakers.max(self.transcriber.speakers());
        Ok(())
    }
}
