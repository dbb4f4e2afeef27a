//! The embedded mode's live log: a bounded ring per meeting, in this process.

use super::cursor::Cursor;
use super::log::{Entry, RETAINED};
use parley_shared::MeetingId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Logs untouched this long are dropped (a viewer arriving later gets a snapshot).
const IDLE: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct MemoryLog {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    logs: HashMap<MeetingId, Ring>,
    next_seq: u64,
    swept: Option<Instant>,
}

struct Ring {
    entries: VecDeque<Entry>,
    /// The cursor of the newest entry ever appended, kept when entries are trimmed.
    head: Cursor,
    /// The newest trimmed entry's cursor: readers after it miss nothing.
    trimmed: Cursor,
    notify: Arc<Notify>,
    touched: Instant,
}

impl Ring {
    fn new() -> Self {
        Self {
            entries: VecDeque::new(),
            head: Cursor::ZERO,
            trimmed: Cursor::ZERO,
            notify: Arc::new(Notify::new()),
            touched: Instant::now(),
        }
    }

    fn after(&self, after: Cursor) -> Vec<Entry> {
        let start = self.entries.partition_point(|(c, _)| *c <= after);
        self.entries.range(start..).cloned().collect()
    }
}

impl MemoryLog {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The data stays consistent even if a holder panicked: every update is a single push.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn append(&self, encoded: &[(MeetingId, String)]) {
        let mut inner = self.lock();
        let now = Instant::now();
        if inner
            .swept
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(60))
        {
            inner
                .logs
                .retain(|_, r| now.duration_since(r.touched) < IDLE);
            inner.swept = Some(now);
        }
        let mut woken = Vec::new();
        for (meeting, json) in encoded {
            inner.next_seq += 1;
            // One process-wide sequence as the stream-id `seq` part keeps cursors ordered.
            let cursor = Cursor {
                ms: 0,
                seq: inner.next_seq,
            };
            let ring = inner.logs.entry(*meeting).or_insert_with(Ring::new);
            ring.entries.push_back((cursor, Arc::from(json.as_str())));
            if ring.entries.len() > RETAINED
                && let Some((c, _)) = ring.entries.pop_front()
            {
                ring.trimmed = c;
            }
            ring.head = cursor;
            ring.touched = now;
            woken.push(Arc::clone(&ring.notify));
        }
        drop(inner);
        for n in woken {
            n.notify_waiters();
        }
    }

    /// Drops a meeting's log, waking its readers (who then find nothing after their cursor).
    pub fn forget(&self, meeting: MeetingId) {
        let ring = self.lock().logs.remove(&meeting);
        if let Some(ring) = ring {
            ring.notify.notify_waiters();
        }
    }

    pub fn head(&self, meeting: MeetingId) -> Cursor {
        self.lock()
            .logs
            .get(&meeting)
            .map_or(Cursor::ZERO, |r| r.head)
    }

    pub fn since(&self, meeting: MeetingId, after: Cursor) -> Option<Vec<Entry>> {
        let inner = self.lock();
        let Some(ring) = inner.logs.get(&meeting) else {
            // Nothing was ever appended (or the log idled out): complete only from the start.
            return (after == Cursor::ZERO).then(Vec::new);
        };
        (after >= ring.trimmed).then(|| ring.after(after))
    }

    pub async fn wait_after(
        &self,
        meeting: MeetingId,
        after: Cursor,
        wait: Duration,
    ) -> Vec<Entry> {
        let notify = Arc::clone(
            &self
                .lock()
                .logs
                .entry(meeting)
                .or_insert_with(Ring::new)
                .notify,
        );
        let notified = notify.notified();
        tokio::pin!(notified);
        // Registered before looking, so an append between the look and the wait still wakes us.
        notified.as_mut().enable();
        let found = self
            .lock()
            .logs
            .get(&meeting)
            .map(|r| r.after(after))
            .unwrap_or_default();
        if !found.is_empty() {
            return found;
        }
        let _ = tokio::time::timeout(wait, notified).await;
        self.lock()
            .logs
            .get(&meeting)
            .map(|r| r.after(after))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(i: usize) -> String {
        format!("{{\"n\":{i}}}")
    }

    #[tokio::test]
    async fn readers_get_entries_in_order_and_learn_when_some_were_trimmed() {
        let log = MemoryLog::default();
        let m = MeetingId::new_random();
        let other = MeetingId::new_random();
        assert_eq!(log.head(m), Cursor::ZERO);
        assert_eq!(log.since(m, Cursor::ZERO), Some(vec![]));
        log.append(&[(m, json(1)), (other, json(2)), (m, json(3))]);
        let all = log.since(m, Cursor::ZERO).expect("nothing trimmed");
        assert_eq!(all.len(), 2);
        assert_eq!(&*all[1].1, json(3));
        assert_eq!(log.head(m), all[1].0);
        let rest = log.since(m, all[0].0).expect("complete");
        assert_eq!(rest.len(), 1);

        let many: Vec<_> = (0..RETAINED + 10).map(|i| (m, json(i))).collect();
        log.append(&many);
        assert_eq!(
            log.since(m, all[1].0),
            None,
            "the entries right after were trimmed"
        );
        let head = log.head(m);
        assert_eq!(log.since(m, head), Some(vec![]));
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_append() {
        let log = Arc::new(MemoryLog::default());
        let m = MeetingId::new_random();
        let reader = {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.wait_after(m, Cursor::ZERO, Duration::from_secs(10))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        log.append(&[(m, json(1))]);
        let got = reader.await.expect("joined");
        assert_eq!(got.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
