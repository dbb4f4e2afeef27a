//! Command-line flags and environment variables for bot settings. They convert into the typed
//! configuration (`BotConfig`) and nothing else reads them: a flag not given leaves the setting
//! as the layer below has it (the defaults, or the configuration a launcher handed over).

use crate::asr::settings::{AsrConfig, CtxMode};
use crate::config::{BOT_CONFIG_ENV, BotConfig};
use crate::connector::config::ConnectorConfig;
use clap::Args;
use parley_shared::Secret;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Args)]
pub struct AsrFlags {
    /// Whisper model: a name (tiny.en-q8_0, tiny.en, base-q8_0, base) from the model cache, or a
    /// path to a ggml file [default: tiny.en-q8_0].
    #[arg(long, env = "PARLEY_MODEL")]
    pub model: Option<String>,
    /// Model cache folder [default: the user cache, ~/.cache/parley/models].
    #[arg(long, env = "PARLEY_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Whisper workers: decodes that run at once, each on its own thread with its own decoder
    /// state (about 115 MB each) [default: one per core, at most 4].
    #[arg(long, env = "PARLEY_ASR_WORKERS")]
    pub workers: Option<usize>,
    /// CPU threads per decode [default: 1]. One per worker keeps ggml's spinning threads from
    /// competing: with several meetings, two one-thread workers on two cores beat one two-thread
    /// worker (finals p95 2.4 s against 3.0 s, and no accuracy lost to degradation).
    #[arg(long, env = "PARLEY_ASR_THREADS")]
    pub threads: Option<usize>,
    /// Beam width for final segments, 1 (greedy) to 16 [default: 5].
    #[arg(long, env = "PARLEY_BEAM")]
    pub beam: Option<usize>,
    /// Spoken language for multilingual models (English-only models ignore it) [default: en].
    #[arg(long, env = "PARLEY_LANGUAGE")]
    pub language: Option<String>,
    /// Encoder window for partials: `cut` to the audio's length (fast) or `full` (25.6 s)
    /// [default: cut].
    #[arg(long)]
    pub partial_ctx: Option<CtxMode>,
    /// Encoder window for finals: `full` 25.6 s (accurate) or `cut` to the audio's length
    /// [default: full].
    #[arg(long)]
    pub final_ctx: Option<CtxMode>,
    /// Silence that ends an utterance, in ms [default: 700]. Shorter: captions finalise sooner;
    /// longer: fewer sentence splits, more context per decode.
    #[arg(long)]
    pub end_silence_ms: Option<u64>,
    /// Live: a partial hypothesis after every this many ms of new speech, and in a long
    /// utterance after at least half its length so far (0 = none)
    /// [default: 2500].
    #[arg(long)]
    pub partial_every_ms: Option<u64>,
    /// Live: after this many ms of silence the utterance is decoded as final in case the pause
    /// ends it, so its final is ready sooner (0 = never; finals then wait for the end silence)
    /// [default: 160].
    #[arg(long)]
    pub speculate_after_ms: Option<u64>,
    /// Seconds of the speaker's earlier speech decoded again in front of each final, so Whisper
    /// hears the voice and the sentences before (0 = off: each utterance alone) [default: 16].
    #[arg(long, value_name = "SECONDS")]
    pub acoustic_context: Option<usize>,
    /// Lower memory: whisper.cpp's flash attention saves about 48 MB per Whisper worker (a bot
    /// with three speakers in Janus peaked at 152 MB instead of 201 MB), at some accuracy: its
    /// CPU kernel adds up in 16-bit floats, and short clean speech loses words (JFK 0 % → 9.1 %).
    #[arg(long, env = "PARLEY_FLASH_ATTENTION")]
    pub flash_attention: bool,
}

impl AsrFlags {
    /// The given flags over `config`.
    pub fn apply(self, config: &mut AsrConfig) {
        set(&mut config.model, self.model);
        if self.model_dir.is_some() {
            config.model_dir = self.model_dir;
        }
        set(&mut config.workers, self.workers);
        set(&mut config.threads, self.threads);
        set(&mut config.beam, self.beam);
        set(&mut config.language, self.language);
        set(&mut config.partial_ctx, self.partial_ctx);
        set(&mut config.final_ctx, self.final_ctx);
        set(&mut config.end_silence_ms, self.end_silence_ms);
        set(&mut config.partial_every_ms, self.partial_every_ms);
        set(&mut config.speculate_after_ms, self.speculate_after_ms);
        set(&mut config.acoustic_context_secs, self.acoustic_context);
        config.flash_attention |= self.flash_attention;
    }

