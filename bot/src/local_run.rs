//! Runs a replay meeting in-process and collects its events with the time each was published:
//! what `parley transcribe`, `parley bench asr`, the demo and the tests use.

use crate::asr::pool::AsrPool;
use crate::connector::replay::{Pace, ReplayConnector, ReplayTrack};
use crate::connector::{ConnectorError, ConnectorEvent, MeetingConnector};
use crate::pipeline::{PipelineConfig, PipelineError, RunReport, run_meeting};
use crate::sink::channel::ChannelSink;
use parley_shared::transcript::{Transcript, TranscriptLine};
use parley_shared::{Event, EventBody, MeetingId, Segment};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// An event and when it was published, relative to the meeting clock's zero.
#[derive(Debug, Clone)]
pub struct TimedEvent {
    pub event: Event,
    pub at: Duration,
}

#[derive(Debug)]
pub struct LocalRun {
    pub events: Vec<TimedEvent>,
    pub report: RunReport,
    pub wall: Duration,
    pub duration_ms: u64,
}

impl LocalRun {
    /// The segments, partial and final, in the order they were published.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.published().map(|(_, s)| s)
    }

    /// The segments with when each was published, in seconds on the meeting clock.
    pub fn published(&self) -> impl Iterator<Item = (f64, &Segment)> {
        self.events.iter().filter_map(|e| match &e.event.body {
            EventBody::Segment(s) => Some((e.at.as_secs_f64(), s)),
            _ => None,
        })
    }

    /// The final segments, in the order they were published.
    pub fn finals(&self) -> impl Iterator<Item = &Segment> {
        self.segments().filter(|s| s.is_final)
    }

    /// The final segments with words in them as a transcript, with display names.
    pub fn transcript(&self) -> Transcript {
        Transcript::from_lines(
            self.finals()
                .filter(|s| !s.text.is_empty())
                .map(|s| TranscriptLine {
                    speaker: s.speaker.name.clone(),
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    text: s.text.clone(),
                })
                .collect(),
        )
    }
}

/// Tracks how far into the audio the replay has got, for progress bars.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    pub fn position_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Watched {
    inner: ReplayConnector,
    progress: Progress,
}

impl MeetingConnector for Watched {
    async fn next_event(&mut self) -> Result<Option<ConnectorEvent>, ConnectorError> {
        let event = self.inner.next_event().await?;
        if let Some(ConnectorEvent::Media { at_ms, .. }) = &event {
            self.progress.0.fetch_max(*at_ms, Ordering::Relaxed);
        }
        Ok(event)
    }

    async fn leave(&mut self) {
        self.inner.leave().await;
    }

    fn real_time(&self) -> bool {
        self.inner.real_time()
    }
}

/// Replays `tracks` through the live pipeline and waits for every final. Each event is also sent
/// to `tap`, when given, as it is published.
pub async fn run_replay(
    tracks: Vec<ReplayTrack>,
    pool: &AsrPool,
    pace: Pace,
    config: PipelineConfig,
    progress: Progress,
    tap: Option<mpsc::UnboundedSender<TimedEvent>>,
) -> Result<LocalRun, PipelineError> {
    let meeting = MeetingId::new_random();
    let connector = ReplayConnector::start(tracks, pace, 0)?;
    let duration_ms = connector.duration_ms();
    let started = connector.started();
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            let timed = TimedEvent {
                event,
                at: started.elapsed(),
            };
            if let Some(tap) = &tap {
                // A closed tap only means nobody is watching any more.
                let _ = tap.send(timed.clone());
            }
            events.push(timed);
        }
        events
    });
    let watched = Watched {
        inner: connector,
        progress,
    };
    let report = run_meeting(
        meeting,
        watched,
        pool,
        config,
        ChannelSink::new(tx),
        std::future::pending(),
    )
    .await?;
    let wall = started.elapsed();
    let events = collector.await.unwrap_or_default();
    Ok(LocalRun {
        events,
        report,
        wall,
        duration_ms,
    })
}
