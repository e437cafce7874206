//! Delivering queued events: each endpoint's deliveries go out one at a time, oldest first, so a receiver
//! sees them in order; endpoints are served side by side, so a slow or failing one holds up only its own.
//! A failed try waits longer before each retry (the Standard Webhooks schedule, about 27 hours in all);
//! after the last, the delivery has failed, the endpoint is marked failing and its organisation's owners are
//! told by mail, and its next delivery goes on. Every try is logged for the endpoint's delivery log.
//!
//! Requests go only where the endpoint's URL resolves to public addresses (unless the operator allows
//! loopback and private networks, for development and tests), to the address checked; no redirect is
//! followed, each request has a deadline, and at most a bounded part of an answer is read.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::TokioExecutor,
};

use chrono::{DateTime, Utc};
use convene_domain::{EmailAddress, TenantId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use secrecy::ExposeSecret;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

use super::signing::WebhookSecret;
use crate::{
    entities::{membership, user, webhook_attempt, webhook_delivery, webhook_endpoint, webhook_message},
    platform::{
        envelope::Envelope,
        mail::{Email, Mailer},
    },
};

/// A delivery's states.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// The waits after each failed try before the next (Standard Webhooks' and Svix's schedule); after the last
/// retry fails, the delivery has failed.
const RETRY_AFTER: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// How long a receiver has to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed delivery is another worker's once this has passed (its worker died), well past a request.
const CLAIM_FOR: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Tries under way at once in one worker (each to a different endpoint).
const IN_FLIGHT: usize = 8;
/// How often the worker looks for due deliveries.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// The most of an answer read, and the part of it kept in the log.
const MOST_READ: usize = 64 * 1024;
const SNIPPET_CHARS: usize = 1000;

/// What reaches where: loopback and private networks only when the operator allows them.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    /// `CONVENE_WEBHOOKS_ALLOW_LOOPBACK`: http, loopback and private addresses are allowed.
    pub private_allowed: bool,
}

impl Reach {
    /// Whether `url` may be an endpoint: https (or http where private networks are allowed), a host, no
    /// user name or password. Addresses are checked at each delivery, where the name is resolved.
    pub fn check_url(self, url: &Url) -> Result<(), String> {
        match url.scheme() {
            "https" => {}
            "http" if self.private_allowed => {}
            _ => return Err("the URL must start with https://".to_owned()),
        }
        if url.host_str().is_none_or(str::is_empty) || !url.username().is_empty() || url.password().is_some() {
            return Err("the URL must name a host and no user name or password".to_owned());
        }
        if url.as_str().len() > 2048 {
            return Err("the URL is longer than 2048 characters".to_owned());
        }
        Ok(())
    }

    /// The address to send to: the first `url`'s host resolves to, if every one it resolves to may be
    /// reached (a name that resolves to an inside address is refused, whatever else it resolves to).
    async fn resolve(self, url: &Url) -> Result<SocketAddr, String> {
        self.check_url(url)?;
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("the host `{host}` cannot be found"))?
            .collect();
        let Some(first) = addresses.first().copied() else { return Err(format!("the host `{host}` cannot be found")) };
        if !self.private_allowed && addresses.iter().any(|address| !convene_domain::net::is_public(address.ip())) {
            return Err("the URL leads into a private network, which webhooks are not sent to".to_owned());
        }
        Ok(first)
    }
}

/// Sends the queued deliveries.
#[derive(Debug, Clone)]
pub struct Deliverer {
    db: DatabaseConnection,
    envelope: Envelope,
    mailer: Mailer,
    reach: Reach,
    /// The site's address, for the link to a failing endpoint's page in the mail about it.
    site: String,
    /// Tries under way, at most [`IN_FLIGHT`]: each runs on its own, so a slow receiver holds up only its
    /// own endpoint's next delivery.
    slots: Arc<Semaphore>,
    /// Wakes the worker when a try ends, so that endpoint's next delivery goes at once.
    finished: Arc<Notify>,
}

/// What came of one try.
struct Outcome {
    status: Option<u16>,
    latency: Duration,
    response: String,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|status| (200..300).contains(&status))
    }
}

