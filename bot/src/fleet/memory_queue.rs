//! The assignment queue of an embedded (single-process) deployment. Its workers live and die
//! with the process, so a claim never needs taking over.

use super::{Assignment, BotInfo, Claimed, QueueDepth, REPORT_TTL};
use parley_shared::{MeetingId, now_ms};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct State {
    next_entry: u64,
    /// (entry, assignment, queued at, earlier deliveries)
    queued: VecDeque<(String, Assignment, u64, u64)>,
    /// Entry -> (worker, meeting).
    active: HashMap<String, (String, MeetingId)>,
    stops: HashSet<MeetingId>,
    clocks: HashMap<MeetingId, u64>,
    bots: HashMap<String, BotInfo>,
}

impl MemoryQueue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn publish(&self, a: &Assignment) {
        let mut s = self.state();
        s.next_entry += 1;
        let entry = s.next_entry.to_string();
        s.queued.push_back((entry, a.clone(), now_ms(), 0));
        drop(s);
        self.wake.notify_one();
    }

    pub async fn claim(&self, worker: &str, wait: Duration) -> Option<Claimed> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            {
                let mut s = self.state();
                if let Some((entry, assignment, _, earlier)) = s.queued.pop_front() {
                    s.active
                        .insert(entry.clone(), (worker.to_owned(), assignment.meeting_id));
                    return Some(Claimed {
                        entry,
                        assignment,
                        deliveries: earlier + 1,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, self.wake.notified())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    pub fn renew(&self, worker: &str, c: &Claimed) -> bool {
        self.state()
            .active
            .get(&c.entry)
            .is_some_and(|(w, _)| w == worker)
    }

    pub fn complete(&self, c: &Claimed) {
        let mut s = self.state();
        s.active.remove(&c.entry);
        let meeting = c.assignment.meeting_id;
        s.stops.remove(&meeting);
        s.clocks.remove(&meeting);
    }

    /// Hands a claim back for another worker at once.
    pub fn release(&self, c: &Claimed) {
        let mut s = self.state();
        if s.active.remove(&c.entry).is_some() {
            s.queued.push_front((
                c.entry.clone(),
                c.assignment.clone(),
                now_ms(),
                c.deliveries,
            ));
            drop(s);
            self.wake.notify_one();
        }
    }

    pub fn request_stop(&self, meeting: MeetingId) {
        let mut s = self.state();
        let known = s.active.values().any(|(_, m)| *m == meeting)
            || s.queued.iter().any(|(_, a, _, _)| a.meeting_id == meeting);
        // Only meetings with a bot (or one on the way) need remembering.
        if known {
            s.stops.insert(meeting);
        }
    }

    pub fn stop_requested(&self, meeting: MeetingId) -> bool {
        self.state().stops.contains(&meeting)
    }

    pub fn clock_origin(&self, meeting: MeetingId, now_ms: u64) -> u64 {
        *self.state().clocks.entry(meeting).or_insert(now_ms)
    }

    pub fn report(&self, info: &BotInfo) {
        self.state()
            .bots
            .insert(info.worker_id.clone(), info.clone());
    }

    pub fn forget(&self, worker: &str) {
        self.state().bots.remove(worker);
    }

    pub fn bots(&self, now_ms: u64) -> Vec<BotInfo> {
        let ttl = REPORT_TTL.as_millis() as u64;
        let mut s = self.state();
        s.bots
            .retain(|_, b| b.heartbeat_ms.saturating_add(ttl) >= now_ms);
        let mut bots: Vec<BotInfo> = s.bots.values().cloned().collect();
        bots.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        bots
    }

    pub fn depth(&self) -> QueueDepth {
        let s = self.state();
        QueueDepth {
            queued: s.queued.len() as u64,
            active: s.active.len() as u64,
            oldest_queued_ms: s.queued.front().map(|(_, _, at, _)| *at),
        }
    }
}
