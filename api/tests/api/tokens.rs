//! `/v1/meeting-tokens` and `/v1/tenants/{id}/jwks.json`: tokens minted with the tenant's key verify with the
//! published keys alone, and bad requests get JSON errors.

use convene_api::{
    room_tokens,
    tenants::{NewTenant, create_tenant},
};
use convene_domain::{RoomName, TenantId};
use convene_tokens::{TokenError, verify};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// A tenant with a first API key; returns its id and key.
async fn tenant_with_key(app: &TestApp, email: &str) -> (TenantId, String) {
    let created = create_tenant(
        &app.db().await,
        NewTenant {
            name: "Acme".to_owned(),
            owner_email: email.to_owned(),
            owner_password: SecretString::from("correct horse battery".to_owned()),
            owner_name: None,
            email_verified: true,
            first_api_key: Some("backend".to_owned()),
        },
    )
    .await
    .unwrap();
    (created.tenant_id, created.api_key.unwrap().api_key)
}

async fn mint(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client.post(format!("{}/v1/meeting-tokens", app.address)).bearer_auth(key).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn minted_tokens_verify_with_the_published_keys() {
    let app = spawn_app().await;
    let (tenant, key) = tenant_with_key(&app, "owner@acme.example").await;
    let body = json!({
        "room": "weekly-sync",
        "user": { "id": "u-42", "name": "Ann", "email": "ann@acme.example" },
        "moderator": true,
        "features": { "recording": true }
    });
    let response = mint(&app, &key, body).await;
    assert_eq!(response.status(), 201);
    let minted: Value = response.json().await.unwrap();
    let token = minted["token"].as_str().unwrap().to_owned();
    let join_url = minted["join_url"].as_str().unwrap();
    assert!(join_url.starts_with("http://meet.localhost:3000/weekly-sync?jwt="), "{join_url}");

    let jwks: Value = app.get(&format!("/v1/tenants/{tenant}/jwks.json")).await.json().await.unwrap();
    let jwk = &jwks["keys"][0];
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(jwk["kid"].as_str(), header.kid.as_deref(), "the token names a published key");
    assert!(header.kid.unwrap().starts_with(&format!("{tenant}/")));

    // Anyone can check the token with the JWKS alone, using a plain JWT library.
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["jitsi"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap().claims;
    assert_eq!(claims["sub"], tenant.to_string());
    assert_eq!(claims["context"]["user"]["moderator"], true);
    assert_eq!(claims["context"]["features"]["recording"], true);

    let db = app.db().await;
    let (ring, _) = room_tokens::key_ring(&db, tenant).await.unwrap();
    let verified = verify(&token, &ring, &RoomName::parse("weekly-sync").unwrap()).unwrap();
    assert_eq!(verified.claims.context.user.name, "Ann");
    assert_eq!(
        verify(&token, &ring, &RoomName::parse("board").unwrap()),
        Err(TokenError::OtherRoom("weekly-sync".to_owned()))
    );

    // Another tenant's keys do not verify it.
    let (other, other_key) = tenant_with_key(&app, "owner@globex.example").await;
    mint(&app, &other_key, json!({ "room": "*", "user": { "name": "Bo" } })).await;
    let (other_ring, _) = room_tokens::key_ring(&db, other).await.unwrap();
    assert_eq!(verify(&token, &other_ring, &RoomName::parse("weekly-sync").unwrap()), Err(TokenError::UnknownKey));
    app.stop().await;
}

#[tokio::test]
async fn bad_token_requests_get_json_errors() {
    let app = spawn_app().await;
    let (_, key) = tenant_with_key(&app, "owner@acme.example").await;
    let far = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 30 * 86_400;
    let cases = [
        (json!({ "room": "Bad Room", "user": { "name": "Ann" } }), "room"),
        (json!({ "room": "weekly-sync", "user": { "name": "  " } }), "user.name"),
        (json!({ "room": "weekly-sync", "user": {} }), "name"),
        (json!({ "room": "weekly-sync", "user": { "name": "Ann" }, "exp": 1 }), "exp"),
        (json!({ "room": "weekly-sync", "user": { "name": "Ann" }, "exp": far }), "exp"),
        (json!({ "room": "weekly-sync", "user": { "name": "Ann" }, "admin": true }), "admin"),
        (json!({ "room": "weekly-sync", "user": { "name": "Ann" }, "features": { "recording": "maybe" } }), "maybe"),
    ];
    for (body, mentioned) in cases {
        let response = mint(&app, &key, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request", "{body}");
        assert!(error["message"].as_str().unwrap().contains(mentioned), "{body}: {error}");
    }
    let unauthenticated = app.client.post(format!("{}/v1/meeting-tokens", app.address)).json(&json!({})).send().await;
    assert_eq!(unauthenticated.unwrap().status(), 401);

    for id in [TenantId::new().to_string(), "not-a-tenant".to_owned()] {
        let response = app.get(&format!("/v1/tenants/{id}/jwks.json")).await;
        assert_eq!(response.status(), 404, "{id}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "not_found");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_meet_page_verifies_links_with_the_tenants_keys() {
    let app = spawn_app().await;
    let (_, key) = tenant_with_key(&app, "owner@acme.example").await;
    let minted: Value =
        mint(&app, &key, json!({ "room": "weekly-sync", "user": { "name": "Ann" }, "moderator": true }))
            .await
            .json()
            .await
            .unwrap();
    let token = minted["token"].as_str().unwrap();
    let app_ref = &app;
    let page = |path: String| async move {
        let response = app_ref.get_on_host("meet.localhost:3000", &path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let (status, valid) = page(format!("/weekly-sync?jwt={token}")).await;
    assert_eq!(status, 200);
    assert!(valid.contains(r#"data-invitation="valid""#) && valid.contains("Welcome, Ann"), "{valid}");
    assert!(valid.contains("you join as a moderator"), "{valid}");

    let (_, other) = page(format!("/board?jwt={token}")).await;
    assert!(other.contains(r#"data-problem="other_room""#) && other.contains("“weekly-sync”"), "{other}");

    let mut tampered = token.to_owned();
    tampered.insert(token.len() - 5, 'x');
    let (_, altered) = page(format!("/weekly-sync?jwt={tampered}")).await;
    assert!(
        altered.contains(r#"data-problem="unknown_issuer""#) || altered.contains(r#"data-problem="unreadable_token""#),
        "{altered}"
    );
    app.stop().await;
}
