//! The per-tenant audit log of security events, visible to owners.

use chrono::Utc;
use convene_domain::TenantId;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::entities::audit_event;

/// What happened. The stored names are stable: the audit page and exports read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    /// The tenant was created through the public signup.
    Signup,
    /// A member signed in.
    Login,
    /// A sign-in with a wrong password for a member's account.
    LoginFailed,
    /// A member signed out.
    Logout,
    /// A member confirmed their email address.
    EmailVerified,
    /// Someone was invited.
    MemberInvited,
    /// An invitation was withdrawn.
    InvitationRevoked,
    /// An invitation was accepted.
    InvitationAccepted,
    /// A member's role changed.
    RoleChanged,
    /// A member was removed.
    MemberRemoved,
    /// A member was disabled.
    MemberDisabled,
    /// A disabled member was enabled again.
    MemberEnabled,
    /// An API key was created.
    ApiKeyCreated,
    /// An API key was revoked.
    ApiKeyRevoked,
    /// A password was reset through a mailed link.
    PasswordReset,
    /// A signed-in member changed their password.
    PasswordChanged,
    /// A member moved their account to a new address.
    EmailChanged,
    /// A member signed out of every session.
    SessionsRevoked,
    /// A recording was deleted: by a member, or by the plan's retention (no actor).
    RecordingDeleted,
    /// A webhook endpoint was added on the site.
    WebhookCreated,
    /// A webhook endpoint got a new signing secret on the site.
    WebhookSecretRotated,
    /// A webhook endpoint was removed on the site.
    WebhookDeleted,
}

impl AuditEvent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::Signup => "signup",
            AuditEvent::Login => "login",
            AuditEvent::LoginFailed => "login_failed",
            AuditEvent::Logout => "logout",
            AuditEvent::EmailVerified => "email_verified",
            AuditEvent::MemberInvited => "member_invited",
            AuditEvent::InvitationRevoked => "invitation_revoked",
            AuditEvent::InvitationAccepted => "invitation_accepted",
            AuditEvent::RoleChanged => "role_changed",
            AuditEvent::MemberRemoved => "member_removed",
            AuditEvent::MemberDisabled => "member_disabled",
            AuditEvent::MemberEnabled => "member_enabled",
            AuditEvent::ApiKeyCreated => "api_key_created",
            AuditEvent::ApiKeyRevoked => "api_key_revoked",
            AuditEvent::PasswordReset => "password_reset",
            AuditEvent::PasswordChanged => "password_changed",
            AuditEvent::EmailChanged => "email_changed",
            AuditEvent::SessionsRevoked => "sessions_revoked",
            AuditEvent::RecordingDeleted => "recording_deleted",
            AuditEvent::WebhookCreated => "webhook_created",
            AuditEvent::WebhookSecretRotated => "webhook_secret_rotated",
            AuditEvent::WebhookDeleted => "webhook_deleted",
        }
    }
}

/// Longest detail kept; longer text (a user agent, say) is cut.
const MAX_DETAIL: usize = 500;

/// Appends an event to a tenant's log.
pub async fn record(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    actor: Option<Uuid>,
    event: AuditEvent,
    detail: &str,
    ip: Option<&str>,
) -> Result<(), DbErr> {
    audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.as_uuid()),
        actor_user_id: Set(actor),
        event: Set(event.as_str().to_owned()),
        detail: Set(detail.chars().take(MAX_DETAIL).collect()),
        ip: Set(ip.map(|ip| ip.chars().take(64).collect())),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The newest `limit` events of a tenant.
pub async fn recent(db: &impl ConnectionTrait, tenant: TenantId, limit: u64) -> Result<Vec<audit_event::Model>, DbErr> {
    audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant.as_uuid()))
        .order_by_desc(audit_event::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}