impl Deliverer {
    /// Delivers from `db`, opening secrets with `envelope`, telling owners through `mailer` (with a link to
    /// the site at `public_url`), reaching only what `reach` allows.
    pub fn new(db: DatabaseConnection, envelope: Envelope, mailer: Mailer, reach: Reach, public_url: &Url) -> Self {
        let site = public_url.as_str().trim_end_matches('/').to_owned();
        let (slots, finished) = (Arc::new(Semaphore::new(IN_FLIGHT)), Arc::new(Notify::new()));
        Self { db, envelope, mailer, reach, site, slots, finished }
    }

    /// Delivers until `shutdown`: a round every [`POLL_EVERY`], and at once when a try ends (an endpoint's
    /// next event goes as soon as the one before it is delivered). Errors are logged and the next round
    /// tries again; tries under way when it stops end with their deadline (their claims lapse if not).
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(error) = self.deliver_due(Utc::now()).await {
                tracing::warn!(%error, "webhook deliveries could not be read");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(POLL_EVERY) => {}
                () = self.finished.notified() => {}
            }
        }
    }

    /// One round: for each enabled endpoint with deliveries waiting, its oldest, if due and not another
    /// try's, claimed and tried on a task of its own (up to [`IN_FLIGHT`] at once). Answers how many began.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<usize, DbErr> {
        let waiting: Vec<Uuid> = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::EndpointId)
            .distinct()
            .filter(webhook_delivery::Column::State.eq(PENDING))
            .into_tuple()
            .all(&self.db)
            .await?;
        // A paused endpoint's deliveries wait, in order, until it is enabled again.
        let enabled: Vec<Uuid> = webhook_endpoint::Entity::find()
            .select_only()
            .column(webhook_endpoint::Column::Id)
            .filter(webhook_endpoint::Column::Id.is_in(waiting))
            .filter(webhook_endpoint::Column::Disabled.eq(false))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut began = 0;
        for endpoint in enabled {
            let head = webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::EndpointId.eq(endpoint))
                .filter(webhook_delivery::Column::State.eq(PENDING))
                .order_by_asc(webhook_delivery::Column::Id)
                .one(&self.db)
                .await?;
            let Some(head) = head else { continue };
            let free = head.claimed_until.is_none_or(|until| until < now);
            if head.next_attempt_at > now || !free {
                continue;
            }
            let Ok(slot) = self.slots.clone().try_acquire_owned() else { break };
            if claim(&self.db, &head, now).await? {
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(error) = this.attempt(head).await {
                        // The claim lapses and it is tried again.
                        tracing::warn!(%error, "a webhook delivery's outcome could not be noted");
                    }
                    drop(slot);
                    this.finished.notify_one();
                });
                began += 1;
            }
        }
        Ok(began)
    }

    async fn attempt(&self, delivery: webhook_delivery::Model) -> Result<(), DbErr> {
        let endpoint = webhook_endpoint::Entity::find_by_id(delivery.endpoint_id).one(&self.db).await?;
        let message = webhook_message::Entity::find_by_id(delivery.message_id).one(&self.db).await?;
        let (Some(endpoint), Some(message)) = (endpoint, message) else { return Ok(()) };
        if endpoint.disabled {
            // Paused since the round began: it waits, in order, until the endpoint is enabled again.
            return release(&self.db, &delivery).await;
        }
        let outcome = self.send(&endpoint, &message).await;
        let now = Utc::now();
        let delivered = outcome.delivered();
        webhook_attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(delivery.tenant_id),
            endpoint_id: Set(endpoint.id),
            delivery_id: Set(delivery.id),
            at: Set(now),
            status: Set(outcome.status.map(i32::from)),
            latency_ms: Set(i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX)),
            response: Set(outcome.response),
        }
        .insert(&self.db)
        .await?;
        let attempts = delivery.attempts + 1;
        let retry = usize::try_from(delivery.attempts).ok().and_then(|tried| RETRY_AFTER.get(tried));
        let mut row: webhook_delivery::ActiveModel = delivery.into();
        row.attempts = Set(attempts);
        row.claimed_until = Set(None);
        match (delivered, retry) {
            (true, _) => {
                row.state = Set(DELIVERED.to_owned());
                row.finished_at = Set(Some(now));
            }
            (false, Some(wait)) => {
                row.next_attempt_at = Set(now + chrono::TimeDelta::from_std(*wait).unwrap_or(CLAIM_FOR));
            }
            (false, None) => {
                row.state = Set(FAILED.to_owned());
                row.finished_at = Set(Some(now));
            }
        }
        row.update(&self.db).await?;
        match (delivered, retry) {
            (true, _) if endpoint.failing_since.is_some() => set_failing(&self.db, endpoint.id, None).await,
            (false, None) if endpoint.failing_since.is_none() => {
                set_failing(&self.db, endpoint.id, Some(now)).await?;
                self.tell_owners(&endpoint).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Posts `message` to `endpoint`, signed with its secret.
    async fn send(&self, endpoint: &webhook_endpoint::Model, message: &webhook_message::Model) -> Outcome {
        let started = std::time::Instant::now();
        let failed = |response: String| Outcome { status: None, latency: started.elapsed(), response };
        let open = |sealed: &str| match self.envelope.open(endpoint.id, sealed) {
            Ok(text) => WebhookSecret::parse(text.expose_secret()),
            Err(_) => None,
        };
        let Some(secret) = open(&endpoint.sealed_secret) else {
            return failed("the endpoint's secret cannot be opened".to_owned());
        };
        // Just after a rotation the old secret signs too (signatures separated by a space, as specified).
        let previous = match (&endpoint.previous_sealed_secret, endpoint.previous_until) {
            (Some(sealed), Some(until)) if until > Utc::now() => open(sealed),
            _ => None,
        };
        let Ok(url) = Url::parse(&endpoint.url) else { return failed("the endpoint's URL is not valid".to_owned()) };
        // One deadline for the name's lookup, the connection and the answer.
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let address = match tokio::time::timeout_at(deadline, self.reach.resolve(&url)).await {
            Ok(Ok(address)) => address,
            Ok(Err(refused)) => return failed(refused),
            Err(_) => return failed(format!("the host's name was not found within {REQUEST_TIMEOUT:?}")),
        };
        let Ok(client) = client_to(address, self.reach.private_allowed) else {
            return failed("the HTTP client could not be made".to_owned());
        };
        let id = message_id(message.id);
        let timestamp = Utc::now().timestamp();
        let mut signature = secret.sign(&id, timestamp, &message.payload);
        if let Some(previous) = &previous {
            signature = format!("{signature} {}", previous.sign(&id, timestamp, &message.payload));
        }
        let request = http::Request::post(url.as_str())
            .header("content-type", "application/json")
            .header("user-agent", "Convene-Webhooks/1")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(message.payload.clone())));
        let Ok(request) = request else { return failed("the request could not be made".to_owned()) };
        let response = match tokio::time::timeout_at(deadline, client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return failed(format!("the receiver cannot be reached ({error})")),
            Err(_) => return failed(format!("no answer within {REQUEST_TIMEOUT:?}")),
        };
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut read = Vec::new();
        // What arrives of the answer within the deadline, up to the most read.
        while read.len() < MOST_READ {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(chunk) = frame.data_ref() {
                        read.extend_from_slice(&chunk[..chunk.len().min(MOST_READ - read.len())]);
                    }
                }
                _ => break,
            }
        }
        let response = String::from_utf8_lossy(&read).chars().filter(|c| !c.is_control()).take(SNIPPET_CHARS).collect();
        Outcome { status: Some(status), latency: started.elapsed(), response }
    }

    /// Mails the organisation's owners that `endpoint` is failing.
    async fn tell_owners(&self, endpoint: &webhook_endpoint::Model) {
        let owners = match owner_addresses(&self.db, TenantId::from(endpoint.tenant_id)).await {
            Ok(owners) => owners,
            Err(error) => return tracing::warn!(%error, "a failing webhook's owners could not be read"),
        };
        let said = format!(
            "Events for your webhook {} could not be delivered for more than a day, so one was given up. \
             Later events are still sent; check that the receiver answers with a 2xx status.",
            endpoint.url
        );
        let log = format!(
            "The endpoint's page shows each try and the receiver's answer, and sends an event again (so does \
             POST /v1/webhooks/{}/resend; GET /v1/webhooks/{}/deliveries lists the tries).",
            endpoint.id, endpoint.id
        );
        let page = format!("{}/webhooks/{}", self.site, endpoint.id);
        for owner in owners {
            let mail = Email::new(
                &owner,
                "A webhook is failing",
                &[&said, &log],
                ("Open the endpoint's page", &page),
                "You get this as an owner of the organisation.",
            );
            if let Err(error) = self.mailer.queue(mail).await {
                tracing::warn!(%error, "the mail about a failing webhook could not be queued");
            }
        }
    }
}

