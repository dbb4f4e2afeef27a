//! Scoring transcripts against a reference (`reference.json`: who said what, when): word error
//! rate per speaker and overall, and whether each word landed under the right speaker.

use parley_shared::Segment;
use parley_shared::words::normalized_words;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    #[serde(default)]
    pub meeting: String,
    pub duration_ms: u64,
    pub speakers: Vec<RefSpeaker>,
    pub utterances: Vec<RefUtterance>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefSpeaker {
    pub key: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefUtterance {
    pub speaker: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

impl Reference {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a reference file: {e}", path.display()))
    }
}

/// A hypothesis segment to score: speaker key, times, text.
#[derive(Debug, Clone)]
pub struct HypSegment {
    pub speaker: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

impl HypSegment {
    /// Final segments as hypotheses, by speaker key.
    pub fn finals<'a>(segments: impl IntoIterator<Item = &'a Segment>) -> Vec<HypSegment> {
        segments
            .into_iter()
            .filter(|s| s.is_final)
            .map(|s| HypSegment {
                speaker: s.speaker.key.to_string(),
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: s.text.clone(),
            })
            .collect()
    }
}

/// Word errors against a reference word count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WordErrors {
    pub errors: usize,
    pub words: usize,
}

impl WordErrors {
    pub fn rate(&self) -> f64 {
        if self.words == 0 {
            0.0
        } else {
            self.errors as f64 / self.words as f64
        }
    }

    fn add(&mut self, other: WordErrors) {
        self.errors += other.errors;
        self.words += other.words;
    }
}

/// Levenshtein distance over normalised words.
pub fn word_errors(reference: &str, hypothesis: &str) -> WordErrors {
    let r = normalized_words(reference);
    WordErrors {
        errors: edit_distance(&r, &normalized_words(hypothesis)),
        words: r.len(),
    }
}

