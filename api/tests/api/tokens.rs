//! `/v1/meeting-tokens` and `/v1/tenants/{id}/jwks.json`: tokens minted with the tenant's key verify with the
//! published keys alone, and bad requests get JSON errors.

use convene_api::{
    entities::signing_key,
    meetings::room_tokens,
    people::tenants::{NewTenant, create_tenant},
    platform::envelope::{Envelope, SecretKey},
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
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")), "{jwk}");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
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
        (json!({ "room": "weekly-sync", "user": { "name": "Ann", "id": "a\u{0}b" } }), "user.id"),
        (json!({ "room": "weekly-sync", "user": { "name": "Ann", "id": "x".repeat(10_000) } }), "user.id"),
        (json!({ "room": "weekly-sync", "user": { "name": "Ann", "email": "a\nb@example.com" } }), "user.email"),
        (json!({ "room": "weekly-sync", "user": { "name": "Ann", "avatar": "y".repeat(3000) } }), "user.avatar"),
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

    // The page asks the same admission as the socket: a link to a room deleted since it was minted is refused
    // up front, not after "Join".
    let created = api(&app, reqwest::Method::POST, "/v1/rooms", &key, Some(json!({ "name": "weekly-sync" }))).await;
    assert_eq!(created.status(), 201);
    assert_eq!(api(&app, reqwest::Method::DELETE, "/v1/rooms/weekly-sync", &key, None).await.status(), 204);
    let (status, deleted) = page(format!("/weekly-sync?jwt={token}")).await;
    assert_eq!(status, 200);
    assert!(deleted.contains(r#"data-problem="ended""#) && deleted.contains("This meeting is not on"), "{deleted}");
    assert!(deleted.contains("this meeting room was deleted"), "{deleted}");
    app.stop().await;
}

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/tokens/tests/keys");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).unwrap()
}

async fn api(app: &TestApp, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.request(method, format!("{}{path}", app.address)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Whether the meet page accepts a token for `weekly-sync`.
async fn link_is_valid(app: &TestApp, token: &str) -> bool {
    let page = app.get_on_host("meet.localhost", &format!("/weekly-sync?jwt={token}")).await.text().await.unwrap();
    page.contains(r#"data-invitation="valid""#)
}

fn tenant_backend_token(
    tenant: TenantId,
    key_name: &str,
    alg: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(format!("{tenant}/{key_name}"));
    let claims = json!({ "aud": "jitsi", "iss": "acme-backend", "sub": tenant.to_string(), "room": "weekly-sync",
        "exp": now + 600, "context": { "user": { "name": "Bo", "moderator": false } } });
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[tokio::test]
async fn tenants_register_their_own_keys_and_rotate_ours() {
    use reqwest::Method;
    let app = spawn_app().await;
    let (tenant, key) = tenant_with_key(&app, "owner@acme.example").await;

    let pem = json!({ "name": "backend-1", "algorithm": "RS256", "public_key_pem": fixture("rsa-public.pem") });
    assert_eq!(api(&app, Method::POST, "/v1/signing-keys", &key, Some(pem.clone())).await.status(), 201);
    let ed_public = convene_tokens::PublicKey::from_pem(
        convene_tokens::KeyId::new(tenant, "ed-1").unwrap(),
        convene_tokens::KeyAlgorithm::EdDsa,
        fixture("ed25519-public.pem").as_bytes(),
    )
    .unwrap();
    let jwk = json!({ "name": "ed-1", "jwk": serde_json::to_value(ed_public.jwk().unwrap()).unwrap() });
    assert_eq!(api(&app, Method::POST, "/v1/signing-keys", &key, Some(jwk)).await.status(), 201);

    let rsa = jsonwebtoken::EncodingKey::from_rsa_pem(fixture("rsa-private.pem").as_bytes()).unwrap();
    let ed = jsonwebtoken::EncodingKey::from_ed_pem(fixture("ed25519-private.pem").as_bytes()).unwrap();
    let from_backend = tenant_backend_token(tenant, "backend-1", jsonwebtoken::Algorithm::RS256, &rsa);
    assert!(link_is_valid(&app, &from_backend).await, "a token from the tenant's own backend opens the meeting");
    assert!(link_is_valid(&app, &tenant_backend_token(tenant, "ed-1", jsonwebtoken::Algorithm::EdDSA, &ed)).await);

    let refusals = [
        (json!({ "name": "x", "algorithm": "RS256", "public_key_pem": "garbage" }), "public_key_pem"),
        (json!({ "name": "x", "public_key_pem": fixture("rsa-public.pem") }), "algorithm"),
        (json!({ "name": "x" }), "exactly one"),
        (json!({ "name": "x", "jwk": { "kty": "oct", "k": "c2VjcmV0" } }), "jwk"),
        (json!({ "name": "bad/name", "algorithm": "RS256", "public_key_pem": fixture("rsa-public.pem") }), "name"),
        (pem, "already exists"),
    ];
    for (body, mentioned) in refusals {
        let response = api(&app, Method::POST, "/v1/signing-keys", &key, Some(body.clone())).await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(response.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains(mentioned), "{body}");
    }

    let first: Value =
        mint(&app, &key, json!({ "room": "weekly-sync", "user": { "name": "Ann" } })).await.json().await.unwrap();
    let rotated = api(&app, Method::POST, "/v1/signing-keys/rotate", &key, None).await;
    assert_eq!(rotated.status(), 201);
    let second: Value =
        mint(&app, &key, json!({ "room": "weekly-sync", "user": { "name": "Ann" } })).await.json().await.unwrap();
    let kid = |token: &Value| jsonwebtoken::decode_header(token["token"].as_str().unwrap()).unwrap().kid;
    assert_ne!(kid(&first), kid(&second), "rotation changes the signing key");
    assert!(link_is_valid(&app, first["token"].as_str().unwrap()).await, "tokens of the retired key still verify");
    assert!(link_is_valid(&app, second["token"].as_str().unwrap()).await);
    let listed: Value = api(&app, Method::GET, "/v1/signing-keys", &key, None).await.json().await.unwrap();
    let retired = listed["keys"].as_array().unwrap().iter().filter(|k| !k["retired_at"].is_null()).count();
    assert_eq!(retired, 1, "{listed}");

    let (_, other_key) = tenant_with_key(&app, "owner@globex.example").await;
    assert_eq!(
        api(&app, Method::DELETE, "/v1/signing-keys/backend-1", &other_key, None).await.status(),
        404,
        "another tenant's key"
    );
    assert_eq!(api(&app, Method::DELETE, "/v1/signing-keys/backend-1", &key, None).await.status(), 204);
    assert!(!link_is_valid(&app, &from_backend).await, "a deleted key verifies nothing");
    assert_eq!(api(&app, Method::DELETE, "/v1/signing-keys/backend-1", &key, None).await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_first_tokens_create_one_key() {
    let app = spawn_app().await;
    let (tenant, key) = tenant_with_key(&app, "owner@acme.example").await;
    let body = json!({ "room": "weekly-sync", "user": { "name": "Ann" } });
    let minted = futures_util::future::join_all((0..6).map(|_| mint(&app, &key, body.clone()))).await;
    assert!(minted.iter().all(|response| response.status() == 201));
    let db = app.db().await;
    let (_, keys) = room_tokens::key_ring(&db, tenant).await.unwrap();
    assert_eq!(keys.len(), 1, "one key for six first tokens at once");
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_has_at_most_twenty_signing_keys() {
    let app = spawn_app().await;
    let (_, key) = tenant_with_key(&app, "owner@acme.example").await;
    let register = |name: String| {
        let pem = convene_tokens::generate(convene_tokens::KeyAlgorithm::EdDsa).unwrap().public_pem;
        let body = json!({ "name": name, "algorithm": "EdDSA", "public_key_pem": pem });
        crate::helpers::call(&app, reqwest::Method::POST, "/v1/signing-keys", &key, Some(body))
    };
    for index in 0..room_tokens::MAX_KEYS_PER_TENANT {
        let (status, body) = register(format!("backend-{index}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = register("one-too-many".to_owned()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("at most 20"), "{body}");
    let (status, _) = crate::helpers::call(&app, reqwest::Method::POST, "/v1/signing-keys/rotate", &key, None).await;
    assert_eq!(status, 400, "rotation adds a key too");
    app.stop().await;
}

/// Every stored private key of the app, by row id.
async fn sealed_private_keys(app: &TestApp) -> Vec<(uuid::Uuid, String)> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    signing_key::Entity::find()
        .filter(signing_key::Column::SealedPrivateKey.is_not_null())
        .order_by_asc(signing_key::Column::CreatedAt)
        .all(&app.db().await)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.id, row.sealed_private_key.unwrap()))
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn private_keys_are_stored_sealed_and_a_secret_key_rotation_reseals_them() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let mut app = spawn_app().await;
    let (tenant, key) = tenant_with_key(&app, "owner@acme.example").await;
    let body = json!({ "room": "weekly-sync", "user": { "name": "Ann" } });
    let first: Value = mint(&app, &key, body.clone()).await.json().await.unwrap();
    let first_kid = kid_of(first["token"].as_str().unwrap());

    // What a database dump holds: no PEM, and nothing another secret key opens.
    let stored = sealed_private_keys(&app).await;
    let [(row, sealed)] = stored.as_slice() else { panic!("one key: {stored:?}") };
    assert!(sealed.starts_with("kek1:") && !sealed.contains("PRIVATE KEY"), "{sealed}");
    let stranger = Envelope::new(&SecretKey::generate().unwrap(), &[]);
    assert!(stranger.open(*row, sealed).is_err());

    // A private key stored in clear before sealing existed is sealed at the next start.
    let legacy = convene_tokens::generate(convene_tokens::KeyAlgorithm::EdDsa).unwrap();
    let legacy_row = uuid::Uuid::now_v7();
    signing_key::ActiveModel {
        id: Set(legacy_row),
        tenant_id: Set(tenant.as_uuid()),
        key_name: Set("legacy".to_owned()),
        algorithm: Set("EdDSA".to_owned()),
        public_key: Set(legacy.public_pem),
        key_format: Set("pem".to_owned()),
        sealed_private_key: Set(Some(legacy.private_pem.clone())),
        created_at: Set(chrono::Utc::now()),
        retired_at: Set(Some(chrono::Utc::now())),
    }
    .insert(&app.db().await)
    .await
    .unwrap();

    // Rotating the secret key: the new one alone cannot open the stored keys, so the start is refused and
    // says what to set; with the old one as previous, every key is resealed under the new one.
    let old = app.settings().secret_key.clone().unwrap();
    let new = SecretKey::generate().unwrap();
    let refused = app.restart_with(|settings| settings.secret_key = Some(new.clone())).await.unwrap_err();
    assert!(format!("{refused:#}").contains("CONVENE_PREVIOUS_SECRET_KEYS"), "{refused:#}");
    app.restart_with(|settings| {
        settings.secret_key = Some(new.clone());
        settings.previous_secret_keys = vec![old];
    })
    .await
    .unwrap();
    let resealed = sealed_private_keys(&app).await;
    let only_new = Envelope::new(&new, &[]);
    for (row, sealed) in &resealed {
        assert!(!sealed.contains("PRIVATE KEY"), "{sealed}");
        assert!(only_new.open(*row, sealed).is_ok(), "row {row} is sealed with the new key alone");
    }
    assert_eq!(resealed.len(), 2);
    use secrecy::ExposeSecret;
    let legacy_opened = only_new.open(legacy_row, &resealed[1].1).unwrap();
    assert_eq!(legacy_opened.expose_secret(), legacy.private_pem);

    // The same key goes on minting, so links already sent keep verifying.
    let second: Value = mint(&app, &key, body).await.json().await.unwrap();
    assert_eq!(kid_of(second["token"].as_str().unwrap()), first_kid);
    assert!(link_is_valid(&app, first["token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn a_tenant_whose_key_predates_ed25519_goes_on_minting_rs256_tokens_that_verify() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let app = spawn_app().await;
    let (tenant, key) = tenant_with_key(&app, "owner@acme.example").await;
    // The RSA key a first mint made before Ed25519 became the default, sealed as it was then.
    let rsa = convene_tokens::generate(convene_tokens::KeyAlgorithm::Rs256).unwrap();
    let row = uuid::Uuid::now_v7();
    let envelope = Envelope::for_settings(app.settings()).unwrap();
    signing_key::ActiveModel {
        id: Set(row),
        tenant_id: Set(tenant.as_uuid()),
        key_name: Set("convene-20260101-0a1b2c3d".to_owned()),
        algorithm: Set("RS256".to_owned()),
        public_key: Set(rsa.public_pem),
        key_format: Set("pem".to_owned()),
        sealed_private_key: Set(Some(envelope.seal(row, &rsa.private_pem).unwrap())),
        created_at: Set(chrono::Utc::now()),
        retired_at: Set(None),
    }
    .insert(&app.db().await)
    .await
    .unwrap();

    // Many at once: each signature is made off the async workers, and every one verifies.
    let body = json!({ "room": "weekly-sync", "user": { "name": "Ann" } });
    let minted = futures_util::future::join_all((0..8).map(|_| mint(&app, &key, body.clone()))).await;
    for response in minted {
        assert_eq!(response.status(), 201);
        let token = response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(format!("{tenant}/convene-20260101-0a1b2c3d").as_str()));
        assert!(link_is_valid(&app, &token).await, "the RS256 token opens the room");
    }
    // Rotation makes the next key Ed25519; tokens the RSA key signed still verify.
    let (status, rotated) =
        crate::helpers::call(&app, reqwest::Method::POST, "/v1/signing-keys/rotate", &key, None).await;
    assert_eq!((status, rotated["algorithm"].as_str()), (201, Some("EdDSA")), "{rotated}");
    let fresh: Value = mint(&app, &key, body).await.json().await.unwrap();
    let fresh = fresh["token"].as_str().unwrap();
    assert_eq!(jsonwebtoken::decode_header(fresh).unwrap().alg, jsonwebtoken::Algorithm::EdDSA);
    assert!(link_is_valid(&app, fresh).await);
    app.stop().await;
}
