//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, OWASP's minimum).
//! Hashing costs tens of milliseconds of CPU and 19 MiB of memory, so it runs on the blocking
//! pool through [`HashingSlots`], which bounds how many run at once.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a request waits for a hashing slot before it is told to come back later.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// Bounds concurrent argon2 work: without it, a burst of sign-ups or logins takes 19 MiB each
/// and every core at once.
#[derive(Debug)]
pub struct HashingSlots(Semaphore);

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

impl HashingSlots {
    /// One slot per core: hashing is CPU-bound, more at once only queues inside the CPU.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    pub fn new(slots: usize) -> Self {
        Self(Semaphore::new(slots.max(1)))
    }

    /// Runs `work` on the blocking pool once a slot is free; `Busy` when none frees in time.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SlotError> {
        let _slot = tokio::time::timeout(SLOT_WAIT, self.0.acquire())
            .await
            .map_err(|_| SlotError::Busy)?
            .map_err(|_| SlotError::Busy)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| SlotError::Failed(e.to_string()))
    }
}

pub const MIN_LEN: usize = 8;
/// Bounds the work one request can ask of argon2.
pub const MAX_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_LEN} to {MAX_LEN} characters")]
    Length,
    #[error("cannot hash password: {0}")]
    Hash(String),
}

pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(PasswordError::Length);
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `hash`; false for a malformed stored hash.
pub fn verify(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Checks a password against a fixed hash, so a login for an unknown address takes as long as
/// one for a known address and timing reveals nothing.
pub fn verify_against_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not-a-real-password").unwrap_or_default());
    let _ = verify(password, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").expect("hash");
        let b = hash("correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("wrong horse battery", &a));
        assert!(!verify("correct horse battery", "not a hash"));
    }

    #[test]
    fn policy_bounds_length() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("long enough").is_ok());
        assert!(check_policy(&"x".repeat(MAX_LEN + 1)).is_err());
    }
}
