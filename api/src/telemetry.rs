//! Structured logs through `tracing`: text for people, JSON (one object per line) for collectors.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::settings::{LogFormat, SettingsError};

/// Installs the global subscriber. A second call (tests start several servers) keeps the first one.
pub fn init(filter: &str, format: LogFormat) -> Result<(), SettingsError> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| SettingsError::new(format!("CONVENE_LOG is `{filter}`, not a log filter: {error}")))?;
    let registry = tracing_subscriber::registry().with(filter);
    let _already_set = match format {
        LogFormat::Text => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
        LogFormat::Json => {
            registry.with(fmt::layer().json().flatten_event(true).with_writer(std::io::stderr)).try_init()
        }
    };
    Ok(())
}
