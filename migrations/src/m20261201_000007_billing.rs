//! Billing: each tenant's Stripe customer and subscription as the verified webhooks last described them
//! (`billing_accounts`), its invoices (`billing_invoices`), the webhook events already handled
//! (`stripe_events`, for idempotency), participant-minutes per billing period (`usage_periods`), the
//! durable outbox of meter events for Stripe (`usage_reports`), and which stays have been counted
//! (`session_participants.metered_minutes`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BillingAccounts::Table)
                    .col(uuid(BillingAccounts::TenantId).primary_key())
                    .col(string_len_null(BillingAccounts::StripeCustomerId, 255).unique_key())
                    .col(string_len_null(BillingAccounts::SubscriptionId, 255))
                    .col(string_len_null(BillingAccounts::SubscriptionStatus, 32))
                    .col(string_len_null(BillingAccounts::PriceId, 255))
                    .col(string_len_null(BillingAccounts::PlanId, 64))
                    .col(timestamp_with_time_zone_null(BillingAccounts::CurrentPeriodStart))
                    .col(timestamp_with_time_zone_null(BillingAccounts::CurrentPeriodEnd))
                    .col(boolean(BillingAccounts::CancelAtPeriodEnd))
                    .col(timestamp_with_time_zone_null(BillingAccounts::SubscriptionEventAt))
                    .col(timestamp_with_time_zone_null(BillingAccounts::OverdueSince))
                    .col(timestamp_with_time_zone_null(BillingAccounts::PaymentEventAt))
                    .col(timestamp_with_time_zone(BillingAccounts::UpdatedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(BillingAccounts::Table, BillingAccounts::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BillingInvoices::Table)
                    .col(string_len(BillingInvoices::Id, 255).primary_key())
                    .col(uuid(BillingInvoices::TenantId))
                    .col(string_len_null(BillingInvoices::Number, 64))
                    .col(string_len(BillingInvoices::Status, 32))
                    .col(big_integer(BillingInvoices::AmountDue))
                    .col(big_integer(BillingInvoices::AmountPaid))
                    .col(string_len(BillingInvoices::Currency, 8))
                    .col(string_len_null(BillingInvoices::HostedInvoiceUrl, 2048))
                    .col(timestamp_with_time_zone(BillingInvoices::PeriodStart))
                    .col(timestamp_with_time_zone(BillingInvoices::PeriodEnd))
                    .col(timestamp_with_time_zone(BillingInvoices::CreatedAt))
                    .col(timestamp_with_time_zone(BillingInvoices::EventAt))
                    .foreign_key(&mut crate::tenant_foreign_key(BillingInvoices::Table, BillingInvoices::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_billing_invoices_tenant_created")
                    .table(BillingInvoices::Table)
                    .col(BillingInvoices::TenantId)
                    .col(BillingInvoices::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StripeEvents::Table)
                    .col(string_len(StripeEvents::Id, 255).primary_key())
                    .col(string_len(StripeEvents::EventType, 100))
                    .col(timestamp_with_time_zone(StripeEvents::CreatedAt))
                    .col(timestamp_with_time_zone(StripeEvents::ReceivedAt))
                    .col(string_len(StripeEvents::Outcome, 200))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsagePeriods::Table)
                    .col(uuid(UsagePeriods::TenantId))
                    .col(timestamp_with_time_zone(UsagePeriods::PeriodStart))
                    .col(big_integer(UsagePeriods::Minutes))
                    .col(big_integer(UsagePeriods::OverageReported))
                    .primary_key(Index::create().col(UsagePeriods::TenantId).col(UsagePeriods::PeriodStart))
                    .foreign_key(&mut crate::tenant_foreign_key(UsagePeriods::Table, UsagePeriods::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageReports::Table)
                    .col(uuid(UsageReports::Id).primary_key())
                    .col(uuid(UsageReports::TenantId))
                    .col(string_len(UsageReports::Identifier, 100).unique_key())
                    .col(string_len(UsageReports::StripeCustomerId, 255))
                    .col(big_integer(UsageReports::Minutes))
                    .col(timestamp_with_time_zone(UsageReports::OccurredAt))
                    .col(timestamp_with_time_zone_null(UsageReports::SentAt))
                    .col(timestamp_with_time_zone_null(UsageReports::FailedAt))
                    .col(integer(UsageReports::Attempts))
                    .col(string_len_null(UsageReports::LastError, 500))
                    .foreign_key(&mut crate::tenant_foreign_key(UsageReports::Table, UsageReports::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_reports_pending")
                    .table(UsageReports::Table)
                    .col(UsageReports::SentAt)
                    .col(UsageReports::FailedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SessionParticipants::Table)
                    .add_column(integer_null(SessionParticipants::MeteredMinutes))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_participants_unmetered")
                    .table(SessionParticipants::Table)
                    .col(SessionParticipants::MeteredMinutes)
                    .col(SessionParticipants::LeftAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop().name("idx_session_participants_unmetered").table(SessionParticipants::Table).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SessionParticipants::Table)
                    .drop_column(SessionParticipants::MeteredMinutes)
                    .to_owned(),
            )
            .await?;
        for table in [
            UsageReports::Table.into_iden(),
            UsagePeriods::Table.into_iden(),
            StripeEvents::Table.into_iden(),
            BillingInvoices::Table.into_iden(),
            BillingAccounts::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum BillingAccounts {
    Table,
    TenantId,
    StripeCustomerId,
    SubscriptionId,
    SubscriptionStatus,
    PriceId,
    PlanId,
    CurrentPeriodStart,
    CurrentPeriodEnd,
    CancelAtPeriodEnd,
    SubscriptionEventAt,
    OverdueSince,
    PaymentEventAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BillingInvoices {
    Table,
    Id,
    TenantId,
    Number,
    Status,
    AmountDue,
    AmountPaid,
    Currency,
    HostedInvoiceUrl,
    PeriodStart,
    PeriodEnd,
    CreatedAt,
    EventAt,
}

#[derive(DeriveIden)]
enum StripeEvents {
    Table,
    Id,
    EventType,
    CreatedAt,
    ReceivedAt,
    Outcome,
}

#[derive(DeriveIden)]
enum UsagePeriods {
    Table,
    TenantId,
    PeriodStart,
    Minutes,
    OverageReported,
}

#[derive(DeriveIden)]
enum UsageReports {
    Table,
    Id,
    TenantId,
    Identifier,
    StripeCustomerId,
    Minutes,
    OccurredAt,
    SentAt,
    FailedAt,
    Attempts,
    LastError,
}

#[derive(DeriveIden)]
enum SessionParticipants {
    Table,
    MeteredMinutes,
    LeftAt,
}
