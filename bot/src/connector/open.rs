//! Opening a connector from a meeting link: `replay:FOLDER`, `janus+ws(s)://…`,
//! `https://meet.google.com/…` or `zoom-rtms:…`.

use super::janus::{JanusConfig, JanusConnector, JanusUrl};
use super::livekit::{self, LiveKitConfig};
use super::meet::oauth::GoogleCredentials;
use super::meet::{self, MeetConfig};
use super::replay::{Pace, ReplayConnector};
use super::session::SessionHandle;
use super::zoom_rtms::{self, RtmsUrl, ZoomCredentials};
use super::{ConnectorError, ConnectorEvent, MeetingConnector};
use crate::recorder::{Recorder, RecordingStore};
use clap::Args;
use parley_shared::MeetingId;
use std::path::PathBuf;
use std::time::Duration;

/// Connector settings every way of running a bot shares.
#[derive(Debug, Clone, Args)]
pub struct ConnectorArgs {
    /// Local UDP addresses for WebRTC (comma-separated); 0.0.0.0:0 uses every non-loopback
    /// interface.
    #[arg(
        long,
        env = "PARLEY_ICE_BIND",
        value_delimiter = ',',
        default_value = "0.0.0.0:0"
    )]
    pub ice_bind: Vec<String>,
    /// Leave a live meeting after nobody else has been in it for this many seconds.
    #[arg(long, env = "PARLEY_ALONE_TIMEOUT_SECS", default_value_t = 120)]
    pub alone_timeout_secs: u64,
    /// Speed of replay: meetings (1 = real time, as live; 0 = as fast as possible).
    #[arg(long, env = "PARLEY_REPLAY_SPEED", default_value_t = 1.0)]
    pub replay_speed: f64,
    /// Record each speaker's audio (Ogg/Opus, as received) to this folder or s3://BUCKET/PREFIX;
    /// "off" disables recording.
    #[arg(long, env = "PARLEY_RECORDINGS")]
    pub record_to: Option<String>,
    /// The Zoom app's client id, for Zoom meetings (RTMS).
    #[arg(long, env = "ZOOM_CLIENT_ID", default_value = "")]
    pub zoom_client_id: String,
    /// The Zoom app's client secret, which signs the RTMS handshake.
    #[arg(
        long,
        env = "ZOOM_CLIENT_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub zoom_client_secret: String,
    /// The OAuth client id of the Google Cloud project enrolled in the Meet Media API preview.
    #[arg(long, env = "GOOGLE_CLIENT_ID", default_value = "")]
    pub google_client_id: String,
    /// The OAuth client's secret.
    #[arg(
        long,
        env = "GOOGLE_CLIENT_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub google_client_secret: String,
    /// A refresh token of the Google account the bot acts for, granted the
    /// meetings.conference.media.audio.readonly scope.
    #[arg(
        long,
        env = "GOOGLE_REFRESH_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub google_refresh_token: String,
    /// Google's OAuth token endpoint.
    #[arg(
        long,
        env = "GOOGLE_TOKEN_URL",
        default_value = "https://oauth2.googleapis.com/token"
    )]
    pub google_token_url: String,
    /// The Meet REST API.
    #[arg(
        long,
        env = "PARLEY_MEET_API_URL",
        default_value = "https://meet.googleapis.com"
    )]
    pub meet_api_url: String,
    /// The LiveKit deployment's API key, for LiveKit rooms (the bot mints its join token).
    #[arg(long, env = "LIVEKIT_API_KEY", default_value = "")]
    pub livekit_api_key: String,
    /// The LiveKit deployment's API secret, which signs the bot's join token.
    #[arg(
        long,
        env = "LIVEKIT_API_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub livekit_api_secret: String,
    /// Host names (or addresses) of the deployment's LiveKit servers, comma-separated: the bot
    /// mints join tokens only for these, so a link cannot send one elsewhere.
    #[arg(long, env = "PARLEY_LIVEKIT_SERVERS", value_delimiter = ',')]
    pub livekit_servers: Vec<String>,
    /// STUN servers for platforms reached over the internet (Meet), comma-separated; empty for
    /// none.
    #[arg(
        long,
        env = "PARLEY_STUN",
        value_delimiter = ',',
        default_value = "stun:stun.l.google.com:19302"
    )]
    pub stun: Vec<String>,
}

impl Default for ConnectorArgs {
    fn default() -> Self {
        crate::cli::flag_defaults()
    }
}

#[derive(Debug)]
enum Kind {
    Replay(ReplayConnector),
    Janus(Box<JanusConnector>),
    /// Meet, LiveKit and Zoom: a session task of the connector's own.
    Session(SessionHandle),
}

/// Any connector this build has, recording what it receives when asked to.
#[derive(Debug)]
pub struct AnyConnector {
    kind: Kind,
    recorder: Option<Recorder>,
    /// The connector's last word (end or error), held while recordings upload, so a cancelled
    /// `next_event` (the pipeline selects over it) loses nothing.
    last: Option<Result<Option<ConnectorEvent>, ConnectorError>>,
}

