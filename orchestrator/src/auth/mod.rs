//! Accounts and sessions: argon2id password hashes, opaque expiring bearer tokens, and the login
//! rate limit.

pub mod password;
pub mod rate_limit;
pub mod scope;
pub mod sealing;
pub mod token;

pub use rate_limit::LoginLimiter;
pub use scope::{Scope, Scopes};
pub use sealing::Sealer;
pub use token::{BearerToken, ShareToken, TokenHash, TokenKind, constant_time_eq, is_lower_hex};
