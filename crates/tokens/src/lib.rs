//! Room tokens: the JWTs that open a meeting at `<meet url>/<room>?jwt=<token>`, in the Jitsi/JaaS format.
//!
//! Header: `typ: JWT`, `alg` RS256 or EdDSA, `kid = "<tenant id>/<key id>"`. Claims: `aud: "jitsi"`, `iss`,
//! `sub` = tenant id, `room` (a name or `*`), `exp`, `nbf`, `iat`, `context.user {id, name, email, avatar,
//! moderator}` and `context.features {recording, livestreaming, transcription, outbound-call,
//! screen-sharing}`. `context.user.moderator` alone decides the role.
//!
//! [`verify`] needs public keys only, so the media node can check tokens without the database; every
//! refusal is a [`TokenError`] whose message is written for the person holding the link.

mod claims;
mod keys;
mod verify;

pub use claims::{Context, Features, InvalidClaim, RoomClaims, User};
pub use keys::{GeneratedKey, KeyAlgorithm, KeyError, KeyId, KeyRing, PublicKey, SigningKey, generate};
pub use verify::{AUDIENCE, LEEWAY_SECONDS, MAX_TOKEN_LEN, TokenError, Verified, verify};
