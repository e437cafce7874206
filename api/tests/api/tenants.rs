//! `create_tenant`: one transaction, parsed input, clear refusals, no partial rows.

use convene_api::{
    people::tenants::{CreateTenantError, NewTenant, create_tenant},
    platform::secrets::token_hash,
};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use secrecy::SecretString;

use convene_api::entities::{api_key, membership, tenant, user};

use crate::helpers::spawn_app;

fn new_tenant(name: &str, email: &str, password: &str) -> NewTenant {
    NewTenant {
        name: name.to_owned(),
        owner_email: email.to_owned(),
        owner_password: SecretString::from(password.to_owned()),
        owner_name: None,
        email_verified: false,
        first_api_key: Some("Default key".to_owned()),
    }
}

async fn row_counts(db: &impl ConnectionTrait) -> [u64; 4] {
    [
        tenant::Entity::find().count(db).await.unwrap(),
        user::Entity::find().count(db).await.unwrap(),
        membership::Entity::find().count(db).await.unwrap(),
        api_key::Entity::find().count(db).await.unwrap(),
    ]
}

#[tokio::test]
async fn creates_the_tenant_its_owner_and_a_hashed_api_key() {
    let app = spawn_app().await;
    let db = app.db().await;
    let created = create_tenant(&db, new_tenant(" Acme GmbH ", "Ann@Acme.Example", "correct horse battery"))
        .await
        .expect("created");

    assert_eq!(created.tenant_name, "Acme GmbH");
    assert_eq!(created.owner_email, "ann@acme.example");
    let new_key = created.api_key.expect("a first key was asked for");
    assert!(new_key.api_key.starts_with("cvn_") && new_key.api_key.len() > 40, "{}", new_key.api_key);

    let tenant = tenant::Entity::find_by_id(created.tenant_id.as_uuid()).one(&db).await.unwrap().expect("tenant row");
    assert_eq!(tenant.name, "Acme GmbH");
    let owner = user::Entity::find_by_id(created.owner_user_id).one(&db).await.unwrap().expect("user row");
    assert_eq!(owner.display_name, "ann");
    assert!(owner.password_hash.starts_with("$argon2id$"));
    assert!(owner.email_verified_at.is_none(), "new accounts start unverified");
    let membership = membership::Entity::find_by_id((created.tenant_id.as_uuid(), created.owner_user_id))
        .one(&db)
        .await
        .unwrap()
        .expect("membership row");
    assert_eq!(membership.role, "owner");
    let key = api_key::Entity::find_by_id(new_key.api_key_id).one(&db).await.unwrap().expect("key row");
    assert_eq!(key.tenant_id, created.tenant_id.as_uuid());
    assert_eq!(key.secret_hash, token_hash(&new_key.api_key));
    assert!(new_key.api_key.starts_with(&key.prefix) && key.prefix.len() < new_key.api_key.len());
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_creates_nothing() {
    let app = spawn_app().await;
    let db = app.db().await;
    let cases = [
        (new_tenant("", "ann@acme.example", "correct horse battery"), "organisation names"),
        (new_tenant("Acme", "not-an-email", "correct horse battery"), "not a valid email address"),
        (new_tenant("Acme", "ann@acme.example", "short"), "too short"),
        (new_tenant("Acme", "ann@acme.example", "password"), "most common passwords"),
        (new_tenant("Acme", "ann@acme.example", "ann@acme.example"), "must not be the email"),
    ];
    for (input, expected) in cases {
        let error = create_tenant(&db, input).await.expect_err(expected).to_string();
        assert!(error.contains(expected), "{error}");
    }
    assert_eq!(row_counts(&db).await, [0, 0, 0, 0]);
    app.stop().await;
}

#[tokio::test]
async fn an_email_with_an_account_is_refused_even_when_two_requests_race() {
    let app = spawn_app().await;
    let db = app.db().await;
    let (first, second) = tokio::join!(
        create_tenant(&db, new_tenant("Acme", "ann@acme.example", "correct horse battery")),
        create_tenant(&db, new_tenant("Acme Two", "ANN@acme.example", "another good passphrase")),
    );
    let outcomes = [first.is_ok(), second.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "exactly one wins: {outcomes:?}");
    let loser = if outcomes[0] { second.err() } else { first.err() };
    assert!(matches!(loser, Some(CreateTenantError::EmailTaken(_))), "{loser:?}");
    assert_eq!(row_counts(&db).await, [1, 1, 1, 1], "the loser left no rows behind");
    app.stop().await;
}
