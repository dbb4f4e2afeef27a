//! `parley bench asr`: word error rate, speaker attribution, latency and cost of transcription on
//! a folder of per-speaker tracks with a `reference.json`, printed as a table. Three ways are
//! compared on the same audio: each whole track in one Whisper call (the offline baseline), the
//! pipeline unpaced with finals only, and the live pipeline replayed in real time.

use clap::Args;
use parley_bot::asr::pool::{AsrPool, PoolStats, WENT_ON};
use parley_bot::asr::settings::AsrConfig;
use parley_bot::cli::flags::AsrFlags;
use parley_bot::connector::replay::{Pace, ReplayConnector, ReplayTrack};
use parley_bot::local_run::{LocalRun, Progress, run_replay};
use parley_bot::pipeline::PipelineConfig;
use parley_shared::Segment;
use parley_testkit::eval::{
    HypSegment, Reference, Score, partial_revisions, percentile, score, speech_shown,
};
use parley_testkit::procstat;
use std::path::PathBuf;

/// Longest track the whole-track baseline decodes in memory.
const MAX_WHOLE_MS: u64 = 30 * 60 * 1000;

#[derive(Debug, Args)]
pub struct BenchAsrArgs {
    /// Folder with one audio file per speaker and a reference.json.
    dir: PathBuf,
    /// Replay speed of the streaming run (1 = real time, which the latency figures assume).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Skip the whole-track baseline.
    #[arg(long)]
    skip_whole: bool,
    /// Skip the streaming run (accuracy only).
    #[arg(long)]
    skip_streaming: bool,
    #[command(flatten)]
    asr: AsrFlags,
}

struct Row {
    name: &'static str,
    score: Score,
    /// Whole tracks have no segment times to check attribution with.
    timed: bool,
    wall_s: f64,
    cpu_s: f64,
}

