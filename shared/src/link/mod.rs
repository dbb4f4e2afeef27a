//! Meeting links a bot can join, parsed once: the orchestrator parses a meeting's link when it
//! dispatches a bot, the assignment carries it typed, and each connector takes its own kind.
//! On the wire a link is its text, in the form `Display` writes and `parse` reads back.

pub mod janus;
pub mod livekit;
pub mod meet;
pub mod zoom_rtms;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use janus::JanusLink;
pub use livekit::LiveKitLink;
pub use meet::MeetLink;
pub use zoom_rtms::RtmsLink;

/// A link as an error message may show it: without query, fragment or credentials, where
/// meeting passwords, pins and tokens travel (`?pwd=`, `&pin=`, `user:pass@`). Errors reach
/// logs and the meeting's status.
pub fn shown(link: &str) -> String {
    let bare = link.split(['?', '#']).next().unwrap_or_default();
    match bare.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit('@').next().unwrap_or_default();
            if path.is_empty() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => bare.to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MeetingLink {
    /// Recorded per-speaker tracks in a folder on the bot's machine: the demo and the tests.
    Replay {
        folder: String,
    },
    Janus(JanusLink),
    LiveKit(LiveKitLink),
    Meet(MeetLink),
    /// A Zoom meeting's media stream, once Zoom has started one.
    ZoomRtms(RtmsLink),
}

impl MeetingLink {
    /// The link's kind from its scheme, then the kind's own rules; the error says which.
    pub fn parse(link: &str) -> Result<Self, String> {
        let link = link.trim();
        if let Some(folder) = link.strip_prefix("replay:") {
            if folder.is_empty() {
                return Err("replay: needs a folder path".to_owned());
            }
            return Ok(Self::Replay {
                folder: folder.to_owned(),
            });
        }
        if link.starts_with("janus+") {
            return JanusLink::parse(link).map(Self::Janus);
        }
        if link.starts_with("livekit+") {
            return LiveKitLink::parse(link).map(Self::LiveKit);
        }
        if link.starts_with("zoom-rtms:") {
            return RtmsLink::parse(link).map(Self::ZoomRtms);
        }
        if link.starts_with("https://meet.google.com/") {
            return MeetLink::parse(link).map(Self::Meet);
        }
        Err(format!(
            "no bot can join this link (replay:, janus+ws://, livekit+wss://, https://meet.google.com/ and zoom-rtms: are supported): {}",
            shown(link)
        ))
    }
}

impl fmt::Display for MeetingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Replay { folder } => write!(f, "replay:{folder}"),
            Self::Janus(l) => f.write_str(&l.to_link()),
            Self::LiveKit(l) => f.write_str(&l.to_link()),
            Self::Meet(l) => f.write_str(&l.to_link()),
            Self::ZoomRtms(l) => f.write_str(&l.to_link()),
        }
    }
}

impl std::str::FromStr for MeetingLink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl TryFrom<String> for MeetingLink {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<MeetingLink> for String {
    fn from(l: MeetingLink) -> String {
        l.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_what_it_writes() {
        for link in [
            "replay:testdata/sample",
            "janus+ws://127.0.0.1:8188/?room=1234&pin=s%20ecret&display=Note+taker",
            "janus+wss://sfu.example.com/janus/5678",
            "livekit+wss://lk.example.com/?room=design%20review",
            "https://meet.google.com/ABC-defg-hij?authuser=1",
            "zoom-rtms:?server=wss%3A%2F%2Frtms.zoom.us%2Fs&meeting_uuid=a%2Fb%3D%3D&stream=s1",
        ] {
            let parsed = MeetingLink::parse(link).expect(link);
            let again = MeetingLink::parse(&parsed.to_string()).expect("written form");
            assert_eq!(again, parsed, "{link} → {parsed}");
            let json = serde_json::to_string(&parsed).expect("json");
            assert_eq!(
                serde_json::from_str::<MeetingLink>(&json).expect("read"),
                parsed
            );
        }
    }

    #[test]
    fn links_no_bot_joins_are_refused_with_the_kinds_that_are_supported() {
        for link in [
            "https://zoom.us/j/1",
            "https://example.com",
            "replay:",
            "janus+ws://h/",
        ] {
            assert!(MeetingLink::parse(link).is_err(), "{link}");
        }
        let e = MeetingLink::parse("https://teams.microsoft.com/l/x").expect_err("teams");
        assert!(e.contains("livekit+wss://"), "{e}");
    }

    #[test]
    fn refusals_never_repeat_a_links_secrets() {
        for link in [
            "https://zoom.us/j/123?pwd=SECRET",
            "https://user:SECRET@example.com/m",
            "janus+ftp://h/?room=1&pin=SECRET",
            "livekit+https://h?room=SECRET",
            "livekit+wss://h?token=SECRET",
            "https://meet.google.com.evil/x?k=SECRET",
        ] {
            assert!(MeetingLink::parse(link).is_err(), "{link}");
            let errors = [
                MeetingLink::parse(link).err(),
                LiveKitLink::parse(link).err(),
                MeetLink::parse(link).err(),
                JanusLink::parse(link).err(),
            ];
            for e in errors.into_iter().flatten() {
                assert!(!e.contains("SECRET"), "{link}: {e}");
            }
        }
        assert_eq!(
            shown("https://u:p@zoom.us/j/1?pwd=x#f"),
            "https://zoom.us/j/1"
        );
        assert_eq!(shown("replay:folder"), "replay:folder");
    }
}
