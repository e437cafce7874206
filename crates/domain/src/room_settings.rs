//! How a room behaves, in one type: the API reads and writes it, the database row maps to it, the site's
//! forms fill it and the media node's focus enforces it.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The highest video a room carries. Senders capture at most this, and the top simulcast layer is it.
// Read through `FromStr`, whose message names the field: serde's own would name only the variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MaxResolution {
    /// 1280×720.
    #[default]
    #[serde(rename = "720p")]
    P720,
    /// 1920×1080.
    #[serde(rename = "1080p")]
    P1080,
}

impl MaxResolution {
    /// Every value, as the API spells it.
    pub const ALL: [Self; 2] = [Self::P720, Self::P1080];

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P720 => "720p",
            Self::P1080 => "1080p",
        }
    }

    /// The frame height in pixels.
    pub fn height(self) -> u32 {
        match self {
            Self::P720 => 720,
            Self::P1080 => 1080,
        }
    }
}

/// A resolution that is not one a room can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("max_resolution must be 720p or 1080p, not `{0}`")]
pub struct UnknownResolution(String);

impl FromStr for MaxResolution {
    type Err = UnknownResolution;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|value| value.as_str() == text).ok_or_else(|| {
            // Only a prefix goes into the message: it is echoed back to whoever sent it.
            UnknownResolution(text.chars().take(16).collect())
        })
    }
}

impl TryFrom<String> for MaxResolution {
    type Error = UnknownResolution;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<MaxResolution> for &'static str {
    fn from(value: MaxResolution) -> Self {
        value.as_str()
    }
}

impl fmt::Display for MaxResolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A room's settings. Absent fields take their defaults: everything off, 720p.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Settings))]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    /// Participants wait in a lobby until a moderator admits them.
    #[serde(default)]
    pub lobby: bool,
    /// A password participants type to enter.
    #[serde(default)]
    pub password: Option<String>,
    /// A ceiling on participants (2–100).
    #[serde(default)]
    pub max_participants: Option<i32>,
    /// People without an account may join with a display name.
    #[serde(default)]
    pub guests_allowed: bool,
    /// Moderators may record.
    #[serde(default)]
    pub recording_allowed: bool,
    /// Recording starts by itself when the first person comes in (where the plan includes recording).
    #[serde(default)]
    pub auto_record: bool,
    /// Media is end-to-end encrypted.
    #[serde(default)]
    pub end_to_end_encryption: bool,
    /// Stereo, high-bitrate Opus.
    #[serde(default)]
    pub high_fidelity_audio: bool,
    /// `720p` (default) or `1080p`.
    #[serde(default)]
    pub max_resolution: MaxResolution,
    /// Participants keep the display names their meeting links give them.
    #[serde(default)]
    pub fixed_display_names: bool,
}

impl RoomSettings {
    /// The settings that are on, in words for people ("Lobby", "At most 10 participants", "Video up to
    /// 720p"); the resolution always.
    pub fn descriptions(&self) -> Vec<String> {
        [
            (self.lobby, "Lobby"),
            (self.password.is_some(), "Password"),
            (self.guests_allowed, "Guests may join by name"),
            (self.recording_allowed, "Recording allowed"),
            (self.auto_record, "Recorded automatically"),
            (self.end_to_end_encryption, "End-to-end encryption"),
            (self.high_fidelity_audio, "High-fidelity audio"),
            (self.fixed_display_names, "Names from the invitations"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, label)| label.to_owned())
        .chain(self.max_participants.map(|max| format!("At most {max} participants")))
        .chain([format!("Video up to {}", self.max_resolution)])
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_read_and_write_as_the_api_spells_them() {
        for value in MaxResolution::ALL {
            assert_eq!(value.as_str().parse::<MaxResolution>(), Ok(value));
            assert_eq!(serde_json::to_string(&value).unwrap(), format!("\"{value}\""));
        }
        assert_eq!(MaxResolution::P1080.height(), 1080);
        let error = serde_json::from_str::<RoomSettings>(r#"{"max_resolution":"4k"}"#).unwrap_err();
        assert!(error.to_string().contains("max_resolution must be 720p or 1080p, not `4k`"), "{error}");
        assert!("x".repeat(10_000).parse::<MaxResolution>().unwrap_err().to_string().len() < 80);
    }

    #[test]
    fn absent_settings_take_the_defaults_and_unknown_ones_are_refused() {
        let settings: RoomSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, RoomSettings::default());
        assert_eq!(settings.max_resolution, MaxResolution::P720);
        assert!(serde_json::from_str::<RoomSettings>(r#"{"colour":"blue"}"#).is_err());
    }

    #[test]
    fn descriptions_name_what_is_on_and_always_the_resolution() {
        assert_eq!(RoomSettings::default().descriptions(), ["Video up to 720p"]);
        let settings = RoomSettings {
            lobby: true,
            max_participants: Some(10),
            max_resolution: MaxResolution::P1080,
            ..RoomSettings::default()
        };
        assert_eq!(settings.descriptions(), ["Lobby", "At most 10 participants", "Video up to 1080p"]);
    }
}
