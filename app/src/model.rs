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

/// A member as the team page lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Their user id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Role in this tenant.
    pub role: Role,
    /// Whether this is the person viewing the page.
    pub is_viewer: bool,
    /// Whether an owner disabled them.
    pub disabled: bool,
}

/// An invitation not yet accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInvitation {
    /// Its id.
    pub id: String,
    /// Who was invited.
    pub email: String,
    /// With which role.
    pub role: Role,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

/// The team page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// The viewer's role, which decides what they may change.
    pub viewer_role: Role,
    /// Everyone in the tenant.
    pub members: Vec<Member>,
    /// Invitations waiting for an answer.
    pub invitations: Vec<PendingInvitation>,
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyListing {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it was last used, if ever.
    pub last_used_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Who, if known.
    pub actor: Option<String>,
    /// What happened (stable name).
    pub event: String,
    /// Details.
    pub detail: String,
    /// From which address.
    pub ip: Option<String>,
}

/// What the invitation page shows about a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationDetails {
    /// The inviting organisation.
    pub tenant_name: String,
    /// The invited address.
    pub email: String,
    /// The role offered.
    pub role: Role,
    /// Whether an account with this address exists (then the person signs in instead of choosing a password).
    pub has_account: bool,
}

/// Why a page could not be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageError {
    /// Not signed in.
    SignedOut,
    /// Signed in, but the role does not allow this page.
    Forbidden,
    /// A server-side failure, already logged.
    Unavailable,
}

/// The holder of a verified invitation link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitee {
    /// Their name in the token.
    pub name: String,
    /// Whether the token makes them a moderator.
    pub moderator: bool,
}

/// Why an invitation link was refused: a stable code (the page's `data-problem`) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRefusal {
    /// `unreadable_token`, `expired`, `not_yet_valid`, `other_room`, `unknown_issuer` or `invalid_token`.
    pub code: String,
    /// What is wrong, for the invitee.
    pub message: String,
}
