//! `parley bench fleet`: how many meetings one worker keeps up with. N replays of the same
//! recording run at once in real time through this process's one model and decode pool, as a
//! `parley-bot worker` serves its meetings; with `--processes`, through N `parley-bot join`
//! processes instead, each with its own model, for comparison. Before them, one unpaced pass of
//! the same tracks (finals only) is the CPU reference and says how many finals each meeting
//! must end with.

use crate::asr::{latencies, print_decodes, settings_line, unpaced_pass};
use clap::Args;
use parley_bot::asr::pool::{AsrPool, PoolStats};
use parley_bot::asr::settings::AsrConfig;
use parley_bot::cli::flags::{AsrFlags, hand_over};
use parley_bot::config::BotConfig;
use parley_bot::connector::replay::{Pace, ReplayConnector, ReplayTrack};
use parley_bot::local_run::{Progress, run_replay};
use parley_bot::pipeline::PipelineConfig;
use parley_orchestrator::fleet::launchers::process::bot_program;
use parley_shared::{Event, EventBody, Segment};
use parley_testkit::eval::{HypSegment, Reference, SpeechShown, percentile, score, speech_shown};
use parley_testkit::procstat;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How often memory is sampled while the meetings run.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
pub struct BenchFleetArgs {
    /// Folder with one audio file per speaker and a reference.json.
    dir: PathBuf,
    /// Meetings replayed at once.
    #[arg(long, default_value_t = 4)]
    meetings: usize,
    /// Run each meeting in its own `parley-bot join` process (each loading the model) instead of
    /// all in this one.
    #[arg(long)]
    processes: bool,
    /// The `parley-bot` binary for --processes [default: beside this one, else on PATH].
    #[arg(long)]
    bot_program: Option<PathBuf>,
    /// Each meeting starts this long after the one before it. Copies of one recording started
    /// together would end every utterance at the same instant, which no real set of meetings
    /// does; 0 runs that worst case.
    #[arg(long, default_value_t = 3100)]
    stagger_ms: u64,
    #[command(flatten)]
    asr: AsrFlags,
}

/// One meeting of the run, as measured.
struct Meeting {
    /// Seconds from the end of each final's speech to its event.
    finals: Vec<f64>,
    partials: Vec<f64>,
    shown: SpeechShown,
    wer: f64,
    final_count: usize,
}

/// A whole run.
struct Run {
    meetings: Vec<Meeting>,
    wall: Duration,
    cpu_s: f64,
    /// Peak resident memory of everything that served the meetings, and of it before they
    /// started (one process: model and pool loaded; processes: nothing).
    rss_peak: u64,
    rss_base: u64,
    /// The decode pool's work during the run (one process only).
    pool: Option<PoolStats>,
}

pub async fn run(args: BenchFleetArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.meetings > 0, "--meetings must be at least 1");
    let reference =
        Reference::load(&args.dir.join("reference.json")).map_err(anyhow::Error::msg)?;
    let tracks = ReplayConnector::discover(std::slice::from_ref(&args.dir))?;
    let settings = args.asr.clone().config()?;
    parley_orchestrator::cli::models::install_configured(&settings).await?;
    let asr = settings.load_pool().await?;
    let audio_s = reference.duration_ms as f64 / 1000.0;

    eprintln!(
        "unpaced pass of {} tracks (the CPU reference)...",
        tracks.len()
    );
    let (unpaced, cost) = unpaced_pass(&settings, &tracks, &asr.pool).await?;
    let unpaced_cpu = cost.cpu_s;
    let expected_finals = HypSegment::finals(unpaced.finals()).len();
    let unpaced_wer = score(&reference, &HypSegment::finals(unpaced.finals()))
        .overall
        .rate();

    eprintln!(
        "{} meetings at once, {audio_s:.0} s each, {}...",
        args.meetings,
        if args.processes {
            "one parley-bot join process each"
        } else {
            "in this process"
        }
    );
    let path = asr.path.clone();
    let run = if args.processes {
        drop(asr);
        in_processes(&args, &settings, &reference).await?
    } else {
        in_one_process(&args, &settings, &tracks, &asr.pool, &reference).await?
    };

    println!();
    println!(
        "parley bench fleet: {} ({} tracks, {audio_s:.1} s) x {} meetings {}",
        reference.meeting,
        tracks.len(),
        args.meetings,
        if args.processes {
            "in as many processes"
        } else {
            "in one process"
        }
    );
    println!(
        "meetings start {} ms apart | {}",
        args.stagger_ms,
        settings_line(&path, &settings)
    );
    println!("{}", procstat::cpu_model());
    println!(
        "unpaced pass: {unpaced_cpu:.1} CPU s, {expected_finals} finals, WER {:.1}%",
        unpaced_wer * 100.0
    );
    println!();
    let summary = Summary::of(&run, expected_finals, unpaced_cpu, audio_s);
    summary.print_table(&run, args.meetings);
    if let Some(stats) = &run.pool {
        println!();
        print_decodes(stats);
    }
    println!();
    println!("{}", summary.line(&run));
    Ok(())
}

