//! Room token verification against real RSA and Ed25519 keys (test-only keys in `tests/keys/`), including
//! every way a token can be wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::{SystemTime, UNIX_EPOCH};

use convene_domain::{RoomName, TenantId};
use convene_tokens::{
    Context, Features, KeyAlgorithm, KeyId, KeyRing, PublicKey, RoomClaims, SigningKey, TokenError, User, verify,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa-public.pem");
const OTHER_RSA_PRIVATE: &[u8] = include_bytes!("keys/other-rsa-private.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed25519-private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("keys/ed25519-public.pem");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

struct Fixture {
    tenant: TenantId,
    rsa: KeyId,
    ed: KeyId,
    ring: KeyRing,
    room: RoomName,
}

fn fixture() -> Fixture {
    let tenant = TenantId::new();
    let rsa = KeyId::new(tenant, "rsa-1").unwrap();
    let ed = KeyId::new(tenant, "ed-1").unwrap();
    let mut ring = KeyRing::default();
    ring.insert(PublicKey::from_pem(rsa.clone(), KeyAlgorithm::Rs256, RSA_PUBLIC).unwrap());
    ring.insert(PublicKey::from_pem(ed.clone(), KeyAlgorithm::EdDsa, ED_PUBLIC).unwrap());
    Fixture { tenant, rsa, ed, ring, room: RoomName::parse("weekly-sync").unwrap() }
}

fn claims(fixture: &Fixture) -> Value {
    json!({
        "aud": "jitsi",
        "iss": "convene",
        "sub": fixture.tenant.to_string(),
        "room": "weekly-sync",
        "exp": now() + 3600,
        "nbf": now() - 10,
        "iat": now(),
        "context": {
            "user": { "id": "u-1", "name": "Ann", "email": "ann@example.com", "moderator": "true" },
            "features": { "recording": "true", "screen-sharing": true }
        }
    })
}

/// Signs like a tenant's own backend would, with a plain JWT library.
fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap()
}

#[test]
fn tokens_from_a_tenant_backend_verify_with_both_algorithms() {
    let fixture = fixture();
    let ed_key = EncodingKey::from_ed_pem(ED_PRIVATE).unwrap();
    for (alg, kid, key) in
        [(Algorithm::RS256, fixture.rsa.as_str(), rsa_key()), (Algorithm::EdDSA, fixture.ed.as_str(), ed_key)]
    {
        let token = sign(alg, Some(kid), &claims(&fixture), &key);
        let verified = verify(&token, &fixture.ring, &fixture.room).unwrap();
        assert_eq!(verified.tenant, fixture.tenant);
        assert!(verified.claims.context.user.moderator, "\"true\" counts as true");
        assert!(verified.claims.context.features.recording && verified.claims.context.features.screen_sharing);
        assert!(!verified.claims.context.features.outbound_call, "absent features are off");
    }
}

#[test]
fn our_own_minting_round_trips_and_a_star_room_opens_any_room() {
    let fixture = fixture();
    let signing = SigningKey::from_pem(fixture.rsa.clone(), KeyAlgorithm::Rs256, RSA_PRIVATE).unwrap();
    let claims = RoomClaims {
        aud: "jitsi".into(),
        iss: "convene".into(),
        sub: fixture.tenant.to_string(),
        room: "*".into(),
        exp: now() + 600,
        nbf: Some(now()),
        iat: Some(now()),
        context: Context {
            user: User { id: None, name: "Guest".into(), email: None, avatar: None, moderator: false },
            features: Features::default(),
            region: Some("eu-west-1".into()),
        },
    };
    let token = signing.mint(&claims).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(fixture.rsa.as_str()));
    let verified = verify(&token, &fixture.ring, &RoomName::parse("any-room").unwrap()).unwrap();
    assert_eq!(verified.claims, claims);
}

#[test]
fn every_wrong_token_is_refused_with_its_reason() {
    let fixture = fixture();
    let kid = Some(fixture.rsa.as_str());
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims(&fixture);
        change(&mut claims);
        sign(Algorithm::RS256, kid, &claims, &rsa_key())
    };
    let good = with(&|_| {});
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64(
        &json!({"aud":"jitsi","sub":fixture.tenant.to_string(),"room":"weekly-sync","exp":now()+3600,"iss":"x","context":{"user":{"name":"Mallory","moderator":true}}}),
    );
    parts[1] = &forged_payload;
    let tampered = parts.join(".");
    let other_tenant = TenantId::new().to_string();
    let none_token =
        format!("{}.{}.", b64(&json!({"alg":"none","typ":"JWT","kid":fixture.rsa.as_str()})), b64(&claims(&fixture)));

    let cases: Vec<(String, TokenError)> = vec![
        ("".into(), TokenError::Malformed),
        ("not.a.token".into(), TokenError::Malformed),
        ("a".repeat(9000), TokenError::Malformed),
        (tampered, TokenError::Signature),
        (
            sign(Algorithm::RS256, kid, &claims(&fixture), &EncodingKey::from_rsa_pem(OTHER_RSA_PRIVATE).unwrap()),
            TokenError::Signature,
        ),
        (with(&|c| c["exp"] = json!(now() - 120)), TokenError::Expired),
        (with(&|c| c["nbf"] = json!(now() + 120)), TokenError::NotYetValid),
        (with(&|c| c["aud"] = json!("other")), TokenError::Audience),
        (with(&|c| c["sub"] = json!(other_tenant)), TokenError::Tenant),
        (with(&|c| c["room"] = json!("board")), TokenError::OtherRoom("board".into())),
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            TokenError::Claims("exp".into()),
        ),
        (sign(Algorithm::RS256, None, &claims(&fixture), &rsa_key()), TokenError::KeyId),
        (sign(Algorithm::RS256, Some("no-slash"), &claims(&fixture), &rsa_key()), TokenError::KeyId),
        (
            sign(Algorithm::RS256, Some(&format!("{}/rsa-1", TenantId::new())), &claims(&fixture), &rsa_key()),
            TokenError::UnknownKey,
        ),
        // HS256 keyed with our public key: the classic algorithm-confusion forgery.
        (
            sign(Algorithm::HS256, kid, &claims(&fixture), &EncodingKey::from_secret(RSA_PUBLIC)),
            TokenError::Algorithm("HS256".into()),
        ),
        // An RSA key named in an EdDSA token.
        (
            sign(Algorithm::EdDSA, kid, &claims(&fixture), &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap()),
            TokenError::Algorithm("EdDSA with a Rs256 key".into()),
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(verify(&token, &fixture.ring, &fixture.room), Err(expected.clone()), "{expected}");
    }
    assert!(matches!(
        verify(&none_token, &fixture.ring, &fixture.room),
        Err(TokenError::Malformed | TokenError::Algorithm(_))
    ));
    let bad_flag = with(&|c| c["context"]["user"]["moderator"] = json!("yes"));
    assert!(matches!(verify(&bad_flag, &fixture.ring, &fixture.room), Err(TokenError::Claims(_))));
    let within_leeway = with(&|c| c["exp"] = json!(now() - 10));
    assert!(verify(&within_leeway, &fixture.ring, &fixture.room).is_ok(), "a few seconds of clock skew pass");
}

