//! Opening the connector of a meeting link's kind.

use super::config::ConnectorConfig;
use super::janus::{self, JanusConfig};
use super::livekit::{self, LiveKitConfig};
use super::meet::oauth::GoogleCredentials;
use super::meet::{self, MeetConfig};
use super::replay::{self, Pace, ReplayConfig};
use super::session::SessionHandle;
use super::zoom_rtms::{self, ZoomCredentials};
use super::{ConnectorError, ConnectorEvent, MeetingConnector};
use crate::connector::recorder::{Recorder, RecordingStore};
use parley_shared::{MeetingId, MeetingLink};
use std::path::PathBuf;
use std::time::Duration;

/// Any connector this build has, recording what it receives when asked to.
#[derive(Debug)]
pub struct AnyConnector {
    session: SessionHandle,
    recorder: Option<Recorder>,
    /// The connector's last word (end or error), held while recordings upload, so a cancelled
    /// `next_event` (the pipeline selects over it) loses nothing.
    last: Option<Result<Option<ConnectorEvent>, ConnectorError>>,
}

impl AnyConnector {
    /// Joins the meeting at `link`.
    /// `clock_offset_ms`: how long the meeting has been recorded by earlier bots (zero for the
    /// first), so a replacement continues their recordings and a replay resumes where a live
    /// meeting would be.
    pub async fn open(
        link: &MeetingLink,
        config: &ConnectorConfig,
        meeting: MeetingId,
        clock_offset_ms: u64,
    ) -> Result<Self, ConnectorError> {
        let recorder = match config.record_to.as_deref() {
            None => None,
            Some(location) => Some(Recorder::new(
                RecordingStore::open(location).map_err(ConnectorError::Setup)?,
                meeting,
                u32::try_from(clock_offset_ms / 1000).unwrap_or(u32::MAX),
            )),
        };
        Ok(Self {
            session: join(link, config, meeting, clock_offset_ms).await?,
            recorder,
            last: None,
        })
    }
}

/// Joins `link` with the connector of its kind; every kind answers with a session handle.
async fn join(
    link: &MeetingLink,
    config: &ConnectorConfig,
    meeting: MeetingId,
    clock_offset_ms: u64,
) -> Result<SessionHandle, ConnectorError> {
    let alone_timeout = Duration::from_secs(config.alone_timeout_secs);
    Ok(match link.clone() {
        MeetingLink::Replay { folder } => {
            let (pace, skip_ms) = if config.replay_speed > 0.0 {
                // A live meeting goes on while no bot is in it: a replay joined late starts
                // there.
                (Pace::Speed(config.replay_speed), clock_offset_ms)
            } else {
                (Pace::Unpaced, 0)
            };
            replay::join(PathBuf::from(folder), ReplayConfig { pace, skip_ms }).await?
        }
        MeetingLink::Janus(janus) => {
            let janus_config = JanusConfig {
                udp_bind: config.ice_bind.clone(),
                alone_timeout,
                ..JanusConfig::default()
            };
            janus::join(janus, janus_config).await?
        }
        MeetingLink::Meet(meet_link) => {
            let google = &config.google;
            let meet_config = MeetConfig {
                credentials: GoogleCredentials {
                    client_id: google.client_id.clone(),
                    client_secret: google.client_secret.expose().to_owned(),
                    refresh_token: google.refresh_token.expose().to_owned(),
                    token_url: google.token_url.clone(),
                },
                api_url: google.meet_api_url.clone(),
                udp_bind: config.ice_bind.clone(),
                stun: config
                    .stun
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect(),
                wait_for_start: Duration::from_secs(600),
                alone_timeout,
            };
            meet::join(meet_link, meet_config).await?
        }
        MeetingLink::LiveKit(livekit_link) => {
            let livekit_config = LiveKitConfig {
                api_key: config.livekit.api_key.clone(),
                api_secret: config.livekit.api_secret.expose().to_owned(),
                servers: config.livekit.servers.clone(),
                identity: format!("parley-{meeting}"),
                name: "Parley notes".to_owned(),
                udp_bind: config.ice_bind.clone(),
                alone_timeout,
                stall_after: Duration::from_secs(30),
            };
            livekit::join(livekit_link, livekit_config).await?
        }
        MeetingLink::ZoomRtms(rtms) => {
            let creds = ZoomCredentials {
                client_id: config.zoom.client_id.clone(),
                client_secret: config.zoom.client_secret.expose().to_owned(),
            };
            zoom_rtms::join(rtms, creds).await?
        }
    })
}

impl MeetingConnector for AnyConnector {
    async fn next_event(&mut self) -> Result<Option<ConnectorEvent>, ConnectorError> {
        let event = match self.last.take() {
            Some(last) => last,
            None => self.session.next_event().await,
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
        self.session.post_chat(text).await
    }

    fn real_time(&self) -> bool {
        self.session.real_time()
    }

    async fn leave(&mut self) {
        self.session.leave().await;
        if let Some(recorder) = &mut self.recorder {
            recorder.finish().await;
        }
    }
}
