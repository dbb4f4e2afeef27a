//! Ogg/Opus remuxing of received RTP Opus packets, without re-encoding. Packets keep their RTP
//! timing: a gap (DTX, loss, a muted microphone) is filled with empty Opus frames, which decoders
//! play as silence, so a recording stays aligned with the meeting clock and the transcript.

use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use std::io::Write;

/// 20 ms at 48 kHz: the frame length used to fill gaps.
const FILL_SAMPLES: u64 = 960;
/// Longest gap filled (10 minutes); beyond it the clock is reset instead (a rejoin).
const MAX_FILL_SAMPLES: u64 = 48_000 * 600;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RemuxStats {
    pub packets: u64,
    /// Packets older than one already written (reordered or duplicated): dropped.
    pub late: u64,
    pub filled_frames: u64,
}

pub struct OggOpusWriter<W: Write> {
    out: PacketWriter<'static, W>,
    serial: u32,
    first_ts: Option<u32>,
    /// Samples (48 kHz) written so far: the granule position of the last packet.
    granule: u64,
    /// RTP timestamp (unwrapped, relative to the first) expected next.
    next_ts: u64,
    last_ts: Option<u32>,
    unwrapped: u64,
    toc_for_fill: u8,
    /// The latest packet and its granule, held back so the last one can close the stream.
    pending: Option<(Vec<u8>, u64)>,
    stats: RemuxStats,
}

impl<W: Write> std::fmt::Debug for OggOpusWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpusWriter")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<W: Write> OggOpusWriter<W> {
    pub fn new(out: W, serial: u32) -> std::io::Result<Self> {
        let mut out = PacketWriter::new(out);
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(2); // channels: WebRTC Opus is negotiated as stereo-capable
        head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // gain
        head.push(0); // channel mapping family
        out.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        let vendor = b"parley";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        out.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(Self {
            out,
            serial,
            first_ts: None,
            granule: 0,
            next_ts: 0,
            last_ts: None,
            unwrapped: 0,
            toc_for_fill: 0xF8,
            pending: None,
            stats: RemuxStats::default(),
        })
    }

    pub fn stats(&self) -> RemuxStats {
        self.stats
    }

    /// Unwraps the 32-bit RTP timestamp into a position relative to the first packet.
    fn position(&mut self, ts: u32) -> Option<u64> {
        let first = *self.first_ts.get_or_insert(ts);
        match self.last_ts {
            None => {
                self.last_ts = Some(ts);
                self.unwrapped = u64::from(ts.wrapping_sub(first));
            }
            Some(last) => {
                let delta = ts.wrapping_sub(last) as i32;
                if delta < 0 {
                    return None;
                }
                self.unwrapped += delta as u64;
                self.last_ts = Some(ts);
            }
        }
        Some(self.unwrapped)
    }

    pub fn write(&mut self, timestamp: u32, payload: &[u8]) -> std::io::Result<()> {
        if payload.is_empty() {
            return Ok(());
        }
        let Some(pos) = self.position(timestamp) else {
            self.stats.late += 1;
            return Ok(());
        };
        if pos < self.next_ts {
            self.stats.late += 1;
            return Ok(());
        }
        let gap = pos - self.next_ts;
        if gap > MAX_FILL_SAMPLES {
            self.next_ts = pos;
        } else {
            for _ in 0..gap / FILL_SAMPLES {
                self.granule += FILL_SAMPLES;
                self.stats.filled_frames += 1;
                self.push(vec![self.toc_for_fill])?;
            }
            self.next_ts = pos;
        }
        let samples = opus::packet::get_nb_samples(payload, 48_000)
            .map_or(FILL_SAMPLES, |n| n as u64)
            .max(1);
        // Code 0 with this packet's configuration: a valid empty 20 ms frame for gap filling.
        if samples == FILL_SAMPLES {
            self.toc_for_fill = payload[0] & 0xFC;
        }
        self.granule += samples;
        self.next_ts += samples;
        self.stats.packets += 1;
        self.push(payload.to_vec())
    }

    fn push(&mut self, packet: Vec<u8>) -> std::io::Result<()> {
        if let Some((previous, granule)) = self.pending.replace((packet, self.granule)) {
            self.out.write_packet(
                previous,
                self.serial,
                PacketWriteEndInfo::NormalPacket,
                granule,
            )?;
        }
        Ok(())
    }

    /// Ends the stream (its last packet carries the end-of-stream flag) and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        if let Some((last, granule)) = self.pending.take() {
            self.out
                .write_packet(last, self.serial, PacketWriteEndInfo::EndStream, granule)?;
        }
        Ok(self.out.into_inner())
    }
}
