//! Who uses Convene: accounts and their sign-in sessions, the members of an organisation (tenant), and the
//! API keys its developers hold. `Actor` is who acts: a member in their active tenant, which every
//! tenant-scoped call takes; it lives here so that accounts (which make actors) and the team (which checks
//! them) need not depend on each other.

pub mod accounts;
pub mod api_keys;
pub mod password;
pub mod team;
pub mod tenants;

use convene_domain::{Role, TenantId};
use uuid::Uuid;

/// A signed-in member acting in their active tenant.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    /// Who.
    pub user_id: Uuid,
    /// Where.
    pub tenant: TenantId,
    /// With which role.
    pub role: Role,
}

impl Actor {
    /// Owners and admins manage people and keys.
    pub fn is_admin(self) -> bool {
        matches!(self.role, Role::Owner | Role::Admin)
    }
}
