//! The schema, as an ordered list of migrations. The same migrations run on SQLite and Postgres, so DDL is
//! written with SeaQuery builders only; Postgres-only pieces must branch on `manager.get_database_backend()`.
//!
//! Migrations are append-only once landed: fix a shipped migration with a new one.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261124_000001_tenants_users_api_keys;
mod m20261124_000002_accounts;
mod m20261124_000003_signing_keys;
mod m20261124_000004_rooms;
mod m20261124_000005_meetings;
mod m20261201_000006_node_events;
mod m20261201_000007_billing;
mod m20261201_000008_fixed_display_names;
mod m20261204_000009_dead_letters;
mod m20261204_000010_room_removals;
mod m20261204_000011_sealed_private_keys;
mod m20261204_000012_mail_outbox;
mod m20261204_000013_invitee_links;
mod m20261204_000014_recordings;
mod m20261204_000015_recordings_in_object_storage;
mod m20261204_000016_dial_in;
mod m20261205_000017_rate_limits;
mod m20261206_000018_media_nodes;
mod m20261206_000019_regions;
mod m20261206_000020_webhooks;
mod m20261206_000021_phone_stays;
mod m20261206_000022_node_gateways;

/// The foreign key every tenant-owned table carries: rows go when their tenant goes.
fn tenant_foreign_key(table: impl IntoIden, column: impl IntoIden) -> ForeignKeyCreateStatement {
    owned_by(table, column, TenantsTable::Table, TenantsTable::Id)
}

/// A foreign key whose rows go when the row they belong to goes.
fn owned_by(
    table: impl IntoIden,
    column: impl IntoIden,
    owner: impl IntoIden,
    owner_column: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(table, column).to(owner, owner_column).on_delete(ForeignKeyAction::Cascade).to_owned()
}

/// The `tenants` table as other migrations refer to it.
#[derive(DeriveIden)]
enum TenantsTable {
    #[sea_orm(iden = "tenants")]
    Table,
    Id,
}

/// Every migration, oldest first.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_tenants_users_api_keys::Migration),
            Box::new(m20261124_000002_accounts::Migration),
            Box::new(m20261124_000003_signing_keys::Migration),
            Box::new(m20261124_000004_rooms::Migration),
            Box::new(m20261124_000005_meetings::Migration),
            Box::new(m20261201_000006_node_events::Migration),
            Box::new(m20261201_000007_billing::Migration),
            Box::new(m20261201_000008_fixed_display_names::Migration),
            Box::new(m20261204_000009_dead_letters::Migration),
            Box::new(m20261204_000010_room_removals::Migration),
            Box::new(m20261204_000011_sealed_private_keys::Migration),
            Box::new(m20261204_000012_mail_outbox::Migration),
            Box::new(m20261204_000013_invitee_links::Migration),
            Box::new(m20261204_000014_recordings::Migration),
            Box::new(m20261204_000015_recordings_in_object_storage::Migration),
            Box::new(m20261204_000016_dial_in::Migration),
            Box::new(m20261205_000017_rate_limits::Migration),
            Box::new(m20261206_000018_media_nodes::Migration),
            Box::new(m20261206_000019_regions::Migration),
            Box::new(m20261206_000020_webhooks::Migration),
            Box::new(m20261206_000021_phone_stays::Migration),
            Box::new(m20261206_000022_node_gateways::Migration),
        ]
    }
}
