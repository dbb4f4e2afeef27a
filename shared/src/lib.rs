//! Parley domain types shared by the bot and the orchestrator: ids, speakers, the versioned event
//! schema and transcript formats.
//!
//! **Architecture Invariant:** this crate depends on neither tokio, sqlx, redis nor webrtc, so every
//! other crate can use it and the wire format has one definition.

pub mod clock;
pub mod domain;
pub mod event;
pub mod fleet;
pub mod ids;
pub mod link;
pub mod secret;
pub mod transcript;
pub mod words;

pub use clock::now_ms;
pub use domain::{DomainError, EmailAddress, MeetingUrl, Platform};
pub use event::{BotState, EVENT_VERSION, Event, EventBody, Segment, Speaker};
pub use ids::{MeetingId, SegmentId, SpeakerKey};
pub use link::MeetingLink;
pub use secret::Secret;
