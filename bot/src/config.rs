//! Everything a bot process needs to know besides its meeting: Whisper and connector settings.
//! It has one serialised form (JSON), which launchers hand to the bots they start, so a bot runs
//! with exactly the settings of the server that started it.

use crate::asr::settings::AsrConfig;
use crate::connector::config::ConnectorConfig;
use serde::{Deserialize, Serialize};

/// The environment variable that carries a bot's whole configuration, as JSON.
pub const BOT_CONFIG_ENV: &str = "PARLEY_BOT_CONFIG";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    pub asr: AsrConfig,
    pub connector: ConnectorConfig,
}

impl BotConfig {
    /// Settings no bot could run with, said in words.
    pub fn validate(&self) -> Result<(), String> {
        self.asr.validate()?;
        self.connector.validate()
    }

    /// The serialised form launchers hand to bots (it carries the connector secrets).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("plain data serialises: {e}"))
    }

    /// Reads and validates the serialised form.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let config: Self = serde_json::from_str(json)
            .map_err(|e| format!("{BOT_CONFIG_ENV} is not a bot configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_shared::Secret;

    #[test]
    fn the_serialised_form_carries_every_setting_and_only_the_debug_form_hides_secrets() {
        let mut config = BotConfig::default();
        config.asr.beam = 3;
        config.asr.flash_attention = true;
        config.connector.record_to = Some("s3://bucket/prefix".into());
        config.connector.livekit.api_key = "key".into();
        config.connector.livekit.api_secret = Secret::new("livekit-secret");
        let json = config.to_json();
        assert_eq!(BotConfig::from_json(&json), Ok(config.clone()));
        assert!(json.contains("livekit-secret"));
        assert!(!format!("{config:?}").contains("livekit-secret"));
    }

    #[test]
    fn a_partial_form_takes_the_defaults_and_a_wrong_one_is_refused_in_words() {
        let config = BotConfig::from_json(r#"{"asr": {"beam": 2}}"#).expect("valid");
        assert_eq!(config.asr.beam, 2);
        assert_eq!(config.connector, ConnectorConfig::default());
        let unknown = BotConfig::from_json(r#"{"asr": {"bean": 2}}"#).expect_err("refused");
        assert!(unknown.contains("bean"), "{unknown}");
        let invalid = BotConfig::from_json(r#"{"asr": {"beam": 0}}"#).expect_err("refused");
        assert!(invalid.contains("beam"), "{invalid}");
    }
}
