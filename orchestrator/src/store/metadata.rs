//! A meeting's metadata: the integrator's own small map of strings (a CRM id, a team, a ticket),
//! kept with the meeting, shown to its owner and usable to find it again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_KEYS: usize = 16;
pub const MAX_KEY_CHARS: usize = 40;
pub const MAX_VALUE_CHARS: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, String>);

/// Keys are plain names, so they can be named in a query string and a JSON path alike.
pub fn check_key(key: &str) -> Result<(), String> {
    let plain = !key.is_empty()
        && key.chars().count() <= MAX_KEY_CHARS
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        Ok(())
    } else {
        Err(format!(
            "metadata key {key:?} must be 1 to {MAX_KEY_CHARS} letters, digits, '_' or '-'"
        ))
    }
}

impl Metadata {
    /// Within the limits: at most [`MAX_KEYS`] plain keys, values of at most
    /// [`MAX_VALUE_CHARS`] characters without control characters.
    pub fn check(&self) -> Result<(), String> {
        if self.0.len() > MAX_KEYS {
            return Err(format!("metadata holds at most {MAX_KEYS} keys"));
        }
        for (key, value) in &self.0 {
            check_key(key)?;
            if value.chars().count() > MAX_VALUE_CHARS || value.contains(char::is_control) {
                return Err(format!(
                    "metadata value of {key:?} must be at most {MAX_VALUE_CHARS} characters, \
                     without control characters"
                ));
            }
        }
        Ok(())
    }

    /// Whether every pair of `filter` is in this map (an empty filter is in every map).
    pub fn contains(&self, filter: &Self) -> bool {
        filter.0.iter().all(|(k, v)| self.0.get(k) == Some(v))
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(json: &str) -> Result<Metadata, String> {
        let m: Metadata = serde_json::from_str(json).map_err(|e| e.to_string())?;
        m.check().map(|()| m)
    }

    #[test]
    fn metadata_is_a_small_map_of_plain_keys_to_strings() {
        let m = metadata(r#"{"crm_id":"42","team":"Sales EMEA"}"#).expect("valid");
        assert_eq!(Metadata::from_stored(&m.to_stored()), Some(m));
        assert!(metadata(r#"{"n":1}"#).is_err(), "values are strings");
        assert!(metadata(r#"{"a.b":"x"}"#).is_err());
        assert!(metadata(r#"{"":"x"}"#).is_err());
        assert!(metadata(&format!(r#"{{"k":"{}"}}"#, "x".repeat(501))).is_err());
        assert!(metadata(r#"{"k":"line\nbreak"}"#).is_err());
        let many: BTreeMap<String, String> =
            (0..17).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(Metadata(many).check().is_err());
        assert!(check_key("crm-id_2").is_ok());
        assert!(check_key("x' OR 1=1 --").is_err());
    }

    #[test]
    fn a_filter_is_contained_when_every_pair_matches() {
        let m = metadata(r#"{"crm_id":"42","team":"Sales"}"#).expect("valid");
        assert!(m.contains(&Metadata::default()));
        assert!(m.contains(&metadata(r#"{"team":"Sales"}"#).expect("valid")));
        assert!(!m.contains(&metadata(r#"{"team":"sales"}"#).expect("valid")));
        assert!(!m.contains(&metadata(r#"{"team":"Sales","x":"1"}"#).expect("valid")));
    }
}
