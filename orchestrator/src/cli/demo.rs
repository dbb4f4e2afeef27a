//! `parley demo`: the embedded server with one meeting — the bundled sample, replayed through an
//! in-process bot as if live — printing its transcript as it is stored, then the whole of it.

use super::serve::{ServeArgs, bind};
use crate::auth::password;
use crate::clock::now_ms;
use crate::mail::policy::MailPolicy;
use crate::store::{Role, Store};
use anyhow::{Context, bail};
use clap::Args;
use parley_shared::EmailAddress;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder of per-speaker tracks to replay as the meeting [default: the bundled testdata/sample].
    #[arg(long)]
    meeting: Option<PathBuf>,
    /// Keep the server running after the meeting ends (Ctrl-C stops it).
    #[arg(long)]
    keep_serving: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

fn sample_dir() -> PathBuf {
    let here = PathBuf::from("testdata/sample");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/sample")
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// The response, whatever its status.
    async fn send(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?)
    }

    /// A successful response, or an error with the status and body.
    async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let r = self.send(path).await?;
        if !r.status().is_success() {
            bail!(
                "GET {path}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(r)
    }
}

pub async fn run(mut args: DemoArgs) -> anyhow::Result<()> {
    let meeting_dir = args.meeting.clone().unwrap_or_else(sample_dir);
    let meeting_dir = meeting_dir
        .canonicalize()
        .with_context(|| format!("no meeting folder at {}", meeting_dir.display()))?;
    let temp;
    if args.serve.data_dir.is_none() {
        temp = tempfile::Builder::new().prefix("parley-demo-").tempdir()?;
        args.serve.data_dir = Some(temp.path().to_owned());
    }
    let mut config = args.serve.config()?;
    if config.mail_policy.domains().is_empty() {
        // The sample meeting's participants are at example.com: the demo plays a company there,
        // so its summary is mailed to them (into the outbox) without their signing up.
        config.mail_policy =
            MailPolicy::new(&["example.com".to_owned()], config.mail_policy.quotas);
    }
    // Install the model before the server starts, so its progress shows here.
    super::models::install_configured(&config.bot.asr).await?;

    // The demo account is made before the server starts, so the data dir must exist already.
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
    let store = Store::open(
        &config.database_url(),
        std::sync::Arc::new(config.sealer()?),
    )
    .await?;
    let email = EmailAddress::parse(&format!("demo-{}@parley.invalid", now_ms()))?;
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let pw: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let hash = password::hash(&pw)?;
    let user = store
        .create_user(&email, "Demo", &hash, Role::Admin, now_ms())
        .await?
        .context("demo account exists")?;
    // Admin: replaying files from the server's disk needs the role. Verified here: the demo's
    // address is made up, so no mail could verify it.
    store.set_email_verified(user.user_id, now_ms()).await?;
    store.close().await;

    let listener = match bind(&args.serve.listen).await {
        Ok(l) => l,
        // The default port is taken (another Parley?): any free port does for a demo.
        Err(_) if args.serve.listen == super::serve::DEFAULT_LISTEN => bind("127.0.0.1:0").await?,
        Err(e) => return Err(e),
    };
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::app::run(config.clone(), listener, async move {
        let _ = stop_rx.await;
    }));
    eprintln!(
        "parley demo: embedded server on {base} (data in {})",
        config.data_dir.display()
    );

    let outcome = drive(&base, &email, &pw, &meeting_dir).await;
    let outcome = match outcome {
        Ok(()) => wait_for_mail(&config.data_dir.join("outbox"), 3).await,
        Err(e) => Err(e),
    };
    if args.keep_serving && outcome.is_ok() {
        eprintln!("server still running on {base}; Ctrl-C stops it");
        parley_bot::telemetry::shutdown_signal().await;
    }
    let _ = stop_tx.send(());
    server.await.context("server task failed")??;
    outcome
}

