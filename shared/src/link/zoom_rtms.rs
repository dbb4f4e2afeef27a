//! Zoom Realtime Media Streams links, as the orchestrator builds them from Zoom's
//! `meeting.rtms_started` webhook: `zoom-rtms:?server=WSS_URL&meeting_uuid=UUID&stream=STREAM_ID`
//! (query values percent-encoded).

/// Where a stream is and which app reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmsLink {
    pub server: String,
    pub meeting_uuid: String,
    pub stream_id: String,
}

impl RtmsLink {
    pub fn parse(link: &str) -> Result<Self, String> {
        let query = link
            .strip_prefix("zoom-rtms:")
            .ok_or("a Zoom RTMS link starts with zoom-rtms:")?;
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut server = None;
        let mut meeting_uuid = None;
        let mut stream_id = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "server" => server = Some(v.into_owned()),
                "meeting_uuid" => meeting_uuid = Some(v.into_owned()),
                "stream" => stream_id = Some(v.into_owned()),
                _ => {}
            }
        }
        let server = server.ok_or("the Zoom RTMS link has no server")?;
        if !(server.starts_with("wss://") || server.starts_with("ws://")) {
            return Err(format!(
                "the RTMS server must be a ws:// or wss:// URL, not {server:?}"
            ));
        }
        Ok(Self {
            server,
            meeting_uuid: meeting_uuid.ok_or("the Zoom RTMS link has no meeting_uuid")?,
            stream_id: stream_id.ok_or("the Zoom RTMS link has no stream")?,
        })
    }

    pub fn to_link(&self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("server", &self.server)
            .append_pair("meeting_uuid", &self.meeting_uuid)
            .append_pair("stream", &self.stream_id)
            .finish();
        format!("zoom-rtms:?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_round_trip_and_bad_ones_say_what_is_wrong() {
        let url = RtmsLink {
            server: "wss://rtms.zoom.us/signal?x=1".to_owned(),
            meeting_uuid: "4444AAAiAAAAAiAiAiiAii==/+".to_owned(),
            stream_id: "abc123".to_owned(),
        };
        assert_eq!(RtmsLink::parse(&url.to_link()), Ok(url));
        assert!(
            RtmsLink::parse("zoom-rtms:?meeting_uuid=a&stream=b")
                .is_err_and(|e| e.contains("no server"))
        );
        assert!(RtmsLink::parse("zoom-rtms:?server=http://x&meeting_uuid=a&stream=b").is_err());
        assert!(RtmsLink::parse("https://zoom.us/j/1").is_err());
    }
}
