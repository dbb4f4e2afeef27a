//! Bearer tokens: 256 random bits, shown to the client once; the database keeps only a SHA-256.

use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "prl_";

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
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!("{PREFIX}{}", hex(&bytes))))
    }

    /// Parses an `Authorization` header value (`Bearer prl_…`).
    pub fn from_header(value: &str) -> Option<Self> {
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        let body = token.strip_prefix(PREFIX)?;
        (body.len() == 64 && body.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(token.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(hex(&Sha256::digest(self.0.as_bytes())))
    }
}

/// What the sessions table stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
