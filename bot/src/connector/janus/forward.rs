//! Forwarding of each received audio track's RTP packets to the pipeline under the speaker its
//! mid currently maps to.

use super::Shared;
use crate::audio::jitter::RtpPacket;
use crate::connector::Media;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;

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
            let media = Media::Rtp(RtpPacket {
                seq: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                payload: packet.payload.to_vec(),
            });
            shared.media(speaker, media).await;
        }
    });
}
