//! The command line: `serve`, `migrate`, `user create`, `keygen`, `reseal`, `demo`,
//! `sim graph|web`.
//! Each command reads the environment through [`Config`] and reports errors in one place.

use crate::app::{self, StartError};
use crate::config::{Config, LogFormat};
use crate::database::Database;
use crate::demo::SimCommand;
use crate::logging;
use anyhow::Context;
use clap::{Parser, Subcommand};
use sincro_core::seal::Sealer;
use sincro_core::store::users;

#[derive(Debug, Parser)]
#[command(
    name = "sincro-whatsapp",
    version,
    about = "WhatsApp integration daemon of the SincroGoo CRM"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (configuration from the environment; see README).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage CRM users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Print a new ENCRYPTION_KEY value.
    Keygen {
        /// Key id (kept with every sealed value so keys can rotate).
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Seal every sealed value and media file again under the first ENCRYPTION_KEY entry, then
    /// say which older keys nothing needs any more (remove those, and destroy them, to make
    /// what they sealed in old backups unreadable).
    Reseal,
    /// Run the daemon with both simulators and a demo user, and print where everything is.
    Demo,
    /// Check the configuration, PostgreSQL (TLS, LISTEN), Chromium, DATA_DIR, the Graph API
    /// and PUBLIC_URL; one line per check, non-zero exit when one fails.
    Doctor,
    /// Run one simulator alone.
    Sim {
        #[command(subcommand)]
        which: SimCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (or reuse the one with this e-mail) and print a new API key on the last line.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// The key may read /v1/status and other admin routes.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Revoke a key by id (any user's); refused from the next request on, on every node.
    Revoke { id: uuid::Uuid },
}

fn config() -> anyhow::Result<Config> {
    let config = Config::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    logging::init(config.log_format, &config.log_filter);
    Ok(config)
}

pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let config = config()?;
            let listener = tokio::net::TcpListener::bind(config.bind_addr)
                .await
                .with_context(|| format!("cannot listen on BIND_ADDR {}", config.bind_addr))?;
            let report = app::run(listener, config, app::shutdown_signal())
                .await
                .map_err(start_error)?;
            if !report.still_running.is_empty() {
                anyhow::bail!(
                    "stopped with actors still running: {:?}",
                    report.still_running
                );
            }
            Ok(())
        }
        Command::Migrate => {
            let config = config()?;
            let db = Database::open(&config)
                .await
                .map_err(|e| start_error(e.into()))?;
            println!(
                "schema is current (version {})",
                sincro_core::store::migrate::latest_version()
            );
            db.close().await;
            Ok(())
        }
        Command::User {
            command: UserCommand::Create { email, name, admin },
        } => {
            let config = config()?;
            if !email.contains('@') || email.len() > 254 {
                anyhow::bail!("--email {email:?} is not an e-mail address");
            }
            let db = Database::open(&config)
                .await
                .map_err(|e| start_error(e.into()))?;
            let created = async {
                let mut client = db.pool.get().await?;
                users::create_with_key(&mut client, &email, name.as_deref(), admin).await
            }
            .await;
            db.close().await;
            let (user, new) = created.context("could not create the user")?;
            println!(
                "{} user {} ({email}){}; its new API key (shown once):",
                if new { "created" } else { "found" },
                user.usuario_id,
                if admin { ", admin key" } else { "" }
            );
            println!("{}", user.key.plaintext.expose());
            Ok(())
        }
        Command::Key {
            command: KeyCommand::Revoke { id },
        } => {
            let config = config()?;
            let db = Database::open(&config)
                .await
                .map_err(|e| start_error(e.into()))?;
            let revoked = async {
                let client = db.pool.get().await?;
                sincro_core::store::api_keys::revoke(&client, None, id).await
            }
            .await;
            db.close().await;
            match revoked.context("could not revoke the key")? {
                Some(key) => {
                    println!(
                        "key {} ({}) revoked",
                        key.id,
                        key.name.as_deref().unwrap_or(&key.prefix)
                    );
                    Ok(())
                }
                None => anyhow::bail!("there is no API key {id}"),
            }
        }
        Command::Keygen { id } => {
            println!("{}", Sealer::generate_env_value(&id));
            Ok(())
        }
        Command::Reseal => reseal().await,
        Command::Demo => {
            let config = config()?;
            crate::demo::run(config).await
        }
        Command::Doctor => {
            let checks = crate::doctor::run(&std::env::vars().collect()).await;
            let failed = checks
                .iter()
                .filter(|c| c.outcome == crate::doctor::Outcome::Fail)
                .count();
            if failed > 0 {
                anyhow::bail!("{failed} check(s) failed");
            }
            Ok(())
        }
        Command::Sim { which } => {
            logging::init(LogFormat::Text, "info");
            crate::demo::run_simulator(which).await
        }
    }
}

/// `reseal`: one pass over the database and `DATA_DIR/media`, then a count per older key.
async fn reseal() -> anyhow::Result<()> {
    use sincro_core::privacy::reseal;
    let config = config()?;
    let sealer = app::sealer(&config).map_err(start_error)?;
    let db = Database::open(&config)
        .await
        .map_err(|e| start_error(e.into()))?;
    let done = async {
        let report = reseal::reseal_all(&db.pool, &sealer, &config.data_dir).await?;
        println!(
            "re-sealed under key {}: {} values, {} media files ({} unreadable, left as they were)",
            sealer.current_key_id(),
            report.values,
            report.files,
            report.unreadable
        );
        for id in sealer.key_ids().into_iter().skip(1) {
            let left = reseal::references(&db.pool, &config.data_dir, id).await?;
            if left == 0 {
                println!(
                    "key {id}: nothing sealed under it remains; remove it from ENCRYPTION_KEY"
                );
            } else {
                println!("key {id}: {left} values still sealed under it; run reseal again");
            }
        }
        Ok::<_, sincro_core::privacy::PrivacyError>(())
    }
    .await;
    db.close().await;
    done.context("re-sealing failed")
}

fn start_error(e: StartError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