/// The embedded server writes the summary emails (owner and two participants) to the outbox.
async fn wait_for_mail(outbox: &Path, expected: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let written = std::fs::read_dir(outbox)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .count()
            })
            .unwrap_or(0);
        if written >= expected {
            println!(
                "\nSummary emailed: {written} messages written to {}",
                outbox.display()
            );
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "only {written} of {expected} summary emails in {} after 30 s",
                outbox.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn drive(base: &str, email: &EmailAddress, pw: &str, dir: &Path) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/register/login"))
        .json(&json!({ "email": email, "password": pw }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["token"]
        .as_str()
        .context("no token in login reply")?
        .to_owned();
    let created: Value = http
        .post(format!("{base}/meetings"))
        .bearer_auth(&token)
        .json(&json!({
            "title": "Parley sample meeting",
            "url": format!("replay:{}", dir.display()),
            // The summary email goes to the owner and these (example addresses: in the embedded
            // default, mail is written to DATA_DIR/outbox, never sent).
            "participants": ["ana.lima@example.com", "ben.carter@example.com"],
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["meeting_id"]
        .as_str()
        .context("no meeting id")?
        .to_owned();
    let live_url = created["live_url"]
        .as_str()
        .context("no live captions link")?
        .to_owned();
    // A link carries captions and the transcript unless its owner shares more: the demo's owner
    // shares the summary and recordings, so the page shows the whole meeting once it ends.
    http.patch(format!("{base}/meetings/{id}/live"))
        .bearer_auth(&token)
        .json(&json!({ "scope": "all" }))
        .send()
        .await?
        .error_for_status()?;
    let client = Client {
        http,
        base: base.to_owned(),
        token,
    };
    eprintln!(
        "meeting {id}: a bot is replaying {} as a live meeting",
        dir.display()
    );
    // On stdout with the transcript: the link is the demo's result as much as the text is.
    println!("Live captions: {live_url}");
    println!("Web app: {base}/ (sign in as {email}, password {pw})");
    eprintln!(
        "            (open it in a browser to watch the captions as they are spoken; after the \
         meeting it shows the summary and recordings, which this demo's owner shares on the link)"
    );
    eprintln!(
        "            (the web app shows the meeting live too, then its summary, recordings and \
         downloads; the demo account is an admin, so it also sees the fleet)"
    );
    eprintln!("transcript: {base}/meetings/{id}/transcript?format=txt");
    eprintln!(
        "            (send the header \"Authorization: Bearer {}\")",
        client.token
    );
    eprintln!();

    let mut shown = HashSet::new();
    let status = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let meeting: Value = client.get(&format!("/meetings/{id}")).await?.json().await?;
        let transcript: Value = client
            .get(&format!("/meetings/{id}/transcript?format=json"))
            .await?
            .json()
            .await?;
        for seg in transcript["segments"].as_array().into_iter().flatten() {
            let key = (seg["speaker"].to_string(), seg["start_ms"].as_u64());
            if shown.insert(key) {
                let ms = seg["start_ms"].as_u64().unwrap_or(0);
                eprintln!(
                    "  [{:02}:{:02}] {}: {}",
                    ms / 60_000,
                    ms / 1000 % 60,
                    seg["speaker"].as_str().unwrap_or("?"),
                    seg["text"].as_str().unwrap_or("")
                );
            }
        }
        let status = meeting["status"].as_str().unwrap_or("").to_owned();
        if status == "ended" || status == "failed" {
            if status == "failed" {
                bail!(
                    "the meeting failed: {}",
                    meeting["status_reason"]
                        .as_str()
                        .unwrap_or("no reason given")
                );
            }
            break status;
        }
    };
    let text = client
        .get(&format!("/meetings/{id}/transcript?format=txt"))
        .await?
        .text()
        .await?;
    eprintln!("\nmeeting {status}; the stored transcript:\n");
    print!("{text}");
    summary(&client, &id).await
}

/// Waits for the summary job, prints the summary, and waits for its emails.
async fn summary(client: &Client, id: &str) -> anyhow::Result<()> {
    eprintln!("\nwaiting for the summary...");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let summary: Value = loop {
        // 404 until the summary job has run: the meeting ended a moment ago.
        let r = client.send(&format!("/meetings/{id}/summary")).await?;
        if r.status().is_success() {
            break r.json().await?;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no summary 60 s after the meeting ended");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "\nSummary ({}):\n{}",
        summary["model"].as_str().unwrap_or("?"),
        summary["summary"].as_str().unwrap_or("")
    );
    for (heading, key) in [
        ("Highlights", "highlights"),
        ("Action items", "action_items"),
        ("Open questions", "open_questions"),
    ] {
        let items = summary[key].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            continue;
        }
        println!("\n{heading}:");
        for item in items {
            match key {
                "action_items" => println!(
                    "- {}: {}{}",
                    item["owner"].as_str().unwrap_or("(no owner)"),
                    item["task"].as_str().unwrap_or(""),
                    item["due"]
                        .as_str()
                        .map(|d| format!(" (due {d})"))
                        .unwrap_or_default()
                ),
                _ => println!(
                    "- {} ({})",
                    item["text"].as_str().unwrap_or(""),
                    item["speaker"].as_str().unwrap_or("")
                ),
            }
        }
    }
    Ok(())
}
