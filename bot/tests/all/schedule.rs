//! The decode pool's deadline policy, driven by a simulated decoder on a simulated clock (ten
//! minutes of meetings in milliseconds): a decoder far slower than the meetings need at full
//! quality still yields every final within a bounded delay, by degrading in the documented
//! order, while a light load is never degraded.

use parley_bot::asr::schedule::{Entry, JobSize, Observed, Quality, Schedule};
use parley_bot::asr::transcriber::Purpose;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One simulated speaker's utterance.
#[derive(Debug, Clone, Copy)]
struct Utterance {
    stream: u64,
    id: u64,
    /// When its speech ended.
    end: Duration,
    own_ms: u64,
}

/// What the decoder costs, in the shape the cost model learns (per frame, per decoder pass).
struct SlowDecoder {
    encode_per_frame: Duration,
    per_eval: Duration,
}

impl SlowDecoder {
    fn decode(&self, size: &JobSize, quality: Quality) -> Observed {
        let tokens = (size.own_ms / 300) as usize;
        let (frames, evals, beam) = match quality {
            Quality::Full => (size.frames, tokens * 2 + 1, 5),
            Quality::Greedy => (size.frames, tokens + 1, 1),
            Quality::Alone => (size.own_frames, tokens + 1, 1),
        };
        Observed {
            beam,
            window_frames: frames,
            tokens,
            evals,
            encode: self.encode_per_frame * frames as u32,
            search: self.per_eval * evals as u32,
        }
    }
}

/// A decoder slower than any real one: about 2.2 s for a final at full quality.
const SLOW: SlowDecoder = SlowDecoder {
    encode_per_frame: Duration::from_micros(1_600),
    per_eval: Duration::from_millis(8),
};

struct Outcome {
    /// Speech end to final, per final.
    latencies: Vec<Duration>,
    finals_asked: usize,
    qualities: BTreeMap<&'static str, usize>,
    schedule: Schedule<(Utterance, Purpose)>,
}

const FINAL_AFTER: Duration = Duration::from_millis(1800);
const PARTIAL_AFTER: Duration = Duration::from_millis(1000);
const END_SILENCE: Duration = Duration::from_millis(700);

fn size_of(u: &Utterance) -> JobSize {
    JobSize {
        frames: 1280,
        own_frames: (u.own_ms / 20) as usize + 128,
        own_ms: u.own_ms,
    }
}

/// `streams` speakers, each saying a 4 s utterance every 12 s (staggered) for `minutes`; each
/// asks for a partial 2 s in and its final after the end silence, as the transcriber does.
fn simulate(streams: u64, minutes: u64, decoder: &SlowDecoder) -> Outcome {
    let t0 = Instant::now();
    let mut arrivals: Vec<(Duration, Utterance, Purpose)> = Vec::new();
    for stream in 0..streams {
        let mut start = Duration::from_millis(stream * 12_000 / streams);
        let mut id = 0;
        while start < Duration::from_secs(minutes * 60) {
            let end = start + Duration::from_secs(4);
            let u = Utterance {
                stream,
                id,
                end,
                own_ms: 4_000,
            };
            arrivals.push((start + Duration::from_secs(2), u, Purpose::Partial));
            arrivals.push((end + END_SILENCE, u, Purpose::Final));
            start += Duration::from_secs(12);
            id += 1;
        }
    }
    arrivals.sort_by_key(|a| a.0);
    let finals_asked = arrivals.iter().filter(|a| a.2 == Purpose::Final).count();
    let mut schedule = Schedule::new(1);
    let (mut latencies, mut qualities) = (Vec::new(), BTreeMap::new());
    // The worker is free at `now`; it takes what has arrived by then.
    let mut now = Duration::ZERO;
    let mut next_arrival = 0;
    loop {
        while let Some(&(at, u, purpose)) = arrivals.get(next_arrival).filter(|a| a.0 <= now) {
            let (from, after) = match purpose {
                Purpose::Partial => (at, PARTIAL_AFTER),
                _ => (u.end, FINAL_AFTER),
            };
            let entry = Entry {
                job: (u, purpose),
                stream: u.stream,
                utterance: u.id,
                purpose,
                due: Some(t0 + from + after),
                size: size_of(&u),
            };
            schedule.push(entry, t0 + at);
            next_arrival += 1;
        }
        schedule.take_dropped();
        let Some(next) = schedule.next(t0 + now) else {
            match arrivals.get(next_arrival) {
                Some(a) => now = a.0,
                None => break,
            }
            continue;
        };
        let (u, purpose) = next.job;
        let observed = decoder.decode(&size_of(&u), next.quality);
        schedule.record(&observed);
        now += observed.encode + observed.search;
        if purpose == Purpose::Final {
            latencies.push(now - u.end);
            *qualities.entry(next.quality.name()).or_default() += 1;
        }
    }
    Outcome {
        latencies,
        finals_asked,
        qualities,
        schedule,
    }
}