struct Summary {
    finals: Vec<f64>,
    partials: Vec<f64>,
    shown: SpeechShown,
    wer_mean: f64,
    wer_max: f64,
    lost: usize,
    cores: f64,
    relative_cpu: f64,
}

impl Summary {
    fn of(run: &Run, expected_finals: usize, unpaced_cpu: f64, audio_s: f64) -> Self {
        let finals: Vec<f64> = run.meetings.iter().flat_map(|m| m.finals.clone()).collect();
        let partials: Vec<f64> = run
            .meetings
            .iter()
            .flat_map(|m| m.partials.clone())
            .collect();
        let shown = SpeechShown {
            waits: run
                .meetings
                .iter()
                .flat_map(|m| m.shown.waits.clone())
                .collect(),
            missed: run.meetings.iter().map(|m| m.shown.missed).sum(),
        };
        let n = run.meetings.len().max(1) as f64;
        let wer_mean = run.meetings.iter().map(|m| m.wer).sum::<f64>() / n;
        let wer_max = run.meetings.iter().map(|m| m.wer).fold(0.0, f64::max);
        let lost = run
            .meetings
            .iter()
            .map(|m| expected_finals.saturating_sub(m.final_count))
            .sum();
        // CPU per second of meeting, against the unpaced pass's per second of the same audio.
        let relative_cpu = if unpaced_cpu > 0.0 {
            (run.cpu_s / (n * audio_s)) / (unpaced_cpu / audio_s)
        } else {
            0.0
        };
        Self {
            finals,
            partials,
            shown,
            wer_mean,
            wer_max,
            lost,
            cores: run.cpu_s / run.wall.as_secs_f64().max(1e-9),
            relative_cpu,
        }
    }

    fn print_table(&self, run: &Run, meetings: usize) {
        let fmt =
            |v: &[f64], p: f64| percentile(v, p).map_or("-".to_owned(), |x| format!("{x:.2} s"));
        let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "final latency    p50 {:>8}  p95 {:>8}  max {:>6.2} s  ({} finals)",
            fmt(&self.finals, 50.0),
            fmt(&self.finals, 95.0),
            max(&self.finals),
            self.finals.len()
        );
        println!(
            "partial latency  p50 {:>8}  p95 {:>8}  ({} partials)",
            fmt(&self.partials, 50.0),
            fmt(&self.partials, 95.0),
            self.partials.len()
        );
        println!("  (audio time at the end of the segment's speech -> event published)");
        println!(
            "speech shown     p50 {:>8}  p95 {:>8}  ({} moments shown, {} never)",
            fmt(&self.shown.waits, 50.0),
            fmt(&self.shown.waits, 95.0),
            self.shown.waits.len(),
            self.shown.missed
        );
        println!(
            "  (each 100 ms of the reference's speech -> the first partial or final that reaches it)"
        );
        println!(
            "WER              mean {:.1}%  worst {:.1}%  | finals lost: {}",
            self.wer_mean * 100.0,
            self.wer_max * 100.0,
            self.lost
        );
        println!(
            "CPU              {:.1} CPU s in {:.1} s: {:.2} cores; {:.2}x the unpaced pass per meeting-second",
            run.cpu_s,
            run.wall.as_secs_f64(),
            self.cores,
            self.relative_cpu
        );
        let extra = run.rss_peak.saturating_sub(run.rss_base);
        println!(
            "memory           peak RSS {:.0} MB in all ({:.0} MB before the meetings), {:.1} MB per meeting",
            run.rss_peak as f64 / 1e6,
            run.rss_base as f64 / 1e6,
            extra as f64 / 1e6 / meetings as f64
        );
    }

    /// The run in one line, for scripts.
    fn line(&self, run: &Run) -> String {
        let p = |v: &[f64], q: f64| percentile(v, q).unwrap_or(0.0);
        format!(
            "meetings={} finals_p50={:.2}s finals_p95={:.2}s wer_mean={:.3} wer_max={:.3} lost_finals={} cores={:.2} rss_mb={:.0}",
            run.meetings.len(),
            p(&self.finals, 50.0),
            p(&self.finals, 95.0),
            self.wer_mean,
            self.wer_max,
            self.lost,
            self.cores,
            run.rss_peak as f64 / 1e6,
        )
    }
}

/// One meeting's events (each with when it was published, from the replay's start) against
/// its reference.
fn measured(reference: &Reference, events: impl Iterator<Item = (Duration, Event)>) -> Meeting {
    let published: Vec<(f64, Segment)> = events
        .filter_map(|(at, event)| match event.body {
            EventBody::Segment(s) => Some((at.as_secs_f64(), s)),
            _ => None,
        })
        .collect();
    let (partials, finals) = latencies(published.iter().map(|(at, s)| (*at, s)));
    let segments = HypSegment::finals(published.iter().map(|(_, s)| s));
    Meeting {
        final_count: segments.len(),
        wer: score(reference, &segments).overall.rate(),
        finals,
        partials,
        shown: speech_shown(reference, published.iter().map(|(at, s)| (*at, s))),
    }
}

