//! Opening a connector from a meeting link: `replay:FOLDER` or `janus+ws(s)://…`.

use super::janus::{JanusConfig, JanusConnector, JanusUrl};
use super::replay::{Pace, ReplayConnector};
use super::{ConnectorError, ConnectorEvent, MeetingConnector};
use clap::Args;
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
}

impl Default for ConnectorArgs {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: ConnectorArgs,
        }
        <Defaults as clap::Parser>::parse_from(["parley"]).args
    }
}

/// Any connector this build has.
#[derive(Debug)]
pub enum AnyConnector {
    Replay(ReplayConnector),
    Janus(Box<JanusConnector>),
}

impl AnyConnector {
    /// Joins the meeting at `url`.
    pub async fn open(url: &str, args: &ConnectorArgs) -> Result<Self, ConnectorError> {
        if let Some(folder) = url.strip_prefix("replay:") {
            let tracks = ReplayConnector::discover(&[PathBuf::from(folder)])?;
            let pace = if args.replay_speed > 0.0 {
                Pace::Speed(args.replay_speed)
            } else {
                Pace::Unpaced
            };
            return Ok(Self::Replay(ReplayConnector::start(tracks, pace)?));
        }
        if url.starts_with("janus+ws://") || url.starts_with("janus+wss://") {
            let janus = JanusUrl::parse(url).map_err(ConnectorError::Setup)?;
            let config = JanusConfig {
                udp_bind: args.ice_bind.clone(),
                alone_timeout: Duration::from_secs(args.alone_timeout_secs),
                ..JanusConfig::default()
            };
            return Ok(Self::Janus(Box::new(
                JanusConnector::join(janus, config).await?,
            )));
        }
        Err(ConnectorError::Setup(format!(
            "no connector for this link in this build (replay: and janus+ws:// are supported): {url}"
        )))
    }
}

impl MeetingConnector for AnyConnector {
    async fn next_event(&mut self) -> Result<Option<ConnectorEvent>, ConnectorError> {
        match self {
            Self::Replay(c) => c.next_event().await,
            Self::Janus(c) => c.next_event().await,
        }
    }

    async fn leave(&mut self) {
        match self {
            Self::Replay(c) => c.leave().await,
            Self::Janus(c) => c.leave().await,
        }
    }
}
