//! Janus meeting links: `janus+ws://HOST:PORT/PATH?room=ROOM[&pin=PIN][&display=NAME]`
//! (`janus+wss://` for TLS). The signalling WebSocket is the same URL with `ws://`/`wss://` and
//! without the query. A numeric last path segment is accepted as the room too
//! (`janus+ws://host:8188/1234`).

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct JanusLink {
    /// The WebSocket URL of the Janus server.
    pub ws: String,
    pub room: u64,
    pub pin: Option<String>,
    /// The name the bot joins under.
    pub display: Option<String>,
}

impl fmt::Debug for JanusLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JanusLink")
            .field("ws", &self.ws)
            .field("room", &self.room)
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Query-string decoding: `+` is a space, `%XX` a byte.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl JanusLink {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(r) = url.strip_prefix("janus+ws://") {
            ("ws://", r)
        } else if let Some(r) = url.strip_prefix("janus+wss://") {
            ("wss://", r)
        } else {
            return Err(format!(
                "not a Janus link (janus+ws://…): {}",
                super::shown(url)
            ));
        };
        let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
        let base = base.split('#').next().unwrap_or_default();
        if base.split('/').next().unwrap_or_default().is_empty() {
            return Err("the Janus link has no host".to_owned());
        }
        let mut room = None;
        let mut pin = None;
        let mut display = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "room" => {
                    room = Some(
                        v.parse::<u64>()
                            .map_err(|_| format!("room must be a number, not {v:?}"))?,
                    );
                }
                "pin" => pin = Some(decode(v)),
                "display" => display = Some(decode(v)),
                _ => {}
            }
        }
        let mut path = base.trim_end_matches('/').to_owned();
        if room.is_none()
            && let Some((head, last)) = path.rsplit_once('/')
            && let Ok(n) = last.parse::<u64>()
        {
            room = Some(n);
            path = head.to_owned();
        }
        let room = room.ok_or("the Janus link names no room (add ?room=1234)")?;
        if !path.contains('/') {
            path.push('/');
        }
        Ok(Self {
            ws: format!("{scheme}{path}"),
            room,
            pin,
            display,
        })
    }

    /// The link again, in the one form `parse` reads back to this.
    pub fn to_link(&self) -> String {
        let mut link = format!("janus+{}?room={}", self.ws, self.room);
        let encode =
            |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        if let Some(pin) = &self.pin {
            link.push_str(&format!("&pin={}", encode(pin)));
        }
        if let Some(display) = &self.display {
            link.push_str(&format!("&display={}", encode(display)));
        }
        link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_server_room_and_options() {
        let u = JanusLink::parse(
            "janus+ws://127.0.0.1:8188/?room=1234&pin=s%20ecret&display=Note+taker",
        )
        .expect("valid");
        assert_eq!(u.ws, "ws://127.0.0.1:8188/");
        assert_eq!(u.room, 1234);
        assert_eq!(u.pin.as_deref(), Some("s ecret"));
        assert_eq!(u.display.as_deref(), Some("Note taker"));
        assert!(!format!("{u:?}").contains("ecret"));

        let u = JanusLink::parse("janus+wss://sfu.example.com/janus/5678").expect("valid");
        assert_eq!(
            (u.ws.as_str(), u.room),
            ("wss://sfu.example.com/janus", 5678)
        );
        let u = JanusLink::parse("janus+ws://h:8188?room=1").expect("valid");
        assert_eq!(u.ws, "ws://h:8188/");

        for bad in [
            "https://x/?room=1",
            "janus+ws://h:8188/",
            "janus+ws://h/?room=abc",
            "janus+ws:///?room=1",
        ] {
            assert!(JanusLink::parse(bad).is_err(), "{bad}");
        }
    }
}