#[test]
fn a_decoder_slower_than_the_meetings_still_yields_every_final_in_bounded_time() {
    // Full quality takes about 2.2 s a final; 16 speakers ask for one every 0.75 s: the decoder
    // would fall three times further behind every second. Alone it takes about 0.45 s.
    let out = simulate(16, 10, &SLOW);
    assert_eq!(out.latencies.len(), out.finals_asked, "no final is lost");
    let worst = out.latencies.iter().max().copied().unwrap_or_default();
    // A final waits at most for its own deadline plus the one decode already running when it
    // came (decodes are not interrupted); at full quality in order the delay would grow to
    // minutes over these ten minutes.
    let bound = FINAL_AFTER + Duration::from_millis(2_500);
    assert!(
        worst <= bound,
        "worst final came {worst:?} after its speech"
    );
    let degraded = out.schedule.degraded();
    assert!(degraded.partial > 0, "partials go first: {degraded:?}");
    assert!(
        degraded.context > 0,
        "then finals lose their context: {degraded:?}"
    );
    assert!(out.qualities.get("alone").copied().unwrap_or(0) > 0);
}

#[test]
fn the_same_decoder_with_a_light_load_never_degrades() {
    let out = simulate(1, 5, &SLOW);
    assert_eq!(out.latencies.len(), out.finals_asked);
    assert_eq!(out.schedule.degraded().total(), 0, "{:?}", out.qualities);
    assert_eq!(out.qualities.keys().collect::<Vec<_>>(), vec![&"full"]);
}

/// A 3 s utterance in a full window.
const SIZE: JobSize = JobSize {
    frames: 1280,
    own_frames: 300,
    own_ms: 3_000,
};

/// A decode without a deadline whose job is its purpose and utterance.
fn entry(stream: u64, utterance: u64, purpose: Purpose) -> Entry<(Purpose, u64)> {
    Entry {
        job: (purpose, utterance),
        stream,
        utterance,
        purpose,
        due: None,
        size: SIZE,
    }
}

#[test]
fn finals_run_before_speculation_and_speculation_before_partials() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(1);
    for (stream, purpose) in [
        (1, Purpose::Partial),
        (2, Purpose::Speculative),
        (3, Purpose::Final),
    ] {
        schedule.push(entry(stream, 0, purpose), t0);
    }
    let order: Vec<Purpose> = std::iter::from_fn(|| schedule.next(t0).map(|n| n.job.0)).collect();
    assert_eq!(
        order,
        vec![Purpose::Final, Purpose::Speculative, Purpose::Partial]
    );
}

#[test]
fn a_final_replaces_its_utterances_waiting_speculation_and_its_speakers_partial() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(1);
    schedule.push(entry(7, 1, Purpose::Partial), t0);
    schedule.push(entry(7, 0, Purpose::Speculative), t0);
    schedule.push(entry(7, 0, Purpose::Final), t0);
    let dropped = schedule.take_dropped();
    assert_eq!(
        dropped.len(),
        2,
        "both are moot once the final is asked for"
    );
    assert_eq!(schedule.len(), 1);
}