    /// The defaults with these flags over them, validated.
    pub fn config(self) -> anyhow::Result<AsrConfig> {
        let mut config = AsrConfig::default();
        self.apply(&mut config);
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct ConnectorFlags {
    /// Local UDP addresses for WebRTC (comma-separated); 0.0.0.0:0 uses every non-loopback
    /// interface [default: 0.0.0.0:0].
    #[arg(long, env = "PARLEY_ICE_BIND", value_delimiter = ',')]
    pub ice_bind: Option<Vec<String>>,
    /// Leave a live meeting after nobody else has been in it for this many seconds
    /// [default: 120].
    #[arg(long, env = "PARLEY_ALONE_TIMEOUT_SECS")]
    pub alone_timeout_secs: Option<u64>,
    /// Speed of replay: meetings (1 = real time, as live; 0 = as fast as possible) [default: 1].
    #[arg(long, env = "PARLEY_REPLAY_SPEED")]
    pub replay_speed: Option<f64>,
    /// Record each speaker's audio (Ogg/Opus, as received) to this folder or s3://BUCKET/PREFIX;
    /// "off" disables recording.
    #[arg(long, env = "PARLEY_RECORDINGS")]
    pub record_to: Option<String>,
    /// The Zoom app's client id, for Zoom meetings (RTMS).
    #[arg(long, env = "ZOOM_CLIENT_ID")]
    pub zoom_client_id: Option<String>,
    /// The Zoom app's client secret, which signs the RTMS handshake.
    #[arg(long, env = "ZOOM_CLIENT_SECRET", hide_env_values = true)]
    pub zoom_client_secret: Option<String>,
    /// The OAuth client id of the Google Cloud project enrolled in the Meet Media API preview.
    #[arg(long, env = "GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,
    /// The OAuth client's secret.
    #[arg(long, env = "GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<String>,
    /// A refresh token of the Google account the bot acts for, granted the
    /// meetings.conference.media.audio.readonly scope.
    #[arg(long, env = "GOOGLE_REFRESH_TOKEN", hide_env_values = true)]
    pub google_refresh_token: Option<String>,
    /// Google's OAuth token endpoint [default: https://oauth2.googleapis.com/token].
    #[arg(long, env = "GOOGLE_TOKEN_URL")]
    pub google_token_url: Option<String>,
    /// The Meet REST API [default: https://meet.googleapis.com].
    #[arg(long, env = "PARLEY_MEET_API_URL")]
    pub meet_api_url: Option<String>,
    /// The LiveKit deployment's API key, for LiveKit rooms (the bot mints its join token).
    #[arg(long, env = "LIVEKIT_API_KEY")]
    pub livekit_api_key: Option<String>,
    /// The LiveKit deployment's API secret, which signs the bot's join token.
    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    pub livekit_api_secret: Option<String>,
    /// Host names (or addresses) of the deployment's LiveKit servers, comma-separated: the bot
    /// mints join tokens only for these, so a link cannot send one elsewhere.
    #[arg(long, env = "PARLEY_LIVEKIT_SERVERS", value_delimiter = ',')]
    pub livekit_servers: Option<Vec<String>>,
    /// STUN servers for platforms reached over the internet (Meet), comma-separated; empty for
    /// none [default: stun:stun.l.google.com:19302].
    #[arg(long, env = "PARLEY_STUN", value_delimiter = ',')]
    pub stun: Option<Vec<String>>,
}

impl ConnectorFlags {
    /// The given flags over `config`; `--record-to off` turns recording off.
    pub fn apply(self, config: &mut ConnectorConfig) {
        set(&mut config.ice_bind, self.ice_bind);
        set(&mut config.alone_timeout_secs, self.alone_timeout_secs);
        set(&mut config.replay_speed, self.replay_speed);
        if let Some(to) = self.record_to {
            config.record_to = Some(to).filter(|to| to != "off");
        }
        set(&mut config.zoom.client_id, self.zoom_client_id);
        set(
            &mut config.zoom.client_secret,
            self.zoom_client_secret.map(Secret::new),
        );
        let google = &mut config.google;
        set(&mut google.client_id, self.google_client_id);
        set(
            &mut google.client_secret,
            self.google_client_secret.map(Secret::new),
        );
        set(
            &mut google.refresh_token,
            self.google_refresh_token.map(Secret::new),
        );
        set(&mut google.token_url, self.google_token_url);
        set(&mut google.meet_api_url, self.meet_api_url);
        set(&mut config.livekit.api_key, self.livekit_api_key);
        set(
            &mut config.livekit.api_secret,
            self.livekit_api_secret.map(Secret::new),
        );
        set(&mut config.livekit.servers, self.livekit_servers);
        set(&mut config.stun, self.stun);
    }
}

/// A bot's settings: a whole configuration handed over by a launcher, with flags over it.
#[derive(Debug, Clone, Default, Args)]
pub struct BotFlags {
    /// The bot's whole configuration as JSON, as launchers hand it to the bots they start; the
    /// flags below override it.
    #[arg(long, env = BOT_CONFIG_ENV, hide_env_values = true, value_name = "JSON")]
    pub bot_config: Option<String>,
    #[command(flatten)]
    pub asr: AsrFlags,
    #[command(flatten)]
    pub connector: ConnectorFlags,
}

impl BotFlags {
    /// The handed-over configuration (or the defaults) with the given flags over it, validated.
    pub fn config(self) -> anyhow::Result<BotConfig> {
        let mut config = match &self.bot_config {
            Some(json) => BotConfig::from_json(json).map_err(anyhow::Error::msg)?,
            None => BotConfig::default(),
        };
        self.asr.apply(&mut config.asr);
        self.connector.apply(&mut config.connector);
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// The environment variables these flags read: a launcher that hands its configuration
    /// over removes them from the bot's environment, so none of its own can override it.
    pub fn environment_names() -> Vec<String> {
        Self::augment_args(clap::Command::new("parley-bot"))
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect()
    }
}

/// Makes `command` (a `parley-bot`) run with exactly `config`: the configuration goes in its one
/// serialised form, and no variable of this process's environment that a bot flag reads is
/// passed on to override it.
pub fn hand_over(command: &mut tokio::process::Command, config: &BotConfig) {
    for name in BotFlags::environment_names() {
        command.env_remove(name);
    }
    command.env(BOT_CONFIG_ENV, config.to_json());
}

fn set<T>(slot: &mut T, given: Option<T>) {
    if let Some(value) = given {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        bot: BotFlags,
    }

    fn parse(args: &[&str]) -> anyhow::Result<BotConfig> {
        let mut argv = vec!["parley-bot"];
        argv.extend_from_slice(args);
        Command::try_parse_from(argv)?.bot.config()
    }

    #[test]
    fn flags_override_only_what_they_name_of_the_handed_over_configuration() {
        let mut handed = BotConfig::default();
        handed.asr.beam = 2;
        handed.asr.workers = 3;
        handed.connector.record_to = Some("/recordings".into());
        let json = handed.to_json();
        let config = parse(&[
            "--bot-config",
            &json,
            "--workers",
            "1",
            "--record-to",
            "off",
        ])
        .expect("valid");
        assert_eq!(
            config.asr.beam, 2,
            "kept from the handed-over configuration"
        );
        assert_eq!(config.asr.workers, 1);
        assert_eq!(config.connector.record_to, None, "off means no recording");
    }

    #[test]
    fn the_defaults_the_help_names_are_the_configurations_defaults() {
        let command = BotFlags::augment_args(clap::Command::new("parley-bot"));
        let mut checked = 0;
        for arg in command.get_arguments() {
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string());
            let Some(value) = help
                .as_deref()
                .and_then(|h| h.split("[default: ").nth(1))
                .and_then(|rest| rest.split(']').next())
                .filter(|v| !v.contains(' '))
            else {
                continue;
            };
            let flag = format!("--{}", arg.get_long().expect("valid"));
            assert_eq!(
                parse(&[&flag, value]).expect("valid"),
                parse(&[]).expect("valid"),
                "{flag}"
            );
            checked += 1;
        }
        assert!(checked >= 15, "only {checked} documented defaults found");
    }

    #[test]
    fn bad_settings_are_refused_in_words() {
        let e = parse(&["--beam", "0"]).expect_err("refused").to_string();
        assert!(e.contains("beam"), "{e}");
        let e = parse(&["--bot-config", "{\"asr\": 1}"]).expect_err("refused");
        assert!(format!("{e:#}").contains(BOT_CONFIG_ENV), "{e:#}");
    }

    #[test]
    fn the_environment_names_include_credentials_and_the_model() {
        let names = BotFlags::environment_names();
        for name in [
            "PARLEY_MODEL",
            "LIVEKIT_API_SECRET",
            "PARLEY_RECORDINGS",
            BOT_CONFIG_ENV,
        ] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }
    }
}