impl AnyConnector {
    /// Joins the meeting at `url`.
    /// `clock_offset_ms`: how long the meeting has been recorded by earlier bots (zero for the
    /// first), so a replacement continues their recordings and a replay resumes where a live
    /// meeting would be.
    pub async fn open(
        url: &str,
        args: &ConnectorArgs,
        meeting: MeetingId,
        clock_offset_ms: u64,
    ) -> Result<Self, ConnectorError> {
        let recorder = match args.record_to.as_deref() {
            None | Some("off") => None,
            Some(location) => Some(Recorder::new(
                RecordingStore::open(location).map_err(ConnectorError::Setup)?,
                meeting,
                u32::try_from(clock_offset_ms / 1000).unwrap_or(u32::MAX),
            )),
        };
        Ok(Self {
            kind: Self::kind(url, args, meeting, clock_offset_ms).await?,
            recorder,
            last: None,
        })
    }

    async fn kind(
        url: &str,
        args: &ConnectorArgs,
        meeting: MeetingId,
        clock_offset_ms: u64,
    ) -> Result<Kind, ConnectorError> {
        if let Some(folder) = url.strip_prefix("replay:") {
            let tracks = ReplayConnector::discover(&[PathBuf::from(folder)])?;
            let pace = if args.replay_speed > 0.0 {
                Pace::Speed(args.replay_speed)
            } else {
                Pace::Unpaced
            };
            // A live meeting goes on while no bot is in it: a replay joined late starts there.
            let skip_ms = if args.replay_speed > 0.0 {
                clock_offset_ms
            } else {
                0
            };
            return Ok(Kind::Replay(ReplayConnector::start(tracks, pace, skip_ms)?));
        }
        if url.starts_with("janus+ws://") || url.starts_with("janus+wss://") {
            let janus = JanusUrl::parse(url).map_err(ConnectorError::Setup)?;
            let config = JanusConfig {
                udp_bind: args.ice_bind.clone(),
                alone_timeout: Duration::from_secs(args.alone_timeout_secs),
                ..JanusConfig::default()
            };
            return Ok(Kind::Janus(Box::new(
                JanusConnector::join(janus, config).await?,
            )));
        }
        if url.starts_with("https://meet.google.com/") {
            let config = MeetConfig {
                credentials: GoogleCredentials {
                    client_id: args.google_client_id.clone(),
                    client_secret: args.google_client_secret.clone(),
                    refresh_token: args.google_refresh_token.clone(),
                    token_url: args.google_token_url.clone(),
                },
                api_url: args.meet_api_url.clone(),
                udp_bind: args.ice_bind.clone(),
                stun: args
                    .stun
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect(),
                wait_for_start: Duration::from_secs(600),
                alone_timeout: Duration::from_secs(args.alone_timeout_secs),
            };
            return Ok(Kind::Session(meet::join(url, config).await?));
        }
        if url.starts_with("livekit+ws://") || url.starts_with("livekit+wss://") {
            let config = LiveKitConfig {
                api_key: args.livekit_api_key.clone(),
                api_secret: args.livekit_api_secret.clone(),
                servers: args.livekit_servers.clone(),
                identity: format!("parley-{meeting}"),
                name: "Parley notes".to_owned(),
                udp_bind: args.ice_bind.clone(),
                alone_timeout: Duration::from_secs(args.alone_timeout_secs),
                stall_after: Duration::from_secs(30),
            };
            return Ok(Kind::Session(livekit::join(url, config).await?));
        }
        if url.starts_with("zoom-rtms:") {
            let rtms = RtmsUrl::parse(url).map_err(ConnectorError::Setup)?;
            let creds = ZoomCredentials {
                client_id: args.zoom_client_id.clone(),
                client_secret: args.zoom_client_secret.clone(),
            };
            return Ok(Kind::Session(zoom_rtms::join(rtms, &creds).await?));
        }
        Err(ConnectorError::Setup(format!(
            "no connector for this link in this build (replay:, janus+ws://, livekit+wss://, https://meet.google.com/ and zoom-rtms: are supported): {url}"
        )))
    }
}

impl MeetingConnector for AnyConnector {
    async fn next_event(&mut self) -> Result<Option<ConnectorEvent>, ConnectorError> {
        let event = match self.last.take() {
            Some(last) => last,
            None => match &mut self.kind {
                Kind::Replay(c) => c.next_event().await,
                Kind::Janus(c) => c.next_event().await,
                Kind::Session(c) => c.next_event().await,
            },
        };
        let Some(recorder) = &mut self.recorder else {
            return event;
        };
        if let Ok(Some(e)) = &event {
            recorder.observe(e);
            return event;
        }
        self.last = Some(event);
        recorder.finish().await;
        self.last.take().unwrap_or(Ok(None))
    }

    async fn post_chat(&mut self, text: &str) -> Result<bool, ConnectorError> {
        match &mut self.kind {
            Kind::Replay(c) => c.post_chat(text).await,
            Kind::Janus(c) => c.post_chat(text).await,
            Kind::Session(c) => c.post_chat(text).await,
        }
    }

    fn real_time(&self) -> bool {
        match &self.kind {
            Kind::Replay(c) => c.real_time(),
            Kind::Janus(c) => c.real_time(),
            Kind::Session(c) => c.real_time(),
        }
    }

    async fn leave(&mut self) {
        match &mut self.kind {
            Kind::Replay(c) => c.leave().await,
            Kind::Janus(c) => c.leave().await,
            Kind::Session(c) => c.leave().await,
        }
        if let Some(recorder) = &mut self.recorder {
            recorder.finish().await;
        }
    }
}
