//! The streaming transcriber's contract, driven faster than real time with real audio and a fake
//! decoder: partials grow with stable committed words, each utterance ends in exactly one final,
//! speculative decodes are reused, late, failed and dropped results are handled, segment ids
//! are deterministic, and finals are decoded after the speaker's earlier speech and its words.

use parley_bot::asr::transcriber::{DecodeRequest, Purpose, Transcriber, TranscriberConfig};
use parley_bot::asr::whisper::Hypothesis;
use parley_bot::audio::file::read_16k;
use parley_bot::audio::track::AudioChunk;
use parley_shared::{MeetingId, Segment, Speaker, SpeakerKey};
use std::collections::HashMap;

use crate::common;

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
    hyp(&text)
}

struct Harness {
    t: Transcriber,
    requests: Vec<DecodeRequest>,
    /// Every request ever made: (purpose, utterance start, audio end), in 16 kHz samples.
    asked: Vec<(Purpose, u64, u64)>,
    segments: Vec<Segment>,
}

impl Harness {
    fn new(mut config: TranscriberConfig) -> Self {
        // The fake decoder's words stand for audio length, not content; acoustic context has
        // its own tests.
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
            self.asked.push((r.purpose, r.utterance, r.end));
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

    /// Plays the three tracks of `testdata/meeting-dev` side by side (enough pauses for the
    /// meeting to learn when to speculate), handing each round of requests to `answer`.
    fn run_meeting_dev(&mut self, answer: &mut dyn FnMut(&mut Self)) {
        let names = ["maria", "priya", "tom"];
        let tracks: Vec<Vec<AudioChunk>> = names
            .iter()
            .map(|n| {
                let path = testdata(&format!("meeting-dev/{n}.opus"));
                chunked(&read_16k(&path, 600_000).expect("decode"))
            })
            .collect();
        let streams: Vec<usize> = names
            .iter()
            .map(|n| self.t.add_speaker(speaker(n)))
            .collect();
        let longest = tracks.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..longest {
            for (track, &stream) in tracks.iter().zip(&streams) {
                if let Some(c) = track.get(i) {
                    self.t.push_audio(stream, c);
                }
            }
            self.drain();
            answer(self);
        }
        for &stream in &streams {
            self.t.finish_stream(stream);
        }
        self.drain();
        while !self.requests.is_empty() {
            answer(self);
        }
    }

    /// Answers every waiting request, in order, with the fake decoder (or `answer`).
    fn answer_all(&mut self, answer: &dyn Fn(&DecodeRequest) -> Result<Hypothesis, String>) {
        let pending: Vec<DecodeRequest> = std::mem::take(&mut self.requests);
        for r in &pending {
            self.t
                .on_result(r.stream, r.utterance, r.end, r.purpose, answer(r));
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

/// Finals and speculative decodes at pauses, no partials.
fn speculating() -> TranscriberConfig {
    let mut config = TranscriberConfig::default();
    config.segmenter.partial_every_ms = 0;
    config
}

#[test]
fn a_speculative_decode_becomes_the_final_without_a_second_decode() {
    let mut h = Harness::new(speculating());
    h.run_meeting_dev(&mut |h| h.answer_all(&|r| Ok(fake_decode(r))));
    let finals: Vec<&Segment> = h.segments.iter().filter(|s| s.is_final).collect();
    assert!(finals.len() >= 10, "{finals:#?}");
    let mut from_speculation = 0;
    for f in &finals {
        // Exactly one final-quality decode ran on the final audio: the speculative one, or
        // the final itself when no pause made one.
        let on_final_audio: Vec<Purpose> = h
            .asked
            .iter()
            .filter(|(_, utt, end)| utt / 16 == f.start_ms && end / 16 == f.end_ms)
            .map(|a| a.0)
            .collect();
        assert_eq!(
            on_final_audio.len(),
            1,
            "segment at {} ms decoded as {on_final_audio:?}",
            f.start_ms
        );
        from_speculation += usize::from(on_final_audio[0] == Purpose::Speculative);
    }
    assert!(
        from_speculation > 0,
        "no final came from a speculative decode: {:?}",
        h.asked
    );
}

#[test]
fn a_speculative_decode_is_marked_when_its_speaker_goes_on_and_only_then() {
    let mut h = Harness::new(speculating());
    let mut speculative: Vec<DecodeRequest> = Vec::new();
    h.run_meeting_dev(&mut |h| {
        let asked = h
            .requests
            .iter()
            .filter(|r| r.purpose == Purpose::Speculative);
        speculative.extend(asked.cloned());
        h.answer_all(&|r| Ok(fake_decode(r)));
    });
    let finals: Vec<(String, u64, u64)> = h
        .segments
        .iter()
        .filter(|s| s.is_final)
        .map(|s| (s.speaker.key.as_str().to_owned(), s.start_ms, s.end_ms))
        .collect();
    let mut went_on = 0;
    for r in &speculative {
        let key =
            h.t.speaker(r.stream)
                .expect("speaker")
                .key
                .as_str()
                .to_owned();
        let ended = finals.contains(&(key, r.utterance / 16, r.end / 16));
        let marked = r
            .went_on
            .as_ref()
            .expect("a speculative decode's flag")
            .is_set();
        assert_eq!(
            marked,
            !ended,
            "speculation at {} ms: ended {ended}",
            r.end / 16
        );
        went_on += usize::from(marked);
    }
    assert!(went_on > 0, "no speaker went on after a speculative decode");
    assert!(
        went_on < speculative.len(),
        "no speculative decode paid off"
    );
}

#[test]
fn a_dropped_speculative_decode_is_asked_for_again_as_the_final() {
    let mut answered = Harness::new(speculating());
    answered.run_meeting_dev(&mut |h| h.answer_all(&|r| Ok(fake_decode(r))));
    let mut h = Harness::new(speculating());
    // The pool is behind: every speculative decode is dropped unrun.
    h.run_meeting_dev(&mut |h| {
        for r in std::mem::take(&mut h.requests) {
            if r.purpose == Purpose::Speculative {
                h.t.on_dropped(r.stream, r.utterance, r.end);
                h.drain();
            } else {
                h.requests.push(r);
            }
        }
        h.answer_all(&|r| Ok(fake_decode(r)));
    });
    assert!(
        h.asked.iter().any(|(p, _, _)| *p == Purpose::Speculative),
        "the meeting never made a speculative decode"
    );
    assert_eq!(h.t.pending_finals(), 0);
    let finals = |h: &Harness| {
        h.segments
            .iter()
            .filter(|s| s.is_final)
            .map(|s| (s.speaker.key.as_str().to_owned(), s.start_ms, s.end_ms))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        finals(&h),
        finals(&answered),
        "a final was lost with its dropped speculation"
    );
}

#[test]
fn a_failed_final_keeps_what_the_partials_committed_and_late_partials_are_ignored() {
    // Partials every second and no speculation: enough partials to commit words.
    let mut config = TranscriberConfig::default();
    config.segmenter.partial_every_ms = 1000;
    config.segmenter.speculate_after_ms = 0;
    let mut h = Harness::new(config);
    let ana = h.t.add_speaker(speaker("ana"));
    let chunks = track("ana.opus");
    let mut held: Vec<DecodeRequest> = Vec::new();
    for c in &chunks {
        h.t.push_audio(ana, c);
        h.drain();
        // Partials answered at once; final-quality decodes fail.
        let pending = std::mem::take(&mut h.requests);
        for r in pending {
            match r.purpose {
                Purpose::Partial if held.is_empty() => held.push(r),
                Purpose::Partial => {
                    let hyp = fake_decode(&r);
                    h.t.on_result(r.stream, r.utterance, r.end, r.purpose, Ok(hyp));
                }
                _ => h.t.on_result(
                    r.stream,
                    r.utterance,
                    r.end,
                    r.purpose,
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
        h.t.on_result(r.stream, r.utterance, r.end, r.purpose, Ok(hyp));
    }
    h.drain();
    assert_eq!(
        h.segments.len(),
        before,
        "a late partial changed a finished segment"
    );
    assert_eq!(h.t.pending_finals(), 0);
    // Each final holds what its partials committed (nothing, if only one partial was shown).
    let finals: Vec<&Segment> = h.segments.iter().filter(|s| s.is_final).collect();
    for s in &finals {
        assert!(
            s.text.split_whitespace().all(|w| w.starts_with('w')),
            "{}",
            s.text
        );
    }
    assert!(
        finals.iter().any(|s| !s.text.is_empty()),
        "every committed word was lost: {finals:?}"
    );
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

/// Ana's three utterances, each final decoded as a Whisper given the context would: its own
/// words only (`own(index, alone)`; a retry is decoded alone), the context's words forced in
/// front.
fn run_with_context(own: &dyn Fn(usize, bool) -> String) -> (Harness, Vec<DecodeRequest>) {
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
        let heard = own(done, r.purpose == Purpose::Alone);
        h.t.on_result(r.stream, r.utterance, r.end, r.purpose, Ok(hyp(&heard)));
        asked.push(r);
        h.drain();
        done = h.segments.len();
    }
    assert_eq!(h.t.pending_finals(), 0);
    (h, asked)
}

/// A hypothesis whose tokens are its text's bytes.
fn hyp(text: &str) -> Hypothesis {
    let text = text.trim().to_owned();
    Hypothesis {
        tokens: text.bytes().map(i32::from).collect(),
        text,
        no_speech_prob: 0.0,
        avg_logprob: -0.2,
    }
}

fn final_texts(h: &Harness) -> Vec<&str> {
    h.segments.iter().map(|s| s.text.as_str()).collect()
}

#[test]
fn finals_are_decoded_after_the_speakers_earlier_speech_and_its_words() {
    let words = ["Alpha.", "Bravo charlie.", "Delta."];
    let (h, asked) = run_with_context(&|i, _| words[i].to_owned());
    assert_eq!(final_texts(&h), words);
    assert_eq!(asked.len(), 3);
    // Each request is the one before it, 0.3 s of silence, then the new utterance; the earlier
    // finals' tokens are its prefix.
    const GAP: usize = 4_800;
    for (i, pair) in asked.windows(2).enumerate() {
        let (before, after) = (&pair[0].samples, &pair[1].samples);
        assert!(after.len() > before.len() + GAP);
        assert_eq!(&after[..before.len()], &before[..]);
        assert!(
            after[before.len()..before.len() + GAP]
                .iter()
                .all(|&x| x == 0.0)
        );
        assert_eq!(pair[1].own_samples, after.len() - before.len() - GAP);
        let earlier: Vec<i32> = words[..=i].concat().bytes().map(i32::from).collect();
        assert_eq!(pair[1].prefix, earlier);
    }
    assert!(asked[0].prefix.is_empty());
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
    // Both retries carry only the utterance's own audio, and no prefix.
    assert_eq!(asked.len(), 5);
    assert_eq!(asked[2].utterance, asked[1].utterance);
    assert_eq!(asked[2].purpose, Purpose::Alone);
    assert_eq!(asked[2].samples, asked[1].own_audio());
    assert!(asked[2].prefix.is_empty());
    assert_eq!(asked[4].utterance, asked[3].utterance);
}
