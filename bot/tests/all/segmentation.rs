//! The sans-IO path on real recorded audio, faster than real time: voice gate and utterance
//! segmentation against the reference timings, with packet loss and reordering on the RTP path,
//! silence, and one speaker talking over another.

use parley_bot::asr::utterance::{Segmenter, SegmenterConfig, SegmenterOutput, UtteranceAudio};
use parley_bot::audio::file::{AudioFile, FileFrame, read_16k};
use parley_bot::audio::jitter::{JitterConfig, RtpPacket};
use parley_bot::audio::track::{AudioChunk, RtpOpusTrack};
use parley_bot::audio::vad::{FRAME, VadConfig, VoiceGate};
use parley_testkit::eval::Reference;

use crate::common;

use common::{chunked, testdata};

fn finals(chunks: &[AudioChunk], config: SegmenterConfig) -> Vec<UtteranceAudio> {
    let mut seg = Segmenter::new(config, VadConfig::default());
    let mut out = Vec::new();
    for c in chunks {
        seg.push(c);
        while let Some(o) = seg.poll() {
            if let SegmenterOutput::Final(u) = o {
                out.push(u);
            }
        }
    }
    seg.finish();
    while let Some(o) = seg.poll() {
        if let SegmenterOutput::Final(u) = o {
            out.push(u);
        }
    }
    out
}

/// Every reference utterance is covered by the audio handed to Whisper (all but the pauses between
/// sentences), and detected speech lies inside reference utterances (give or take the gate's
/// reaction time).
fn assert_matches_reference(speaker: &str, found: &[UtteranceAudio], reference: &Reference) {
    let ms = |s: u64| s / 16;
    let refs: Vec<_> = reference
        .utterances
        .iter()
        .filter(|u| u.speaker == speaker)
        .collect();
    for u in &refs {
        // What Whisper is given: the samples, with their pre-roll and tail.
        let covered: u64 = found
            .iter()
            .map(|f| {
                let (from, to) = (
                    ms(f.audio_start),
                    ms(f.audio_start + f.samples.len() as u64),
                );
                to.min(u.end_ms).saturating_sub(from.max(u.start_ms))
            })
            .sum();
        let span = u.end_ms - u.start_ms;
        assert!(
            covered * 100 >= span * 90,
            "{speaker}: utterance at {} ms only {covered} of {span} ms detected",
            u.start_ms
        );
    }
    for f in found {
        let inside = refs
            .iter()
            .any(|u| ms(f.start) + 150 >= u.start_ms && ms(f.end) <= u.end_ms + 150);
        assert!(
            inside,
            "{speaker}: speech detected at {}-{} ms where the reference has none",
            ms(f.start),
            ms(f.end)
        );
        assert!(
            f.end - f.start <= 20 * 16_000,
            "{speaker}: utterance longer than 20 s"
        );
    }
}

#[test]
fn utterances_match_the_reference_on_every_track() {
    let dir = testdata("meeting-dev");
    let reference = Reference::load(&dir.join("reference.json")).expect("reference");
    for sp in &reference.speakers {
        let samples =
            read_16k(&dir.join(format!("{}.opus", sp.key)), 10 * 60 * 1000).expect("decode");
        let found = finals(&chunked(&samples), SegmenterConfig::default());
        assert_matches_reference(&sp.key, &found, &reference);
    }
}

#[test]
fn a_long_turn_is_split_at_a_pause_and_never_exceeds_the_limit() {
    let dir = testdata("meeting-dev");
    let samples = read_16k(&dir.join("tom.opus"), 10 * 60 * 1000).expect("decode");
    // Tom's 19.9 s turn starts at 23.09 s; with a 12 s hard limit it must be cut.
    let config = SegmenterConfig {
        max_ms: 12_000,
        soft_max_ms: 8_000,
        ..SegmenterConfig::default()
    };
    let found = finals(&chunked(&samples), config);
    let in_turn: Vec<_> = found
        .iter()
        .filter(|f| f.start >= 22_500 * 16 && f.end <= 43_500 * 16)
        .collect();
    assert!(
        in_turn.len() >= 2,
        "the 20 s turn was not split: {:?}",
        in_turn
            .iter()
            .map(|f| (f.start / 16, f.end / 16))
            .collect::<Vec<_>>()
    );
    for f in &in_turn {
        assert!(f.end - f.start <= 12 * 16_000);
    }
    // The pieces still cover the turn: nothing is lost at the seams.
    let covered: u64 = in_turn.iter().map(|f| f.end - f.start).sum::<u64>() / 16;
    assert!(
        covered >= 18_000,
        "only {covered} ms of the 19.9 s turn kept"
    );
}

