//! Google Meet links: `https://meet.google.com/abc-defg-hij`.

/// A Google Meet call, by its meeting code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetLink {
    /// `abc-defg-hij`, lowercase.
    pub code: String,
}

impl MeetLink {
    /// `https://meet.google.com/abc-defg-hij` → `abc-defg-hij`.
    pub fn parse(link: &str) -> Result<Self, String> {
        let shown = super::shown(link);
        let url = url::Url::parse(link).map_err(|e| format!("not a Meet link ({e}): {shown}"))?;
        if url.host_str() != Some("meet.google.com") {
            return Err(format!("not a Google Meet link: {shown}"));
        }
        let code = url
            .path_segments()
            .and_then(|mut s| s.next())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let parts: Vec<&str> = code.split('-').collect();
        let shaped = parts.len() == 3
            && parts.iter().map(|p| p.len()).eq([3, 4, 3])
            && parts
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()));
        if !shaped {
            return Err(format!(
                "a Meet link ends with a meeting code like abc-defg-hij, not {code:?}"
            ));
        }
        Ok(Self { code })
    }

    pub fn to_link(&self) -> String {
        format!("https://meet.google.com/{}", self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meet_links_give_their_meeting_code() {
        assert_eq!(
            MeetLink::parse("https://meet.google.com/abc-defg-hij?authuser=1")
                .map(|m| m.code)
                .as_deref(),
            Ok("abc-defg-hij")
        );
        assert_eq!(
            MeetLink::parse("https://meet.google.com/ABC-DEFG-HIJ")
                .map(|m| m.code)
                .as_deref(),
            Ok("abc-defg-hij")
        );
        for bad in [
            "https://meet.google.com/",
            "https://meet.google.com/lookup/abc",
            "https://meet.google.com/abc-defg-hi1",
            "https://example.com/abc-defg-hij",
            "meet.google.com/abc-defg-hij",
        ] {
            assert!(MeetLink::parse(bad).is_err(), "{bad}");
        }
    }
}
