//! Structured logs through `tracing`: text for people, JSON (one object per line) for collectors.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::platform::settings::{LogFormat, SettingsError};

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

/// Query parameters whose values are logged as they are: paging only. Every other value (a room token's
/// `jwt`, reset and invitation `token`s, addresses) is a credential or personal, and is logged as `***`.
const LOGGED_QUERY_VALUES: [&str; 2] = ["limit", "after"];

/// A request target fit for the logs: the path, and the query with every value but paging's redacted.
pub fn loggable_target(path: &str, query: Option<&str>) -> String {
    let Some(query) = query.filter(|query| !query.is_empty()) else { return path.to_owned() };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if LOGGED_QUERY_VALUES.contains(&name) { format!("{name}={value}") } else { format!("{name}=***") }
        })
        .collect();
    format!("{path}?{}", redacted.join("&"))
}

/// The request spans: tracing-actix-web's fields, but the target with [`loggable_target`], so links'
/// credentials never reach the logs.
#[derive(Debug)]
pub struct RedactedSpans;

impl tracing_actix_web::RootSpanBuilder for RedactedSpans {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        let route = request.match_pattern().unwrap_or_else(|| "default".to_owned());
        let user_agent = request.headers().get("User-Agent").and_then(|agent| agent.to_str().ok()).unwrap_or("");
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.target = %loggable_target(request.path(), Some(request.query_string())),
            http.client_ip = %request.connection_info().realip_remote_addr().unwrap_or(""),
            http.user_agent = %user_agent,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_target;

    #[test]
    fn credentials_in_query_strings_never_reach_the_logs() {
        assert_eq!(loggable_target("/standup", Some("jwt=eyJhbGciOi.x.y")), "/standup?jwt=***");
        assert_eq!(
            loggable_target("/reset-password", Some("token=abc&next=%2Fx")),
            "/reset-password?token=***&next=***"
        );
        assert_eq!(loggable_target("/v1/rooms", Some("limit=10&after=weekly")), "/v1/rooms?limit=10&after=weekly");
        assert_eq!(loggable_target("/healthz", Some("")), "/healthz");
        assert_eq!(loggable_target("/x", Some("flag")), "/x?flag=***");
    }
}
