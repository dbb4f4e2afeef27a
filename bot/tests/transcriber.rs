//! The streaming transcriber's contract, driven faster than real time with real audio and a fake
//! decoder: partials grow with stable committed words, each utterance ends in exactly one final,
//! speculative decodes are reused, late and failed results are handled, segment ids are
//! deterministic, and finals are decoded after the speaker's earlier speech.

use parley_bot::asr::transcriber::{DecodeRequest, Transcriber, TranscriberConfig};
use parley_bot::asr::whisper::{DecodeKind, Hypothesis};
use parley_bot::audio::file::read_16k;
use parley_bot::audio::track::AudioChunk;
use parley_shared::{MeetingId, Segment, Speaker, SpeakerKey};
use std::collections::HashMap;

mod common;

use common::{chunked, testdata};

fn speaker(key: &str) -> Speaker {
    Speaker {
        key: SpeakerKey::parse(key).expect("key"),
        name: key.to_uppercase(),
    }
}

/// One word per half second of audio: longer audio, longer hypothesis with the same prefix.
fn fake_decode(req: &DecodeRequest) -> Hypothesis {
    let words = (req.samples.len() / 8000).max(1);
    let text = (0..words)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    Hypothesis {
        text,
        no_speech_prob: 0.0,
        avg_logprob: -0.2,
    }
}

struct Harness {
    t: Transcriber,
    requests: Vec<DecodeRequest>,
    /// Every request ever made: (kind, utterance start, audio end), in 16 kHz samples.
    asked: Vec<(DecodeKind, u64, u64)>,
    segments: Vec<Segment>,
}

impl Harness {
    fn new(mut config: TranscriberConfig) -> Self {
        // The fake decoder's words stand for audio length, not content, so the previous
        // utterances' words cannot be found and stripped in front of the next; acoustic context
        // has its own tests with real text.
        config.acoustic_context = 0;
        Self::with_acoustic_context(config)
    }