#[test]
fn refusals_read_well_on_the_page() {
    assert_eq!(TokenError::Expired.to_string(), "this invitation link has expired");
    assert_eq!(TokenError::OtherRoom("board".into()).to_string(), "this invitation is for another meeting (“board”)");
    assert!(KeyId::parse("not-a-kid").is_err() && KeyId::new(TenantId::new(), "bad/name").is_err());
}

/// Base64url without padding, for hand-built (forged) token parts.
fn b64(value: &Value) -> String {
    data_encoding::BASE64URL_NOPAD.encode(value.to_string().as_bytes())
}

#[test]
fn generated_keys_mint_tokens_that_verify_and_publish_as_jwks() {
    for algorithm in [KeyAlgorithm::EdDsa, KeyAlgorithm::Rs256] {
        let tenant = TenantId::new();
        let id = KeyId::new(tenant, "generated").unwrap();
        let pair = convene_tokens::generate(algorithm).unwrap();
        let signing = SigningKey::from_pem(id.clone(), algorithm, pair.private_pem.as_bytes()).unwrap();
        let public = PublicKey::from_pem(id.clone(), algorithm, pair.public_pem.as_bytes()).unwrap();
        let jwk = serde_json::to_value(public.jwk().unwrap()).unwrap();
        assert_eq!(jwk["kid"], id.as_str());
        assert_eq!(jwk["use"], "sig");
        let mut ring = KeyRing::default();
        ring.insert(public);
        let mut claims = claims(&Fixture {
            tenant,
            rsa: id.clone(),
            ed: id.clone(),
            ring: KeyRing::default(),
            room: RoomName::parse("weekly-sync").unwrap(),
        });
        claims["context"]["user"]["moderator"] = json!(false);
        let claims: RoomClaims = serde_json::from_value(claims).unwrap();
        let token = signing.mint(&claims).unwrap();
        let verified = verify(&token, &ring, &RoomName::parse("weekly-sync").unwrap()).unwrap();
        assert_eq!(verified.tenant, tenant, "{algorithm:?}");
    }
}

#[test]
fn claims_unfit_for_storage_are_refused_by_name() {
    let fixture = fixture();
    let long = "x".repeat(201);
    let cases: [(&str, Value, &str); 7] = [
        ("id", json!("u-\u{0}1"), "context.user.id"),
        ("id", json!(long), "context.user.id"),
        ("id", json!(""), "context.user.id"),
        ("name", json!("Ann\u{7}"), "context.user.name"),
        ("name", json!(long), "context.user.name"),
        ("email", json!("ann @example.com"), "context.user.email"),
        ("avatar", json!(format!("https://x.example/{}", "a".repeat(2048))), "context.user.avatar"),
    ];
    for (field, value, claim) in cases {
        let mut claims = claims(&fixture);
        claims["context"]["user"][field] = value;
        let token = sign(Algorithm::RS256, Some(fixture.rsa.as_str()), &claims, &rsa_key());
        match verify(&token, &fixture.ring, &fixture.room) {
            Err(TokenError::InvalidClaim(invalid)) => assert_eq!(invalid.claim, claim),
            other => panic!("{field} {claims}: {other:?}"),
        }
    }
    for region in [json!("EU-West"), json!("eu west"), json!("x".repeat(65)), json!("")] {
        let mut claims = claims(&fixture);
        claims["context"]["region"] = region;
        let token = sign(Algorithm::RS256, Some(fixture.rsa.as_str()), &claims, &rsa_key());
        match verify(&token, &fixture.ring, &fixture.room) {
            Err(TokenError::InvalidClaim(invalid)) => assert_eq!(invalid.claim, "context.region"),
            other => panic!("region {claims}: {other:?}"),
        }
    }
    let mut fine = claims(&fixture);
    fine["context"]["user"]["name"] = json!("Ann Müller-Łukasz 👋");
    let token = sign(Algorithm::RS256, Some(fixture.rsa.as_str()), &fine, &rsa_key());
    assert!(verify(&token, &fixture.ring, &fixture.room).is_ok(), "names may have spaces and any script");
}
