//! Connector settings every way of running a bot shares: plain data with real defaults; the
//! command line and environment only convert into it (`cli::flags`).

use parley_shared::Secret;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Local UDP addresses for WebRTC; 0.0.0.0:0 uses every non-loopback interface.
    pub ice_bind: Vec<String>,
    /// Leave a live meeting after nobody else has been in it this long.
    pub alone_timeout_secs: u64,
    /// Replay speed (1 = real time, as live; 0 = as fast as possible).
    pub replay_speed: f64,
    /// Where each speaker's audio is recorded (a folder or s3://BUCKET/PREFIX); `None` records
    /// nothing.
    pub record_to: Option<String>,
    /// STUN servers for platforms reached over the internet (Meet).
    pub stun: Vec<String>,
    pub zoom: ZoomApp,
    pub google: GoogleApp,
    pub livekit: LiveKitApp,
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        Self {
            ice_bind: vec!["0.0.0.0:0".to_owned()],
            alone_timeout_secs: 120,
            replay_speed: 1.0,
            record_to: None,
            stun: vec!["stun:stun.l.google.com:19302".to_owned()],
            zoom: ZoomApp::default(),
            google: GoogleApp::default(),
            livekit: LiveKitApp::default(),
        }
    }
}

/// The Zoom app whose credentials sign the RTMS handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoomApp {
    pub client_id: String,
    pub client_secret: Secret,
}

/// The Google Cloud project enrolled in the Meet Media API, and the account the bot acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GoogleApp {
    pub client_id: String,
    pub client_secret: Secret,
    /// Granted the meetings.conference.media.audio.readonly scope.
    pub refresh_token: Secret,
    pub token_url: String,
    pub meet_api_url: String,
}

impl Default for GoogleApp {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: Secret::default(),
            refresh_token: Secret::default(),
            token_url: "https://oauth2.googleapis.com/token".to_owned(),
            meet_api_url: "https://meet.googleapis.com".to_owned(),
        }
    }
}

/// The LiveKit deployment the bot mints its own join tokens for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveKitApp {
    pub api_key: String,
    pub api_secret: Secret,
    /// Host names (or addresses) of its servers: tokens are minted only for these, so a link
    /// cannot send one elsewhere.
    pub servers: Vec<String>,
}

impl ConnectorConfig {
    /// Settings no connector could run with.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.replay_speed.is_finite() && self.replay_speed >= 0.0) {
            return Err(format!(
                "the replay speed must be 0 or positive, not {}",
                self.replay_speed
            ));
        }
        for bind in &self.ice_bind {
            bind.parse::<std::net::SocketAddr>()
                .map_err(|_| format!("ICE bind address {bind:?} is not HOST:PORT"))?;
        }
        if self.alone_timeout_secs == 0 {
            return Err("the alone timeout must be at least 1 s".into());
        }
        if self
            .record_to
            .as_deref()
            .is_some_and(|to| to.trim().is_empty())
        {
            return Err(
                "the recordings location is empty (leave it unset to record nothing)".into(),
            );
        }
        if self.livekit.api_key.is_empty() != self.livekit.api_secret.is_empty() {
            return Err("a LiveKit API key needs its secret, and a secret its key".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(ConnectorConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut ConnectorConfig)| {
            let mut c = ConnectorConfig::default();
            f(&mut c);
            c.validate().expect_err("refused")
        };
        assert!(bad(|c| c.replay_speed = -1.0).contains("replay speed"));
        assert!(bad(|c| c.replay_speed = f64::NAN).contains("replay speed"));
        assert!(bad(|c| c.ice_bind = vec!["eth0".into()]).contains("eth0"));
        assert!(bad(|c| c.livekit.api_key = "key".into()).contains("LiveKit"));
    }
}
