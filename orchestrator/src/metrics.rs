//! Process metrics in the Prometheus text format, kept in atomics (no registry, no locks on the
//! hot path).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds (ms) of the ingest lag histogram buckets.
const LAG_BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

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
    pub bots_active: AtomicU64,
    pub bots_started: AtomicU64,
    lag_buckets: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
    lag_sum_ms: AtomicU64,
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
        let i = LAG_BUCKETS_MS
            .iter()
            .position(|&b| lag_ms <= b)
            .unwrap_or(LAG_BUCKETS_MS.len());
        self.lag_buckets[i].fetch_add(1, Relaxed);
        self.lag_sum_ms.fetch_add(lag_ms, Relaxed);
    }

    /// The smallest bucket bound at or below which `q` of the observed lags fall (`None` before
    /// any observation; `u64::MAX` when it is beyond the last bucket).
    pub fn lag_quantile_ms(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.lag_buckets.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(LAG_BUCKETS_MS.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, labels: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name}{labels} {}", v.load(Relaxed));
        };
        counter(
            "parley_http_responses_2xx_total",
            "HTTP responses with a success or redirect status.",
            "",
            &self.http_2xx,
        );
        counter(
            "parley_http_responses_4xx_total",
            "HTTP responses with a client error status.",
            "",
            &self.http_4xx,
        );
        counter(
            "parley_http_responses_5xx_total",
            "HTTP responses with a server error status.",
            "",
            &self.http_5xx,
        );
        counter(
            "parley_logins_failed_total",
            "Logins refused for a wrong email or password.",
            "",
            &self.logins_failed,
        );
        counter(
            "parley_logins_throttled_total",
            "Logins refused by the per-account or per-address rate limit.",
            "",
            &self.logins_throttled,
        );
        counter(
            "parley_ingest_events_total",
            "Bus events stored.",
            "",
            &self.ingest_events,
        );
        counter(
            "parley_ingest_segments_total",
            "Transcript segment events (partial and final) stored.",
            "",
            &self.ingest_segments,
        );
        counter(
            "parley_ingest_finals_total",
            "Final transcript segment events stored.",
            "",
            &self.ingest_finals,
        );
        counter(
            "parley_ingest_batches_total",
            "Batches committed by the ingest.",
            "",
            &self.ingest_batches,
        );
        counter(
            "parley_ingest_malformed_total",
            "Bus entries that were not valid events (moved to the dead-letter stream).",
            "",
            &self.ingest_malformed,
        );
        counter(
            "parley_ingest_unknown_meeting_total",
            "Events for meetings this database does not know (moved to the dead-letter stream).",
            "",
            &self.ingest_unknown_meeting,
        );
        counter(
            "parley_ingest_errors_total",
            "Ingest attempts that failed and were retried.",
            "",
            &self.ingest_errors,
        );
        counter(
            "parley_ingest_reclaimed_total",
            "Entries taken over from consumers that stopped acknowledging.",
            "",
            &self.ingest_reclaimed,
        );
        counter(
            "parley_bots_started_total",
            "Bots started by this process.",
            "",
            &self.bots_started,
        );
        let _ = writeln!(
            out,
            "# HELP parley_bots_active Bots running in this process.\n# TYPE parley_bots_active gauge\nparley_bots_active {}",
            self.bots_active.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP parley_ingest_lag_milliseconds Time from publication on the bus to commit.\n# TYPE parley_ingest_lag_milliseconds histogram"
        );
        let mut cumulative = 0;
        for (i, c) in self.lag_buckets.iter().enumerate() {
            cumulative += c.load(Relaxed);
            let le = LAG_BUCKETS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), u64::to_string);
            let _ = writeln!(
                out,
                "parley_ingest_lag_milliseconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "parley_ingest_lag_milliseconds_sum {}\nparley_ingest_lag_milliseconds_count {cumulative}",
            self.lag_sum_ms.load(Relaxed)
        );
        out
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
}
