//! Prometheus figures for billing, under `convene_billing_*`: webhooks by outcome, meter events by what
//! Stripe did with them, and the usage outbox by state. Every label set is closed.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// The counters and gauges, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct BillingMetrics {
    webhooks: Family<OutcomeLabels, Counter>,
    meter_events: Family<OutcomeLabels, Counter>,
    usage_reports: Family<StateLabels, Gauge>,
}

impl BillingMetrics {
    /// Creates them and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let billing = registry.sub_registry_with_prefix("convene_billing");
        billing.register(
            "webhooks",
            "Stripe webhooks by outcome: applied, duplicate, ignored, invalid_signature, malformed, unavailable",
            metrics.webhooks.clone(),
        );
        billing.register(
            "meter_events",
            "Meter event deliveries by outcome: delivered, refused (for good), unavailable (retried)",
            metrics.meter_events.clone(),
        );
        billing.register(
            "usage_reports",
            "Meter events in the outbox: pending (to send) and failed (refused by Stripe)",
            metrics.usage_reports.clone(),
        );
        metrics
    }

    /// One webhook delivery's outcome.
    pub(super) fn webhook(&self, outcome: &'static str) {
        self.webhooks.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// One meter event delivery's outcome.
    pub(super) fn meter_event(&self, outcome: &'static str) {
        self.meter_events.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The outbox's size after a round.
    pub(super) fn outbox(&self, pending: u64, failed: u64) {
        for (state, count) in [("pending", pending), ("failed", failed)] {
            self.usage_reports.get_or_create(&StateLabels { state }).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}
