//! Meet's virtual audio streams, sans-IO. Meet sends a conference's loudest speakers on three
//! fixed streams (SSRCs) and names the participant each RTP packet carries in its CSRC; a stream
//! passes from one participant to another between two packets
//! (https://developers.google.com/workspace/meet/media-api/guides/virtual-streams). Each stream
//! is reordered and decoded on its own, since one encoder produced it, and each decoded frame
//! goes to the participant its packet named. When a stream moves on, or falls silent, and its
//! participant is on no other stream, that participant's utterance is cut: two people's words
//! never meet in one utterance.

use crate::audio::jitter::{JitterConfig, RtpPacket};
use crate::audio::track::{Decoded, RtpOpusDecoder, TrackError};
use std::collections::HashMap;

/// Meet uses three; a peer sending on many more is misbehaving, and each costs a decoder.
const MAX_STREAMS: usize = 8;
/// Packets remembered per stream between arrival and playout (the reorder buffer holds fewer).
const MAX_PENDING: usize = 256;
/// A participant leaving one stream is cut only if they are not on another this much later:
/// when two speakers swap streams, both streams' packets of that moment do not arrive at once.
const CUT_GRACE_MS: u64 = 100;

/// One received RTP packet of a virtual stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualPacket {
    pub ssrc: u32,
    /// The participant's audio CSRC; `None` when the packet names nobody.
    pub csrc: Option<u32>,
    pub packet: RtpPacket,
}

/// What the streams yield, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Demuxed {
    /// 48 kHz audio of the participant with this CSRC, at `pos` on the meeting clock.
    Audio {
        csrc: u32,
        pos: u64,
        samples: Vec<f32>,
    },
    /// The participant with this CSRC is on no stream any more.
    Cut { csrc: u32 },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Packets without a CSRC: audio nobody can be credited with.
    pub unattributed: u64,
    /// Packets on streams beyond [`MAX_STREAMS`].
    pub excess_streams: u64,
    pub lost: u64,
    pub corrupt: u64,
}

#[derive(Debug)]
struct Stream {
    rtp: RtpOpusDecoder,
    /// RTP timestamp → CSRC of packets received and not yet played out.
    csrc_of: HashMap<u32, u32>,
    /// Whom the stream carries now.
    current: Option<u32>,
    last_packet_ms: u64,
}

#[derive(Debug)]
pub struct VirtualStreams {
    jitter: JitterConfig,
    /// A stream without packets for this long carries nobody.
    idle_after_ms: u64,
    streams: HashMap<u32, Stream>,
    /// Participants off every stream, and when to cut them unless they are back by then.
    pending_cuts: HashMap<u32, u64>,
    stats: DemuxStats,
}

impl VirtualStreams {
    pub fn new(jitter: JitterConfig, idle_after_ms: u64) -> Self {
        Self {
            jitter,
            idle_after_ms,
            streams: HashMap::new(),
            pending_cuts: HashMap::new(),
            stats: DemuxStats::default(),
        }
    }

    pub fn stats(&self) -> DemuxStats {
        let mut stats = self.stats;
        for s in self.streams.values() {
            stats.lost += s.rtp.jitter_stats().lost;
            stats.corrupt += s.rtp.corrupt_packets();
        }
        stats
    }

    /// Takes a packet that arrived at `now_ms` on the meeting clock.
    pub fn push(
        &mut self,
        p: VirtualPacket,
        now_ms: u64,
        out: &mut Vec<Demuxed>,
    ) -> Result<(), TrackError> {
        let Some(csrc) = p.csrc else {
            self.stats.unattributed += 1;
            return Ok(());
        };
        if !self.streams.contains_key(&p.ssrc) {
            if self.streams.len() >= MAX_STREAMS {
                self.stats.excess_streams += 1;
                return Ok(());
            }
            let stream = Stream {
                rtp: RtpOpusDecoder::new(self.jitter)?,
                csrc_of: HashMap::new(),
                current: None,
                last_packet_ms: now_ms,
            };
            self.streams.insert(p.ssrc, stream);
        }
        if let Some(stream) = self.streams.get_mut(&p.ssrc) {
            if stream.csrc_of.len() >= MAX_PENDING {
                // Only packets the reorder buffer dropped (late, duplicate) linger this long.
                stream.csrc_of.clear();
            }
            stream.csrc_of.insert(p.packet.timestamp, csrc);
            stream.last_packet_ms = now_ms;
            stream.rtp.push(p.packet, now_ms);
        }
        self.poll(now_ms, out);
        Ok(())
    }

