//! Mail goes through the durable outbox: a request does not wait for the mail server, mail queued while
//! the server is down arrives once it is back, and mail that keeps failing is marked dead and counted
//! without holding up the rest.

use std::time::Duration;

use convene_api::entities::mail_outbox;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;

use crate::helpers::{TestApp, spawn_app, tenant_key};

/// The outbox row of the mail to `recipient`, once `ready` holds for it (waiting at most 20 s).
async fn outbox_row(app: &TestApp, recipient: &str, ready: impl Fn(&mail_outbox::Model) -> bool) -> mail_outbox::Model {
    let db = app.db().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row =
            mail_outbox::Entity::find().filter(mail_outbox::Column::Recipient.eq(recipient)).one(&db).await.unwrap();
        match row {
            Some(row) if ready(&row) => return row,
            row => assert!(tokio::time::Instant::now() < deadline, "the mail to {recipient} never got there: {row:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes the mail's next attempt due now, as if its retry time had come, after `attempts` failures.
async fn due_now(app: &TestApp, row: &mail_outbox::Model, attempts: i32) {
    mail_outbox::ActiveModel {
        id: Set(row.id),
        attempts: Set(attempts),
        next_attempt_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .update(&app.db().await)
    .await
    .unwrap();
}

#[tokio::test]
async fn mail_queued_while_the_server_is_down_arrives_when_it_is_back() {
    let mut app = spawn_app().await;
    tenant_key(&app, "ann@acme.example").await;
    tenant_key(&app, "cy@globex.example").await;
    let working = app.settings().smtp_url.clone();
    // A port nothing listens on: every connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = SecretString::from(format!("smtp://127.0.0.1:{closed}"));
    app.restart_with(|settings| settings.smtp_url = Some(down)).await.unwrap();

    // The request succeeds at once; the mail waits in the outbox with the reason.
    for email in ["ann@acme.example", "cy@globex.example"] {
        let response = app.post_form("/auth/forgot-password", &[("email", email)], None).await;
        assert_eq!(response.status(), 303, "{email}");
    }
    let waiting = outbox_row(&app, "ann@acme.example", |row| row.attempts >= 1).await;
    assert_eq!(waiting.state, "pending");
    assert!(waiting.last_error.as_deref().is_some_and(|error| !error.is_empty()), "{waiting:?}");
    assert!(waiting.next_attempt_at > chrono::Utc::now(), "retried later, not in a loop");

    // A mail that fails for its last allowed attempt is given up, counted, and holds up nothing.
    let doomed = outbox_row(&app, "cy@globex.example", |row| row.attempts >= 1).await;
    due_now(&app, &doomed, 29).await;
    let dead = outbox_row(&app, "cy@globex.example", |row| row.state == "dead").await;
    assert_eq!(dead.attempts, 30);
    let metrics = app.metrics().await;
    assert!(metrics.contains("convene_mail_dead_total 1"), "{metrics}");
    // The queue's size is read at the end of each round.
    for _ in 0..50 {
        if app.metrics().await.contains("convene_mail_queued 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = app.metrics().await;
    assert!(metrics.contains("convene_mail_queued 1"), "{metrics}");

    // The server is back: the waiting mail goes out at its next attempt.
    app.restart_with(|settings| settings.smtp_url = working).await.unwrap();
    due_now(&app, &waiting, waiting.attempts).await;
    let mail = app.mail_to("ann@acme.example", "Reset your Convene password").await;
    assert!(mail.text.contains("/reset-password?token="), "{}", mail.text);
    let sent = outbox_row(&app, "ann@acme.example", |row| row.state == "sent").await;
    assert!(sent.sent_at.is_some() && sent.last_error.is_none());
    app.stop().await;
}
