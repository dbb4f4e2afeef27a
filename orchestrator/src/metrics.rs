//! Process metrics in the Prometheus text format, kept in atomics (no registry, no locks on the
//! hot path). The names are what `k8s/base/prometheusrule.yaml` alerts on.

use parley_bot::asr::schedule::{Degradations, Step};
use parley_bot::fleet::{BotInfo, QueueDepth, WorkerState};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds (ms) of the ingest and caption latency histograms.
const LAG_BUCKETS_MS: &[u64] = &[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
/// Upper bounds (ms) of the join latency histogram: from queueing a bot to its being in the
/// meeting.
const JOIN_BUCKETS_MS: &[u64] = &[250, 500, 1000, 2000, 3000, 5000, 10000, 15000, 30000, 60000];

/// A histogram over fixed bucket bounds given at each call (at most 15).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 16],
    sum: AtomicU64,
}

impl Histogram {
    fn observe(&self, bounds: &[u64], v: u64) {
        let i = bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
    }

    /// The smallest bucket bound at or below which `q` of the observations fall (`None` before
    /// any; `u64::MAX` beyond the last bucket).
    fn quantile(&self, bounds: &[u64], q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.buckets[..=bounds.len()]
            .iter()
            .map(|c| c.load(Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(bounds.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }

    fn render(&self, out: &mut String, bounds: &[u64], name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, c) in self.buckets[..=bounds.len()].iter().enumerate() {
            cumulative += c.load(Relaxed);
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), u64::to_string);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {cumulative}",
            self.sum.load(Relaxed)
        );
    }
}

/// A per-kind counter of the after-meeting jobs (summary, email).
#[derive(Debug, Default)]
pub struct ByJobKind {
    pub summary: AtomicU64,
    pub email: AtomicU64,
}

impl ByJobKind {
    pub fn add(&self, kind: crate::store::JobKind) {
        match kind {
            crate::store::JobKind::Summary => &self.summary,
            crate::store::JobKind::Email => &self.email,
        }
        .fetch_add(1, Relaxed);
    }
}

/// Decode degradations across the fleet, as a counter per step: workers report their own
/// process's totals (in-process workers share one pool, so each process counts once), and the
/// growth since a process's previous report is added here, so a worker that goes away does not
/// make the counter fall.
#[derive(Debug, Default)]
struct AsrDegraded {
    by_step: [AtomicU64; 4],
    /// The last totals each process reported, by (host, pid).
    last: Mutex<HashMap<(String, u32), Degradations>>,
}

impl AsrDegraded {
    fn update(&self, bots: &[BotInfo]) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashMap::with_capacity(bots.len());
        for b in bots {
            seen.insert((b.host.clone(), b.pid), b.load.degraded);
        }
        for (process, now) in &seen {
            let before = last.get(process).copied().unwrap_or_default();
            for (i, step) in Step::ALL.iter().enumerate() {
                let grown = now.get(*step).saturating_sub(before.get(*step));
                self.by_step[i].fetch_add(grown, Relaxed);
            }
        }
        *last = seen;
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub http_2xx: AtomicU64,
    pub http_4xx: AtomicU64,
    pub http_5xx: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub ingest_events: AtomicU64,
    pub ingest_segments: AtomicU64,
    pub ingest_finals: AtomicU64,
    pub ingest_batches: AtomicU64,
    pub ingest_malformed: AtomicU64,
    pub ingest_unknown_meeting: AtomicU64,
    pub ingest_errors: AtomicU64,
    pub ingest_reclaimed: AtomicU64,
    pub bots_dispatched: AtomicU64,
    pub dispatch_deferred: AtomicU64,
    pub bot_rejoins: AtomicU64,
    pub capture_stalled: AtomicU64,
    pub jobs_failed: ByJobKind,
    pub jobs_dead: ByJobKind,
    /// Workers by [`WorkerState`], as last seen by the fleet controller.
    fleet_bots: [AtomicU64; 4],
    fleet_desired: AtomicU64,
    fleet_max_bots: AtomicU64,
    fleet_min_idle: AtomicU64,
    assignments_queued: AtomicU64,
    assignments_active: AtomicU64,
    assignments_oldest_queued_s: AtomicU64,
    fleet_meetings: AtomicU64,
    fleet_capacity: AtomicU64,
    asr_backlog_ms: AtomicU64,
    asr_degraded: AsrDegraded,
    /// Restarts of supervised background tasks, by [`Task`].
    task_restarts: [AtomicU64; Task::ALL.len()],
    ingest_lag: Histogram,
    caption_latency: Histogram,
    join_latency: Histogram,
}

