//! Room tokens as the meet host and `hello` read them: any text, checked against a tenant's keys, and the
//! key ids and JWKs tenants register.
#![no_main]
// A fixture that does not load must stop the run loudly, not be fuzzed around.
#![allow(clippy::expect_used)]

use std::sync::LazyLock;

use convene_domain::{RoomName, TenantId};
use convene_tokens::{KeyAlgorithm, KeyId, KeyRing, PublicKey};
use libfuzzer_sys::fuzz_target;

const TENANT: &str = "0190f1e2-0000-7000-8000-000000000001";
const RSA_PUBLIC: &str = include_str!("../../crates/tokens/tests/keys/rsa-public.pem");

static TENANT_ID: LazyLock<TenantId> = LazyLock::new(|| TenantId::parse(TENANT).expect("a tenant id"));
static ROOM: LazyLock<RoomName> = LazyLock::new(|| RoomName::parse("weekly-sync").expect("a room name"));
static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    let mut ring = KeyRing::default();
    let rsa = KeyId::new(*TENANT_ID, "rsa").expect("a key id");
    ring.insert(PublicKey::from_pem(rsa, KeyAlgorithm::Rs256, RSA_PUBLIC.as_bytes()).expect("the fixture key"));
    let ed = convene_tokens::generate(KeyAlgorithm::EdDsa).expect("a key pair");
    let ed_id = KeyId::new(*TENANT_ID, "ed").expect("a key id");
    ring.insert(PublicKey::from_pem(ed_id, KeyAlgorithm::EdDsa, ed.public_pem.as_bytes()).expect("its public half"));
    ring
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(verified) = convene_tokens::verify(&text, &RING, &ROOM) {
        // Forging a signature is out of reach; reaching here means the target verified a real token.
        let _ = verified.claims.context.user.check();
    }
    let _ = KeyId::parse(&text);
    if let Ok(id) = KeyId::new(*TENANT_ID, "registered") {
        let _ = PublicKey::from_jwk(id, &text);
    }
});
