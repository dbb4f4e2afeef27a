//! When to decode an utterance speculatively: learned from the meeting's own pauses.
//!
//! A speculative final is worth its decode when the pause it starts in turns out to end the
//! utterance; when the speaker goes on, the decode is wasted. How long people pause inside a turn
//! differs between speakers, languages and meetings, so no fixed silence fits: this counts, for
//! every pause the meeting has had, whether it ended the utterance, and speculates from the
//! shortest silence after which, so far, at least [`TARGET`] of pauses did.

/// Share of speculative decodes that should become finals: each wasted one costs as much as a
/// final, so at 0.9 speculation adds at most a ninth to the finals' decoding.
const TARGET: f64 = 0.9;
/// Silences are counted in steps of this many milliseconds.
const STEP_MS: u64 = 16;
/// Until the meeting has had this many pauses past the shortest speculation silence, it
/// speculates after [`PRIOR_MS`]: most pauses inside a turn are shorter (conversation studies put
/// the bulk of them under half a second), and a meeting's first finals should not wait for
/// the end silence while it learns.
const MIN_EVIDENCE: u64 = 8;
const PRIOR_MS: u64 = 400;

/// The pauses of a meeting: how many ended an utterance, and how long the others lasted.
#[derive(Debug, Clone)]
pub struct PauseStats {
    ends: u64,
    /// Pauses the speaker went on after, by length in steps (the last bucket holds the longer).
    went_on: Vec<u64>,
}

impl PauseStats {
    /// Counts pauses up to `end_silence_ms`, the silence that ends an utterance.
    pub fn new(end_silence_ms: u64) -> Self {
        Self {
            ends: 0,
            went_on: vec![0; (end_silence_ms / STEP_MS) as usize + 1],
        }
    }

    /// A pause ended the utterance.
    pub fn ended(&mut self) {
        self.ends += 1;
    }

    /// The speaker went on after `ms` of silence.
    pub fn went_on(&mut self, ms: u64) {
        let i = ((ms / STEP_MS) as usize).min(self.went_on.len() - 1);
        self.went_on[i] += 1;
    }

    /// The shortest silence, from `floor_ms`, after which a pause has ended the utterance often
    /// enough to decode it then; `None` while no silence before the end one qualifies. One
    /// pseudo-count on each side keeps a meeting's first pauses from deciding alone; before
    /// there are enough of them, the prior.
    pub fn speculate_after(&self, floor_ms: u64) -> Option<u64> {
        let first = floor_ms.div_ceil(STEP_MS) as usize;
        let mut longer: u64 = self.went_on[first.min(self.went_on.len())..].iter().sum();
        if self.ends + longer < MIN_EVIDENCE {
            let end_ms = (self.went_on.len() as u64 - 1) * STEP_MS;
            return Some(PRIOR_MS.max(floor_ms)).filter(|&ms| ms < end_ms);
        }
        for (i, count) in self.went_on.iter().enumerate().skip(first) {
            let ends = (self.ends + 1) as f64;
            if ends / (ends + longer as f64 + 1.0) >= TARGET {
                return Some(i as u64 * STEP_MS);
            }
            longer -= count;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_meeting_speculates_after_the_prior_until_its_pauses_say_more() {
        let mut p = PauseStats::new(700);
        assert_eq!(p.speculate_after(160), Some(PRIOR_MS));
        assert_eq!(p.speculate_after(500), Some(500));
        for _ in 0..8 {
            p.ended();
        }
        assert_eq!(p.speculate_after(160), Some(160));
    }

    #[test]
    fn speculation_waits_past_the_pauses_speakers_go_on_after() {
        let mut p = PauseStats::new(700);
        for _ in 0..10 {
            p.ended();
        }
        // Pauses inside turns last up to about 400 ms.
        for ms in [200, 250, 300, 320, 350, 380, 400, 200, 260] {
            p.went_on(ms);
        }
        let at = p.speculate_after(160).expect("speculates");
        // 11 / (11 + went_on past `at` + 1) >= 0.9 allows no longer pause.
        assert!((400..=416).contains(&at), "speculates after {at} ms");
    }

    #[test]
    fn speakers_who_often_go_on_after_long_pauses_get_no_speculation() {
        let mut p = PauseStats::new(700);
        p.ended();
        for _ in 0..7 {
            p.went_on(650);
        }
        assert_eq!(p.speculate_after(160), None);
    }
}