pub async fn run(args: BenchAsrArgs) -> anyhow::Result<()> {
    let reference =
        Reference::load(&args.dir.join("reference.json")).map_err(anyhow::Error::msg)?;
    let tracks = ReplayConnector::discover(std::slice::from_ref(&args.dir))?;
    let asr = args.asr.clone().config()?;
    parley_orchestrator::cli::models::install_configured(&asr).await?;
    let (model, path) = asr.load().await?;
    let pool = asr.pool(&model)?;
    let audio_s = reference.duration_ms as f64 / 1000.0;
    let n_tracks = tracks.len() as f64;
    let mut rows = Vec::new();

    if !args.skip_whole {
        eprintln!(
            "whole-track baseline: {} tracks, one Whisper call each...",
            tracks.len()
        );
        let (cpu0, t0) = (
            procstat::cpu_seconds().unwrap_or(0.0),
            std::time::Instant::now(),
        );
        let hyps = whole_tracks(&model, &asr, &tracks).await?;
        rows.push(Row {
            name: "whole-track",
            score: score(&reference, &hyps),
            timed: false,
            wall_s: t0.elapsed().as_secs_f64(),
            cpu_s: procstat::cpu_seconds().unwrap_or(0.0) - cpu0,
        });
    }

    eprintln!("pipeline, unpaced, finals only...");
    let (run, unpaced) = unpaced_pass(&asr, &tracks, &pool).await?;
    let unpaced_decodes = pool.stats();
    rows.push(Row {
        name: "vad-offline",
        score: score(&reference, &HypSegment::finals(run.finals())),
        timed: true,
        wall_s: unpaced.wall_s,
        cpu_s: unpaced.cpu_s,
    });

    let mut streaming = None;
    if !args.skip_streaming {
        eprintln!(
            "streaming: replaying {audio_s:.0} s at {}x real time...",
            args.speed
        );
        let (cpu0, t0) = (
            procstat::cpu_seconds().unwrap_or(0.0),
            std::time::Instant::now(),
        );
        let live = PipelineConfig {
            transcriber: asr.transcriber(true),
            ..PipelineConfig::default()
        };
        let run = run_replay(
            tracks.clone(),
            &pool,
            Pace::Speed(args.speed),
            live,
            Progress::default(),
            None,
        )
        .await?;
        rows.push(Row {
            name: "streaming",
            score: score(&reference, &HypSegment::finals(run.finals())),
            timed: true,
            wall_s: t0.elapsed().as_secs_f64(),
            cpu_s: procstat::cpu_seconds().unwrap_or(0.0) - cpu0,
        });
        streaming = Some(run);
    }

    let streaming_decodes = pool.stats().since(&unpaced_decodes);
    println!();
    println!(
        "parley bench asr: {} ({} tracks, {:.1} s)",
        reference.meeting,
        tracks.len(),
        audio_s
    );
    println!("{}", settings_line(&path, &asr));
    println!("{}", procstat::cpu_model());
    println!();
    let keys: Vec<String> = reference.speakers.iter().map(|s| s.key.clone()).collect();
    print!("{:<13}", "WER");
    for k in &keys {
        print!("{k:>9}");
    }
    println!(
        "{:>9}{:>13}{:>9}{:>7}{:>8}{:>14}",
        "overall", "attribution", "wall s", "RTF", "CPU s", "CPU s/audio s"
    );
    for row in &rows {
        print!("{:<13}", row.name);
        for k in &keys {
            let rate = row.score.per_speaker.get(k).map_or(0.0, |e| e.rate());
            print!("{:>8.1}%", rate * 100.0);
        }
        let attribution = if row.timed {
            format!("{:.1}%", row.score.attribution() * 100.0)
        } else {
            "-".to_owned()
        };
        println!(
            "{:>8.1}%{:>13}{:>9.1}{:>7.3}{:>8.1}{:>14.3}",
            row.score.overall.rate() * 100.0,
            attribution,
            row.wall_s,
            row.wall_s / audio_s,
            row.cpu_s,
            row.cpu_s / (audio_s * n_tracks)
        );
    }
    println!(
        "(RTF: wall time / meeting length; the streaming run is paced, so its RTF is the pace."
    );
    println!(" CPU s/audio s: process CPU seconds per second of audio per speaker track)");
    if let Some(run) = &streaming {
        let (partial, fin) = latencies(run.published());
        let fmt =
            |v: &[f64], p: f64| percentile(v, p).map_or("-".to_owned(), |x| format!("{x:.2} s"));
        println!();
        println!("streaming, real-time replay x{}", args.speed);
        println!(
            "  final latency    p50 {:>8}  p95 {:>8}  ({} finals)",
            fmt(&fin, 50.0),
            fmt(&fin, 95.0),
            fin.len()
        );
        println!(
            "  partial latency  p50 {:>8}  p95 {:>8}  ({} partials)",
            fmt(&partial, 50.0),
            fmt(&partial, 95.0),
            partial.len()
        );
        println!("  (audio time at end of the segment's speech -> event published)");
        let shown = speech_shown(&reference, run.published());
        println!(
            "  speech shown     p50 {:>8}  p95 {:>8}  ({} moments shown, {} never)",
            fmt(&shown.waits, 50.0),
            fmt(&shown.waits, 95.0),
            shown.waits.len(),
            shown.missed
        );
        println!(
            "  (each 100 ms of the reference's speech -> the first partial or final that reaches it)"
        );
        let revised = partial_revisions(run.segments());
        println!(
            "  partial words the final changed  {:.1}% of {}  (each partial's words but its last)",
            revised.rate() * 100.0,
            revised.words
        );
    }
    println!();
    println!("decodes of the unpaced pass");
    print_decodes(&unpaced_decodes);
    if streaming.is_some() {
        println!();
        println!("decodes of the streaming run");
        print_decodes(&streaming_decodes);
    }
    if let Some(rss) = procstat::peak_rss_bytes() {
        println!("peak RSS {:.0} MB", rss as f64 / 1e6);
    }
    Ok(())
}

/// Seconds from the end of each segment's speech (audio time) to its publication (seconds on
/// the same clock), for partials and finals.
pub(crate) fn latencies<'a>(
    published: impl IntoIterator<Item = (f64, &'a Segment)>,
) -> (Vec<f64>, Vec<f64>) {
    let (mut partial, mut fin) = (Vec::new(), Vec::new());
    for (at, s) in published {
        let lag = at - s.end_ms as f64 / 1000.0;
        if s.is_final {
            fin.push(lag)
        } else {
            partial.push(lag)
        }
    }
    (partial, fin)
}

