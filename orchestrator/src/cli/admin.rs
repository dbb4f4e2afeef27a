//! `parley admin`: what an operator does out of band, on the server's own database. The first
//! admin is made here, not by being first to sign up (on an open server that race is anyone's).

use crate::auth::password;
use crate::clock::now_ms;
use crate::config::ServerConfig;
use crate::store::{Role, Store};
use anyhow::Context;
use clap::Subcommand;
use parley_shared::EmailAddress;
use std::io::BufRead;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account with a verified address (or, with --admin, make an existing one an
    /// admin). The password is read from PARLEY_NEW_PASSWORD, else from the first line of
    /// standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Admin")]
        name: String,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
        /// The server's Postgres URL; unset means the SQLite database in the data dir.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// The server's data dir (for SQLite) [default: ~/.local/share/parley].
        #[arg(long, env = "PARLEY_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The server's key for secrets at rest [default: DATA_DIR/secret.key].
        #[arg(long, env = "PARLEY_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
    },
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    let AdminCommand::CreateUser {
        email,
        name,
        admin,
        database_url,
        data_dir,
        secret_key,
    } = cmd;
    let email = EmailAddress::parse(&email).context("--email")?;
    let name = name.trim().to_owned();
    anyhow::ensure!(!name.is_empty(), "--name must not be empty");
    let data_dir = match data_dir {
        Some(d) => d,
        None => dirs::data_dir()
            .context("no data dir for this user: pass --data-dir")?
            .join("parley"),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let mut config = ServerConfig::embedded(data_dir);
    config.database_url = database_url
        .filter(|u| !u.is_empty())
        .map(crate::config::Secret::new);
    config.secret_key = secret_key
        .filter(|k| !k.is_empty())
        .map(crate::config::Secret::new);
    let store = Store::open(
        &config.database_url(),
        std::sync::Arc::new(config.sealer()?),
    )
    .await
    .context("cannot open the database")?;
    let role = if admin { Role::Admin } else { Role::User };
    let password = match std::env::var("PARLEY_NEW_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("password for {email}:");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    password::check_policy(&password)?;
    let hash = password::hash(&password)?;
    let user = match store
        .create_user(&email, &name, &hash, role, now_ms())
        .await?
    {
        Some(user) => user,
        None if admin => {
            let (user, _) = store
                .user_credentials(&email)
                .await?
                .context("the account vanished")?;
            store.set_role(user.user_id, Role::Admin).await?;
            println!("{email} already had an account: it is an admin now (password unchanged)");
            store.close().await;
            return Ok(());
        }
        None => anyhow::bail!("{email} already has an account"),
    };
    store.set_email_verified(user.user_id, now_ms()).await?;
    store.close().await;
    println!(
        "created {} account {email} ({})",
        role.as_str(),
        user.user_id
    );
    Ok(())
}
