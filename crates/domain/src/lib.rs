//! Domain newtypes. Values from outside (HTTP, CLI, URLs) are parsed into these once, at the edge;
//! code that receives a `RoomName` or an `EmailAddress` never re-validates it.
//!
//! This crate has no server dependencies so that the browser bundle can use the same rules.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod net;
mod phone;
mod region;
mod room_settings;

pub use phone::{CountryCode, MeetingPin, PhoneNumber};
pub use region::Region;
pub use room_settings::{MaxResolution, RoomSettings, UnknownResolution};

/// Why a value from outside was refused. The message is written for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A room name that breaks the URL-segment rules.
    #[error(
        "room names use 3 to 64 lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
    )]
    RoomName,
    /// Not an address mail can be delivered to.
    #[error("`{0}` is not a valid email address")]
    Email(String),
    /// Not a UUID.
    #[error("`{0}` is not a valid id")]
    Id(String),
    /// An empty, overlong or unprintable organisation name.
    #[error("organisation names are 1 to 200 printable characters")]
    TenantName,
    /// Not one of the roles.
    #[error("`{0}` is not a role; use owner, admin, moderator or participant")]
    Role(String),
    /// Not a phone number in international form.
    #[error("`{0}` is not a phone number in international form, like +15551234567")]
    PhoneNumber(String),
    /// Not an ISO 3166 country code.
    #[error("`{0}` is not a country code; use two letters, like US or GB")]
    Country(String),
    /// Not a meeting PIN.
    #[error("a meeting PIN is 9 digits")]
    Pin,
    /// Not a region's name.
    #[error("`{0}` is not a region; use lowercase letters, digits and hyphens, like eu-west-1")]
    Region(String),
}

/// The identity of a tenant (a customer company). Every tenant-owned row carries one, and repository
/// functions take this type rather than a bare `Uuid` so that forgetting the tenant does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(uuid::Uuid);

impl TenantId {
    /// A fresh, time-ordered id (UUIDv7 keeps B-tree inserts local).
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Parses the textual form used in URLs and token `sub` claims.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        uuid::Uuid::parse_str(text).map(Self).map_err(|_| ParseError::Id(text.to_owned()))
    }

    /// The underlying UUID, for the storage layer.
    pub fn as_uuid(self) -> uuid::Uuid {
        self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<uuid::Uuid> for TenantId {
    fn from(id: uuid::Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A meeting room's name as it appears in `meet.<domain>/<room>`: lowercase, URL-safe, unambiguous when
/// read aloud or typed from an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

impl RoomName {
    /// Shortest accepted name: shorter names are guessable.
    pub const MIN_LEN: usize = 3;
    /// Longest accepted name: keeps links and SIP/SDP fields short.
    pub const MAX_LEN: usize = 64;

    /// Accepts `[a-z0-9]` separated by single hyphens, 3–64 characters.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let bytes = text.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let valid = (Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len())
            && bytes.iter().all(allowed)
            && !text.starts_with('-')
            && !text.ends_with('-')
            && !text.contains("--");
        if valid { Ok(Self(text.to_owned())) } else { Err(ParseError::RoomName) }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomName {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<RoomName> for String {
    fn from(name: RoomName) -> Self {
        name.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, trimmed and lowercased. RFC 5321 lets a local part be case-sensitive, but no mail provider
/// in use treats it so, and people type their address in any case: one account per address, whatever the case.
/// The check is deliberately modest: the verification mail is the real test.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// RFC 5321 caps a forward path at 254 characters.
    pub const MAX_LEN: usize = 254;

    /// Accepts `local@domain.tld` without spaces or control characters.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let trimmed = text.trim();
        let refuse = || ParseError::Email(trimmed.to_owned());
        if trimmed.len() > Self::MAX_LEN || trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse());
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(refuse)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(refuse());
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<EmailAddress> for String {
    fn from(address: EmailAddress) -> Self {
        address.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's (organisation's) display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    /// Longest accepted name.
    pub const MAX_LEN: usize = 200;

    /// Trims and checks a name typed by a person.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.chars().count() > Self::MAX_LEN || trimmed.chars().any(char::is_control) {
            return Err(ParseError::TenantName);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantName {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<TenantName> for String {
    fn from(name: TenantName) -> Self {
        name.0
    }
}

/// What a member may do inside a tenant, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Owns the tenant: billing, deleting it, everything an admin can do.
    Owner,
    /// Manages members and API keys.
    Admin,
    /// Schedules and runs meetings.
    Moderator,
    /// Joins meetings.
    Participant,
}

impl Role {
    /// The stored and serialised form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Moderator => "moderator",
            Role::Participant => "participant",
        }
    }

    /// Reads the stored form back.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        [Role::Owner, Role::Admin, Role::Moderator, Role::Participant]
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| ParseError::Role(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_url_rules() {
        for good in ["abc", "team-standup", "q3-review-2026", &"a".repeat(64)] {
            assert!(RoomName::parse(good).is_ok(), "{good} should be accepted");
        }
        for bad in ["", "ab", "Team", "-abc", "abc-", "a--b", "room name", "räum", "a/b", "../x", &"a".repeat(65)] {
            assert_eq!(RoomName::parse(bad), Err(ParseError::RoomName), "{bad} should be refused");
        }
    }

    #[test]
    fn email_addresses_are_normalised_and_checked() {
        assert_eq!(EmailAddress::parse("  Ann@Example.COM ").map(String::from), Ok("ann@example.com".to_owned()));
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@@example.com",
            "a b@example.com",
            "ann@example..com",
            "ann@.example.com",
            "ann@example.com.",
            "ann@exa mple.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn tenant_names_are_trimmed_and_bounded() {
        assert_eq!(TenantName::parse("  Acme GmbH ").map(String::from), Ok("Acme GmbH".to_owned()));
        for bad in ["", "   ", "Acme\u{0}", &"x".repeat(201)] {
            assert_eq!(TenantName::parse(bad), Err(ParseError::TenantName), "{bad:?}");
        }
    }

    #[test]
    fn roles_round_trip_through_their_stored_form() {
        for role in [Role::Owner, Role::Admin, Role::Moderator, Role::Participant] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(Role::parse("root"), Err(ParseError::Role("root".to_owned())));
    }

    #[test]
    fn tenant_ids_round_trip_and_refuse_garbage() {
        let id = TenantId::new();
        assert_eq!(TenantId::parse(&id.to_string()), Ok(id));
        assert_eq!(TenantId::parse("nope"), Err(ParseError::Id("nope".to_owned())));
    }
}
