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
    /// Convene's own: the region whose media nodes should run the meeting when the holder is the first in
    /// (`eu-west-1`); absent, the organisation's region or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Context {
    /// Checks every claim that is stored, shown or acted on: the user's and the region's name.
    pub fn check(&self) -> Result<(), InvalidClaim> {
        self.user.check()?;
        match &self.region {
            Some(region) if convene_domain::Region::parse(region).is_err() => Err(InvalidClaim {
                claim: "context.region",
                problem: "lowercase letters, digits and hyphens, at most 64".to_owned(),
            }),
            _ => Ok(()),
        }
    }
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

/// The longest `context.user.id` accepted: ids are stored with every stay in a room.
pub const MAX_USER_ID_CHARS: usize = 200;
/// The longest `context.user.name` accepted (the display-name rule's own limit).
pub const MAX_USER_NAME_CHARS: usize = 200;
/// The longest `context.user.email` accepted (RFC 5321's path limit).
pub const MAX_USER_EMAIL_CHARS: usize = 320;
/// The longest `context.user.avatar` URL accepted.
pub const MAX_USER_AVATAR_CHARS: usize = 2048;

/// A claim that reaches storage or other people's screens and is not fit for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{claim}: {problem}")]
pub struct InvalidClaim {
    /// The claim's path, as in the token (`context.user.id`).
    pub claim: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl User {
    /// Checks every field that is stored or shown: bounded lengths and no control characters (a NUL byte
    /// is refused by Postgres and would stop whatever queue carried it). Addresses and avatar URLs have no
    /// whitespace either.
    pub fn check(&self) -> Result<(), InvalidClaim> {
        text_claim("context.user.name", &self.name, MAX_USER_NAME_CHARS, true)?;
        // Backends choose their own ids (Jitsi deployments use names with spaces); addresses and URLs have none.
        let optional = [
            ("context.user.id", &self.id, MAX_USER_ID_CHARS, true),
            ("context.user.email", &self.email, MAX_USER_EMAIL_CHARS, false),
            ("context.user.avatar", &self.avatar, MAX_USER_AVATAR_CHARS, false),
        ];
        for (claim, value, max_chars, spaces) in optional {
            if let Some(value) = value {
                text_claim(claim, value, max_chars, spaces)?;
            }
        }
        if let Some(id) = &self.id
            && id.is_empty()
        {
            return Err(InvalidClaim { claim: "context.user.id", problem: "must not be empty".to_owned() });
        }
        Ok(())
    }
}

fn text_claim(claim: &'static str, value: &str, max_chars: usize, spaces: bool) -> Result<(), InvalidClaim> {
    let invalid = |problem: String| Err(InvalidClaim { claim, problem });
    if value.chars().count() > max_chars {
        return invalid(format!("at most {max_chars} characters"));
    }
    if value.chars().any(char::is_control) {
        return invalid("must not contain control characters".to_owned());
    }
    if !spaces && value.chars().any(char::is_whitespace) {
        return invalid("must not contain spaces".to_owned());
    }
    Ok(())
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
