//! Where media nodes run, as operators name it (`eu-west-1`): nodes say their region in heartbeats, and a
//! meeting asks for one through its tenant's setting or its first joiner's token.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A region's name: 1 to 64 lowercase letters, digits and hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Accepts 1 to 64 of `[a-z0-9-]`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let valid = (1..=64).contains(&text.len())
            && text.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if valid { Ok(Self(text.to_owned())) } else { Err(ParseError::Region(text.chars().take(80).collect())) }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The region of nodes that name none: `default`.
impl Default for Region {
    fn default() -> Self {
        Self("default".to_owned())
    }
}

impl TryFrom<String> for Region {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Region> for String {
    fn from(region: Region) -> Self {
        region.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_short_lowercase_names() {
        for good in ["eu-west-1", "default", "a", &"x".repeat(64)] {
            assert_eq!(Region::parse(good).map(|region| region.to_string()).as_deref(), Ok(good));
        }
        for bad in ["", "EU", "eu west", "eu_west", "é", &"x".repeat(65)] {
            assert!(Region::parse(bad).is_err(), "{bad:?} was taken");
        }
        assert!(serde_json::from_str::<Region>("\"Eu\"").is_err());
    }
}