    /// Plays out what is due by `now_ms`, and cuts the participants of streams gone quiet.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<Demuxed>) {
        let ssrcs: Vec<u32> = self.streams.keys().copied().collect();
        for ssrc in ssrcs {
            self.play(ssrc, now_ms, out, |rtp, each| rtp.poll(now_ms, each));
            let idle = self.streams.get_mut(&ssrc).and_then(|s| {
                (now_ms.saturating_sub(s.last_packet_ms) >= self.idle_after_ms)
                    .then(|| s.current.take())
                    .flatten()
            });
            if let Some(csrc) = idle {
                self.off_stream(csrc, now_ms);
            }
        }
        self.cut_due(now_ms, out);
    }

    /// End of the session: plays out everything and cuts everyone.
    pub fn finish(&mut self, out: &mut Vec<Demuxed>) {
        let ssrcs: Vec<u32> = self.streams.keys().copied().collect();
        for ssrc in ssrcs {
            self.play(ssrc, u64::MAX, out, |rtp, each| rtp.drain(each));
            if let Some(csrc) = self.streams.get_mut(&ssrc).and_then(|s| s.current.take()) {
                self.off_stream(csrc, 0);
            }
        }
        self.cut_due(u64::MAX, out);
    }

    fn play(
        &mut self,
        ssrc: u32,
        now_ms: u64,
        out: &mut Vec<Demuxed>,
        release: impl FnOnce(
            &mut RtpOpusDecoder,
            &mut dyn FnMut(Decoded<'_>) -> Result<(), ()>,
        ) -> Result<(), ()>,
    ) {
        let Some(stream) = self.streams.get_mut(&ssrc) else {
            return;
        };
        let mut played: Vec<(Option<u32>, u64, Vec<f32>)> = Vec::new();
        let csrc_of = &mut stream.csrc_of;
        let _ = release(&mut stream.rtp, &mut |d: Decoded<'_>| {
            let csrc = d.timestamp.and_then(|ts| csrc_of.remove(&ts));
            played.push((csrc, d.pos, d.samples.to_vec()));
            Ok(())
        });
        for (csrc, pos, samples) in played {
            let Some(stream) = self.streams.get_mut(&ssrc) else {
                return;
            };
            // A concealed loss belongs to whoever the stream carried.
            let Some(csrc) = csrc.or(stream.current) else {
                continue;
            };
            let previous = stream.current.replace(csrc);
            self.pending_cuts.remove(&csrc);
            if let Some(prev) = previous.filter(|&p| p != csrc) {
                self.off_stream(prev, now_ms);
            }
            out.push(Demuxed::Audio { csrc, pos, samples });
        }
    }

    fn off_stream(&mut self, csrc: u32, now_ms: u64) {
        if !self.streams.values().any(|s| s.current == Some(csrc)) {
            self.pending_cuts
                .entry(csrc)
                .or_insert(now_ms.saturating_add(CUT_GRACE_MS));
        }
    }

    fn cut_due(&mut self, now_ms: u64, out: &mut Vec<Demuxed>) {
        let mut due: Vec<u32> = self
            .pending_cuts
            .iter()
            .filter(|&(_, &at)| at <= now_ms)
            .map(|(&csrc, _)| csrc)
            .collect();
        due.sort_unstable();
        for csrc in due {
            self.pending_cuts.remove(&csrc);
            if !self.streams.values().any(|s| s.current == Some(csrc)) {
                out.push(Demuxed::Cut { csrc });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::OPUS_RATE;

    fn frames(n: usize) -> Vec<Vec<u8>> {
        let mut enc = opus::Encoder::new(OPUS_RATE, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        (0..n)
            .map(|i| {
                let pcm: Vec<f32> = (0..960)
                    .map(|t| ((i * 960 + t) as f32 * 0.03).sin() * 0.3)
                    .collect();
                enc.encode_vec_float(&pcm, 4000).expect("encode")
            })
            .collect()
    }

    fn packet(ssrc: u32, csrc: Option<u32>, i: u16, payload: &[u8]) -> VirtualPacket {
        VirtualPacket {
            ssrc,
            csrc,
            packet: RtpPacket {
                seq: 1000 + i,
                timestamp: 50_000 + u32::from(i) * 960,
                payload: payload.to_vec(),
            },
        }
    }

    /// Runs packets (arriving 20 ms apart) through the streams; returns the output.
    fn run(packets: Vec<VirtualPacket>) -> (Vec<Demuxed>, DemuxStats) {
        let mut v = VirtualStreams::new(JitterConfig::default(), 1000);
        let mut out = Vec::new();
        let mut now = 0;
        for p in packets {
            v.push(p, now, &mut out).expect("push");
            now += 20;
        }
        v.poll(now + 2000, &mut out);
        v.finish(&mut out);
        (out, v.stats())
    }

    /// Who got audio, in order, with cuts, run-length collapsed.
    fn story(out: &[Demuxed]) -> Vec<String> {
        let mut s: Vec<String> = Vec::new();
        for d in out {
            let item = match d {
                Demuxed::Audio { csrc, .. } => format!("{csrc}"),
                Demuxed::Cut { csrc } => format!("cut {csrc}"),
            };
            if s.last() != Some(&item) {
                s.push(item);
            }
        }
        s
    }

    #[test]
    fn a_stream_passing_from_one_speaker_to_another_cuts_the_first() {
        let f = frames(20);
        let packets = (0..20u16)
            .map(|i| packet(1, Some(if i < 10 { 111 } else { 222 }), i, &f[i as usize]))
            .collect();
        let (out, _) = run(packets);
        assert_eq!(
            story(&out),
            ["111", "222", "cut 111", "222", "cut 222"],
            "cut once the grace for a move to another stream is over"
        );
        let positions: Vec<u64> = out
            .iter()
            .filter_map(|d| match d {
                Demuxed::Audio { pos, .. } => Some(*pos),
                Demuxed::Cut { .. } => None,
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[1] == w[0] + 960),
            "one timeline per stream: {positions:?}"
        );
    }

    #[test]
    fn a_speaker_moving_to_another_stream_is_not_cut() {
        let f = frames(20);
        let mut packets = Vec::new();
        for i in 0..20u16 {
            // 111 moves from stream 1 to stream 2 at once, while 222 takes stream 1.
            let (a, b) = if i < 10 { (111, 222) } else { (222, 111) };
            packets.push(packet(1, Some(a), i, &f[i as usize]));
            packets.push(packet(2, Some(b), i, &f[i as usize]));
        }
        let (out, _) = run(packets);
        let cuts: Vec<&Demuxed> = out
            .iter()
            .filter(|d| matches!(d, Demuxed::Cut { .. }))
            .collect();
        assert_eq!(cuts.len(), 2, "only at the end: {cuts:?}");
    }

    #[test]
    fn a_lost_packet_is_concealed_for_the_speaker_the_stream_carried() {
        let f = frames(12);
        let packets = (0..12u16)
            .filter(|&i| i != 5)
            .map(|i| packet(7, Some(333), i, &f[i as usize]))
            .collect();
        let (out, stats) = run(packets);
        assert_eq!(stats.lost, 1);
        let audio = out
            .iter()
            .filter(|d| matches!(d, Demuxed::Audio { csrc: 333, .. }))
            .count();
        assert_eq!(audio, 12, "eleven packets and one concealed frame");
    }

    #[test]
    fn packets_naming_nobody_and_excess_streams_are_counted_and_dropped() {
        let f = frames(1);
        let mut packets = vec![packet(1, None, 0, &f[0])];
        for ssrc in 0..(MAX_STREAMS as u32 + 3) {
            packets.push(packet(100 + ssrc, Some(5), 0, &f[0]));
        }
        let (out, stats) = run(packets);
        assert_eq!(stats.unattributed, 1);
        assert_eq!(stats.excess_streams, 3);
        assert!(out.iter().all(|d| match d {
            Demuxed::Audio { csrc, .. } | Demuxed::Cut { csrc } => *csrc == 5,
        }));
    }

    #[test]
    fn a_stream_gone_quiet_releases_its_speaker() {
        let f = frames(5);
        let mut v = VirtualStreams::new(JitterConfig::default(), 1000);
        let mut out = Vec::new();
        for i in 0..5u16 {
            v.push(
                packet(1, Some(9), i, &f[i as usize]),
                u64::from(i) * 20,
                &mut out,
            )
            .expect("push");
        }
        v.poll(500, &mut out);
        assert!(!out.contains(&Demuxed::Cut { csrc: 9 }));
        v.poll(1200, &mut out);
        v.poll(1400, &mut out);
        assert!(matches!(out.last(), Some(Demuxed::Cut { csrc: 9 })));
    }
}
