//! Webhooks: `webhook_endpoints` (a tenant's receivers, the events each wants, its signing secret sealed, and
//! the secret it replaced while both still sign),
//! `webhook_messages` (each event once, written in the transaction of what it reports), `webhook_deliveries`
//! (a message owed to an endpoint: pending, delivered or failed, with when to try next) and
//! `webhook_attempts` (every try, for the endpoint's delivery log).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(uuid(WebhookEndpoints::Id).primary_key())
                    .col(uuid(WebhookEndpoints::TenantId))
                    .col(string_len(WebhookEndpoints::Url, 2048))
                    .col(string_len(WebhookEndpoints::Description, 500))
                    .col(string_len(WebhookEndpoints::Events, 1000))
                    .col(text(WebhookEndpoints::SealedSecret))
                    .col(text_null(WebhookEndpoints::PreviousSealedSecret))
                    .col(timestamp_with_time_zone_null(WebhookEndpoints::PreviousUntil))
                    .col(boolean(WebhookEndpoints::Disabled))
                    .col(timestamp_with_time_zone_null(WebhookEndpoints::FailingSince))
                    .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(WebhookEndpoints::Table, WebhookEndpoints::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_endpoints_tenant")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::TenantId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookMessages::Table)
                    .col(uuid(WebhookMessages::Id).primary_key())
                    .col(uuid(WebhookMessages::TenantId))
                    .col(string_len(WebhookMessages::EventType, 64))
                    .col(text(WebhookMessages::Payload))
                    .col(timestamp_with_time_zone(WebhookMessages::CreatedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(WebhookMessages::Table, WebhookMessages::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(uuid(WebhookDeliveries::Id).primary_key())
                    .col(uuid(WebhookDeliveries::TenantId))
                    .col(uuid(WebhookDeliveries::EndpointId))
                    .col(uuid(WebhookDeliveries::MessageId))
                    .col(string_len(WebhookDeliveries::State, 16))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(WebhookDeliveries::ClaimedUntil))
                    .col(timestamp_with_time_zone_null(WebhookDeliveries::FinishedAt))
                    .foreign_key(&mut crate::owned_by(
                        WebhookDeliveries::Table,
                        WebhookDeliveries::EndpointId,
                        WebhookEndpoints::Table,
                        WebhookEndpoints::Id,
                    ))
                    .foreign_key(&mut crate::owned_by(
                        WebhookDeliveries::Table,
                        WebhookDeliveries::MessageId,
                        WebhookMessages::Table,
                        WebhookMessages::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        // The worker reads each endpoint's oldest unfinished delivery; ids are time-ordered (UUIDv7).
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_endpoint_state")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::State)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(uuid(WebhookAttempts::Id).primary_key())
                    .col(uuid(WebhookAttempts::TenantId))
                    .col(uuid(WebhookAttempts::EndpointId))
                    .col(uuid(WebhookAttempts::DeliveryId))
                    .col(timestamp_with_time_zone(WebhookAttempts::At))
                    .col(integer_null(WebhookAttempts::Status))
                    .col(integer(WebhookAttempts::LatencyMs))
                    .col(string_len(WebhookAttempts::Response, 1024))
                    .foreign_key(&mut crate::owned_by(
                        WebhookAttempts::Table,
                        WebhookAttempts::DeliveryId,
                        WebhookDeliveries::Table,
                        WebhookDeliveries::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_attempts_endpoint")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::EndpointId)
                    .col(WebhookAttempts::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookMessages::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    TenantId,
    Url,
    Description,
    Events,
    SealedSecret,
    PreviousSealedSecret,
    PreviousUntil,
    Disabled,
    FailingSince,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookMessages {
    Table,
    Id,
    TenantId,
    EventType,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    TenantId,
    EndpointId,
    MessageId,
    State,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    FinishedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    TenantId,
    EndpointId,
    DeliveryId,
    At,
    Status,
    LatencyMs,
    Response,
}
