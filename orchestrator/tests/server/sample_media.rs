//! The bundled sample meeting as the platform simulators send it: each speaker's audio (16 kHz
//! PCM, or their track's Opus packets by 20 ms frame), when they talk, and a webrtc-rs track that
//! sends Opus.

use parley_bot::audio::file::{AudioFile, FileFrame, read_16k};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

/// 20 ms at 16 kHz.
const FRAME: usize = 320;

pub fn sample_file(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sample")
        .join(file)
}

pub fn pcm_16k(file: &str) -> Vec<f32> {
    read_16k(&sample_file(file), 600_000).expect("sample audio")
}

/// The Opus packets of a sample track, each with its 20 ms frame index.
pub fn opus_packets(file: &str) -> Vec<(usize, Vec<u8>)> {
    let mut audio = AudioFile::open(&sample_file(file)).expect("sample audio");
    let mut packets = Vec::new();
    while let Some(frame) = audio.next_frame().expect("frame") {
        if let FileFrame::Opus { pos, payload } = frame {
            packets.push(((pos / 960) as usize, payload));
        }
    }
    packets
}

/// Per 20 ms frame of `pcm`: whether it is loud within `hold` frames either side, as a platform
/// that forwards only people talking would judge it.
pub fn talking(pcm: &[f32], hold: usize) -> Vec<bool> {
    let loud: Vec<bool> = pcm
        .chunks(FRAME)
        .map(|c| c.iter().map(|x| x * x).sum::<f32>() / FRAME as f32 > 1e-5)
        .collect();
    (0..loud.len())
        .map(|i| loud[i.saturating_sub(hold)..(i + hold + 1).min(loud.len())].contains(&true))
        .collect()
}

/// A track sending Opus RTP under `ssrc`, in the media stream `stream`.
pub fn opus_track(stream: &str, track: &str, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream.to_owned(),
        track.to_owned(),
        track.to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    )))
}
