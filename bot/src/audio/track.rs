//! One participant's audio from the network or a file to 16 kHz samples placed on the meeting
//! clock: RTP Opus through the reorder buffer and decoder, or PCM at any rate; gaps in the
//! sender's timestamps (DTX, mute) become silence or, when long, a jump in the timeline that a
//! second of silence leads into (as it does into a track's first audio).

use super::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, RtpPacket};
use super::opus_decode::{DecoderInitError, OpusTrackDecoder};
use super::resample::{ResampleError, To16k};
use super::{ASR_RATE, OPUS_RATE};

/// A gap up to this long is filled with silence; a longer one restarts the timeline there, so a
/// muted hour costs nothing.
const MAX_FILL_MS: u64 = 2_000;
/// Silence put before audio that resumes after a gap longer than [`MAX_FILL_MS`].
const LEAD_IN_MS: u64 = 1_000;

/// 16 kHz samples starting at `start` (16 kHz samples since the meeting clock's zero).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioChunk {
    pub start: u64,
    pub samples: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error(transparent)]
    Decoder(#[from] DecoderInitError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// Places input at `rate` on the timeline and resamples it to 16 kHz.
#[derive(Debug)]
struct Timeline {
    rate: u32,
    resampler: To16k,
    /// Next input position, in `rate` samples since the meeting clock's zero.
    next_in: Option<u64>,
    /// Position of the next output sample, in 16 kHz samples.
    next_out: u64,
    scratch: Vec<f32>,
}

impl Timeline {
    fn new(rate: u32) -> Result<Self, TrackError> {
        Ok(Self {
            rate,
            resampler: To16k::new(rate)?,
            next_in: None,
            next_out: 0,
            scratch: Vec::new(),
        })
    }

    /// Appends `samples` that belong at input position `pos`; returns the new 16 kHz chunks.
    fn place(
        &mut self,
        pos: u64,
        samples: &[f32],
        out: &mut Vec<AudioChunk>,
    ) -> Result<(), TrackError> {
        let max_fill = MAX_FILL_MS * u64::from(self.rate) / 1000;
        match self.next_in {
            None => self.restart(pos, out)?,
            Some(next) if pos > next + max_fill => {
                self.flush(out)?;
                self.restart(pos, out)?;
            }
            Some(next) if pos > next => {
                let gap = vec![0.0; (pos - next) as usize];
                self.feed(&gap, out)?;
            }
            // Overlap or a sender clock running slow: keep going from where we are.
            Some(_) => {}
        }
        self.feed(samples, out)
    }

    /// Starts the timeline so that audio at `pos` follows a lead-in of silence. Audio that
    /// starts, or resumes after a long gap (a speaker whose audio flows only while they talk),
    /// then meets a voice gate and an utterance pre-roll that start from silence, as on a
    /// continuous track, instead of clipping its first word.
    fn restart(&mut self, pos: u64, out: &mut Vec<AudioChunk>) -> Result<(), TrackError> {
        let lead = (LEAD_IN_MS * u64::from(self.rate) / 1000).min(pos);
        let start = pos - lead;
        self.next_in = Some(start);
        self.next_out = start * u64::from(ASR_RATE) / u64::from(self.rate);
        self.feed(&vec![0.0; lead as usize], out)
    }

    fn feed(&mut self, samples: &[f32], out: &mut Vec<AudioChunk>) -> Result<(), TrackError> {
        self.scratch.clear();
        self.resampler.push(samples, &mut self.scratch)?;
        self.next_in = self.next_in.map(|n| n + samples.len() as u64);
        self.emit(out);
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<AudioChunk>) -> Result<(), TrackError> {
        self.scratch.clear();
        self.resampler.flush(&mut self.scratch)?;
        self.emit(out);
        Ok(())
    }

    fn emit(&mut self, out: &mut Vec<AudioChunk>) {
        if self.scratch.is_empty() {
            return;
        }
        let samples = std::mem::take(&mut self.scratch);
        let start = self.next_out;
        self.next_out += samples.len() as u64;
        out.push(AudioChunk { start, samples });
    }
}

/// A decoded stretch of one RTP stream: `samples` (48 kHz) at `pos` on the meeting clock.
/// `timestamp` is the RTP timestamp of the packet they came from, `None` for a concealed loss.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub pos: u64,
    pub samples: &'a [f32],
    pub timestamp: Option<u32>,
}

/// Opus over RTP to 48 kHz PCM on the meeting clock: reorder, decode, conceal.
#[derive(Debug)]
pub struct RtpOpusDecoder {
    jitter: JitterBuffer,
    decoder: OpusTrackDecoder,
    /// RTP timestamp of the first packet and the meeting-clock position (48 kHz) it maps to.
    origin: Option<(u32, u64)>,
    /// Unwrapped RTP timestamp of the next expected sample.
    last_ts: u64,
}

