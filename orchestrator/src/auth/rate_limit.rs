//! Login throttling per account and per client address: after too many failures in a window,
//! further attempts are refused until the oldest failure ages out; and sign-ups per client
//! address in the same window. Sans-IO: callers pass `now`.
//!
//! The counts live in this process; with several replicas an attacker gets each replica's
//! allowance, which still bounds guessing to a few attempts a minute per account.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub window: Duration,
    pub per_account: usize,
    pub per_address: usize,
    /// Accounts one client address may create per window.
    pub signups_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            per_account: 5,
            per_address: 30,
            signups_per_address: 10,
        }
    }
}

#[derive(Debug)]
struct Failures<K> {
    by_key: HashMap<K, VecDeque<Instant>>,
    limit: usize,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    /// Keys tracked at most; beyond it, stale keys are swept (bounds memory under a flood of
    /// made-up accounts or addresses).
    const MAX_KEYS: usize = 100_000;

    fn new(limit: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            limit,
        }
    }

    fn retry_after(&mut self, key: &K, now: Instant, window: Duration) -> Option<Duration> {
        let q = self.by_key.get_mut(key)?;
        while q.front().is_some_and(|&t| now.duration_since(t) >= window) {
            q.pop_front();
        }
        if q.len() < self.limit {
            return None;
        }
        q.front()
            .map(|&oldest| window.saturating_sub(now.duration_since(oldest)))
    }

    fn record(&mut self, key: K, now: Instant, window: Duration) {
        if self.by_key.len() >= Self::MAX_KEYS {
            self.by_key
                .retain(|_, q| q.back().is_some_and(|&t| now.duration_since(t) < window));
        }
        let q = self.by_key.entry(key).or_default();
        q.push_back(now);
        while q.len() > self.limit {
            q.pop_front();
        }
    }
}

#[derive(Debug)]
pub struct LoginLimiter {
    limits: Limits,
    state: Mutex<(Failures<String>, Failures<IpAddr>)>,
    signups: Mutex<Failures<IpAddr>>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            state: Mutex::new((
                Failures::new(limits.per_account),
                Failures::new(limits.per_address),
            )),
            signups: Mutex::new(Failures::new(limits.signups_per_address)),
            limits,
        }
    }

    /// `Some(wait)` when this account or address must not try again yet.
    pub fn check(&self, account: &str, addr: IpAddr, now: Instant) -> Option<Duration> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (accounts, addrs) = &mut *guard;
        let w = self.limits.window;
        let a = accounts.retry_after(&account.to_owned(), now, w);
        let b = addrs.retry_after(&addr, now, w);
        a.max(b)
    }

    pub fn record_failure(&self, account: &str, addr: IpAddr, now: Instant) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (accounts, addrs) = &mut *guard;
        accounts.record(account.to_owned(), now, self.limits.window);
        addrs.record(addr, now, self.limits.window);
    }

    /// `Some(wait)` when this client address has made its share of accounts for now.
    pub fn check_signup(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let mut signups = self.signups.lock().unwrap_or_else(|p| p.into_inner());
        signups.retry_after(&addr, now, self.limits.window)
    }

    pub fn record_signup(&self, addr: IpAddr, now: Instant) {
        let mut signups = self.signups.lock().unwrap_or_else(|p| p.into_inner());
        signups.record(addr, now, self.limits.window);
    }

    /// A successful login clears the account's failures (not the address's: one address may try
    /// many accounts).
    pub fn record_success(&self, account: &str) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.by_key.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_an_account_until_the_window_passes() {
        let limits = Limits {
            window: Duration::from_secs(60),
            per_account: 3,
            per_address: 10,
            signups_per_address: 10,
        };
        let l = LoginLimiter::new(limits);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.check("ana@x.org", ip, t0), None, "attempt {i}");
            l.record_failure("ana@x.org", ip, t0 + Duration::from_secs(i));
        }
        let wait = l.check("ana@x.org", ip, t0 + Duration::from_secs(3));
        assert_eq!(wait, Some(Duration::from_secs(57)));
        assert_eq!(
            l.check("ben@x.org", ip, t0),
            None,
            "other accounts are not locked"
        );
        assert_eq!(l.check("ana@x.org", ip, t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn one_address_cannot_spray_many_accounts() {
        let l = LoginLimiter::new(Limits {
            window: Duration::from_secs(60),
            per_account: 3,
            per_address: 4,
            signups_per_address: 10,
        });
        let ip: IpAddr = [10, 0, 0, 2].into();
        let t = Instant::now();
        for i in 0..4 {
            l.record_failure(&format!("user{i}@x.org"), ip, t);
        }
        assert!(l.check("fresh@x.org", ip, t).is_some());
        assert!(l.check("fresh@x.org", [10, 0, 0, 3].into(), t).is_none());
    }

    #[test]
    fn success_clears_the_account() {
        let l = LoginLimiter::new(Limits {
            window: Duration::from_secs(60),
            per_account: 2,
            per_address: 100,
            signups_per_address: 10,
        });
        let ip: IpAddr = [10, 0, 0, 4].into();
        let t = Instant::now();
        l.record_failure("ana@x.org", ip, t);
        l.record_success("ana@x.org");
        l.record_failure("ana@x.org", ip, t);
        assert_eq!(l.check("ana@x.org", ip, t), None);
    }

    #[test]
    fn one_address_makes_a_few_accounts_per_window() {
        let l = LoginLimiter::new(Limits {
            window: Duration::from_secs(60),
            signups_per_address: 2,
            ..Limits::default()
        });
        let (ip, other): (IpAddr, IpAddr) = ([10, 0, 0, 5].into(), [10, 0, 0, 6].into());
        let t = Instant::now();
        for _ in 0..2 {
            assert_eq!(l.check_signup(ip, t), None);
            l.record_signup(ip, t);
        }
        assert_eq!(l.check_signup(ip, t), Some(Duration::from_secs(60)));
        assert_eq!(l.check_signup(other, t), None);
        assert_eq!(l.check_signup(ip, t + Duration::from_secs(60)), None);
    }
}
