//! Domain values checked once at the edge: email addresses and meeting links.

use crate::link::MeetingLink;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid email address: expected name@domain, at most 254 characters")]
    Email,
    #[error("invalid meeting url: {0}")]
    MeetingUrl(&'static str),
    /// A link of a kind bots join, which that kind's rules refuse.
    #[error("invalid meeting url: {0}")]
    Link(String),
}

/// An email address, trimmed and lower-cased so one person has one account whatever they type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub const MAX_LEN: usize = 254;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim().to_lowercase();
        let (local, domain) = s.rsplit_once('@').ok_or(DomainError::Email)?;
        let plausible_domain = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if s.len() > Self::MAX_LEN
            || local.is_empty()
            || local.len() > 64
            || !plausible_domain
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
        {
            return Err(DomainError::Email);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> String {
        e.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The platform a meeting link points at, which decides the connector a bot uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    GoogleMeet,
    Zoom,
    Teams,
    /// A Janus VideoRoom (`janus+ws://` or `janus+wss://` signalling URL).
    Janus,
    /// A LiveKit room (`livekit+ws://` or `livekit+wss://` server URL with `?room=`).
    LiveKit,
    /// Recorded per-speaker tracks on the bot's machine (`replay:` followed by a folder path):
    /// the demo and the tests.
    Replay,
    /// Any other web link: stored, but no bot can join it yet.
    Other,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GoogleMeet => "google_meet",
            Self::Zoom => "zoom",
            Self::Teams => "teams",
            Self::Janus => "janus",
            Self::LiveKit => "livekit",
            Self::Replay => "replay",
            Self::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::GoogleMeet,
            Self::Zoom,
            Self::Teams,
            Self::Janus,
            Self::LiveKit,
            Self::Replay,
            Self::Other,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// A meeting link: `https://…` for hosted platforms, `janus+ws(s)://…` for a Janus room,
/// `livekit+ws(s)://…` for a LiveKit room, or `replay:PATH` for recorded tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MeetingUrl {
    url: String,
    platform: Platform,
}

impl MeetingUrl {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let url = s.trim();
        if url.is_empty() {
            return Err(DomainError::MeetingUrl("empty"));
        }
        if url.len() > Self::MAX_LEN {
            return Err(DomainError::MeetingUrl("longer than 2048 characters"));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(DomainError::MeetingUrl(
                "contains spaces or control characters",
            ));
        }
        let platform = if ["replay:", "janus+", "livekit+"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            match MeetingLink::parse(url).map_err(DomainError::Link)? {
                MeetingLink::Replay { .. } => Platform::Replay,
                MeetingLink::Janus(_) => Platform::Janus,
                MeetingLink::LiveKit(_) => Platform::LiveKit,
                MeetingLink::Meet(_) => Platform::GoogleMeet,
                MeetingLink::ZoomRtms(_) => Platform::Zoom,
            }
        } else if let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
        {
            let host = host_of(rest).to_ascii_lowercase();
            if host.is_empty() {
                return Err(DomainError::MeetingUrl("no host"));
            }
            let is = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
            if host == "meet.google.com" {
                Platform::GoogleMeet
            } else if is("zoom.us") || is("zoom.com") {
                Platform::Zoom
            } else if host == "teams.microsoft.com" || host == "teams.live.com" {
                Platform::Teams
            } else {
                Platform::Other
            }
        } else {
            return Err(DomainError::MeetingUrl(
                "expected https://…, janus+ws://…, livekit+wss://… or replay:PATH",
            ));
        };
        Ok(Self {
            url: url.to_owned(),
            platform,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The link as a bot joins it; an error for links no bot joins directly (Zoom, Teams, any
    /// other web page) and Meet links without a meeting code.
    pub fn link(&self) -> Result<MeetingLink, String> {
        MeetingLink::parse(&self.url)
    }
}

fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    host_port.split(':').next().unwrap_or_default()
}

impl TryFrom<String> for MeetingUrl {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<MeetingUrl> for String {
    fn from(u: MeetingUrl) -> String {
        u.url
    }
}

impl fmt::Display for MeetingUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        let e = EmailAddress::parse("  Ana.Lopez@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "ana.lopez@example.com");
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "ana@example",
            "ana@.com",
            "a b@example.com",
            "ana@example..com",
        ] {
            assert_eq!(EmailAddress::parse(bad), Err(DomainError::Email), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn meeting_urls_name_their_platform() {
        let cases = [
            ("https://meet.google.com/abc-defg-hij", Platform::GoogleMeet),
            ("https://us02web.zoom.us/j/123?pwd=x", Platform::Zoom),
            (
                "https://teams.microsoft.com/l/meetup-join/x",
                Platform::Teams,
            ),
            ("janus+ws://127.0.0.1:8188/1234", Platform::Janus),
            (
                "livekit+wss://lk.example.com?room=standup",
                Platform::LiveKit,
            ),
            ("replay:testdata/sample", Platform::Replay),
            ("https://example.com/room", Platform::Other),
            ("https://notzoom.us/j/1", Platform::Other),
        ];
        for (url, platform) in cases {
            assert_eq!(
                MeetingUrl::parse(url).expect("valid url").platform(),
                platform,
                "{url}"
            );
        }
        for bad in [
            "",
            "ftp://x",
            "https://",
            "replay:",
            "https://a b",
            "javascript:alert(1)",
        ] {
            assert!(MeetingUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}