impl Metrics {
    pub fn http_status(&self, status: u16) {
        let counter = match status {
            200..=399 => &self.http_2xx,
            400..=499 => &self.http_4xx,
            _ => &self.http_5xx,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Records the time from an event's publication to its commit.
    pub fn observe_lag_ms(&self, lag_ms: u64) {
        self.ingest_lag.observe(LAG_BUCKETS_MS, lag_ms);
    }

    pub fn lag_quantile_ms(&self, q: f64) -> Option<u64> {
        self.ingest_lag.quantile(LAG_BUCKETS_MS, q)
    }

    /// Records the time from a segment's publication to its reaching the captions log.
    pub fn observe_caption_ms(&self, ms: u64) {
        self.caption_latency.observe(LAG_BUCKETS_MS, ms);
    }

    /// Records the time from queueing a bot to its being in the meeting.
    pub fn observe_join_ms(&self, ms: u64) {
        self.join_latency.observe(JOIN_BUCKETS_MS, ms);
    }

    /// The fleet as the controller last saw it.
    pub fn set_fleet(&self, bots: &[BotInfo], depth: QueueDepth, now_ms: u64) {
        for (i, state) in WorkerState::ALL.iter().enumerate() {
            let n = bots.iter().filter(|b| b.state == *state).count();
            self.fleet_bots[i].store(n as u64, Relaxed);
        }
        self.assignments_queued.store(depth.queued, Relaxed);
        self.assignments_active.store(depth.active, Relaxed);
        let oldest_s = depth
            .oldest_queued_ms
            .map_or(0, |at| now_ms.saturating_sub(at) / 1000);
        self.assignments_oldest_queued_s.store(oldest_s, Relaxed);
        let meetings: usize = bots.iter().map(|b| b.meetings.len()).sum();
        let capacity: u64 = bots.iter().map(|b| u64::from(b.max_meetings)).sum();
        let backlog = bots.iter().map(|b| b.load.backlog_ms).max().unwrap_or(0);
        self.fleet_meetings.store(meetings as u64, Relaxed);
        self.fleet_capacity.store(capacity, Relaxed);
        self.asr_backlog_ms.store(backlog, Relaxed);
        self.asr_degraded.update(bots);
    }

    pub fn task_restarted(&self, task: Task) {
        if let Some(i) = Task::ALL.iter().position(|t| *t == task) {
            self.task_restarts[i].fetch_add(1, Relaxed);
        }
    }

    pub fn set_fleet_size(&self, desired: u64, settings: crate::store::FleetSettings) {
        self.fleet_desired.store(desired, Relaxed);
        self.fleet_max_bots
            .store(u64::from(settings.max_bots), Relaxed);
        self.fleet_min_idle
            .store(u64::from(settings.min_idle), Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, labels: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name}{labels} {}", v.load(Relaxed));
        };
        for (name, help, v) in [
            (
                "parley_http_responses_2xx_total",
                "HTTP responses with a success or redirect status.",
                &self.http_2xx,
            ),
            (
                "parley_http_responses_4xx_total",
                "HTTP responses with a client error status.",
                &self.http_4xx,
            ),
            (
                "parley_http_responses_5xx_total",
                "HTTP responses with a server error status.",
                &self.http_5xx,
            ),
            (
                "parley_logins_failed_total",
                "Logins refused for a wrong email or password.",
                &self.logins_failed,
            ),
            (
                "parley_logins_throttled_total",
                "Logins refused by the per-account or per-address rate limit.",
                &self.logins_throttled,
            ),
            (
                "parley_ingest_events_total",
                "Bus events stored.",
                &self.ingest_events,
            ),
            (
                "parley_ingest_segments_total",
                "Transcript segment events (partial and final) stored.",
                &self.ingest_segments,
            ),
            (
                "parley_ingest_finals_total",
                "Final transcript segment events stored.",
                &self.ingest_finals,
            ),
            (
                "parley_ingest_batches_total",
                "Batches committed by the ingest.",
                &self.ingest_batches,
            ),
            (
                "parley_ingest_malformed_total",
                "Bus entries that were not valid events (moved to the dead-letter stream).",
                &self.ingest_malformed,
            ),
            (
                "parley_ingest_unknown_meeting_total",
                "Events for meetings this database does not know (moved to the dead-letter stream).",
                &self.ingest_unknown_meeting,
            ),
            (
                "parley_ingest_errors_total",
                "Ingest attempts that failed and were retried.",
                &self.ingest_errors,
            ),
            (
                "parley_ingest_reclaimed_total",
                "Entries taken over from consumers that stopped acknowledging.",
                &self.ingest_reclaimed,
            ),
            (
                "parley_bots_dispatched_total",
                "Bots queued for meetings by this replica's scheduler.",
                &self.bots_dispatched,
            ),
            (
                "parley_dispatch_deferred_total",
                "Due meetings left waiting because the fleet or the user's bot limit was reached.",
                &self.dispatch_deferred,
            ),
            (
                "parley_bot_rejoins_total",
                "Bots that re-joined a meeting after the bot before them stopped.",
                &self.bot_rejoins,
            ),
            (
                "parley_capture_stalled_total",
                "Times a bot reported that no audio arrived from a meeting it was in.",
                &self.capture_stalled,
            ),
        ] {
            counter(name, help, "", v);
        }
        for (i, task) in Task::ALL.iter().enumerate() {
            counter(
                "parley_task_restarts_total",
                "Background tasks (event ingest, calendar polling, jobs, the fleet controller, housekeeping, live captions hubs) restarted after they failed.",
                &format!("{{task=\"{}\"}}", task.name()),
                &self.task_restarts[i],
            );
        }
        for (i, step) in Step::ALL.iter().enumerate() {
            counter(
                "parley_asr_degraded_total",
                "Decodes the bots degraded to keep captions in time, by step (partial and speculation: dropped; beam and context: finals decoded cheaper).",
                &format!("{{step=\"{}\"}}", step.name()),
                &self.asr_degraded.by_step[i],
            );
        }
        for (kind, failed, dead) in [
            (
                "summary",
                &self.jobs_failed.summary,
                &self.jobs_dead.summary,
            ),
            ("email", &self.jobs_failed.email, &self.jobs_dead.email),
        ] {
            let labels = format!("{{kind=\"{kind}\"}}");
            counter(
                "parley_jobs_failed_total",
                "After-meeting job attempts that failed (each is retried until the last).",
                &labels,
                failed,
            );
            counter(
                "parley_jobs_dead_total",
                "After-meeting jobs given up after their last attempt.",
                &labels,
                dead,
            );
        }
        let mut gauge = |name: &str, help: &str, labels: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name}{labels} {v}");
        };
        for (i, state) in WorkerState::ALL.iter().enumerate() {
            gauge(
                "parley_fleet_bots",
                "Bot workers by state, from their heartbeats.",
                &format!("{{state=\"{}\"}}", state.as_str()),
                self.fleet_bots[i].load(Relaxed),
            );
        }
        for (name, help, v) in [
            (
                "parley_fleet_desired_workers",
                "Bot workers the launcher is asked to run: busy ones plus the warm pool, at most the maximum.",
                &self.fleet_desired,
            ),
            (
                "parley_fleet_max_bots",
                "The fleet's maximum size.",
                &self.fleet_max_bots,
            ),
            (
                "parley_fleet_min_idle",
                "Idle bot workers kept warm.",
                &self.fleet_min_idle,
            ),
            (
                "parley_fleet_meetings",
                "Meetings the bot workers are in.",
                &self.fleet_meetings,
            ),
            (
                "parley_fleet_meeting_capacity",
                "Meetings the bot workers can serve at once (each worker's maximum, summed).",
                &self.fleet_capacity,
            ),
            (
                "parley_asr_backlog_milliseconds",
                "Decoding the busiest bot worker has queued (estimated): captions lag by about this much.",
                &self.asr_backlog_ms,
            ),
            (
                "parley_assignments_queued",
                "Assignments waiting for a bot worker.",
                &self.assignments_queued,
            ),
            (
                "parley_assignments_active",
                "Assignments held by bot workers.",
                &self.assignments_active,
            ),
            (
                "parley_assignments_oldest_queued_seconds",
                "Age of the oldest assignment waiting for a bot worker (0 when none waits).",
                &self.assignments_oldest_queued_s,
            ),
        ] {
            gauge(name, help, "", v.load(Relaxed));
        }
        self.ingest_lag.render(
            &mut out,
            LAG_BUCKETS_MS,
            "parley_ingest_lag_milliseconds",
            "Time from publication on the bus to commit.",
        );
        self.caption_latency.render(
            &mut out,
            LAG_BUCKETS_MS,
            "parley_caption_latency_milliseconds",
            "Time from a segment's publication by its bot to its reaching live caption viewers' log.",
        );
        self.join_latency.render(
            &mut out,
            JOIN_BUCKETS_MS,
            "parley_bot_join_milliseconds",
            "Time from queueing a bot to its being in the meeting.",
        );
        out
    }
}

