//! Capture health, sans-IO: the SFU says someone is talking, yet none of their audio has arrived
//! for a while. Browser bots fail this way silently; a bot that notices can say so and reconnect.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct CaptureWatch {
    stall_after: Duration,
    /// Per speaker key: when their audio last arrived.
    last_audio: HashMap<String, Instant>,
    /// Per speaker key: since when the SFU has said they are talking.
    talking_since: HashMap<String, Instant>,
    stalled: bool,
}

impl CaptureWatch {
    pub fn new(stall_after: Duration) -> Self {
        Self {
            stall_after,
            last_audio: HashMap::new(),
            talking_since: HashMap::new(),
            stalled: false,
        }
    }

    pub fn audio(&mut self, key: &str, now: Instant) {
        match self.last_audio.get_mut(key) {
            Some(t) => *t = now,
            None => {
                self.last_audio.insert(key.to_owned(), now);
            }
        }
    }

    pub fn talking(&mut self, key: &str, talking: bool, now: Instant) {
        if talking {
            self.talking_since.entry(key.to_owned()).or_insert(now);
        } else {
            self.talking_since.remove(key);
        }
    }

    pub fn gone(&mut self, key: &str) {
        self.talking_since.remove(key);
        self.last_audio.remove(key);
    }

    /// The speaker whose audio is missing while they talk, if any.
    fn starved(&self, now: Instant) -> Option<&str> {
        self.talking_since.iter().find_map(|(key, &since)| {
            let heard = self.last_audio.get(key).map_or(since, |&t| t.max(since));
            (now.duration_since(heard) >= self.stall_after).then_some(key.as_str())
        })
    }

    /// `Some(Err(key))` when capture has just stalled (naming a starved speaker), `Some(Ok(()))`
    /// when it has recovered, `None` when nothing changed.
    pub fn poll(&mut self, now: Instant) -> Option<Result<(), String>> {
        match (self.stalled, self.starved(now).map(str::to_owned)) {
            (false, Some(key)) => {
                self.stalled = true;
                Some(Err(key))
            }
            (true, None) => {
                self.stalled = false;
                Some(Ok(()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talking_without_audio_stalls_and_audio_recovers() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = CaptureWatch::new(Duration::from_secs(30));
        w.audio("feed-1", s(0));
        w.talking("feed-1", true, s(1));
        w.audio("feed-1", s(10));
        assert_eq!(w.poll(s(35)), None, "audio came 25 s ago");
        assert_eq!(w.poll(s(40)), Some(Err("feed-1".to_owned())));
        assert_eq!(w.poll(s(41)), None, "reported once");
        w.audio("feed-1", s(42));
        assert_eq!(w.poll(s(42)), Some(Ok(())));
    }

    #[test]
    fn silence_is_not_a_stall() {
        let t0 = Instant::now();
        let mut w = CaptureWatch::new(Duration::from_secs(30));
        w.talking("feed-1", true, t0);
        w.talking("feed-1", false, t0 + Duration::from_secs(5));
        assert_eq!(w.poll(t0 + Duration::from_secs(100)), None);
        w.talking("feed-2", true, t0);
        w.gone("feed-2");
        assert_eq!(w.poll(t0 + Duration::from_secs(100)), None);
    }
}