/// Each partial decodes the whole utterance so far: in a long turn they are spaced by half the
/// length already shown rather than every 2 s, so their decoding per second of speech stays
/// bounded however long the speaker goes on.
#[test]
fn the_partials_of_a_long_turn_thin_out_as_it_grows() {
    let dir = testdata("meeting-dev");
    let samples = read_16k(&dir.join("tom.opus"), 10 * 60 * 1000).expect("decode");
    let config = SegmenterConfig {
        // One utterance for Tom's whole 19.9 s turn, and no speculation resetting the spacing.
        end_silence_ms: 2_000,
        soft_max_ms: 30_000,
        max_ms: 30_000,
        speculate_after_ms: 0,
        partial_every_ms: 2_000,
        ..SegmenterConfig::default()
    };
    let mut seg = Segmenter::new(config, VadConfig::default());
    let mut partials: Vec<(u64, usize)> = Vec::new();
    let mut finals: Vec<(u64, usize)> = Vec::new();
    for c in chunked(&samples) {
        seg.push(&c);
        while let Some(o) = seg.poll() {
            match o {
                SegmenterOutput::Partial(u) => partials.push((u.start, u.samples.len())),
                SegmenterOutput::Final(u) => finals.push((u.start, u.samples.len())),
                SegmenterOutput::Speculative(_) => {}
            }
        }
    }
    let turn_start = partials
        .iter()
        .find(|(start, _)| (22_500 * 16..24_000 * 16).contains(start))
        .map(|(start, _)| *start)
        .expect("partials of the long turn");
    let lengths: Vec<usize> = partials
        .iter()
        .filter(|(start, _)| *start == turn_start)
        .map(|(_, len)| *len)
        .collect();
    let seconds: Vec<f64> = lengths.iter().map(|l| *l as f64 / 16_000.0).collect();
    let turn = finals
        .iter()
        .find(|(start, _)| *start == turn_start)
        .map(|(_, len)| *len)
        .expect("the turn's final");
    assert!(
        turn >= 18 * 16_000,
        "the turn is one long utterance: {} s",
        turn / 16_000
    );
    for pair in lengths.windows(2) {
        assert!(
            pair[1] - pair[0] >= (2 * 16_000).max(pair[0] / 2),
            "partials closer than half the length shown: {seconds:?}"
        );
    }
    // Every 2 s would have been 9 over this turn.
    assert!(lengths.len() <= 5, "{seconds:?}");
}

/// A pause is decoded speculatively once it has lasted long enough, but not on the frame where
/// the voice comes back: that frame already sounds voiced (the gate opens on the next one), so
/// the speaker is going on and the decode would be wasted. Each threshold tried is the length
/// of a real pause up to and including such a frame, the moment speculation used to fire.
#[test]
fn no_speculation_on_the_frame_where_the_voice_comes_back() {
    let dir = testdata("meeting-dev");
    let samples = read_16k(&dir.join("tom.opus"), 10 * 60 * 1000).expect("decode");
    let config = SegmenterConfig::default();
    let frame_ms = FRAME as u64 * 1000 / 16_000;
    let mut gate = VoiceGate::new(VadConfig::default());
    let mut opening = Vec::new();
    let mut thresholds = std::collections::BTreeSet::new();
    let (mut silence, mut heard) = (0, false);
    for f in samples.chunks_exact(FRAME) {
        let d = gate.classify(f);
        opening.push(d.opening);
        if d.voiced {
            (silence, heard) = (0, true);
            continue;
        }
        silence += 1;
        let ms = silence * frame_ms;
        if d.opening && heard && (config.speculate_after_ms..config.end_silence_ms).contains(&ms) {
            thresholds.insert(ms);
        }
        if ms >= config.end_silence_ms {
            heard = false;
        }
    }
    assert!(!thresholds.is_empty(), "no pause ends where the test looks");
    let mut speculated = 0;
    for &after in &thresholds {
        let mut seg = Segmenter::new(config, VadConfig::default());
        seg.set_speculate_after(Some(after));
        for (i, f) in samples.chunks_exact(FRAME).enumerate() {
            seg.push(&AudioChunk {
                start: (i * FRAME) as u64,
                samples: f.to_vec(),
            });
            while let Some(out) = seg.poll() {
                if let SegmenterOutput::Speculative(u) = out {
                    speculated += 1;
                    assert!(
                        !opening[i],
                        "speculated after {after} ms on frame {i}, where the voice came back \
                         (utterance from {} s)",
                        u.start / 16_000
                    );
                }
            }
        }
    }
    assert!(speculated > 0, "no speculation at {thresholds:?} ms");
}

