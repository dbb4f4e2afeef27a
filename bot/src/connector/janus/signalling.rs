//! The Janus WebSocket: requests matched to replies by transaction, everything else handed to the
//! session loop in order. Frames that are not valid Janus JSON are counted and skipped.

use super::JanusStats;
use super::protocol::{self, Incoming, Jsep, out};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Incoming>>>>;

pub struct Signalling {
    out: mpsc::Sender<Message>,
    pending: Pending,
    unsolicited: mpsc::Receiver<Incoming>,
    session: u64,
    next_tx: u64,
    timeout: Duration,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Signalling {
    pub async fn connect(
        ws: &str,
        timeout: Duration,
        stats: Arc<JanusStats>,
    ) -> Result<Self, String> {
        let mut request = ws
            .into_client_request()
            .map_err(|e| format!("invalid Janus URL {ws}: {e}"))?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let (socket, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| {
                format!(
                    "no answer from Janus at {ws} within {} s",
                    timeout.as_secs()
                )
            })?
            .map_err(|e| format!("cannot connect to Janus at {ws}: {e}"))?;
        let (mut sink, mut stream) = socket.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (events_tx, events_rx) = mpsc::channel(256);
        let routes = Arc::clone(&pending);
        let reader = tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let text = match frame {
                    Ok(Message::Text(t)) => t,
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue,
                };
                let msg = match protocol::parse(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        stats.malformed_messages.fetch_add(1, Relaxed);
                        tracing::warn!(error = e, "ignoring a malformed Janus message");
                        continue;
                    }
                };
                if matches!(msg, Incoming::Ack { .. }) {
                    continue;
                }
                let waiter = msg
                    .transaction()
                    .and_then(|t| routes.lock().unwrap_or_else(|p| p.into_inner()).remove(t));
                match waiter {
                    Some(w) => {
                        let _ = w.send(msg);
                    }
                    None => {
                        if events_tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Self {
            out: out_tx,
            pending,
            unsolicited: events_rx,
            session: 0,
            next_tx: 0,
            timeout,
            tasks: vec![writer, reader],
        })
    }

    fn transaction(&mut self) -> String {
        self.next_tx += 1;
        format!("parley-{}", self.next_tx)
    }

    async fn send(&self, msg: &Value) -> Result<(), String> {
        self.out
            .send(Message::text(msg.to_string()))
            .await
            .map_err(|_| "the signalling socket is closed".to_owned())
    }

    /// Sends `msg` (built for transaction `tx`) and waits for its reply (not the `ack`).
    async fn call(&mut self, tx: String, msg: Value) -> Result<Incoming, String> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tx.clone(), reply_tx);
        self.send(&msg).await?;
        match tokio::time::timeout(self.timeout, reply_rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err("the signalling socket closed".to_owned()),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&tx);
                Err(format!(
                    "Janus did not answer within {} s",
                    self.timeout.as_secs()
                ))
            }
        }
    }

    fn id_of(reply: Incoming, what: &str) -> Result<u64, String> {
        match reply {
            Incoming::Success { id: Some(id), .. } => Ok(id),
            Incoming::Error { code, reason, .. } => {
                Err(format!("Janus refused {what}: {reason} ({code})"))
            }
            other => Err(format!("unexpected reply to {what}: {other:?}")),
        }
    }

    pub async fn create(&mut self) -> Result<u64, String> {
        let tx = self.transaction();
        let reply = self.call(tx.clone(), out::create(&tx)).await?;
        self.session = Self::id_of(reply, "the session")?;
        Ok(self.session)
    }

    pub async fn attach(&mut self) -> Result<u64, String> {
        let tx = self.transaction();
        let reply = self
            .call(tx.clone(), out::attach(&tx, self.session))
            .await?;
        Self::id_of(reply, "the VideoRoom plugin")
    }

    /// A plugin request; returns the plugin's event (or an error).
    pub async fn message(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<&Jsep>,
    ) -> Result<Incoming, String> {
        let tx = self.transaction();
        let msg = out::message(&tx, self.session, handle, body, jsep);
        self.call(tx, msg).await
    }

    pub async fn message_nowait(&mut self, handle: u64, body: Value) -> Result<(), String> {
        let tx = self.transaction();
        self.send(&out::message(&tx, self.session, handle, body, None))
            .await
    }

    pub async fn keepalive(&mut self) -> Result<(), String> {
        let tx = self.transaction();
        self.send(&out::keepalive(&tx, self.session)).await
    }

    pub async fn destroy(&mut self) -> Result<(), String> {
        let tx = self.transaction();
        self.send(&out::destroy(&tx, self.session)).await
    }

    /// The next message nobody waits for; `None` once the socket closed.
    pub async fn next_unsolicited(&mut self) -> Option<Incoming> {
        self.unsolicited.recv().await
    }
}

impl Drop for Signalling {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