async fn in_one_process(
    args: &BenchFleetArgs,
    settings: &AsrConfig,
    tracks: &[ReplayTrack],
    pool: &AsrPool,
    reference: &Reference,
) -> anyhow::Result<Run> {
    let live = PipelineConfig {
        transcriber: settings.transcriber(true),
        ..PipelineConfig::default()
    };
    let before = pool.stats();
    let rss_base = procstat::rss_bytes().unwrap_or(0);
    let cpu0 = procstat::cpu_seconds().unwrap_or(0.0);
    let started = Instant::now();
    let replays = (0..args.meetings).map(|i| async move {
        tokio::time::sleep(stagger(args, i)).await;
        run_replay(
            tracks.to_vec(),
            pool,
            Pace::Speed(1.0),
            live,
            Progress::default(),
            None,
        )
        .await
    });
    let all = futures_util::future::join_all(replays);
    tokio::pin!(all);
    let mut rss_peak = rss_base;
    let mut sample = tokio::time::interval(SAMPLE_EVERY);
    let runs = loop {
        tokio::select! {
            runs = &mut all => break runs,
            _ = sample.tick() => rss_peak = rss_peak.max(procstat::rss_bytes().unwrap_or(0)),
        }
    };
    let wall = started.elapsed();
    let cpu_s = procstat::cpu_seconds().unwrap_or(0.0) - cpu0;
    let mut meetings = Vec::new();
    for run in runs {
        meetings.push(measured(
            reference,
            run?.events.into_iter().map(|e| (e.at, e.event)),
        ));
    }
    Ok(Run {
        meetings,
        wall,
        cpu_s,
        rss_peak,
        rss_base,
        pool: Some(pool.stats().since(&before)),
    })
}

/// A `parley-bot join` child replaying the recording into a JSON-lines file, whose new lines are
/// stamped as they appear.
struct Child {
    process: tokio::process::Child,
    pid: u32,
    out: PathBuf,
    read: usize,
    pending: String,
    /// Events with when they appeared, from the first one (the bot's `joining`, published as the
    /// replay starts).
    events: Vec<(Duration, Event)>,
    first: Option<Instant>,
    cpu_s: f64,
    rss_peak: u64,
}

impl Child {
    fn poll(&mut self) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        if text.len() > self.read {
            self.pending.push_str(&text[self.read..]);
            self.read = text.len();
        }
        let now = Instant::now();
        while let Some(newline) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=newline).collect();
            let event: Event = serde_json::from_str(line.trim())?;
            let first = *self.first.get_or_insert(now);
            self.events.push((now - first, event));
        }
        if let Some(cpu) = procstat::cpu_seconds_of(self.pid) {
            self.cpu_s = cpu;
        }
        if let Some(rss) = procstat::peak_rss_bytes_of(self.pid) {
            self.rss_peak = self.rss_peak.max(rss);
        }
        Ok(())
    }
}

async fn in_processes(
    args: &BenchFleetArgs,
    settings: &AsrConfig,
    reference: &Reference,
) -> anyhow::Result<Run> {
    let program = bot_program(args.bot_program.clone());
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let mut children: Vec<Child> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let i = children.len();
        if i < args.meetings && started.elapsed() >= stagger(args, i) {
            children.push(spawn_child(&program, args, settings, dir.path(), i)?);
        }
        let mut running = 0;
        for c in &mut children {
            if c.process.try_wait()?.is_none() {
                running += 1;
                c.poll()?;
            }
        }
        if running == 0 && children.len() == args.meetings {
            break;
        }
    }
    let wall = started.elapsed();
    let mut meetings = Vec::new();
    for c in &mut children {
        let status = c.process.wait().await?;
        anyhow::ensure!(status.success(), "parley-bot join exited with {status}");
        c.poll()?;
        meetings.push(measured(reference, c.events.drain(..)));
    }
    Ok(Run {
        meetings,
        wall,
        cpu_s: children.iter().map(|c| c.cpu_s).sum(),
        rss_peak: children.iter().map(|c| c.rss_peak).sum(),
        rss_base: 0,
        pool: None,
    })
}

/// When meeting `i` starts, after the first.
fn stagger(args: &BenchFleetArgs, i: usize) -> Duration {
    Duration::from_millis(args.stagger_ms * i as u64)
}

/// Starts meeting `i` as a `parley-bot join` replay writing its events under `dir`.
fn spawn_child(
    program: &std::path::Path,
    args: &BenchFleetArgs,
    settings: &AsrConfig,
    dir: &std::path::Path,
    i: usize,
) -> anyhow::Result<Child> {
    let out = dir.join(format!("meeting-{i}.jsonl"));
    let mut command = tokio::process::Command::new(program);
    // The child records nothing and decodes as this process would.
    let config = BotConfig {
        asr: settings.clone(),
        ..BotConfig::default()
    };
    hand_over(&mut command, &config);
    let process = command
        .arg("join")
        .arg(format!("replay:{}", args.dir.display()))
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", program.display()))?;
    let pid = process.id().unwrap_or(0);
    Ok(Child {
        process,
        pid,
        out,
        read: 0,
        pending: String::new(),
        events: Vec::new(),
        first: None,
        cpu_s: 0.0,
        rss_peak: 0,
    })
}
