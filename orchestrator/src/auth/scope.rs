//! What an API key may do. A session (a person signed in) may do everything its account may; a
//! key only what its scopes name, and only on the routes programs use.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Meetings, transcripts, summaries and recordings: reading.
    #[serde(rename = "meetings:read")]
    MeetingsRead,
    /// Creating meetings and changing their sharing.
    #[serde(rename = "meetings:write")]
    MeetingsWrite,
    /// Sending a bot to a meeting and ending it.
    #[serde(rename = "bots:write")]
    BotsWrite,
    /// Adding and removing webhooks.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::MeetingsRead,
        Scope::MeetingsWrite,
        Scope::BotsWrite,
        Scope::WebhooksWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MeetingsRead => "meetings:read",
            Scope::MeetingsWrite => "meetings:write",
            Scope::BotsWrite => "bots:write",
            Scope::WebhooksWrite => "webhooks:write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, stored as their names separated by spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Sorted, each once.
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut v: Vec<Scope> = scopes.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `None` when a name is unknown (a row written by a later version, or tampered with).
    pub fn from_stored(text: &str) -> Option<Self> {
        text.split_whitespace()
            .map(Scope::parse)
            .collect::<Option<Vec<_>>>()
            .map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_storage_and_json_and_refuse_unknown_names() {
        let scopes = Scopes::new([Scope::BotsWrite, Scope::MeetingsRead, Scope::BotsWrite]);
        assert_eq!(scopes.to_stored(), "meetings:read bots:write");
        assert_eq!(
            Scopes::from_stored(&scopes.to_stored()),
            Some(scopes.clone())
        );
        assert_eq!(
            serde_json::to_string(&scopes).expect("json"),
            r#"["meetings:read","bots:write"]"#
        );
        assert_eq!(Scopes::from_stored("meetings:read admin"), None);
        assert!(serde_json::from_str::<Scopes>(r#"["admin"]"#).is_err());
    }
}