impl RtpOpusDecoder {
    pub fn new(jitter: JitterConfig) -> Result<Self, TrackError> {
        Ok(Self {
            jitter: JitterBuffer::new(jitter),
            decoder: OpusTrackDecoder::new()?,
            origin: None,
            last_ts: 0,
        })
    }

    pub fn jitter_stats(&self) -> JitterStats {
        self.jitter.stats()
    }

    pub fn corrupt_packets(&self) -> u64 {
        self.decoder.corrupt_packets()
    }

    /// Takes a packet that arrived at `now_ms` on the meeting clock.
    pub fn push(&mut self, packet: RtpPacket, now_ms: u64) {
        if self.origin.is_none() {
            self.origin = Some((packet.timestamp, now_ms * u64::from(OPUS_RATE) / 1000));
            self.last_ts = u64::from(packet.timestamp);
        }
        self.jitter.push(packet, now_ms);
    }

    /// Decodes whatever the reorder buffer releases by `now_ms`, in order.
    pub fn poll<E>(
        &mut self,
        now_ms: u64,
        mut each: impl FnMut(Decoded<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while let Some(p) = self.jitter.poll(now_ms) {
            self.play(p, &mut each)?;
        }
        Ok(())
    }

    /// End of stream: decodes everything still waiting.
    pub fn drain<E>(
        &mut self,
        mut each: impl FnMut(Decoded<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        for p in self.jitter.drain() {
            self.play(p, &mut each)?;
        }
        Ok(())
    }

    fn play<E>(
        &mut self,
        playout: Playout,
        each: &mut impl FnMut(Decoded<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some((ts0, pos0)) = self.origin else {
            return Ok(());
        };
        let (start, samples, timestamp) = match playout {
            Playout::Packet { timestamp, payload } => {
                let ts = unwrap_ts(self.last_ts, timestamp);
                (ts, self.decoder.decode(&payload), Some(timestamp))
            }
            Playout::Lost { fec } => (self.last_ts, self.decoder.conceal(fec.as_deref()), None),
        };
        self.last_ts = start + samples.len() as u64;
        each(Decoded {
            pos: (pos0 + start).saturating_sub(u64::from(ts0)),
            samples,
            timestamp,
        })
    }
}

/// Opus over RTP: reorder, decode, conceal, place.
#[derive(Debug)]
pub struct RtpOpusTrack {
    rtp: RtpOpusDecoder,
    timeline: Timeline,
}

impl RtpOpusTrack {
    pub fn new(jitter: JitterConfig) -> Result<Self, TrackError> {
        Ok(Self {
            rtp: RtpOpusDecoder::new(jitter)?,
            timeline: Timeline::new(OPUS_RATE)?,
        })
    }

    pub fn jitter_stats(&self) -> JitterStats {
        self.rtp.jitter_stats()
    }

    pub fn corrupt_packets(&self) -> u64 {
        self.rtp.corrupt_packets()
    }

    /// Takes a packet that arrived at `now_ms` on the meeting clock.
    pub fn push(&mut self, packet: RtpPacket, now_ms: u64) {
        self.rtp.push(packet, now_ms);
    }

    /// Decodes whatever the reorder buffer releases by `now_ms`.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<AudioChunk>) -> Result<(), TrackError> {
        let timeline = &mut self.timeline;
        self.rtp
            .poll(now_ms, |d| timeline.place(d.pos, d.samples, out))
    }

    /// End of stream: plays out everything still waiting and flushes the resampler.
    pub fn finish(&mut self, out: &mut Vec<AudioChunk>) -> Result<(), TrackError> {
        let timeline = &mut self.timeline;
        self.rtp.drain(|d| timeline.place(d.pos, d.samples, out))?;
        self.timeline.flush(out)
    }
}

/// Extends a 32-bit RTP timestamp to the 64-bit value nearest the previous one.
fn unwrap_ts(prev: u64, ts: u32) -> u64 {
    let base = prev & !0xffff_ffff;
    [base.wrapping_sub(1 << 32), base, base + (1 << 32)]
        .into_iter()
        .map(|b| b.wrapping_add(u64::from(ts)))
        .filter(|v| *v < u64::MAX / 2)
        .min_by_key(|v| v.abs_diff(prev))
        .unwrap_or(u64::from(ts))
}

/// PCM at any rate, with its position in that rate's samples since the meeting clock's zero.
#[derive(Debug)]
pub struct PcmTrack {
    timeline: Timeline,
}

impl PcmTrack {
    pub fn new(rate: u32) -> Result<Self, TrackError> {
        Ok(Self {
            timeline: Timeline::new(rate)?,
        })
    }

    pub fn rate(&self) -> u32 {
        self.timeline.rate
    }

    pub fn push(
        &mut self,
        pos: u64,
        samples: &[f32],
        out: &mut Vec<AudioChunk>,
    ) -> Result<(), TrackError> {
        self.timeline.place(pos, samples, out)
    }

    pub fn finish(&mut self, out: &mut Vec<AudioChunk>) -> Result<(), TrackError> {
        self.timeline.flush(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded_tone(frames: usize) -> Vec<Vec<u8>> {
        let mut enc = opus::Encoder::new(OPUS_RATE, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        (0..frames)
            .map(|i| {
                let pcm: Vec<f32> = (0..960)
                    .map(|t| {
                        ((i * 960 + t) as f32 * 220.0 * std::f32::consts::TAU / 48_000.0).sin()
                            * 0.4
                    })
                    .collect();
                enc.encode_vec_float(&pcm, 4000).expect("encode")
            })
            .collect()
    }

    fn total(chunks: &[AudioChunk]) -> usize {
        chunks.iter().map(|c| c.samples.len()).sum()
    }

    fn flat(chunks: &[AudioChunk]) -> Vec<f32> {
        chunks
            .iter()
            .flat_map(|c| c.samples.iter().copied())
            .collect()
    }

    fn contiguous(chunks: &[AudioChunk]) -> bool {
        chunks
            .windows(2)
            .all(|w| w[0].start + w[0].samples.len() as u64 == w[1].start)
    }

    #[test]
    fn reordered_and_lost_packets_keep_the_timeline_exact() {
        let packets = encoded_tone(50);
        let mut track = RtpOpusTrack::new(JitterConfig::default()).expect("track");
        let mut out = Vec::new();
        // Starts about 1 s into the meeting; swaps neighbours (the first included) and loses every
        // tenth packet.
        let mut order: Vec<usize> = (0..50).collect();
        for pair in order.chunks_mut(2) {
            pair.swap(0, 1);
        }
        for (n, &i) in order.iter().enumerate() {
            if i % 10 == 5 {
                continue;
            }
            let pkt = RtpPacket {
                seq: 100 + i as u16,
                timestamp: 7_000 + 960 * i as u32,
                payload: packets[i].clone(),
            };
            let now = 1000 + 20 * n as u64;
            track.push(pkt, now);
            track.poll(now, &mut out).expect("poll");
        }
        track.finish(&mut out).expect("finish");
        // Packet 1 came first, at 1000 ms, so packet 0 belongs 20 ms earlier; silence leads in
        // from the meeting's start.
        assert_eq!(out[0].start, 0);
        assert!(contiguous(&out));
        assert!(flat(&out)[..16 * 950].iter().all(|x| x.abs() < 1e-4));
        assert!(
            (total(&out) as i64 - 16 * 980 - 50 * 320).abs() <= 2,
            "{}",
            total(&out)
        );
        assert_eq!(track.jitter_stats().lost, 5);
    }

    #[test]
    fn a_dtx_gap_is_silence_and_a_long_one_jumps() {
        let packets = encoded_tone(3);
        let mut track = RtpOpusTrack::new(JitterConfig::default()).expect("track");
        let mut out = Vec::new();
        // 0 ms, then 500 ms later (short gap, filled), then 10 s later (jump).
        for (k, (seq, ts)) in [(1u16, 0u32), (2, 24_000), (3, 24_960 + 480_000)]
            .into_iter()
            .enumerate()
        {
            track.push(
                RtpPacket {
                    seq,
                    timestamp: ts,
                    payload: packets[k].clone(),
                },
                u64::from(ts) / 48,
            );
            track.poll(u64::from(ts) / 48, &mut out).expect("poll");
        }
        track.finish(&mut out).expect("finish");
        let last = out.last().expect("output");
        assert!(last.start >= 16 * 10_000, "jumped: {}", last.start);
        assert!(!contiguous(&out));
        // The jump lands 10.52 s in, with a second of silence leading in.
        let before_jump: usize = out
            .iter()
            .filter(|c| c.start < 16 * 9_000)
            .map(|c| c.samples.len())
            .sum();
        assert!(
            (before_jump as i64 - (520 * 16)).abs() < 400,
            "{before_jump}"
        );
    }

    #[test]
    fn pcm_at_44k_lands_at_its_position() {
        let mut track = PcmTrack::new(44_100).expect("track");
        let mut out = Vec::new();
        track
            .push(44_100, &vec![0.1; 44_100], &mut out)
            .expect("push");
        track.finish(&mut out).expect("finish");
        // One second of silence leads in; the audio starts at 1 s.
        assert_eq!(out[0].start, 0);
        let samples = flat(&out);
        assert!((samples.len() as i64 - 32_000).abs() <= 1);
        assert!(samples[..15_500].iter().all(|x| x.abs() < 1e-4));
        assert!(samples[16_100..].iter().all(|&x| x != 0.0));
    }
}
