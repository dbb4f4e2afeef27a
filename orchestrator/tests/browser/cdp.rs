//! A minimal Chrome DevTools Protocol client: enough to load a page in headless Chromium, run
//! JavaScript in it, reload it and take screenshots. Written here rather than taken from a crate
//! because the tests need a handful of commands, and the CDP crates pull in large generated APIs.
//!
//! One task owns the WebSocket; commands reach it over a channel and get their answer back on a
//! oneshot, events are broadcast so a caller can subscribe before the command that causes them.

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const LOAD_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Chromium is chatty on stderr; only the end of it helps explain a failure.
const STDERR_LINES: usize = 200;
/// How many of the last stderr lines an error message quotes.
const STDERR_IN_ERRORS: usize = 20;
const EVENT_CAPACITY: usize = 256;
const LISTENING: &str = "DevTools listening on ";
/// Sent on the event channel when the socket ends, so that a load wait fails at once instead of
/// running into its timeout (the channel itself stays open while any handle holds a sender).
const CLOSED_EVENT: &str = "Parley.connectionClosed";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type StderrLines = Arc<Mutex<VecDeque<String>>>;

struct Request {
    method: String,
    params: Value,
    session: Option<String>,
    reply: oneshot::Sender<Result<Value>>,
}

/// Cheap to clone, so that every `Page` can outlive the borrow of its `Browser`.
#[derive(Clone)]
struct Connection {
    commands: mpsc::Sender<Request>,
    events: broadcast::Sender<Value>,
}

impl Connection {
    async fn call(&self, method: &str, params: Value, session: Option<&str>) -> Result<Value> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            method: method.to_owned(),
            params,
            session: session.map(str::to_owned),
            reply,
        };
        let exchange = async {
            if self.commands.send(request).await.is_err() {
                return Err(anyhow!("browser connection closed"));
            }
            answer
                .await
                .unwrap_or_else(|_| Err(anyhow!("browser connection closed")))
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, exchange).await {
            Ok(result) => result.with_context(|| format!("CDP {method}")),
            Err(_) => bail!("CDP {method}: no answer within {COMMAND_TIMEOUT:?}"),
        }
    }
}