    fn with_acoustic_context(config: TranscriberConfig) -> Self {
        let meeting = MeetingId::from_uuid(uuid::Uuid::nil());
        Self {
            t: Transcriber::new(meeting, config),
            requests: Vec::new(),
            asked: Vec::new(),
            segments: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(r) = self.t.poll_request() {
            self.asked.push((r.kind, r.utterance, r.end));
            self.requests.push(r);
        }
        while let Some(s) = self.t.poll_segment() {
            self.segments.push(s);
        }
    }

    /// Plays one speaker's sample track, answering every decode as soon as it is asked for, as
    /// a fast worker would.
    fn run_answering_at_once(&mut self, key: &str) {
        let stream = self.t.add_speaker(speaker(key));
        for c in &track(&format!("{key}.opus")) {
            self.t.push_audio(stream, c);
            self.drain();
            self.answer_all(&|r| Ok(fake_decode(r)));
        }
        self.t.finish_stream(stream);
        self.drain();
        self.answer_all(&|r| Ok(fake_decode(r)));
    }

    /// Answers every waiting request, in order, with the fake decoder (or `answer`).
    fn answer_all(&mut self, answer: &dyn Fn(&DecodeRequest) -> Result<Hypothesis, String>) {
        let pending: Vec<DecodeRequest> = std::mem::take(&mut self.requests);
        for r in &pending {
            self.t
                .on_result(r.stream, r.utterance, r.end, r.kind, answer(r));
            self.drain();
        }
    }
}

fn track(name: &str) -> Vec<AudioChunk> {
    chunked(&read_16k(&testdata(&format!("sample/{name}")), 120_000).expect("decode"))
}

#[test]
fn every_utterance_gets_partials_then_exactly_one_final() {
    let mut h = Harness::new(TranscriberConfig::default());
    let ana = h.t.add_speaker(speaker("ana"));
    let ben = h.t.add_speaker(speaker("ben"));
    let (a, b) = (track("ana.opus"), track("ben.opus"));
    // Both tracks interleaved, decodes answered promptly (every 100 ms of audio).
    for (i, (ca, cb)) in a.iter().zip(&b).enumerate() {
        h.t.push_audio(ana, ca);
        h.t.push_audio(ben, cb);
        h.drain();
        if i % 5 == 4 {
            h.answer_all(&|r| Ok(fake_decode(r)));
        }
    }
    h.t.finish_stream(ana);
    h.t.finish_stream(ben);
    h.drain();
    h.answer_all(&|r| Ok(fake_decode(r)));
    assert_eq!(h.t.pending_finals(), 0);

    let mut by_id: HashMap<_, Vec<&Segment>> = HashMap::new();
    for s in &h.segments {
        by_id.entry(s.segment_id).or_default().push(s);
    }
    let finals: Vec<&Segment> = h.segments.iter().filter(|s| s.is_final).collect();
    // The sample has three utterances by Ana and two by Ben (two of them with a sentence pause
    // inside, which stays one utterance).
    let count = |k: &str| {
        finals
            .iter()
            .filter(|s| s.speaker.key.as_str() == k)
            .count()
    };
    assert_eq!((count("ana"), count("ben")), (3, 2), "{finals:#?}");
    for (id, events) in &by_id {
        let last = events.last().expect("events");
        assert!(last.is_final, "{id}: no final");
        assert_eq!(
            events.iter().filter(|s| s.is_final).count(),
            1,
            "{id}: more than one final"
        );
        // Partials of one segment only grow their committed prefix: each extends the previous.
        let partials: Vec<&str> = events
            .iter()
            .filter(|s| !s.is_final)
            .map(|s| s.text.as_str())
            .collect();
        for pair in partials.windows(2) {
            assert!(
                pair[1].starts_with(pair[0].split(' ').next().unwrap_or("")),
                "{pair:?}"
            );
        }
    }
    assert!(h.segments.iter().any(|s| !s.is_final), "no partials at all");
}

#[test]
fn a_speculative_decode_becomes_the_final_without_a_second_decode() {
    let mut h = Harness::new(TranscriberConfig::offline());
    h.run_answering_at_once("ana");
    let finals: Vec<&Segment> = h.segments.iter().filter(|s| s.is_final).collect();
    assert_eq!(finals.len(), 3);
    for f in finals {
        // Exactly one final-quality decode ran on the final audio: the speculative one.
        let decodes = h
            .asked
            .iter()
            .filter(|(kind, utt, end)| {
                *kind == DecodeKind::Final && utt / 16 == f.start_ms && end / 16 == f.end_ms
            })
            .count();
        assert_eq!(
            decodes, 1,
            "segment at {} ms decoded {decodes} times",
            f.start_ms
        );
    }
}

#[test]
fn a_failed_final_keeps_what_the_partials_committed_and_late_partials_are_ignored() {
    let mut h = Harness::new(TranscriberConfig::default());
    let ana = h.t.add_speaker(speaker("ana"));
    let chunks = track("ana.opus");
    let mut held: Vec<DecodeRequest> = Vec::new();
    for c in &chunks {
        h.t.push_audio(ana, c);
        h.drain();
        // Partials answered at once; final-quality decodes fail.
        let pending = std::mem::take(&mut h.requests);
        for r in pending {
            match r.kind {
                DecodeKind::Partial if held.is_empty() => held.push(r),
                DecodeKind::Partial => {
                    let hyp = fake_decode(&r);
                    h.t.on_result(r.stream, r.utterance, r.end, r.kind, Ok(hyp));
                }
                _ => h.t.on_result(
                    r.stream,
                    r.utterance,
                    r.end,
                    r.kind,
                    Err("decoder crashed".into()),
                ),
            }
            h.drain();
        }
    }
    h.t.finish_stream(ana);
    h.drain();
    h.answer_all(&|_| Err("decoder crashed".into()));
    // The very first partial, answered after its utterance's final: ignored.
    let before = h.segments.len();
    for r in held {
        let hyp = fake_decode(&r);
        h.t.on_result(r.stream, r.utterance, r.end, r.kind, Ok(hyp));
    }
    h.drain();
    assert_eq!(
        h.segments.len(),
        before,
        "a late partial changed a finished segment"
    );
    assert_eq!(h.t.pending_finals(), 0);
    for s in h.segments.iter().filter(|s| s.is_final) {
        assert!(s.text.split(' ').all(|w| w.starts_with('w')), "{}", s.text);
    }
}

#[test]
fn segment_ids_are_the_same_on_a_second_run() {
    let run = || {
        let mut h = Harness::new(TranscriberConfig::offline());
        h.run_answering_at_once("ben");
        h.segments
            .iter()
            .filter(|s| s.is_final)
            .map(|s| (s.segment_id, s.start_ms))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

/// Ana's three utterances, each final decoded as a Whisper that heard the context would: every
/// earlier utterance's words, then its own (`own(index, retry)`; a retry is decoded alone).
fn run_with_context(own: &dyn Fn(usize, bool) -> String) -> (Harness, Vec<DecodeRequest>) {
    let words = ["Alpha.", "Bravo charlie.", "Delta."];
    let mut config = TranscriberConfig::offline();
    config.acoustic_context = 16 * 16_000;
    let mut h = Harness::with_acoustic_context(config);
    let ana = h.t.add_speaker(speaker("ana"));
    for c in &track("ana.opus") {
        h.t.push_audio(ana, c);
    }
    h.t.finish_stream(ana);
    h.drain();
    let mut asked = Vec::new();
    let mut done = 0;
    while let Some(r) = h.requests.pop() {
        assert!(
            h.requests.is_empty(),
            "a final was asked for before the one before it ended"
        );
        let retry = asked
            .last()
            .is_some_and(|a: &DecodeRequest| a.utterance == r.utterance);
        let heard = if retry {
            own(done, true)
        } else {
            format!("{} {}", words[..done].join(" "), own(done, false))
        };
        h.t.on_result(r.stream, r.utterance, r.end, r.kind, Ok(hyp(&heard)));
        asked.push(r);
        h.drain();
        done = h.segments.len();
    }
    assert_eq!(h.t.pending_finals(), 0);
    (h, asked)
}

fn hyp(text: &str) -> Hypothesis {
    Hypothesis {
        text: text.trim().to_owned(),
        no_speech_prob: 0.0,
        avg_logprob: -0.2,
    }
}

fn final_texts(h: &Harness) -> Vec<&str> {
    h.segments.iter().map(|s| s.text.as_str()).collect()
}

#[test]
fn finals_are_decoded_after_the_speakers_earlier_speech_whose_words_are_removed() {
    let words = ["Alpha.", "Bravo charlie.", "Delta."];
    let (h, asked) = run_with_context(&|i, _| words[i].to_owned());
    assert_eq!(final_texts(&h), words);
    assert_eq!(asked.len(), 3);
    // Each request is the one before it, a short silence, then the new utterance.
    for pair in asked.windows(2) {
        let (before, after) = (&pair[0].samples, &pair[1].samples);
        assert!(after.len() > before.len() + 4_000);
        assert_eq!(&after[..before.len()], &before[..]);
        assert!(
            after[before.len()..before.len() + 4_000]
                .iter()
                .all(|&x| x == 0.0)
        );
    }
}

#[test]
fn a_final_that_loops_or_loses_its_words_after_the_context_is_decoded_alone() {
    let (h, asked) = run_with_context(&|i, alone| match (i, alone) {
        (0, _) => "Alpha.".into(),
        (1, false) => "Monday, Monday, Monday, Monday, Monday.".into(),
        (1, true) => "Bravo charlie.".into(),
        (2, false) => String::new(),
        (2, true) => "Delta.".into(),
        _ => unreachable!(),
    });
    assert_eq!(final_texts(&h), ["Alpha.", "Bravo charlie.", "Delta."]);
    // Both retries carry only the utterance's own audio.
    assert_eq!(asked.len(), 5);
    assert_eq!(asked[2].utterance, asked[1].utterance);
    assert_eq!(
        asked[2].samples,
        asked[1].samples[asked[1].samples.len() - asked[2].samples.len()..]
    );
    assert_eq!(asked[4].utterance, asked[3].utterance);
}
