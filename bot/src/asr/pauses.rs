//! When to decode an utterance speculatively: learned from the meeting's own pauses.
//!
//! A speculative final is worth its decode when the pause it starts in turns out to end the
//! utterance; when the speaker goes on, the decode is wasted. How long people pause inside a turn
//! differs between speakers, languages and meetings, so no fixed silence fits: this counts, for
//! every pause the meeting has had, whether it ended the utterance, and speculates from the
//! shortest silence after which, so far, at least [`TARGET`] of pauses did.

/// Share of speculative decodes that should become finals. A wasted one costs a final's encoder
/// less the partial it stands in for, about two thirds of a final, to bring finals forward by the
/// few hundred ms between the speculation and the end silence; at 0.95 speculation adds at most
/// a nineteenth of that to the finals' decoding.
const TARGET: f64 = 0.95;
/// Silences are counted in steps of this many milliseconds.
const STEP_MS: u64 = 16;
/// Before the meeting's own pauses say otherwise, speculation starts after this silence: most
/// pauses inside a turn are shorter (conversation studies put the bulk of them under half a
/// second), and a meeting's first finals should not wait for the end silence while it learns.
const PRIOR_MS: u64 = 400;
/// The prior, as pauses counted beside the meeting's own: 7.8 that ended their utterance, 0.2
/// that went on after [`PRIOR_MS`] or more, and 0.6 that went on after less. With no pauses of
/// its own a meeting speculates after [`PRIOR_MS`]; its own pauses outweigh the prior as they
/// come, and move the silence from there: past the pauses its speakers went on after, or below
/// [`PRIOR_MS`] once eight utterances have ended and none went on. (Smoothing towards "unknown"
/// instead, one pause each way, stopped speculation altogether until eight utterances had
/// ended: the finals of a meeting's first minute waited for the end silence.)
const PRIOR_ENDS: f64 = 7.8;
const PRIOR_WENT_ON_LONG: f64 = 0.2;
const PRIOR_WENT_ON_SHORT: f64 = 0.6;

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

    /// The shortest silence, from `floor_ms`, after which pauses (the meeting's and the
    /// prior's) have ended the utterance often enough to decode it then; `None` while no
    /// silence before the end one qualifies.
    pub fn speculate_after(&self, floor_ms: u64) -> Option<u64> {
        let first = (floor_ms / STEP_MS) as usize;
        let mut longer: u64 = self.went_on[first.min(self.went_on.len())..].iter().sum();
        let ends = self.ends as f64 + PRIOR_ENDS;
        for (i, count) in self.went_on.iter().enumerate().skip(first) {
            let ms = (i as u64 * STEP_MS).max(floor_ms);
            let prior_longer = if ms < PRIOR_MS {
                PRIOR_WENT_ON_LONG + PRIOR_WENT_ON_SHORT
            } else {
                PRIOR_WENT_ON_LONG
            };
            if ends / (ends + longer as f64 + prior_longer) >= TARGET {
                return Some(ms);
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
        // Past the longest pause a speaker went on after.
        assert_eq!(at, 416);
    }

    #[test]
    fn a_few_pauses_that_went_on_move_speculation_past_them_without_stopping_it() {
        // A meeting's first minute: three utterances ended, five pauses went on, two of them
        // at 400 ms.
        let mut p = PauseStats::new(700);
        for _ in 0..3 {
            p.ended();
        }
        for ms in [200, 250, 380, 400, 410] {
            p.went_on(ms);
        }
        assert_eq!(p.speculate_after(160), Some(416));
    }

    #[test]
    fn speakers_who_often_go_on_after_long_pauses_get_no_speculation_before_them() {
        let mut p = PauseStats::new(700);
        p.ended();
        for _ in 0..7 {
            p.went_on(650);
        }
        assert!(p.speculate_after(160).is_none_or(|ms| ms > 650));
    }
}