/// The supervised tasks, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Ingest,
    Calendar,
    Jobs,
    Fleet,
    Housekeeping,
    Webhooks,
    /// A meeting's live captions hub: not restarted in place, but retired so the next viewer
    /// starts a new one (`live::hub`); counted here all the same.
    LiveHub,
}

impl Task {
    pub const ALL: [Self; 7] = [
        Self::Ingest,
        Self::Calendar,
        Self::Jobs,
        Self::Fleet,
        Self::Housekeeping,
        Self::Webhooks,
        Self::LiveHub,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::LiveHub => "live_hub",
            Self::Calendar => "calendar",
            Self::Jobs => "jobs",
            Self::Fleet => "fleet",
            Self::Housekeeping => "housekeeping",
            Self::Webhooks => "webhooks",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_quantiles_come_from_buckets() {
        let m = Metrics::default();
        assert_eq!(m.lag_quantile_ms(0.5), None);
        for lag in [1, 3, 3, 40, 7000] {
            m.observe_lag_ms(lag);
        }
        assert_eq!(m.lag_quantile_ms(0.5), Some(5));
        assert_eq!(m.lag_quantile_ms(0.8), Some(50));
        assert_eq!(m.lag_quantile_ms(1.0), Some(10000));
        m.observe_lag_ms(20_000);
        assert_eq!(m.lag_quantile_ms(1.0), Some(u64::MAX));
        let text = m.render();
        assert!(text.contains("parley_ingest_lag_milliseconds_bucket{le=\"+Inf\"} 6"));
        assert!(text.contains("parley_ingest_lag_milliseconds_count 6"));
    }

    #[test]
    fn every_alerted_metric_is_exported() {
        let text = Metrics::default().render();
        for name in [
            "parley_fleet_bots{state=\"idle\"} 0",
            "parley_assignments_queued 0",
            "parley_assignments_oldest_queued_seconds 0",
            "parley_capture_stalled_total 0",
            "parley_jobs_failed_total{kind=\"summary\"} 0",
            "parley_jobs_dead_total{kind=\"email\"} 0",
            "parley_bot_rejoins_total 0",
            "parley_bot_join_milliseconds_count 0",
            "parley_asr_degraded_total{step=\"context\"} 0",
            "parley_fleet_meeting_capacity 0",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    fn worker(pid: u32, context: u64) -> BotInfo {
        BotInfo {
            v: parley_shared::fleet::FLEET_VERSION,
            worker_id: format!("w{pid}"),
            state: WorkerState::InMeeting,
            meeting_id: None,
            meetings: Vec::new(),
            max_meetings: 4,
            load: parley_bot::fleet::Load {
                backlog_ms: 0,
                degraded: Degradations {
                    context,
                    ..Degradations::default()
                },
            },
            host: "node".into(),
            pid,
            started_ms: 0,
            state_since_ms: 0,
            heartbeat_ms: 0,
        }
    }

    #[test]
    fn degradations_count_each_process_once_and_never_fall() {
        let m = Metrics::default();
        let depth = QueueDepth::default();
        // Two in-process workers of one process share its pool and report its totals.
        m.set_fleet(&[worker(1, 3), worker(1, 3), worker(2, 1)], depth, 0);
        m.set_fleet(&[worker(1, 5), worker(2, 1)], depth, 0);
        // Process 2 went away: its count stays in the total.
        m.set_fleet(&[worker(1, 6)], depth, 0);
        let text = m.render();
        assert!(
            text.contains("parley_asr_degraded_total{step=\"context\"} 7"),
            "{text}"
        );
        assert!(text.contains("parley_fleet_meeting_capacity 4"), "{text}");
    }
}
