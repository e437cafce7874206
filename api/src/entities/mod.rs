//! sea-orm entities, one module per table, matching `convene-migrations`. Only the repository modules
//! (`tenants`, later `accounts`, `meetings`…) use them; handlers never query tables directly.

pub mod api_key;
pub mod membership;
pub mod tenant;
pub mod user;
