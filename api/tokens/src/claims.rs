//! The claims of a room token, tolerant where Jitsi deployments differ (booleans sent as `"true"`).

use serde::{Deserialize, Deserializer, Serialize};

/// Everything a room token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomClaims {
    /// Always `jitsi`.
    pub aud: String,
    /// Who minted it (our API, or the tenant's own backend).
    pub iss: String,
    /// The tenant id.
    pub sub: String,
    /// The room name, or `*` for any room of the tenant.
    pub room: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before, seconds since the epoch.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(default)]
    pub iat: Option<u64>,
    /// Who the holder is and what they may do.
    pub context: Context,
}

/// `context`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// The holder.
    pub user: User,
    /// What the holder may use; absent features are off.
    #[serde(default)]
    pub features: Features,
}

/// `context.user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// A stable id for the person (the tenant's own, for tokens minted by its backend).
    #[serde(default)]
    pub id: Option<String>,
    /// The display name.
    pub name: String,
    /// Their email, if known.
    #[serde(default)]
    pub email: Option<String>,
    /// An avatar URL, if any.
    #[serde(default)]
    pub avatar: Option<String>,
    /// Whether the holder moderates the room.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub moderator: bool,
}

/// `context.features`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Features {
    /// May record.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub recording: bool,
    /// May stream out.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub livestreaming: bool,
    /// May start transcription.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub transcription: bool,
    /// May dial out.
    #[serde(default, rename = "outbound-call", deserialize_with = "lenient_bool")]
    pub outbound_call: bool,
    /// May share a screen.
    #[serde(default, rename = "screen-sharing", deserialize_with = "lenient_bool")]
    pub screen_sharing: bool,
}

/// JaaS sends flags as `"true"`/`"false"` strings, Jitsi's own tools as booleans: accept both, nothing else.
fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(deserializer)? {
        Flag::Bool(value) => Ok(value),
        Flag::Text(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Flag::Text(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        Flag::Text(text) => Err(serde::de::Error::custom(format!("`{text}` is not true or false"))),
    }
}
