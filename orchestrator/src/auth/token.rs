//! Bearer tokens: 256 random bits, shown to the client once; the database keeps only a SHA-256.
//! A session's token (`prl_`) is a person signed in; an API key (`pk_`) is a program acting for
//! an account with the scopes it was given.
//! Share tokens: 256 random bits naming a meeting's live captions link.

use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "prl_";
const API_KEY_PREFIX: &str = "pk_";

/// What a bearer token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    ApiKey,
}

/// A token as the client holds it. Never logged: `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    pub fn generate() -> Result<Self, getrandom::Error> {
        Self::random(PREFIX)
    }

    pub fn generate_api_key() -> Result<Self, getrandom::Error> {
        Self::random(API_KEY_PREFIX)
    }

    fn random(prefix: &str) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!("{prefix}{}", hex::encode(bytes))))
    }

    /// Parses an `Authorization` header value (`Bearer prl_…` or `Bearer pk_…`).
    pub fn from_header(value: &str) -> Option<Self> {
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        Self::parse(token).or_else(|| Self::with_prefix(token, API_KEY_PREFIX))
    }

    /// A session's token as written (`prl_` and 64 hex digits), as in a link.
    pub fn parse(token: &str) -> Option<Self> {
        Self::with_prefix(token, PREFIX)
    }

    fn with_prefix(token: &str, prefix: &str) -> Option<Self> {
        let token = token.trim();
        let body = token.strip_prefix(prefix)?;
        (body.len() == 64 && body.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(token.to_owned()))
    }

    pub fn kind(&self) -> TokenKind {
        if self.0.starts_with(API_KEY_PREFIX) {
            TokenKind::ApiKey
        } else {
            TokenKind::Session
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }

    /// The token a browser's page sends with each write of its cookie session. It derives from
    /// the session's token, which only that browser holds (in an HttpOnly cookie), so another
    /// site can neither read nor compute it, and nothing needs storing.
    pub fn csrf_token(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"parley csrf\n");
        h.update(self.0.as_bytes());
        hex::encode(h.finalize())
    }
}

/// Whether `raw` is `len` lowercase hex digits, the shape of every token and hash we issue.
pub fn is_lower_hex(raw: &str, len: usize) -> bool {
    raw.len() == len && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Compares a secret a client showed with the expected one without the time telling how much
/// of it matched.
pub fn constant_time_eq(shown: &str, expected: &str) -> bool {
    let (a, b) = (shown.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the sessions table stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The capability in a live captions link. The database finds a link by its [`hash`] and keeps
/// the owner's copy sealed; `Debug` never prints it.
///
/// [`hash`]: ShareToken::hash
#[derive(Clone, PartialEq, Eq)]
pub struct ShareToken(String);

impl fmt::Debug for ShareToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShareToken(<redacted>)")
    }
}

impl ShareToken {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(hex::encode(bytes)))
    }

    /// Accepts 64 lowercase hex digits, the only shape ever issued (the migration's backfill
    /// included), so junk never reaches the database.
    pub fn parse(raw: &str) -> Option<Self> {
        is_lower_hex(raw, 64).then(|| Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_bearer_tokens_of_their_own_kind_and_never_links() {
        let key = BearerToken::generate_api_key().expect("random");
        assert!(key.expose().starts_with("pk_"));
        assert_eq!(key.kind(), TokenKind::ApiKey);
        let header = format!("Bearer {}", key.expose());
        assert_eq!(BearerToken::from_header(&header), Some(key.clone()));
        assert_eq!(
            BearerToken::parse(key.expose()),
            None,
            "not a session link token"
        );
        let session = BearerToken::generate().expect("random");
        assert_eq!(session.kind(), TokenKind::Session);
        assert_eq!(BearerToken::from_header("Bearer pk_short"), None);
        assert_ne!(key.hash(), session.hash());
    }

    #[test]
    fn tokens_round_trip_through_the_header_and_never_debug_print() {
        let t = BearerToken::generate().expect("random");
        assert_eq!(t.expose().len(), PREFIX.len() + 64);
        let header = format!("Bearer {}", t.expose());
        assert_eq!(BearerToken::from_header(&header), Some(t.clone()));
        assert_eq!(t.hash(), t.clone().hash());
        assert!(!format!("{t:?}").contains(&t.expose()[4..]));
        for bad in ["", "Bearer", "Basic abc", "Bearer prl_xyz", "Bearer abc"] {
            assert_eq!(BearerToken::from_header(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn share_tokens_are_long_random_hex_and_parse_strictly() {
        let a = ShareToken::generate().expect("random");
        let b = ShareToken::generate().expect("random");
        assert_ne!(a, b);
        assert_eq!(ShareToken::parse(a.expose()), Some(a.clone()));
        assert!(!format!("{a:?}").contains(a.expose()));
        let upper = a.expose().to_uppercase();
        for bad in [
            "",
            "abc",
            &upper,
            &format!("{}0", a.expose()),
            &"g".repeat(64),
        ] {
            assert_eq!(ShareToken::parse(bad), None, "{bad:?}");
        }
    }
}
