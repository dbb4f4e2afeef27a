//! How a bot meets a meeting: the [`MeetingConnector`] trait every platform implements, and the
//! events it yields. Connectors deliver media as they receive it (RTP Opus, or PCM for platforms
//! that send raw audio); the pipeline does the rest the same way for all of them.

mod capture;
pub mod config;
pub mod janus;
pub mod livekit;
pub mod meet;
pub mod open;
pub mod peer;
pub mod recorder;
pub mod replay;
pub mod session;
pub mod zoom_rtms;

use crate::audio::jitter::RtpPacket;
use parley_shared::{Speaker, SpeakerKey};

/// Media of one participant.
#[derive(Debug, Clone, PartialEq)]
pub enum Media {
    /// An Opus RTP packet.
    Rtp(RtpPacket),
    /// PCM at `rate`, starting `pos` samples (at that rate) after the meeting clock's zero.
    Pcm {
        rate: u32,
        pos: u64,
        samples: Vec<f32>,
    },
}

/// What happens in a meeting, as the bot sees it. `at_ms` is the bot's meeting clock: milliseconds
/// since the connector started.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectorEvent {
    Joined {
        speaker: Speaker,
        at_ms: u64,
    },
    Media {
        key: SpeakerKey,
        at_ms: u64,
        media: Media,
    },
    /// The participant's audio stopped while they stay: a platform that forwards only the
    /// loudest speakers gave their stream to someone else. Whatever they were saying is final.
    Quiet {
        key: SpeakerKey,
        at_ms: u64,
    },
    /// The participant's track ended (left, unpublished, or the file ended).
    Left {
        key: SpeakerKey,
        at_ms: u64,
        reason: Option<String>,
    },
    /// Whether audio is arriving from people the platform says are talking. `healthy: false`
    /// carries the reason.
    Capture {
        healthy: bool,
        at_ms: u64,
        reason: Option<String>,
    },
    /// The meeting is over for the bot.
    Ended {
        at_ms: u64,
        reason: String,
    },
}

/// Why a connector could not join or stay. The worker acts on the kind: a permanent refusal
/// fails the meeting with its words; a transient one is tried again, then handed to another bot.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Permanent: the link, the credentials or the platform said no, and asking again gets the
    /// same answer.
    #[error("{0}")]
    Setup(String),
    /// Transient: the platform could not be reached or did not answer (network, DNS, timeouts,
    /// server errors); a later try may succeed.
    #[error("{0}")]
    Unreachable(String),
    /// Transient: the connection broke once in the meeting.
    #[error("connection lost: {0}")]
    Lost(String),
}

impl ConnectorError {
    /// Whether trying again (or another bot) may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Setup(_))
    }
}

/// A live (or replayed) meeting. `next_event` returns `Ok(None)` once nothing more will come.
pub trait MeetingConnector: Send {
    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<ConnectorEvent>, ConnectorError>> + Send;
    /// Leaves the meeting; later `next_event` calls return `Ok(None)`.
    fn leave(&mut self) -> impl Future<Output = ()> + Send;
    /// Posts `text` to the meeting's chat, as the bot. `Ok(false)` where the platform has no chat
    /// a bot can write to (Janus VideoRoom, replays).
    fn post_chat(
        &mut self,
        text: &str,
    ) -> impl Future<Output = Result<bool, ConnectorError>> + Send {
        let _ = text;
        std::future::ready(Ok(false))
    }
    /// Whether media arrives as it is spoken: only then do decodes have deadlines (a replay
    /// read faster or slower than real time has none).
    fn real_time(&self) -> bool {
        true
    }
}
