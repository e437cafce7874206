//! Checking a room token: algorithm against the key's type, `kid` known and of the token's tenant,
//! signature, `aud`, `sub`, `room`, `exp`/`nbf` with a small leeway, required claims present and typed.

use convene_domain::{RoomName, TenantId};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};

use crate::{
    claims::{InvalidClaim, RoomClaims},
    keys::{KeyId, KeyRing},
};

/// The audience every room token names.
pub const AUDIENCE: &str = "jitsi";
/// Clock difference tolerated between the minting backend and us.
pub const LEEWAY_SECONDS: u64 = 30;
/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Its claims.
    pub claims: RoomClaims,
}

/// Why a token was refused, in words for the person holding the link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a readable JWT.
    #[error("this invitation link is damaged")]
    Malformed,
    /// `alg` is neither RS256 nor EdDSA (this includes `none` and HS256).
    #[error("this invitation was signed in a way Convene does not accept ({0})")]
    Algorithm(String),
    /// No `kid`, or one not of the form `<tenant>/<key>`.
    #[error("this invitation does not say which key signed it")]
    KeyId,
    /// The `kid` names no key we trust.
    #[error("this invitation was not signed by a key this organisation uses")]
    UnknownKey,
    /// The signature does not match (tampered, or signed with another key).
    #[error("this invitation link has been altered or was not issued by the organisation")]
    Signature,
    /// Past `exp`.
    #[error("this invitation link has expired")]
    Expired,
    /// Before `nbf`.
    #[error("this invitation link is not valid yet")]
    NotYetValid,
    /// `aud` is not `jitsi`.
    #[error("this invitation is not for a meeting")]
    Audience,
    /// `sub` is not the tenant of the signing key.
    #[error("this invitation belongs to another organisation")]
    Tenant,
    /// `room` names another room.
    #[error("this invitation is for another meeting (“{0}”)")]
    OtherRoom(String),
    /// A claim about the holder is unfit to be stored or shown (too long, control characters).
    #[error("this invitation carries unusable details ({0})")]
    InvalidClaim(#[from] InvalidClaim),
    /// A required claim is missing or mistyped.
    #[error("this invitation is missing required information ({0})")]
    Claims(String),
}

/// Verifies `token` for `room` against the trusted `keys`.
pub fn verify(token: &str, keys: &KeyRing, room: &RoomName) -> Result<Verified, TokenError> {
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::EdDSA) {
        return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
    }
    let kid = header.kid.ok_or(TokenError::KeyId)?;
    let key_id = KeyId::parse(&kid).map_err(|_| TokenError::KeyId)?;
    let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
    // The header's algorithm must be the key's own: an RSA key never verifies an EdDSA claim and back.
    if key.algorithm.jwt() != header.alg {
        return Err(TokenError::Algorithm(format!("{:?} with a {:?} key", header.alg, key.algorithm)));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[AUDIENCE]);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let data =
        jsonwebtoken::decode::<RoomClaims>(token, key.decoding_key(), &validation).map_err(|error| {
            match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::MissingRequiredClaim(claim) => TokenError::Claims(claim.clone()),
                ErrorKind::Json(error) => TokenError::Claims(claim_problem(&error.to_string())),
                ErrorKind::InvalidAlgorithm => TokenError::Algorithm(format!("{:?}", key.algorithm)),
                _ => TokenError::Malformed,
            }
        })?;
    let claims = data.claims;
    if claims.sub != key_id.tenant().to_string() {
        return Err(TokenError::Tenant);
    }
    if claims.room != "*" && claims.room != room.as_str() {
        return Err(TokenError::OtherRoom(claims.room));
    }
    claims.context.check()?;
    Ok(Verified { tenant: key_id.tenant(), claims })
}

/// Turns serde's message into the claim's name ("missing field `exp` at line 1 column 9" → "exp"), or the
/// problem without its position.
fn claim_problem(message: &str) -> String {
    let problem = message.split(" at line ").next().unwrap_or(message);
    match problem.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
        Some(field) => field.to_owned(),
        None => problem.to_owned(),
    }
}
