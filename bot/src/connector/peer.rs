//! A WebRTC peer connection (webrtc-rs) with the settings every peer here shares: the connectors
//! that meet an SFU over WebRTC answer its offer (Janus) or make the offer (Meet), and take each
//! received track; the platform simulators in the tests answer as the SFU, and take the data
//! channels the bot opens.

use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
pub use rtc::peer_connection::configuration::RTCIceServer;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

struct Handler {
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
    /// Only a peer that reads the far side's data channels keeps them: one kept unread would
    /// queue every message sent on it.
    channels: Option<mpsc::Sender<Arc<dyn DataChannel>>>,
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "media connection state");
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track).await;
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        if let Some(channels) = &self.channels {
            let _ = channels.send(dc).await;
        }
    }
}

pub enum PeerEvent {
    Track(Arc<dyn TrackRemote>),
    Failed,
}

pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    tracks: mpsc::Receiver<Arc<dyn TrackRemote>>,
    channels: mpsc::Receiver<Arc<dyn DataChannel>>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathered: watch::Receiver<bool>,
}

impl Peer {
    /// A peer gathering candidates on `udp_bind`, with ICE servers (STUN for a server-reflexive
    /// candidate when the far side is on the internet, TURN to relay through strict NATs).
    pub async fn new(udp_bind: &[String], ice_servers: Vec<RTCIceServer>) -> Result<Self, String> {
        Self::build(udp_bind, ice_servers, false).await
    }

    /// A peer that also hands out the data channels the far side opens
    /// ([`next_data_channel`](Self::next_data_channel)), which must then be read.
    pub async fn taking_data_channels(
        udp_bind: &[String],
        ice_servers: Vec<RTCIceServer>,
    ) -> Result<Self, String> {
        Self::build(udp_bind, ice_servers, true).await
    }

    async fn build(
        udp_bind: &[String],
        ice_servers: Vec<RTCIceServer>,
        take_channels: bool,
    ) -> Result<Self, String> {
        let mut media = MediaEngine::default();
        media
            .register_default_codecs()
            .map_err(|e| format!("codecs: {e}"))?;
        let registry = register_default_interceptors(Registry::new(), &mut media)
            .map_err(|e| format!("interceptors: {e}"))?;
        // mDNS off: its multicast socket fails in network namespaces and Janus gives plain IPs.
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let (tracks_tx, tracks) = mpsc::channel(64);
        let (channels_tx, channels) = mpsc::channel(16);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (gathered_tx, gathered) = watch::channel(false);
        let handler = Arc::new(Handler {
            tracks: tracks_tx,
            channels: take_channels.then_some(channels_tx),
            state: state_tx,
            gathered: gathered_tx,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .build(),
            )
            .with_media_engine(media)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(udp_bind.to_vec())
            .build()
            .await
            .map_err(|e| format!("cannot create the peer connection: {e}"))?;
        Ok(Self {
            pc: Arc::new(pc),
            tracks,
            channels,
            state,
            gathered,
        })
    }

    pub fn connection(&self) -> Arc<dyn PeerConnection> {
        Arc::clone(&self.pc)
    }

    /// Answers the SFU's offer; the answer carries every candidate (no trickle).
    pub async fn answer(&mut self, offer_sdp: &str) -> Result<String, String> {
        let offer = RTCSessionDescription::offer(offer_sdp.to_owned())
            .map_err(|e| format!("malformed SDP offer: {e}"))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| format!("cannot apply the SDP offer: {e}"))?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| format!("cannot create an answer: {e}"))?;
        self.set_local(answer).await
    }

    /// Makes an offer for the transceivers and data channels already added; it carries every
    /// candidate (no trickle).
    pub async fn offer(&mut self) -> Result<String, String> {
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(|e| format!("cannot create an offer: {e}"))?;
        self.set_local(offer).await
    }

    /// Applies the far side's answer to our offer.
    pub async fn accept(&self, answer_sdp: &str) -> Result<(), String> {
        let answer = RTCSessionDescription::answer(answer_sdp.to_owned())
            .map_err(|e| format!("malformed SDP answer: {e}"))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| format!("cannot apply the SDP answer: {e}"))
    }

    async fn set_local(&mut self, desc: RTCSessionDescription) -> Result<String, String> {
        self.pc
            .set_local_description(desc)
            .await
            .map_err(|e| format!("cannot apply the local description: {e}"))?;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gathered.wait_for(|g| *g)).await;
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| "no local description".to_owned())
    }

    /// The next data channel the far side opened.
    pub async fn next_data_channel(&mut self) -> Option<Arc<dyn DataChannel>> {
        self.channels.recv().await
    }

    /// Waits until ICE and DTLS are up, so that media sent now arrives: `false` if the
    /// connection fails or closes first.
    pub async fn connected(&mut self) -> bool {
        self.state
            .wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            })
            .await
            .is_ok_and(|s| *s == RTCPeerConnectionState::Connected)
    }

    /// The next received track, or the connection failing.
    pub async fn next(&mut self) -> PeerEvent {
        let state = &mut self.state;
        let failed = async move {
            state
                .wait_for(|s| *s == RTCPeerConnectionState::Failed)
                .await
                .is_ok()
        };
        tokio::select! {
            Some(track) = self.tracks.recv() => PeerEvent::Track(track),
            true = failed => PeerEvent::Failed,
            else => std::future::pending().await,
        }
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}
