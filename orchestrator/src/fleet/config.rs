//! How the fleet is run: the launcher, its size until an admin sets it, and where workers are.

use super::launchers::LauncherKind;
use crate::store::FleetSettings;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub launcher: LauncherKind,
    pub defaults: FleetSettings,
    /// Meetings each bot worker serves at once (one model and decode pool for all of them).
    pub meetings_per_worker: usize,
    pub assignments_stream: String,
    /// The `parley-bot` binary the process launcher runs; `None` finds it.
    pub bot_program: Option<PathBuf>,
    /// The Kubernetes launcher's namespace (`None`: the client's) and Deployment.
    pub bot_namespace: Option<String>,
    pub bot_deployment: String,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            launcher: LauncherKind::InProcess,
            defaults: FleetSettings {
                min_idle: 1,
                max_bots: 4,
                per_user: 2,
            },
            meetings_per_worker: parley_bot::fleet::worker::default_max_meetings(),
            assignments_stream: parley_bot::fleet::DEFAULT_ASSIGNMENTS_STREAM.to_owned(),
            bot_program: None,
            bot_namespace: None,
            bot_deployment: "parley-bot".to_owned(),
        }
    }
}
