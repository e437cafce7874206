//! The seam to Stripe: the [`StripeApi`] trait with the three calls billing makes (Checkout, the Customer
//! Portal, Billing Meter events) and its implementation on async-stripe. Tenant state never comes from
//! these answers; it comes from verified webhooks (`webhooks`).

use std::{collections::HashMap, time::Duration};

use convene_domain::TenantId;
use secrecy::ExposeSecret;
use stripe::{StripeError, StripeRequest};
use url::Url;

use crate::platform::settings::StripeSettings;

/// One call to Stripe waits at most this long: a person waits behind Checkout and the portal.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Stripe call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeFailure {
    /// Stripe or the network did not answer properly (timeouts, 429, 5xx): the same call may work later.
    #[error("Stripe cannot be reached right now: {0}")]
    Unavailable(String),
    /// Stripe refused the call (4xx); repeating it will not help.
    #[error("Stripe refused the request ({code}): {message}")]
    Refused {
        /// Stripe's error code (or its type when it gives no code).
        code: String,
        /// Stripe's explanation.
        message: String,
    },
}

/// A Checkout Session for a subscription to a plan.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    /// The tenant subscribing: `client_reference_id`, and metadata on the session and the subscription.
    pub tenant: TenantId,
    /// The tenant's Stripe customer, when it has one already.
    pub customer: Option<&'a str>,
    /// Otherwise the address Checkout starts the new customer with.
    pub email: &'a str,
    /// The plan's subscription price.
    pub price: &'a str,
    /// The plan's metered price for participant-minutes beyond the included ones.
    pub overage_price: Option<&'a str>,
    /// Where Stripe sends the person after paying.
    pub success_url: Url,
    /// Where Stripe sends the person who gives up.
    pub cancel_url: Url,
}

/// One Billing Meter event.
#[derive(Debug, Clone)]
pub struct MeterEvent<'a> {
    /// The meter's event name.
    pub event_name: &'a str,
    /// The customer the usage belongs to.
    pub customer: &'a str,
    /// Participant-minutes.
    pub value: i64,
    /// Stripe deduplicates on it: a retry of the same event counts once.
    pub identifier: &'a str,
    /// When the usage happened (Unix seconds).
    pub timestamp: i64,
}

/// What billing asks of Stripe.
#[async_trait::async_trait]
pub trait StripeApi: Send + Sync + 'static {
    /// Creates a Checkout Session in subscription mode; its URL is where the person pays.
    async fn checkout_session(&self, request: CheckoutRequest<'_>) -> Result<Url, StripeFailure>;
    /// Creates a Customer Portal session; its URL is where the person manages the subscription.
    async fn portal_session(&self, customer: &str, return_url: &Url) -> Result<Url, StripeFailure>;
    /// Records usage on the meter.
    async fn meter_event(&self, event: MeterEvent<'_>) -> Result<(), StripeFailure>;
}

/// Stripe through async-stripe.
pub struct StripeClient {
    client: stripe::Client,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeClient")
    }
}

impl StripeClient {
    /// A client for the configured account and API base, or `None` when billing is off (no secret key).
    pub fn from_settings(settings: &StripeSettings) -> anyhow::Result<Option<Self>> {
        let Some(key) = &settings.secret_key else { return Ok(None) };
        let client = stripe::ClientBuilder::new(key.expose_secret())
            .url(settings.api_base.as_str())
            .timeout(TIMEOUT)
            .build()
            .map_err(|error| {
                anyhow::anyhow!("cannot set up the Stripe client (check CONVENE_STRIPE_API_BASE): {error}")
            })?;
        Ok(Some(Self { client }))
    }
}

fn failure(error: StripeError) -> StripeFailure {
    match error {
        StripeError::Stripe(error, status) if status == 429 || status >= 500 => {
            StripeFailure::Unavailable(format!("{status}: {}", error.message.unwrap_or_default()))
        }
        StripeError::Stripe(error, _) => StripeFailure::Refused {
            code: error.code.map_or_else(|| error.type_.as_str().to_owned(), |code| code.as_str().to_owned()),
            message: error.message.unwrap_or_default(),
        },
        StripeError::ConfigError(message) => StripeFailure::Refused { code: "configuration".to_owned(), message },
        // Timeouts, connection errors and answers that are not Stripe's (a proxy's error page).
        other => StripeFailure::Unavailable(other.to_string()),
    }
}

fn session_url(url: Option<String>) -> Result<Url, StripeFailure> {
    url.and_then(|url| Url::parse(&url).ok())
        .ok_or_else(|| StripeFailure::Unavailable("Stripe's answer has no session URL".to_owned()))
}

#[async_trait::async_trait]
impl StripeApi for StripeClient {
    async fn checkout_session(&self, request: CheckoutRequest<'_>) -> Result<Url, StripeFailure> {
        use stripe_checkout::checkout_session::{
            CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
        };
        let tenant = HashMap::from([("tenant_id".to_owned(), request.tenant.to_string())]);
        let mut base = CreateCheckoutSessionLineItems::new();
        base.price = Some(request.price.to_owned());
        base.quantity = Some(1);
        let mut items = vec![base];
        if let Some(overage) = request.overage_price {
            // Metered prices take no quantity: the meter says how much.
            let mut metered = CreateCheckoutSessionLineItems::new();
            metered.price = Some(overage.to_owned());
            items.push(metered);
        }
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(tenant.clone());
        let mut create = CreateCheckoutSession::new()
            .mode(stripe_checkout::CheckoutSessionMode::Subscription)
            .client_reference_id(request.tenant.to_string())
            .metadata(tenant)
            .subscription_data(subscription)
            .line_items(items)
            .success_url(request.success_url.as_str())
            .cancel_url(request.cancel_url.as_str());
        create = match request.customer {
            Some(customer) => create.customer(customer),
            None => create.customer_email(request.email),
        };
        let session = create.send(&self.client).await.map_err(failure)?;
        session_url(session.url)
    }

    async fn portal_session(&self, customer: &str, return_url: &Url) -> Result<Url, StripeFailure> {
        let session = stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url.as_str())
            .send(&self.client)
            .await
            .map_err(failure)?;
        session_url(Some(session.url))
    }

    async fn meter_event(&self, event: MeterEvent<'_>) -> Result<(), StripeFailure> {
        let payload = HashMap::from([
            ("stripe_customer_id".to_owned(), event.customer.to_owned()),
            ("value".to_owned(), event.value.to_string()),
        ]);
        // Two layers: the idempotency key makes a retried request one request; the identifier makes a
        // retried event one event, even when a lost answer made us send it again much later.
        let key = stripe::IdempotencyKey::new(event.identifier)
            .map_err(|error| StripeFailure::Refused { code: "identifier".to_owned(), message: error.to_string() })?;
        stripe_billing::billing_meter_event::CreateBillingMeterEvent::new(event.event_name, payload)
            .identifier(event.identifier)
            .timestamp(event.timestamp)
            .customize()
            .request_strategy(stripe::RequestStrategy::Idempotent(key))
            .send(&self.client)
            .await
            .map_err(failure)?;
        Ok(())
    }
}