/// Owns the socket so that writes never interleave and every answer finds its caller by id.
async fn run_connection(
    socket: Socket,
    mut commands: mpsc::Receiver<Request>,
    events: broadcast::Sender<Value>,
) {
    let (mut sink, mut stream) = socket.split();
    let mut pending: HashMap<u64, oneshot::Sender<Result<Value>>> = HashMap::new();
    let mut next_id: u64 = 1;
    loop {
        tokio::select! {
            request = commands.recv() => {
                let Some(request) = request else { break };
                let id = next_id;
                next_id += 1;
                let mut message = json!({
                    "id": id,
                    "method": request.method,
                    "params": request.params,
                });
                if let Some(session) = request.session {
                    message["sessionId"] = Value::String(session);
                }
                if let Err(error) = sink.send(Message::text(message.to_string())).await {
                    let _ = request
                        .reply
                        .send(Err(anyhow!("browser connection closed: {error}")));
                    break;
                }
                pending.insert(id, request.reply);
            }
            incoming = stream.next() => {
                match incoming {
                    Some(Ok(Message::Text(text))) => route(text.as_str(), &mut pending, &events),
                    // CDP only sends text; tungstenite answers pings itself.
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(anyhow!("browser connection closed")));
    }
    let _ = events.send(json!({ "method": CLOSED_EVENT }));
}

fn route(
    text: &str,
    pending: &mut HashMap<u64, oneshot::Sender<Result<Value>>>,
    events: &broadcast::Sender<Value>,
) {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let Some(id) = message.get("id").and_then(Value::as_u64) {
        let Some(reply) = pending.remove(&id) else {
            return;
        };
        let result = match message.get("error") {
            Some(error) => {
                let text = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_owned);
                match error.get("data").and_then(Value::as_str) {
                    Some(data) => Err(anyhow!("{text} ({data})")),
                    None => Err(anyhow!("{text}")),
                }
            }
            None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
        };
        let _ = reply.send(result);
    } else if message.get("method").is_some() {
        // No subscriber is the normal case between waits.
        let _ = events.send(message);
    }
}

/// Kills Chromium however the test ends, including when `launch` fails half way.
struct Chromium(Child);

impl Chromium {
    fn kill(&mut self) {
        let _ = self.0.kill();
        // Reap it: SIGKILL makes this quick, and it leaves no zombie behind.
        let _ = self.0.wait();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Read on a plain thread because the orchestrator's tokio has no `process` feature. Keeps reading
/// after the URL is found: a full stderr pipe would block Chromium.
fn drain_stderr(pipe: ChildStderr, seen: StderrLines, url: oneshot::Sender<String>) {
    let mut url = Some(url);
    let mut reader = BufReader::new(pipe);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // Lossy: one odd byte must not stop the draining.
        let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
        if let Some(at) = line.find(LISTENING)
            && let Some(sender) = url.take()
        {
            let _ = sender.send(line[at + LISTENING.len()..].trim().to_owned());
        }
        let mut lines = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

fn stderr_tail(seen: &StderrLines, count: usize) -> String {
    let lines = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let skip = lines.len().saturating_sub(count);
    let tail: Vec<&str> = lines.iter().skip(skip).map(String::as_str).collect();
    if tail.is_empty() {
        "(nothing)".to_owned()
    } else {
        tail.join("\n")
    }
}

pub struct Browser {
    chromium: Chromium,
    connection: Connection,
    task: JoinHandle<()>,
    stderr: StderrLines,
    /// Removed when the browser is dropped, after Chromium is killed (fields drop in order).
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A fresh profile each time, so no state leaks between tests, and port 0 so parallel tests
    /// never fight over a debugging port.
    pub async fn launch() -> Result<Browser> {
        let binary = std::env::var_os("PARLEY_TEST_CHROMIUM").unwrap_or_else(|| "chromium".into());
        let shown = binary.to_string_lossy().into_owned();
        let profile = tempfile::Builder::new()
            .prefix("parley-chromium-")
            .tempdir()
            .context("create a Chromium profile directory")?;
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args([
                "--remote-debugging-port=0",
                "--window-size=1000,800",
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "start {shown} (install Chromium with `scripts/janus-lab deps`, \
                     or point PARLEY_TEST_CHROMIUM at it)"
                )
            })?;
        let mut chromium = Chromium(child);
        let pipe = chromium
            .0
            .stderr
            .take()
            .context("Chromium's stderr was not piped")?;
        let stderr: StderrLines = Arc::new(Mutex::new(VecDeque::new()));
        let (url_sender, url_receiver) = oneshot::channel();
        std::thread::Builder::new()
            .name("chromium-stderr".to_owned())
            .spawn({
                let stderr = Arc::clone(&stderr);
                move || drain_stderr(pipe, stderr, url_sender)
            })
            .context("start the thread reading Chromium's stderr")?;

        let url = match tokio::time::timeout(LAUNCH_TIMEOUT, url_receiver).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => bail!(
                "{shown} exited before printing its DevTools URL (install Chromium with \
                 `scripts/janus-lab deps`, or point PARLEY_TEST_CHROMIUM at it); stderr:\n{}",
                stderr_tail(&stderr, STDERR_LINES)
            ),
            Err(_) => bail!(
                "{shown} printed no DevTools URL within {LAUNCH_TIMEOUT:?} (install Chromium \
                 with `scripts/janus-lab deps`, or point PARLEY_TEST_CHROMIUM at it); stderr:\n{}",
                stderr_tail(&stderr, STDERR_LINES)
            ),
        };
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .with_context(|| format!("connect to Chromium's DevTools at {url}"))?;

        let (commands, receiver) = mpsc::channel(64);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let task = tokio::spawn(run_connection(socket, receiver, events.clone()));
        Ok(Browser {
            chromium,
            connection: Connection { commands, events },
            task,
            stderr,
            _profile: profile,
        })
    }

    /// Each page gets its own target and flat session, so several pages can share one socket.
    pub async fn open(&self, url: &str) -> Result<Page> {
        self.open_page(url).await.with_context(|| {
            format!(
                "open {url} in Chromium; its last stderr lines:\n{}",
                stderr_tail(&self.stderr, STDERR_IN_ERRORS)
            )
        })
    }

    async fn open_page(&self, url: &str) -> Result<Page> {
        let target = self
            .connection
            .call("Target.createTarget", json!({ "url": "about:blank" }), None)
            .await?;
        let target_id = target
            .get("targetId")
            .and_then(Value::as_str)
            .context("Target.createTarget returned no targetId")?;
        let attached = self
            .connection
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
                None,
            )
            .await?;
        let session = attached
            .get("sessionId")
            .and_then(Value::as_str)
            .context("Target.attachToTarget returned no sessionId")?
            .to_owned();
        let page = Page {
            session,
            connection: self.connection.clone(),
        };
        page.call("Page.enable", json!({})).await?;
        page.call("Runtime.enable", json!({})).await?;
        page.navigate(url).await?;
        Ok(page)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.task.abort();
        self.chromium.kill();
    }
}

pub struct Page {
    session: String,
    connection: Connection,
}

impl Page {
    async fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.connection
            .call(method, params, Some(self.session.as_str()))
            .await
    }

    async fn navigate(&self, url: &str) -> Result<()> {
        // Subscribed before the command, or a fast load could fire before anyone listens.
        let events = self.connection.events.subscribe();
        let navigated = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            bail!("navigating to {url} failed: {error}");
        }
        let loader = navigated.get("loaderId").and_then(Value::as_str);
        self.wait_for_load(events, loader)
            .await
            .with_context(|| format!("load {url}"))
    }

    /// Waits for the main frame to commit a navigation (the one from `loader` if given) and then
    /// for the load event: a late load event of the initial about:blank must not count.
    async fn wait_for_load(
        &self,
        mut events: broadcast::Receiver<Value>,
        loader: Option<&str>,
    ) -> Result<()> {
        let wait = async move {
            let mut committed = false;
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // The commit may have been among the lost events.
                        committed = true;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        bail!("browser connection closed")
                    }
                };
                let method = event.get("method").and_then(Value::as_str).unwrap_or("");
                if method == CLOSED_EVENT {
                    bail!("browser connection closed");
                }
                if event.get("sessionId").and_then(Value::as_str) != Some(self.session.as_str()) {
                    continue;
                }
                match method {
                    "Page.frameNavigated" => {
                        let frame = &event["params"]["frame"];
                        let main = frame.get("parentId").is_none();
                        let ours = loader.is_none_or(|loader| frame["loaderId"] == loader);
                        if main && ours {
                            committed = true;
                        }
                    }
                    "Page.loadEventFired" if committed => return Ok(()),
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(LOAD_TIMEOUT, wait).await {
            Ok(result) => result,
            Err(_) => bail!("no Page.loadEventFired within {LOAD_TIMEOUT:?}"),
        }
    }

    /// Returns by value so the test gets plain JSON, and awaits promises so async page code can
    /// be driven directly.
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        let response = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "returnByValue": true,
                    "awaitPromise": true,
                }),
            )
            .await
            .with_context(|| format!("evaluate `{expression}`"))?;
        if let Some(details) = response.get("exceptionDetails") {
            let text = details.get("text").and_then(Value::as_str).unwrap_or("");
            let description = details
                .get("exception")
                .and_then(|exception| exception.get("description"))
                .and_then(Value::as_str)
                .unwrap_or("");
            bail!("evaluating `{expression}` threw: {text} {description}");
        }
        Ok(response
            .get("result")
            .and_then(|result| result.get("value"))
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Lays the page out as a screen this wide and high (CSS pixels); `mobile` as a phone does.
    pub async fn set_viewport(&self, width: u32, height: u32, mobile: bool) -> Result<()> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": mobile,
            }),
        )
        .await
        .map(drop)
    }

    pub async fn reload(&self) -> Result<()> {
        let events = self.connection.events.subscribe();
        self.call("Page.reload", json!({})).await?;
        self.wait_for_load(events, None).await.context("reload")
    }

    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = shot
            .get("data")
            .and_then(Value::as_str)
            .context("Page.captureScreenshot returned no data")?;
        let png = decode_base64(data).context("decode the screenshot")?;
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("create {}", parent.display()))?;
        }
        tokio::fs::write(path, png)
            .await
            .with_context(|| format!("write {}", path.display()))
    }

    /// Evaluation errors count as "not yet": the thing waited for often does not exist at first,
    /// and the page may be between documents.
    pub async fn wait_for(&self, expression: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match self.eval(expression).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(value) => value.to_string(),
                Err(error) => format!("error: {error:#}"),
            };
            if tokio::time::Instant::now() >= deadline {
                bail!("`{expression}` was not true within {timeout:?}; it last returned {last}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Standard alphabet, as CDP sends it; a dependency for ten lines of work is not worth it.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' => continue,
            other => bail!("invalid base64 byte {other:#04x}"),
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[test]
fn base64_decodes_with_and_without_padding() -> Result<()> {
    assert_eq!(decode_base64("aGVsbG8=")?, b"hello");
    assert_eq!(decode_base64("aGVsbG8h")?, b"hello!");
    assert_eq!(decode_base64("aGk=")?, b"hi");
    assert_eq!(decode_base64("")?, b"");
    assert!(decode_base64("a*b=").is_err());
    Ok(())
}
