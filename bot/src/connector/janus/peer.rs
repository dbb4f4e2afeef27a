//! The subscriber's WebRTC peer connection (webrtc-rs) and the forwarding of each received audio
//! track's RTP packets to the pipeline under the speaker its mid currently maps to.

use super::Shared;
use crate::audio::jitter::RtpPacket;
use crate::connector::{ConnectorEvent, Media};
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

struct Handler {
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
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
}

pub enum PeerEvent {
    Track(Arc<dyn TrackRemote>),
    Failed,
}

pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    tracks: mpsc::Receiver<Arc<dyn TrackRemote>>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathered: watch::Receiver<bool>,
}

impl Peer {
    pub async fn new(udp_bind: &[String]) -> Result<Self, String> {
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
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (gathered_tx, gathered) = watch::channel(false);
        let handler = Arc::new(Handler {
            tracks: tracks_tx,
            state: state_tx,
            gathered: gathered_tx,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
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
            state,
            gathered,
        })
    }

    pub fn connection(&self) -> Arc<dyn PeerConnection> {
        Arc::clone(&self.pc)
    }

    /// Answers Janus's offer; the answer carries every candidate (Janus is not sent trickles).
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
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|e| format!("cannot apply the answer: {e}"))?;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gathered.wait_for(|g| *g)).await;
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| "no local description".to_owned())
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

/// The mid of the transceiver receiving `track`, once negotiated.
async fn mid_of(pc: &Arc<dyn PeerConnection>, track: &Arc<dyn TrackRemote>) -> Option<String> {
    let id = track.track_id().await;
    for t in pc.get_transceivers().await {
        if let Ok(Some(receiver)) = t.receiver().await
            && receiver.track().track_id().await == id
        {
            return t.mid().await.ok().flatten();
        }
    }
    None
}

/// Forwards `track`'s packets until it ends.
pub fn forward(track: Arc<dyn TrackRemote>, pc: Arc<dyn PeerConnection>, shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut mid = mid_of(&pc, &track).await;
        let mut last_lookup = Instant::now();
        while let Some(event) = track.poll().await {
            let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                continue;
            };
            shared.stats.rtp_packets.fetch_add(1, Relaxed);
            if mid.is_none() && last_lookup.elapsed() > Duration::from_secs(1) {
                mid = mid_of(&pc, &track).await;
                last_lookup = Instant::now();
            }
            let speaker = mid.as_ref().and_then(|m| {
                shared
                    .mids
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(m)
                    .cloned()
            });
            let Some(speaker) = speaker else {
                shared.stats.unmapped_packets.fetch_add(1, Relaxed);
                continue;
            };
            shared.capture().audio(speaker.key.as_str(), Instant::now());
            shared.ensure_joined(&speaker).await;
            shared
                .send(ConnectorEvent::Media {
                    key: speaker.key,
                    at_ms: shared.at_ms(),
                    media: Media::Rtp(RtpPacket {
                        seq: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        payload: packet.payload.to_vec(),
                    }),
                })
                .await;
        }
    });
}
