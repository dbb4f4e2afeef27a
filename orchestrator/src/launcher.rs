//! In-process bots: one task per meeting, sharing one Whisper model and worker pool that load on
//! the first dispatch. Bots publish to the same bus a separate bot process would, so the ingest
//! path is identical in embedded and production mode.

use crate::live::share_link;
use crate::metrics::Metrics;
use crate::store::Meeting;
use anyhow::Context;
use parley_bot::asr::pool::AsrPool;
use parley_bot::asr::settings::AsrArgs;
use parley_bot::asr::whisper::WhisperModel;
use parley_bot::connector::MeetingConnector;
use parley_bot::connector::open::{AnyConnector, ConnectorArgs};
use parley_bot::pipeline::{PipelineConfig, run_meeting};
use parley_bot::sink::any::AnySink;
use parley_bot::sink::channel::ChannelSink;
use parley_bot::sink::redis::RedisSink;
use parley_bot::sink::{EventSink, SinkError};
use parley_shared::{BotState, Event, EventBody, MeetingId, Platform};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, mpsc, watch};
use tokio::task::JoinSet;

/// Where bots publish.
#[derive(Debug, Clone)]
pub enum Bus {
    Channel(mpsc::Sender<Event>),
    Redis { url: String, stream: String },
}

impl Bus {
    async fn sink(&self) -> Result<AnySink, SinkError> {
        Ok(match self {
            Self::Channel(tx) => AnySink::Channel(ChannelSink::new(tx.clone())),
            Self::Redis { url, stream } => {
                AnySink::Redis(Box::new(RedisSink::connect(url, stream).await?))
            }
        })
    }
}

struct Asr {
    /// Kept alive for the pool's workers.
    _model: WhisperModel,
    pool: AsrPool,
}

pub struct Launcher {
    bus: Bus,
    chat_link_base: Option<Arc<str>>,
    asr_args: AsrArgs,
    connector_args: ConnectorArgs,
    asr: OnceCell<Arc<Asr>>,
    metrics: Arc<Metrics>,
    /// Per running bot, the sender that asks it to leave.
    running: Mutex<HashMap<MeetingId, watch::Sender<bool>>>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launcher").finish_non_exhaustive()
    }
}

impl Launcher {
    /// `chat_link_base`: the public URL to build the live captions link the bot posts to the
    /// meeting chat; `None` posts nothing.
    pub fn new(
        bus: Bus,
        asr_args: AsrArgs,
        connector_args: ConnectorArgs,
        metrics: Arc<Metrics>,
        chat_link_base: Option<Arc<str>>,
    ) -> Self {
        Self {
            bus,
            chat_link_base,
            asr_args,
            connector_args,
            asr: OnceCell::new(),
            metrics,
            running: Mutex::new(HashMap::new()),
            tasks: tokio::sync::Mutex::new(JoinSet::new()),
        }
    }

    async fn asr(&self) -> anyhow::Result<Arc<Asr>> {
        self.asr
            .get_or_try_init(|| async {
                let (model, path) = self.asr_args.load().await?;
                tracing::info!(model = %path.display(), "whisper model loaded for in-process bots");
                let pool = self.asr_args.pool(&model)?;
                Ok(Arc::new(Asr {
                    _model: model,
                    pool,
                }))
            })
            .await
            .cloned()
    }

    /// Starts a bot for `meeting`. Failures to join are reported on the bus as `bot_status:
    /// failed` with the reason, like any bot's.
    pub async fn launch(self: &Arc<Self>, meeting: &Meeting) {
        let (stop_tx, stop_rx) = watch::channel(false);
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.contains_key(&meeting.meeting_id) {
                return;
            }
            running.insert(meeting.meeting_id, stop_tx);
        }
        let this = Arc::clone(self);
        let id = meeting.meeting_id;
        let platform = meeting.platform;
        let url = meeting.url.to_string();
        let record = meeting.record;
        let announcement = self
            .chat_link_base
            .as_deref()
            .zip(meeting.share_token.as_ref())
            .map(|(base, token)| {
                format!("Live captions of this meeting: {}", share_link(base, token))
            });
        self.metrics.bots_started.fetch_add(1, Relaxed);
        self.metrics.bots_active.fetch_add(1, Relaxed);
        let mut tasks = self.tasks.lock().await;
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let outcome = this
                .run_bot(id, platform, &url, record, announcement, stop_rx)
                .await;
            if let Err(e) = outcome {
                tracing::warn!(meeting_id = %id, error = format!("{e:#}"), "bot failed");
                this.report_failure(id, &format!("{e:#}")).await;
            }
            this.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            this.metrics.bots_active.fetch_sub(1, Relaxed);
        });
    }

    async fn run_bot(
        &self,
        id: MeetingId,
        platform: Platform,
        url: &str,
        record: bool,
        announcement: Option<String>,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        if !matches!(platform, Platform::Replay | Platform::Janus) {
            anyhow::bail!(
                "no connector for {} meetings in this build yet",
                platform.as_str()
            );
        }
        let asr = self.asr().await?;
        let sink = self.bus.sink().await?;
        let mut connector_args = self.connector_args.clone();
        if !record {
            connector_args.record_to = None;
        }
        let mut connector = AnyConnector::open(url, &connector_args, id)
            .await
            .context("cannot join the meeting")?;
        if let Some(text) = announcement {
            // The link is a capability: it is posted, never logged.
            match connector.post_chat(&text).await {
                Ok(true) => {
                    tracing::info!(meeting_id = %id, "live captions link posted to the meeting chat")
                }
                Ok(false) => {
                    tracing::info!(meeting_id = %id, "live captions link not posted: the platform has no chat for bots")
                }
                Err(e) => {
                    tracing::warn!(meeting_id = %id, error = %e, "cannot post the live captions link to the meeting chat")
                }
            }
        }
        let config = PipelineConfig {
            transcriber: self.asr_args.transcriber(true),
            ..PipelineConfig::default()
        };
        tracing::info!(meeting_id = %id, "bot joining");
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let report = run_meeting(id, connector, &asr.pool, config, sink, shutdown).await?;
        tracing::info!(meeting_id = %id, finals = report.finals, "bot left");
        Ok(())
    }

    async fn report_failure(&self, id: MeetingId, reason: &str) {
        let event = Event::new(
            id,
            u64::MAX,
            EventBody::BotStatus {
                state: BotState::Failed,
                reason: Some(reason.to_owned()),
                at_ms: 0,
            },
        );
        match self.bus.sink().await {
            Ok(mut sink) => {
                if let Err(e) = sink.publish(event).await {
                    tracing::error!(meeting_id = %id, error = %e, "cannot report bot failure");
                }
            }
            Err(e) => tracing::error!(meeting_id = %id, error = %e, "cannot report bot failure"),
        }
    }

    /// Asks the meeting's bot to leave; returns whether one was running here.
    pub fn stop(&self, id: MeetingId) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(&id).is_some_and(|tx| tx.send(true).is_ok())
    }

    /// Asks every bot to leave and waits for them to publish their last events.
    pub async fn shutdown(&self) {
        for tx in self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let _ = tx.send(true);
        }
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }
}
