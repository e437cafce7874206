//! Webhooks for tenants: signed HTTP posts to the endpoints an organisation registers, one for each event
//! it asked for (meetings starting and ending, people joining and leaving, recordings).
//!
//! An event is queued in the transaction of what it reports (`events::emit`): a message, and a delivery
//! for each endpoint that wants it. `delivery::Deliverer` sends each endpoint's deliveries in order, signed
//! as Standard Webhooks specifies (`signing`), retrying for about 27 hours; `endpoints` is the tenant's view:
//! endpoints, secrets shown once, the delivery log, a test event, a delivery sent again.

pub mod delivery;
pub mod endpoints;
pub mod events;
pub mod signing;
