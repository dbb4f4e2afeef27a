//! `parley transcribe`: recorded per-speaker tracks to a transcript, through the same streaming
//! pipeline a live meeting uses.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use parley_bot::cli::flags::AsrFlags;
use parley_bot::connector::replay::{Pace, ReplayConnector};
use parley_bot::local_run::{Progress, TimedEvent, run_replay};
use parley_bot::pipeline::PipelineConfig;
use parley_shared::EventBody;
use parley_shared::transcript::TranscriptFormat;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// Folders of per-speaker files, or the files themselves. Speaker names come from a
    /// speakers.json or reference.json beside them ({"speakers":[{"key","name"}]}), else the stem.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output format: txt ("[mm:ss.mmm] Name: text"), json ({"segments":[…]}), srt or vtt.
    #[arg(long, default_value = "txt", value_parser = parse_format)]
    format: TranscriptFormat,
    /// Write the transcript here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Replay in real time, as a live meeting (partials and finals as they would be shown).
    #[arg(long)]
    realtime: bool,
    /// Replay at N × real time (implies the live path with partials).
    #[arg(long, conflicts_with = "realtime")]
    speed: Option<f64>,
    #[command(flatten)]
    asr: AsrFlags,
}

fn parse_format(s: &str) -> Result<TranscriptFormat, String> {
    s.parse()
}

pub async fn run(args: TranscribeArgs) -> anyhow::Result<()> {
    let tracks = ReplayConnector::discover(&args.inputs)?;
    let asr = args.asr.clone().config()?;
    super::models::install_configured(&asr).await?;
    let (model, path) = asr.load().await?;
    tracing::info!(model = %path.display(), tracks = tracks.len(), "transcribing");
    let pool = asr.pool(&model)?;
    let (pace, transcriber) = match (args.realtime, args.speed) {
        (true, _) => (Pace::Speed(1.0), asr.transcriber(true)),
        (false, Some(speed)) if speed > 0.0 => (Pace::Speed(speed), asr.transcriber(true)),
        (false, Some(speed)) => anyhow::bail!("--speed must be positive, got {speed}"),
        (false, None) => (Pace::Unpaced, asr.transcriber(false)),
    };
    let config = PipelineConfig {
        transcriber,
        ..PipelineConfig::default()
    };

    let progress = Progress::default();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} s audio, {elapsed} elapsed",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("transcribing {} tracks", tracks.len()));
    let ticker = {
        let (bar, progress) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(progress.position_ms() / 1000);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let total_ms = tracks
        .iter()
        .filter_map(|t| {
            parley_bot::audio::file::AudioFile::open(&t.path)
                .ok()?
                .duration_ms()
        })
        .max()
        .unwrap_or(0);
    bar.set_length(total_ms.div_ceil(1000));
    // Paced replays show each caption as it is finalised, as a live meeting would.
    let (tap, mut captions) = tokio::sync::mpsc::unbounded_channel::<TimedEvent>();
    let live = !matches!(pace, Pace::Unpaced);
    let printer = {
        let bar = bar.clone();
        tokio::spawn(async move {
            while let Some(e) = captions.recv().await {
                if let EventBody::Segment(s) = &e.event.body
                    && s.is_final
                    && !s.text.is_empty()
                {
                    let line = format!(
                        "[{:>6.1} s] {}: {}",
                        s.start_ms as f64 / 1000.0,
                        s.speaker.name,
                        s.text
                    );
                    // A hidden bar (output not a terminal) swallows println.
                    if bar.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        bar.println(line);
                    }
                }
            }
        })
    };
    let result = run_replay(tracks, &pool, pace, config, progress, live.then_some(tap)).await;
    let _ = printer.await;
    ticker.abort();
    bar.finish_and_clear();
    let run = result?;
    let text = run.transcript().render(args.format);
    match &args.output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    eprintln!(
        "{} segments from {} speakers, {:.1} s of audio in {:.1} s",
        run.transcript().segments.len(),
        run.report.speakers,
        run.duration_ms as f64 / 1000.0,
        run.wall.as_secs_f64()
    );
    Ok(())
}