async fn whole_tracks(
    model: &parley_bot::asr::whisper::WhisperModel,
    asr: &AsrConfig,
    tracks: &[ReplayTrack],
) -> anyhow::Result<Vec<HypSegment>> {
    let mut decoder = model.decoder(asr.pool_config().engine)?;
    let (tracks, beam) = (tracks.to_vec(), asr.beam);
    let hyps = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<HypSegment>> {
        let mut out = Vec::new();
        for t in tracks {
            let samples = parley_bot::audio::file::read_16k(&t.path, MAX_WHOLE_MS)?;
            let text = decoder.transcribe_whole(&samples, beam)?;
            out.push(HypSegment {
                speaker: t.speaker.key.to_string(),
                start_ms: 0,
                end_ms: samples.len() as u64 / 16,
                text,
            });
        }
        Ok(out)
    })
    .await??;
    Ok(hyps)
}

/// Where the decoding time went: per purpose and quality, the windows encoded, the audio they
/// were for, and the time spent encoding and searching.
pub fn print_decodes(stats: &PoolStats) {
    println!(
        "{:<12}{:>8}{:>8}{:>10}{:>10}{:>11}{:>11}{:>9}{:>9}{:>10}{:>9}{:>9}",
        "kind",
        "quality",
        "count",
        "window s",
        "own s",
        "encode ms",
        "search ms",
        "evals",
        "tokens",
        "wait ms",
        "CPU ms",
        "CPU s"
    );
    let mut cpu_total = 0.0;
    for ((purpose, quality), k) in &stats.by_kind {
        let n = k.decodes.max(1) as f64;
        let cpu_s = k.cpu.as_secs_f64();
        cpu_total += cpu_s;
        println!(
            "{:<12}{:>8}{:>8}{:>10.1}{:>10.1}{:>11.0}{:>11.0}{:>9.1}{:>9.1}{:>10.0}{:>9.0}{:>9.1}",
            purpose,
            quality,
            k.decodes,
            k.window_frames as f64 / 50.0 / n,
            k.own_ms as f64 / 1000.0 / n,
            k.encode.as_secs_f64() * 1000.0 / n,
            k.search.as_secs_f64() * 1000.0 / n,
            k.evals as f64 / n,
            k.tokens as f64 / n,
            k.waited.as_secs_f64() * 1000.0 / n,
            cpu_s * 1000.0 / n,
            cpu_s,
        );
    }
    println!("{:<12}{:>104.1}", "all", cpu_total);
    println!(
        "(means per decode but CPU s, the kind's total; window s: seconds of audio the encoder ran over,"
    );
    println!(
        " own s: the utterance's own; encode and search ms are wall time, CPU ms the decoding thread's;"
    );
    println!(
        " quality \"{}\": speculative decodes whose speaker went on, finished as partials)",
        WENT_ON
    );
    let d = stats.degraded;
    println!(
        "degraded: {} partials dropped, {} speculative finals dropped, {} finals without beam, {} finals without context",
        d.partial, d.speculation, d.beam, d.context
    );
}

/// What a pass over the tracks cost this process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cost {
    pub wall_s: f64,
    pub cpu_s: f64,
}

/// The pipeline over the tracks as fast as the CPU allows, finals only: the accuracy and CPU
/// reference of the live runs.
pub(crate) async fn unpaced_pass(
    asr: &AsrConfig,
    tracks: &[ReplayTrack],
    pool: &AsrPool,
) -> anyhow::Result<(LocalRun, Cost)> {
    let (cpu0, t0) = (
        procstat::cpu_seconds().unwrap_or(0.0),
        std::time::Instant::now(),
    );
    let offline = PipelineConfig {
        transcriber: asr.transcriber(false),
        ..PipelineConfig::default()
    };
    let run = run_replay(
        tracks.to_vec(),
        pool,
        Pace::Unpaced,
        offline,
        Progress::default(),
        None,
    )
    .await?;
    let cost = Cost {
        wall_s: t0.elapsed().as_secs_f64(),
        cpu_s: procstat::cpu_seconds().unwrap_or(0.0) - cpu0,
    };
    Ok((run, cost))
}

/// The model and transcription settings a bench ran with, on one line.
pub(crate) fn settings_line(model: &std::path::Path, asr: &AsrConfig) -> String {
    format!(
        "model {} | {} worker(s) x {} thread(s) | final beam {} | encoder window: partials {:?}, finals {:?} | end silence {} ms | acoustic context {} s",
        model
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        asr.workers,
        asr.threads,
        asr.beam,
        asr.partial_ctx,
        asr.final_ctx,
        asr.end_silence_ms,
        asr.acoustic_context_secs,
    )
}
