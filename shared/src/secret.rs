//! A setting that must never reach logs: credentials, database and Redis addresses with
//! passwords, signing keys.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `Debug` and `Display` print a placeholder that says only whether it is set; serialising
/// writes the value, because configuration handed to a bot process must carry it (the
/// serialised form travels only to processes of the same deployment, never to logs).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<secret>"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_only_whether_it_is_set() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<secret> <secret>");
        assert_eq!(format!("{:?}", Secret::default()), "<unset>");
    }

    #[test]
    fn a_secret_serialises_to_its_value_for_the_processes_it_configures() {
        let s = Secret::new("hunter2");
        let json = serde_json::to_string(&s).expect("serialise");
        assert_eq!(json, "\"hunter2\"");
        assert_eq!(serde_json::from_str::<Secret>(&json).expect("read back"), s);
    }
}