/// Resolves every name to the one address that was checked, so a name that resolves elsewhere a moment
/// later (DNS rebinding) is not followed.
#[derive(Debug, Clone, Copy)]
struct Pinned(SocketAddr);

impl tower_service::Service<Name> for Pinned {
    type Response = std::iter::Once<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        std::future::ready(Ok(std::iter::once(self.0)))
    }
}

/// A client that reaches only `address`, over TLS on rustls's ring provider with the web's root certificates
/// (plain HTTP too where `http_allowed`). It follows no redirect: hyper never does.
fn client_to(
    address: SocketAddr,
    http_allowed: bool,
) -> Result<Client<HttpsConnector<HttpConnector<Pinned>>, Full<Bytes>>, String> {
    let mut tcp = HttpConnector::new_with_resolver(Pinned(address));
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(REQUEST_TIMEOUT));
    let tls = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(|error| error.to_string())?;
    let tls = if http_allowed { tls.https_or_http() } else { tls.https_only() };
    Ok(Client::builder(TokioExecutor::new()).build(tls.enable_http1().wrap_connector(tcp)))
}

/// The `webhook-id` of a message.
pub fn message_id(id: Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// Takes a delivery for this worker, unless another has it.
async fn claim(
    db: &impl ConnectionTrait,
    delivery: &webhook_delivery::Model,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::ClaimedUntil, Expr::value(now + CLAIM_FOR))
        .filter(webhook_delivery::Column::Id.eq(delivery.id))
        .filter(webhook_delivery::Column::State.eq(PENDING))
        .filter(
            Condition::any()
                .add(webhook_delivery::Column::ClaimedUntil.is_null())
                .add(webhook_delivery::Column::ClaimedUntil.lt(now)),
        )
        .exec(db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

async fn release(db: &impl ConnectionTrait, delivery: &webhook_delivery::Model) -> Result<(), DbErr> {
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(webhook_delivery::Column::Id.eq(delivery.id))
        .exec(db)
        .await
        .map(drop)
}

async fn set_failing(db: &impl ConnectionTrait, endpoint: Uuid, since: Option<DateTime<Utc>>) -> Result<(), DbErr> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(since))
        .filter(webhook_endpoint::Column::Id.eq(endpoint))
        .exec(db)
        .await
        .map(drop)
}

