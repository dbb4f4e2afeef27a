//! The LiveKit connector against a hostile signalling server: no `join` in time is a join error,
//! and an oversized frame drops the connection with a reason (the fleet then hands the meeting to
//! another bot) instead of exhausting memory or panicking.

use futures_util::{SinkExt, StreamExt};
use livekit_protocol::{JoinResponse, SignalResponse, signal_response};
use parley_bot::connector::MeetingConnector;
use parley_bot::connector::livekit::{self, LiveKitConfig};
use parley_shared::link::LiveKitLink;
use prost::Message as _;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A server that upgrades every connection, sends `join` when told to, then `after`.
fn parse(link: &str) -> LiveKitLink {
    LiveKitLink::parse(link).expect("link")
}

async fn server(join: bool, after: Message) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let after = after.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                if join {
                    let join = SignalResponse {
                        message: Some(signal_response::Message::Join(JoinResponse {
                            ping_interval: 5,
                            ping_timeout: 15,
                            ..Default::default()
                        })),
                    };
                    let _ = ws.send(Message::binary(join.encode_to_vec())).await;
                }
                let _ = ws.send(after).await;
                while ws.next().await.is_some() {}
            });
        }
    });
    format!("livekit+ws://{addr}?room=r1")
}

fn config() -> LiveKitConfig {
    LiveKitConfig {
        api_key: "key".to_owned(),
        api_secret: "secret".to_owned(),
        servers: vec!["127.0.0.1".to_owned()],
        identity: "parley-test".to_owned(),
        name: "Parley notes".to_owned(),
        udp_bind: vec!["127.0.0.1:0".to_owned()],
        alone_timeout: Duration::from_secs(60),
        stall_after: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn no_token_is_minted_for_a_server_of_someone_elses() {
    let link = server(true, Message::binary(vec![0u8; 16])).await;
    let config = LiveKitConfig {
        servers: vec!["lk.example.com".to_owned()],
        ..config()
    };
    let e = livekit::join(parse(&link), config)
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("PARLEY_LIVEKIT_SERVERS"), "{e}");
}

#[tokio::test]
async fn an_oversized_frame_ends_the_session_with_a_reason() {
    let link = server(true, Message::binary(vec![0u8; 2 << 20])).await;
    let mut bot = livekit::join(parse(&link), config()).await.expect("joined");
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match bot.next_event().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the session ends");
    let e = end.expect_err("lost");
    assert!(e.to_string().contains("LiveKit signalling"), "{e}");
}

#[tokio::test]
async fn a_server_that_never_sends_join_is_a_join_error() {
    let link = server(false, Message::text("hello")).await;
    let e = livekit::join(parse(&link), config())
        .await
        .expect_err("no join");
    assert!(e.to_string().contains("no join response"), "{e}");
}

#[tokio::test]
async fn missing_credentials_say_which_settings() {
    let mut c = config();
    c.api_secret.clear();
    let e = livekit::join(parse("livekit+ws://127.0.0.1:9?room=r"), c)
        .await
        .expect_err("no secret");
    assert!(e.to_string().contains("LIVEKIT_API_SECRET"), "{e}");
}
