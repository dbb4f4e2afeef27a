//! The Zoom RTMS connector against a hostile RTMS server: a refused handshake is a join error
//! the user can act on, and an oversized frame drops the connection with a reason (the fleet
//! then hands the meeting to another bot) instead of exhausting memory or panicking.

use futures_util::{SinkExt, StreamExt};
use parley_bot::connector::zoom_rtms::{self, ZoomCredentials};
use parley_bot::connector::{ConnectorEvent, MeetingConnector};
use parley_shared::link::RtmsLink;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Serves every connection: handshakes answered with `status`, then `after_ready` sent on the
/// media socket.
async fn server(status: i64, after_ready: Message) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let after_ready = after_ready.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let Some(Ok(Message::Text(hello))) = ws.next().await else {
                    return;
                };
                let hello: Value = serde_json::from_str(&hello).expect("json");
                let media = format!("ws://{addr}/media");
                let reply = match hello["msg_type"].as_u64() {
                    Some(1) => json!({"msg_type": 2, "status_code": status, "reason": "nope",
                        "media_server": {"server_urls": {"audio": media}}}),
                    _ => json!({"msg_type": 4, "status_code": status}),
                };
                let media_socket = hello["msg_type"] == 3;
                ws.send(Message::text(reply.to_string()))
                    .await
                    .expect("send");
                if media_socket {
                    let _ = ws.send(after_ready).await;
                }
                while ws.next().await.is_some() {}
            });
        }
    });
    format!("ws://{addr}/signal")
}

fn link(server: String) -> RtmsLink {
    RtmsLink {
        server,
        meeting_uuid: "uuid".to_owned(),
        stream_id: "stream".to_owned(),
    }
}

fn creds() -> ZoomCredentials {
    ZoomCredentials {
        client_id: "id".to_owned(),
        client_secret: "secret".to_owned(),
    }
}

#[tokio::test]
async fn a_refused_handshake_says_what_to_check() {
    let url = server(7, Message::text("{}")).await;
    let err = zoom_rtms::join(link(url), creds())
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("status 7: nope") && text.contains("client id and secret"),
        "{text}"
    );
    let none = ZoomCredentials {
        client_id: String::new(),
        client_secret: String::new(),
    };
    let err = zoom_rtms::join(link("ws://127.0.0.1:9/x".to_owned()), none)
        .await
        .expect_err("no credentials");
    assert!(err.to_string().contains("ZOOM_CLIENT_ID"), "{err}");
}

#[tokio::test]
async fn an_oversized_frame_drops_the_connection_with_a_reason() {
    let huge = Message::text("x".repeat(3 << 20));
    let url = server(0, huge).await;
    let mut c = zoom_rtms::join(link(url), creds()).await.expect("join");
    let failed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match c.next_event().await {
                Err(e) => break e.to_string(),
                Ok(Some(ConnectorEvent::Ended { reason, .. })) => panic!("ended: {reason}"),
                Ok(Some(_)) => {}
                Ok(None) => panic!("no failure reported"),
            }
        }
    })
    .await
    .expect("failed in time");
    // A connection failure, not the meeting's end: the fleet hands the meeting to another bot.
    assert!(failed.contains("RTMS connection failed"), "{failed}");
}