/// The addresses of `tenant`'s owners whose membership stands.
async fn owner_addresses(db: &impl ConnectionTrait, tenant: TenantId) -> Result<Vec<EmailAddress>, DbErr> {
    let owners: Vec<Uuid> = membership::Entity::find()
        .select_only()
        .column(membership::Column::UserId)
        .filter(membership::Column::TenantId.eq(tenant.as_uuid()))
        .filter(membership::Column::Role.eq("owner"))
        .filter(membership::Column::DisabledAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    let users = user::Entity::find().filter(user::Column::Id.is_in(owners)).all(db).await?;
    Ok(users.into_iter().filter_map(|user| EmailAddress::parse(&user.email).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_client_speaks_tls_to_the_address_checked_whatever_the_name() {
        // A TLS listener of the test's own, at the pinned address: the client connects there, not to the
        // name's address, and starts a TLS handshake (which the listener's silence then ends).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 5];
            tokio::io::AsyncReadExt::read_exact(&mut socket, &mut hello).await.unwrap();
            hello
        });
        let client = client_to(address, false).unwrap();
        let request = http::Request::post(format!("https://hooks.example:{}/", address.port()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), client.request(request)).await;
        let hello = accepted.await.unwrap();
        assert_eq!(hello[0], 0x16, "a TLS handshake record");
        let plain = http::Request::post("http://hooks.example/").body(Full::new(Bytes::new())).unwrap();
        assert!(client.request(plain).await.is_err(), "plain HTTP only where it is allowed");
    }
}
