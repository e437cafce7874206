//! Keys: public ones for verification (a [`KeyRing`] keyed by `kid`), private ones for minting.

use std::{collections::HashMap, fmt};

use convene_domain::TenantId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

use crate::claims::RoomClaims;

/// The two algorithms room tokens may use. HS256 is never accepted: a shared secret would let anyone who
/// verifies also mint, and it opens the RS/HS confusion attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256 (the Jitsi/JaaS default).
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl KeyAlgorithm {
    /// Its JWS name, as `alg` and the API have it.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rs256 => "RS256",
            KeyAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm a JWS name stands for, of those tokens may use.
    pub fn from_name(name: &str) -> Option<Self> {
        [KeyAlgorithm::Rs256, KeyAlgorithm::EdDsa].into_iter().find(|algorithm| algorithm.name() == name)
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            KeyAlgorithm::Rs256 => Algorithm::RS256,
            KeyAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// A `kid`: `<tenant id>/<key id>`, so the tenant is known before any key is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId {
    tenant: TenantId,
    text: String,
}

impl KeyId {
    /// A key id for `tenant` named `key` (letters, digits, `-`, `_`, `.`; 1–64 characters).
    pub fn new(tenant: TenantId, key: &str) -> Result<Self, KeyError> {
        let valid = (1..=64).contains(&key.len())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(KeyError::KeyId(key.to_owned()));
        }
        Ok(Self { tenant, text: format!("{tenant}/{key}") })
    }

    /// Reads a `kid` header.
    pub fn parse(kid: &str) -> Result<Self, KeyError> {
        let (tenant, key) = kid.split_once('/').ok_or_else(|| KeyError::KeyId(kid.to_owned()))?;
        let tenant = TenantId::parse(tenant).map_err(|_| KeyError::KeyId(kid.to_owned()))?;
        Self::new(tenant, key)
    }

    /// The tenant the key belongs to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The `kid` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key's own name, after the tenant.
    pub fn name(&self) -> &str {
        self.text.split_once('/').map_or("", |(_, name)| name)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A key could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// A malformed `kid`.
    #[error("`{0}` is not a key id of the form <tenant id>/<key name>")]
    KeyId(String),
    /// The key material does not parse for its algorithm.
    #[error("the key is not a valid {0} key: {1}")]
    Material(&'static str, String),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

/// A public key that verifies a tenant's tokens.
#[derive(Clone)]
pub struct PublicKey {
    /// Its `kid`.
    pub id: KeyId,
    /// The one algorithm it verifies.
    pub algorithm: KeyAlgorithm,
    key: DecodingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("id", &self.id).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl PublicKey {
    /// A key from PEM (SubjectPublicKeyInfo).
    pub fn from_pem(id: KeyId, algorithm: KeyAlgorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match algorithm {
            KeyAlgorithm::Rs256 => DecodingKey::from_rsa_pem(pem),
            KeyAlgorithm::EdDsa => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|error| KeyError::Material(algorithm.name(), error.to_string()))?;
        Ok(Self { id, algorithm, key })
    }

    /// A key from a JWK (JSON): RSA keys verify RS256, Ed25519 (`OKP`) keys EdDSA; other kinds are refused.
    pub fn from_jwk(id: KeyId, jwk_json: &str) -> Result<Self, KeyError> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
        let invalid = |message: String| KeyError::Material("JWK", message);
        let jwk: Jwk = serde_json::from_str(jwk_json).map_err(|error| invalid(error.to_string()))?;
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyAlgorithm::Rs256,
            AlgorithmParameters::OctetKeyPair(pair) if pair.curve == EllipticCurve::Ed25519 => KeyAlgorithm::EdDsa,
            _ => return Err(invalid("only RSA and Ed25519 public keys are accepted".to_owned())),
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|error| invalid(error.to_string()))?;
        Ok(Self { id, algorithm, key })
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// The key as a JWK for a JWKS document: `kid`, `alg`, `use: sig`.
    pub fn jwk(&self) -> Result<jsonwebtoken::jwk::Jwk, KeyError> {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&self.key, Some(self.algorithm.jwt()))
            .map_err(|error| KeyError::Material(self.algorithm.name(), error.to_string()))?;
        jwk.common.key_id = Some(self.id.as_str().to_owned());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(jwk)
    }
}

/// The public keys a verifier trusts, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: HashMap<String, PublicKey>,
}

impl KeyRing {
    /// Adds (or replaces) a key.
    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.id.as_str().to_owned(), key);
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }
}

/// A freshly generated key pair in PEM, for storage: the private half mints, the public half verifies.
#[derive(Clone)]
pub struct GeneratedKey {
    /// PKCS#8 PEM of the private key.
    pub private_pem: String,
    /// SubjectPublicKeyInfo PEM of the public key.
    pub public_pem: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey").field("public_pem", &self.public_pem).finish_non_exhaustive()
    }
}

/// Generates a key pair from the operating system's randomness (RSA 2048 or Ed25519).
pub fn generate(algorithm: KeyAlgorithm) -> Result<GeneratedKey, KeyError> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
    use rsa::pkcs8::LineEnding;
    let failed = |error: &dyn fmt::Display| KeyError::Material(algorithm.name(), error.to_string());
    let mut rng = rsa::rand_core::OsRng;
    match algorithm {
        KeyAlgorithm::Rs256 => {
            let private = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|error| failed(&error))?;
            let public = rsa::RsaPublicKey::from(&private);
            Ok(GeneratedKey {
                private_pem: rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&private, LineEnding::LF)
                    .map_err(|error| failed(&error))?
                    .to_string(),
                public_pem: rsa::pkcs8::EncodePublicKey::to_public_key_pem(&public, LineEnding::LF)
                    .map_err(|error| failed(&error))?,
            })
        }
        KeyAlgorithm::EdDsa => {
            let private = ed25519_dalek::SigningKey::generate(&mut rng);
            Ok(GeneratedKey {
                private_pem: private.to_pkcs8_pem(LineEnding::LF).map_err(|error| failed(&error))?.to_string(),
                public_pem: private
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|error| failed(&error))?,
            })
        }
    }
}

/// A private key that mints a tenant's tokens.
#[derive(Clone)]
pub struct SigningKey {
    /// Its `kid`.
    pub id: KeyId,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    key: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.id).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key from PEM (PKCS#8).
    pub fn from_pem(id: KeyId, algorithm: KeyAlgorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match algorithm {
            KeyAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem),
            KeyAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|error| KeyError::Material(algorithm.name(), error.to_string()))?;
        Ok(Self { id, algorithm, key })
    }

    /// Signs claims into a token with `typ: JWT` and this key's `kid`.
    pub fn mint(&self, claims: &RoomClaims) -> Result<String, KeyError> {
        let mut header = Header::new(self.algorithm.jwt());
        header.kid = Some(self.id.as_str().to_owned());
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|error| KeyError::Signing(error.to_string()))
    }
}