#[test]
fn packet_loss_and_reordering_on_rtp_still_find_every_utterance() {
    let dir = testdata("meeting-dev");
    let reference = Reference::load(&dir.join("reference.json")).expect("reference");
    let mut file = AudioFile::open(&dir.join("maria.opus")).expect("open");
    let mut packets = Vec::new();
    while let Some(frame) = file.next_frame().expect("read") {
        if let FileFrame::Opus { pos, payload } = frame {
            packets.push((pos, payload));
        }
    }
    // 3 % loss (every 33rd packet) and every 7th pair swapped, arrival times jittered.
    let mut order: Vec<usize> = (0..packets.len()).filter(|i| i % 33 != 17).collect();
    for i in (0..order.len().saturating_sub(1)).step_by(7) {
        order.swap(i, i + 1);
    }
    let mut track = RtpOpusTrack::new(JitterConfig::default()).expect("track");
    let mut chunks = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        let (pos, payload) = &packets[i];
        let arrival = n as u64 * 20;
        track.push(
            RtpPacket {
                seq: i as u16,
                timestamp: *pos as u32,
                payload: payload.clone(),
            },
            arrival,
        );
        track.poll(arrival, &mut chunks).expect("poll");
    }
    track.finish(&mut chunks).expect("finish");
    // A loss at the very end is not noticed: nothing comes after it.
    let dropped = packets.len() - order.len();
    assert!(
        (track.jitter_stats().lost as usize).abs_diff(dropped) <= 1,
        "{} lost, {dropped} dropped",
        track.jitter_stats().lost
    );
    let found = finals(&chunks, SegmenterConfig::default());
    assert_matches_reference("maria", &found, &reference);
}

#[test]
fn silence_gives_nothing() {
    let silence = vec![0.0f32; 16_000 * 180];
    assert!(finals(&chunked(&silence), SegmenterConfig::default()).is_empty());
    // Quiet hiss, well below speech level.
    let hiss: Vec<f32> = (0..16_000u64 * 30)
        .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.002)
        .collect();
    assert!(finals(&chunked(&hiss), SegmenterConfig::default()).is_empty());
}

#[test]
fn overlapping_speakers_are_segmented_independently() {
    // Priya starts 1.5 s before Tom's long turn ends: each track still shows its own utterance.
    let dir = testdata("meeting-dev");
    let tom = finals(
        &chunked(&read_16k(&dir.join("tom.opus"), 600_000).expect("tom")),
        SegmenterConfig::default(),
    );
    let priya = finals(
        &chunked(&read_16k(&dir.join("priya.opus"), 600_000).expect("priya")),
        SegmenterConfig::default(),
    );
    let at = |found: &[UtteranceAudio], ms: u64| {
        found.iter().any(|f| f.start / 16 <= ms && f.end / 16 >= ms)
    };
    assert!(at(&tom, 42_500), "Tom's turn end not detected");
    assert!(at(&priya, 42_500), "Priya's overlapping start not detected");
}

#[test]
fn audio_resuming_after_a_cut_is_placed_where_it_resumes() {
    // A platform that forwards only the loudest speakers cuts a speaker off, and their audio
    // resumes seconds later on another stream: the new utterance starts there, not where the
    // old audio stopped.
    let dir = testdata("sample");
    let whole = read_16k(&dir.join("ana.opus"), 60_000).expect("decode");
    // Cut mid-sentence.
    let samples = &whole[..4 * 16_000 + 100];
    let mut seg = Segmenter::new(SegmenterConfig::default(), VadConfig::default());
    let mut finals = Vec::new();
    let mut run = |seg: &mut Segmenter, offset: u64| {
        // Chunks of 300 samples: the segmenter's frames straddle them.
        for (i, c) in samples.chunks(300).enumerate() {
            seg.push(&AudioChunk {
                start: offset + i as u64 * 300,
                samples: c.to_vec(),
            });
        }
        seg.finish();
        while let Some(o) = seg.poll() {
            if let SegmenterOutput::Final(u) = o {
                finals.push(u.start);
            }
        }
    };
    run(&mut seg, 0);
    let resumed_at = 10 * 16_000;
    run(&mut seg, resumed_at);
    let (first, second): (Vec<u64>, Vec<u64>) = finals.iter().partition(|&&s| s < resumed_at);
    assert!(!first.is_empty() && !second.is_empty(), "{finals:?}");
    assert_eq!(
        first.len(),
        second.len(),
        "the same audio twice: {finals:?}"
    );
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(b - a, resumed_at, "{finals:?}");
    }
}