fn edit_distance(r: &[String], h: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    let mut cur = vec![0; h.len() + 1];
    for (i, rw) in r.iter().enumerate() {
        cur[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[h.len()]
}

/// How much of what the partials showed their final changed: each partial's words but its last
/// (which may be cut off mid-word) against as many first words of its segment's final. `words`
/// counts the partials' words compared; a partial whose segment has no final is left out.
pub fn partial_revisions<'a>(segments: impl IntoIterator<Item = &'a Segment>) -> WordErrors {
    let segments: Vec<&Segment> = segments.into_iter().collect();
    let finals: BTreeMap<_, Vec<String>> = segments
        .iter()
        .filter(|s| s.is_final)
        .map(|s| (s.segment_id, normalized_words(&s.text)))
        .collect();
    let mut total = WordErrors::default();
    for partial in segments.iter().filter(|s| !s.is_final) {
        let Some(fin) = finals.get(&partial.segment_id) else {
            continue;
        };
        let shown = normalized_words(&partial.text);
        let n = shown.len().saturating_sub(1);
        if n == 0 {
            continue;
        }
        total.add(WordErrors {
            errors: edit_distance(&fin[..n.min(fin.len())], &shown[..n]),
            words: n,
        });
    }
    total
}

/// How long the reference's speech waited to be shown (see [`speech_shown`]).
#[derive(Debug, Clone, Default)]
pub struct SpeechShown {
    /// Seconds each moment waited.
    pub waits: Vec<f64>,
    /// Moments no segment of their speaker reached.
    pub missed: usize,
}

/// For each 100 ms of every reference utterance, the seconds from that moment to the first
/// segment of its speaker, partial or final, whose audio reaches it (`published`: seconds on
/// the meeting clock). Unlike a segment's latency, which counts from the end of the audio it
/// covers, this also counts how long speech waited for the next partial to be asked for.
pub fn speech_shown<'a>(
    reference: &Reference,
    published: impl IntoIterator<Item = (f64, &'a Segment)>,
) -> SpeechShown {
    let mut by_speaker: BTreeMap<&str, Vec<(f64, &Segment)>> = BTreeMap::new();
    for (at, s) in published {
        by_speaker
            .entry(s.speaker.key.as_str())
            .or_default()
            .push((at, s));
    }
    let mut shown = SpeechShown::default();
    for u in &reference.utterances {
        let segments = by_speaker
            .get(u.speaker.as_str())
            .map_or(&[][..], Vec::as_slice);
        for moment_ms in (u.start_ms + WAIT_STEP_MS / 2..u.end_ms).step_by(WAIT_STEP_MS as usize) {
            let first = segments
                .iter()
                .filter(|(_, s)| (s.start_ms..=s.end_ms).contains(&moment_ms))
                .map(|(at, _)| *at)
                .min_by(f64::total_cmp);
            match first {
                Some(at) => shown.waits.push(at - moment_ms as f64 / 1000.0),
                None => shown.missed += 1,
            }
        }
    }
    shown
}

/// The reference's speech is sampled every this many ms for [`speech_shown`].
const WAIT_STEP_MS: u64 = 100;

#[derive(Debug, Clone, Default)]
pub struct Score {
    pub per_speaker: BTreeMap<String, WordErrors>,
    pub overall: WordErrors,
    /// Hypothesis words whose segment overlaps most with a reference utterance of the same
    /// speaker, over all hypothesis words.
    pub attributed: usize,
    pub hyp_words: usize,
}

impl Score {
    pub fn attribution(&self) -> f64 {
        if self.hyp_words == 0 {
            1.0
        } else {
            self.attributed as f64 / self.hyp_words as f64
        }
    }
}

pub fn score(reference: &Reference, hyps: &[HypSegment]) -> Score {
    let mut out = Score::default();
    for sp in &reference.speakers {
        let mut refs: Vec<&RefUtterance> = reference
            .utterances
            .iter()
            .filter(|u| u.speaker == sp.key)
            .collect();
        refs.sort_by_key(|u| u.start_ms);
        let mut mine: Vec<&HypSegment> = hyps.iter().filter(|h| h.speaker == sp.key).collect();
        mine.sort_by_key(|h| h.start_ms);
        let r = refs
            .iter()
            .map(|u| u.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let h = mine
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let e = word_errors(&r, &h);
        out.per_speaker.insert(sp.key.clone(), e);
        out.overall.add(e);
    }
    // Words under a speaker the reference does not know are errors too.
    for h in hyps
        .iter()
        .filter(|h| !reference.speakers.iter().any(|s| s.key == h.speaker))
    {
        out.overall.errors += normalized_words(&h.text).len();
    }
    for h in hyps {
        let words = normalized_words(&h.text).len();
        out.hyp_words += words;
        let best = reference
            .utterances
            .iter()
            .map(|u| {
                (
                    u.end_ms
                        .min(h.end_ms)
                        .saturating_sub(u.start_ms.max(h.start_ms)),
                    u,
                )
            })
            .filter(|(overlap, _)| *overlap > 0)
            .max_by_key(|(overlap, _)| *overlap);
        if best.is_some_and(|(_, u)| u.speaker == h.speaker) {
            out.attributed += words;
        }
    }
    out
}

/// Percentile (0-100) of a sample, nearest rank; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_substitutions_insertions_deletions() {
        assert_eq!(
            word_errors("the cat sat", "the cat sat"),
            WordErrors {
                errors: 0,
                words: 3
            }
        );
        assert_eq!(
            word_errors("the cat sat", "the bat sat down"),
            WordErrors {
                errors: 2,
                words: 3
            }
        );
        assert_eq!(
            word_errors("the cat sat", ""),
            WordErrors {
                errors: 3,
                words: 3
            }
        );
        assert_eq!(
            word_errors("It moved 4,200 accounts.", "it moved 4200 accounts"),
            WordErrors {
                errors: 0,
                words: 4
            }
        );
    }

    #[test]
    fn words_under_the_wrong_speaker_count_against_both() {
        let reference = Reference {
            meeting: String::new(),
            duration_ms: 4000,
            speakers: vec![
                RefSpeaker {
                    key: "a".into(),
                    name: "A".into(),
                },
                RefSpeaker {
                    key: "b".into(),
                    name: "B".into(),
                },
            ],
            utterances: vec![
                RefUtterance {
                    speaker: "a".into(),
                    start_ms: 0,
                    end_ms: 1000,
                    text: "hello there".into(),
                },
                RefUtterance {
                    speaker: "b".into(),
                    start_ms: 2000,
                    end_ms: 3000,
                    text: "general kenobi".into(),
                },
            ],
        };
        let hyp = |speaker: &str, start_ms, text: &str| HypSegment {
            speaker: speaker.into(),
            start_ms,
            end_ms: start_ms + 1000,
            text: text.into(),
        };
        let right = score(
            &reference,
            &[hyp("a", 0, "hello there"), hyp("b", 2000, "general kenobi")],
        );
        assert_eq!(right.overall.errors, 0);
        assert_eq!(right.attribution(), 1.0);
        let wrong = score(
            &reference,
            &[hyp("a", 0, "hello there"), hyp("a", 2000, "general kenobi")],
        );
        assert_eq!(wrong.overall.errors, 4);
        assert_eq!(wrong.attribution(), 0.5);
    }

    #[test]
    fn a_partial_is_judged_by_its_words_before_the_last_against_its_final() {
        let meeting = parley_shared::MeetingId::new_random();
        let speaker = parley_shared::Speaker {
            key: parley_shared::SpeakerKey::parse("a").expect("key"),
            name: "A".into(),
        };
        let seg = |start_ms: u64, text: &str, is_final| Segment {
            segment_id: parley_shared::SegmentId::derive(meeting, &speaker.key, start_ms),
            speaker: speaker.clone(),
            start_ms,
            end_ms: start_ms + 1000,
            text: text.into(),
            is_final,
        };
        let segments = [
            // "mor" is the last word, cut off: not counted; "good" is kept by the final.
            seg(0, "Good mor", false),
            // "nice" became "night": one of three words changed.
            seg(0, "Good morning nice wo", false),
            seg(0, "Good morning night word, all.", true),
            // No final yet: left out.
            seg(5000, "Still talking here", false),
        ];
        assert_eq!(
            partial_revisions(&segments),
            WordErrors {
                errors: 1,
                words: 4
            }
        );
    }

    #[test]
    fn speech_waits_for_the_first_segment_that_reaches_it() {
        let meeting = parley_shared::MeetingId::new_random();
        let speaker = |key: &str| parley_shared::Speaker {
            key: parley_shared::SpeakerKey::parse(key).expect("key"),
            name: key.to_uppercase(),
        };
        let seg = |key: &str, start_ms: u64, end_ms: u64, is_final| Segment {
            segment_id: parley_shared::SegmentId::derive(meeting, &speaker(key).key, start_ms),
            speaker: speaker(key),
            start_ms,
            end_ms,
            text: "words".into(),
            is_final,
        };
        let reference = Reference {
            meeting: String::new(),
            duration_ms: 10_000,
            speakers: Vec::new(),
            utterances: vec![RefUtterance {
                speaker: "a".into(),
                start_ms: 1000,
                end_ms: 1400,
                text: "one two".into(),
            }],
        };
        let partial = seg("a", 1000, 1200, false);
        let fin = seg("a", 1000, 1300, true);
        // Another speaker's segment over the same moments shows none of A's speech.
        let other = seg("b", 0, 2000, true);
        let shown = speech_shown(&reference, [(1.25, &other), (1.5, &partial), (2.0, &fin)]);
        // 1050 and 1150 ms by the partial, 1250 by the final; 1350 ms no segment reaches.
        let rounded: Vec<i64> = shown
            .waits
            .iter()
            .map(|w| (w * 1000.0).round() as i64)
            .collect();
        assert_eq!(rounded, vec![450, 350, 750]);
        assert_eq!(shown.missed, 1);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 95.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
