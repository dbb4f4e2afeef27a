//! Identifier newtypes that cannot hold bad values.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Namespace for the deterministic segment ids (UUID v5), fixed forever: changing it would make a
/// re-joined bot duplicate every segment it re-sends.
const SEGMENT_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_7a52_3c1e_4b7e_9a0b_5e2d_8c4f_1a37);

/// A meeting's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MeetingId(Uuid);

impl MeetingId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        Uuid::parse_str(s).map(Self).map_err(|_| IdError::MeetingId)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for MeetingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The stable key of a speaker within a meeting (a platform participant id, or a file stem).
/// Non-empty, at most 128 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpeakerKey(String);

impl SpeakerKey {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if s.is_empty() || s.len() > Self::MAX_LEN || s.chars().any(char::is_control) {
            return Err(IdError::SpeakerKey);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SpeakerKey {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl From<SpeakerKey> for String {
    fn from(k: SpeakerKey) -> String {
        k.0
    }
}

impl fmt::Display for SpeakerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A transcript segment's id: derived from (meeting, speaker, utterance start) so a partial is
/// replaced by its final and a re-joined bot re-sending the same utterance does not duplicate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SegmentId(Uuid);

impl SegmentId {
    pub fn derive(meeting: MeetingId, speaker: &SpeakerKey, start_ms: u64) -> Self {
        let name = format!("{}/{}/{}", meeting.0, speaker.0, start_ms);
        Self(Uuid::new_v5(&SEGMENT_NAMESPACE, name.as_bytes()))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("meeting id must be a UUID")]
    MeetingId,
    #[error("speaker key must be 1 to 128 bytes without control characters")]
    SpeakerKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_id_is_deterministic_and_distinct() {
        let m = MeetingId::from_uuid(Uuid::nil());
        let a = SpeakerKey::parse("alice").expect("valid key");
        let b = SpeakerKey::parse("bob").expect("valid key");
        assert_eq!(
            SegmentId::derive(m, &a, 1200),
            SegmentId::derive(m, &a, 1200)
        );
        assert_ne!(
            SegmentId::derive(m, &a, 1200),
            SegmentId::derive(m, &a, 1220)
        );
        assert_ne!(
            SegmentId::derive(m, &a, 1200),
            SegmentId::derive(m, &b, 1200)
        );
    }

    #[test]
    fn speaker_key_rejects_bad_values() {
        assert!(SpeakerKey::parse("").is_err());
        assert!(SpeakerKey::parse("a\nb").is_err());
        assert!(SpeakerKey::parse("x".repeat(129)).is_err());
        assert!(SpeakerKey::parse("Maria Santos (guest)").is_ok());
    }
}
