//! The `convene` command line: parses arguments, loads settings once, starts logging and runs a role.

use std::{collections::BTreeMap, path::PathBuf};

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::{
    roles::{self, Serve},
    settings::{SETTINGS, Settings},
    telemetry,
    tenants::NewTenant,
};

/// Convene: video meetings for companies, in one program.
#[derive(Debug, Parser)]
#[command(name = "convene", version, about, after_long_help = settings_help(), arg_required_else_help = true)]
pub struct Cli {
    /// Settings file (TOML); the same as CONVENE_CONFIG. Environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything in one process: the site, the API and a media node (the single-machine set-up).
    Up,
    /// Run the control plane: the site, the REST API and webhooks.
    Api,
    /// Run a media node: its UDP port, plus health and metrics over HTTP.
    Media,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(Admin),
}

#[derive(Debug, Subcommand)]
enum Admin {
    /// Create an organisation with its owner account and a first API key; prints them as JSON.
    CreateTenant {
        /// The organisation's name.
        #[arg(long)]
        name: String,
        /// The owner's email address (their login).
        #[arg(long)]
        owner_email: String,
        /// The owner's password: at least 8 characters, not a common one.
        #[arg(long)]
        owner_password: String,
        /// The owner's display name (default: the part of the email before the @).
        #[arg(long)]
        owner_name: Option<String>,
    },
}

fn settings_help() -> String {
    let width = SETTINGS.iter().map(|(name, _, _)| name.len()).max().unwrap_or(0);
    let rows: Vec<String> = SETTINGS
        .iter()
        .map(|(name, default, meaning)| format!("  {name:width$}  {meaning} [default: {default}]"))
        .collect();
    format!("Settings (environment variables, or keys of the --config file):\n{}", rows.join("\n"))
}

/// Runs the parsed command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    if let Some(config) = &cli.config {
        env.insert("CONVENE_CONFIG".to_owned(), config.to_string_lossy().into_owned());
    }
    let loaded = Settings::load(&env)?;
    let settings = loaded.settings;
    telemetry::init(&settings.log_filter, settings.log_format)?;
    for name in loaded.unknown_variables {
        tracing::warn!(variable = %name, "ignoring an environment variable that is not a Convene setting");
    }

    match cli.command {
        Command::Up => serve(Serve::All, &settings).await,
        Command::Api => serve(Serve::Api, &settings).await,
        Command::Media => serve(Serve::Media, &settings).await,
        Command::Migrate => {
            roles::migrate(&settings).await?;
            println!("The database is up to date ({}).", settings.database_url);
            Ok(())
        }
        Command::Admin(Admin::CreateTenant { name, owner_email, owner_password, owner_name }) => {
            let new = NewTenant {
                name,
                owner_email,
                owner_password: SecretString::from(owner_password),
                owner_name,
                // The operator vouches for the address, and the CLI is how a developer gets a first key.
                email_verified: true,
                first_api_key: Some("Default key".to_owned()),
            };
            roles::create_tenant(&settings, new, &mut std::io::stdout()).await
        }
    }
}

async fn serve(role: Serve, settings: &Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    roles::serve(role, settings, shutdown, &mut std::io::stdout()).await
}

/// Cancels `shutdown` on SIGINT (Ctrl-C) or SIGTERM (systemd, Kubernetes).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
    shutdown.cancel();
}
