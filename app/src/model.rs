//! What pages show, as plain serialisable data: built by `convene-api` on the server, read by components on
//! both sides of hydration.

use convene_domain::Role;
use serde::{Deserialize, Serialize};

/// The person signed in on this request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// Their display name.
    pub name: String,
    /// Their login address.
    pub email: String,
    /// Whether they confirmed it; unverified accounts cannot schedule meetings.
    pub email_verified: bool,
    /// The tenant they are working in, if they belong to any.
    pub tenant: Option<Membership>,
    /// Every tenant they belong to, for the switcher.
    pub memberships: Vec<Membership>,
}

/// A person's place in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The tenant's id.
    pub tenant_id: String,
    /// The tenant's name.
    pub tenant_name: String,
    /// Their role there.
    pub role: Role,
}
