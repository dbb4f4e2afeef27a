//! RTP reorder buffer: releases packets in sequence order, reports losses so the decoder can
//! conceal them (Opus PLC, or in-band FEC from the packet after the gap), drops duplicates and
//! packets that arrive after their slot was played out.

use std::collections::BTreeMap;

/// One RTP packet as the connector received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// What the buffer releases, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    Packet {
        timestamp: u32,
        payload: Vec<u8>,
    },
    /// A packet never came. `fec` is the payload of the packet right after it, when already here:
    /// Opus can rebuild the lost frame from its in-band FEC data.
    Lost {
        fec: Option<Vec<u8>>,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    /// How long a gap may wait for its packet once a later packet is here.
    pub max_wait_ms: u64,
    /// How many packets may wait behind a gap before it is declared lost regardless of time.
    pub max_depth: usize,
    /// A sequence jump larger than this is a new stream (restart, SSRC change), not loss.
    pub max_gap: u64,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            max_wait_ms: 80,
            max_depth: 25,
            max_gap: 500,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    pub lost: u64,
    pub resets: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    /// Extended (unwrapped) sequence number of the next packet to release.
    next: Option<u64>,
    /// Highest extended sequence seen, for unwrapping.
    highest: u64,
    waiting: BTreeMap<u64, (u32, Vec<u8>, u64)>,
    /// Arrival time of the first packet while nothing has been released yet: the first release
    /// waits `max_wait_ms` so a reordered first packet still plays.
    warmup_since: Option<u64>,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        Self {
            config,
            next: None,
            highest: 0,
            waiting: BTreeMap::new(),
            warmup_since: None,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Unwraps a 16-bit sequence number to the extended value closest to the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let base = self.highest & !0xffff;
        let candidates = [base.wrapping_sub(0x1_0000), base, base + 0x1_0000];
        let mut best = base + u64::from(seq);
        let mut best_dist = u64::MAX;
        for c in candidates {
            let v = c.wrapping_add(u64::from(seq));
            if v > u64::MAX / 2 {
                continue;
            }
            let d = v.abs_diff(self.highest);
            if d < best_dist {
                best = v;
                best_dist = d;
            }
        }
        best
    }

    pub fn push(&mut self, packet: RtpPacket, now_ms: u64) {
        self.stats.received += 1;
        // Start in the middle of the u64 range so unwrapping below zero cannot underflow.
        let ext = if self.next.is_none() && self.waiting.is_empty() {
            let v = (1u64 << 32) + u64::from(packet.seq);
            self.highest = v;
            self.next = Some(v);
            self.warmup_since = Some(now_ms);
            v
        } else {
            self.extend(packet.seq)
        };
        let next = self.next.unwrap_or(ext);
        if ext.abs_diff(next) > self.config.max_gap
            && ext.abs_diff(self.highest) > self.config.max_gap
        {
            // A new stream: drop what waited for the old one rather than declaring hundreds lost.
            self.stats.resets += 1;
            self.waiting.clear();
            self.next = Some(ext);
            self.highest = ext;
        } else if ext < next && self.warmup_since.is_some() {
            self.next = Some(ext);
        } else if ext < next {
            self.stats.late += 1;
            return;
        }
        if self.waiting.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.highest = self.highest.max(ext);
        self.waiting
            .insert(ext, (packet.timestamp, packet.payload, now_ms));
    }

    /// Releases the next packet or loss, if its time has come.
    pub fn poll(&mut self, now_ms: u64) -> Option<Playout> {
        let next = self.next?;
        if let Some(since) = self.warmup_since {
            if now_ms.saturating_sub(since) < self.config.max_wait_ms
                && self.waiting.len() < self.config.max_depth
            {
                return None;
            }
            self.warmup_since = None;
        }
        if let Some((timestamp, payload, _)) = self.waiting.remove(&next) {
            self.next = Some(next + 1);
            return Some(Playout::Packet { timestamp, payload });
        }
        let (&first, &(_, _, arrived)) = self.waiting.iter().next()?;
        let overdue = now_ms.saturating_sub(arrived) >= self.config.max_wait_ms;
        if overdue || self.waiting.len() >= self.config.max_depth {
            self.stats.lost += 1;
            self.next = Some(next + 1);
            let fec = (first == next + 1).then(|| self.waiting[&first].1.clone());
            return Some(Playout::Lost { fec });
        }
        None
    }

    /// Releases everything still waiting, declaring gaps lost (end of stream).
    pub fn drain(&mut self) -> Vec<Playout> {
        let mut out = Vec::new();
        while !self.waiting.is_empty() {
            if let Some(p) = self.poll(u64::MAX) {
                out.push(p);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16) -> RtpPacket {
        RtpPacket {
            seq,
            timestamp: u32::from(seq) * 960,
            payload: vec![seq as u8],
        }
    }

    fn drain_now(jb: &mut JitterBuffer, now: u64) -> Vec<Playout> {
        std::iter::from_fn(|| jb.poll(now)).collect()
    }

    fn seqs(out: &[Playout]) -> Vec<i32> {
        out.iter()
            .map(|p| match p {
                Playout::Packet { payload, .. } => i32::from(payload[0]),
                Playout::Lost { .. } => -1,
            })
            .collect()
    }

    #[test]
    fn reorders_within_the_wait() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for (i, s) in [1u16, 3, 2, 4].into_iter().enumerate() {
            jb.push(pkt(s), i as u64 * 20);
        }
        assert_eq!(seqs(&drain_now(&mut jb, 80)), vec![1, 2, 3, 4]);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn declares_loss_after_the_wait_with_fec_from_the_next_packet() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(pkt(10), 0);
        assert_eq!(seqs(&drain_now(&mut jb, 100)), vec![10]);
        jb.push(pkt(12), 140);
        assert!(drain_now(&mut jb, 150).is_empty());
        let out = drain_now(&mut jb, 220);
        assert_eq!(
            out[0],
            Playout::Lost {
                fec: Some(vec![12])
            }
        );
        assert_eq!(seqs(&out), vec![-1, 12]);
        // The lost packet arriving now is late and ignored.
        jb.push(pkt(11), 230);
        assert!(drain_now(&mut jb, 300).is_empty());
        assert_eq!(jb.stats().late, 1);
    }

    #[test]
    fn a_reordered_first_packet_still_plays() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(pkt(8), 0);
        assert!(jb.poll(10).is_none());
        jb.push(pkt(7), 15);
        assert_eq!(seqs(&drain_now(&mut jb, 100)), vec![7, 8]);
    }

    #[test]
    fn drops_duplicates_and_survives_wraparound() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut out = Vec::new();
        for (i, s) in [65534u16, 65535, 65535, 0, 1].into_iter().enumerate() {
            jb.push(pkt(s), i as u64 * 20);
            out.extend(drain_now(&mut jb, i as u64 * 20));
        }
        out.extend(drain_now(&mut jb, 1000));
        assert_eq!(seqs(&out), vec![254, 255, 0, 1]);
        // Already played out: counted as late, not played twice.
        assert_eq!(jb.stats().duplicates + jb.stats().late, 1);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn a_huge_jump_is_a_new_stream_not_a_flood_of_losses() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(pkt(5), 0);
        assert_eq!(drain_now(&mut jb, 100).len(), 1);
        jb.push(pkt(30_000), 120);
        assert_eq!(drain_now(&mut jb, 120).len(), 1);
        assert_eq!(jb.stats().lost, 0);
        assert_eq!(jb.stats().resets, 1);
    }
}
