//! LiveKit links: the server's URL with a `livekit+` prefix and the room,
//! `livekit+wss://HOST[:PORT][/PATH]?room=ROOM`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKitLink {
    /// `ws://…` or `wss://…`, without a trailing slash.
    pub server: String,
    /// The server's host name or address, lowercase.
    pub host: String,
    pub room: String,
}

impl LiveKitLink {
    pub fn parse(link: &str) -> Result<Self, String> {
        let shown = super::shown(link);
        let rest = link
            .strip_prefix("livekit+")
            .ok_or_else(|| format!("a LiveKit link starts with livekit+wss://, not {shown}"))?;
        let url =
            url::Url::parse(rest).map_err(|e| format!("not a LiveKit link ({e}): {shown}"))?;
        if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none() {
            return Err(format!(
                "a LiveKit link is livekit+ws(s)://HOST?room=ROOM, not {shown}"
            ));
        }
        let room = url
            .query_pairs()
            .find(|(k, _)| k == "room")
            .map(|(_, v)| v.into_owned())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| format!("the LiveKit link names no room (?room=NAME): {shown}"))?;
        let mut server = url.clone();
        server.set_query(None);
        server.set_fragment(None);
        Ok(Self {
            server: server.as_str().trim_end_matches('/').to_owned(),
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            room,
        })
    }

    /// The link again, in the one form `parse` reads back to this.
    pub fn to_link(&self) -> String {
        let room: String = url::form_urlencoded::byte_serialize(self.room.as_bytes()).collect();
        format!("livekit+{}?room={room}", self.server)
    }

    /// Refuses a server the deployment's key is not for: the bot signs a join token with the
    /// deployment's secret and sends it to the server, so a link to any other host would hand
    /// that host a token for any room.
    pub fn check_server(&self, allowed: &[String]) -> Result<(), String> {
        if allowed.iter().any(|a| a.eq_ignore_ascii_case(&self.host)) {
            Ok(())
        } else {
            Err(format!(
                "the LiveKit server {} is not one of this deployment's (PARLEY_LIVEKIT_SERVERS)",
                self.host
            ))
        }
    }

    /// The signalling endpoint, for a subscriber speaking protocol 16 and subscribing to every
    /// track (https://github.com/livekit/protocol, `livekit_rtc.proto`).
    pub fn signal_url(&self) -> String {
        format!(
            "{}/rtc?sdk=rust&protocol=16&auto_subscribe=1&adaptive_stream=0",
            self.server
        )
    }

    /// The HTTP endpoint that says why a join was refused.
    pub fn validate_url(&self) -> String {
        let http = self
            .server
            .replacen("wss://", "https://", 1)
            .replacen("ws://", "http://", 1);
        format!("{http}/rtc/validate?sdk=rust&protocol=16")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_the_server_and_room() {
        let u =
            LiveKitLink::parse("livekit+wss://lk.example.com/?room=design%20review").expect("url");
        assert_eq!(u.server, "wss://lk.example.com");
        assert_eq!(u.room, "design review");
        assert_eq!(
            u.signal_url(),
            "wss://lk.example.com/rtc?sdk=rust&protocol=16&auto_subscribe=1&adaptive_stream=0"
        );
        assert_eq!(
            u.validate_url(),
            "https://lk.example.com/rtc/validate?sdk=rust&protocol=16"
        );
        let u = LiveKitLink::parse("livekit+ws://127.0.0.1:7880?room=r1").expect("url");
        assert_eq!(u.server, "ws://127.0.0.1:7880");
        assert_eq!(u.host, "127.0.0.1");
        let allowed = ["LK.example.com".to_owned(), "127.0.0.1".to_owned()];
        assert!(u.check_server(&allowed).is_ok());
        let elsewhere =
            LiveKitLink::parse("livekit+wss://lk.example.com.evil.test?room=r1").expect("url");
        assert!(elsewhere.check_server(&allowed).is_err());
        assert!(
            u.check_server(&[]).is_err(),
            "no servers configured: none allowed"
        );
        for bad in [
            "livekit+wss://lk.example.com",
            "livekit+wss://lk.example.com?room=",
            "livekit+https://lk.example.com?room=a",
            "wss://lk.example.com?room=a",
        ] {
            assert!(LiveKitLink::parse(bad).is_err(), "{bad}");
        }
    }
}
