//! Phone dial-in vocabulary: the numbers callers dial (E.164), the country they are in, and a meeting's
//! PIN, each parsed once from what an operator or a caller typed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A phone number in E.164 form (`+` and 8 to 15 digits, the first not 0), as trunks deliver called
/// numbers and `tel:` links want them. People's spaces, hyphens, dots and brackets are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses `+1 (555) 123-4567` or `+15551234567`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let refuse = || ParseError::PhoneNumber(text.trim().chars().take(40).collect());
        let trimmed = text.trim();
        let rest = trimmed.strip_prefix('+').ok_or_else(refuse)?;
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(refuse()),
            }
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(refuse());
        }
        Ok(Self(format!("+{digits}")))
    }

    /// The number a trunk delivered as a SIP request URI's user part: E.164 with or without its `+`.
    pub fn from_dialled(user: &str) -> Result<Self, ParseError> {
        if user.starts_with('+') { Self::parse(user) } else { Self::parse(&format!("+{user}")) }
    }

    /// The number as `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four digits, which is how a caller shows in a meeting without a directory name.
    pub fn last_four(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<PhoneNumber> for String {
    fn from(number: PhoneNumber) -> Self {
        number.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A country as ISO 3166-1 alpha-2 (`US`, `GB`, `DE`), which Jitsi's number list keys numbers by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses two letters, in either case.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        match text.trim().as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(ParseError::Country(text.trim().chars().take(10).collect())),
        }
    }

    /// The two capital letters.
    pub fn as_str(&self) -> &str {
        // Two ASCII letters, checked by `parse`.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl TryFrom<String> for CountryCode {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<CountryCode> for String {
    fn from(country: CountryCode) -> Self {
        country.as_str().to_owned()
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A meeting's PIN: the digits a caller types after dialling a number. One namespace for the whole
/// deployment (a number may serve many tenants' meetings), so it is long enough that guessing one in three
/// tries is hopeless.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MeetingPin(String);

impl MeetingPin {
    /// Digits in a PIN.
    pub const LEN: usize = 9;

    /// Parses nine digits, with any spaces people put between groups.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let digits: String = text.chars().filter(|c| *c != ' ').collect();
        if digits.len() == Self::LEN && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err(ParseError::Pin)
        }
    }

    /// A PIN from a random number (any `u64`; it is reduced to nine digits, the first never 0 so the PIN
    /// reads the same as a number).
    pub fn from_random(random: u64) -> Self {
        let span = 9 * 10u64.pow(Self::LEN as u32 - 1);
        Self((10u64.pow(Self::LEN as u32 - 1) + random % span).to_string())
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// In groups of three, as people read it out: `123 456 789`.
    pub fn grouped(&self) -> String {
        let (first, rest) = self.0.split_at(3);
        let (second, third) = rest.split_at(3);
        format!("{first} {second} {third}")
    }

    /// What a phone dials in one go: the number, two pauses, the PIN and `#` (`+15551234567,,123456789#`).
    pub fn dial_string(&self, number: &PhoneNumber) -> String {
        format!("{number},,{}#", self.0)
    }
}

impl TryFrom<String> for MeetingPin {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<MeetingPin> for String {
    fn from(pin: MeetingPin) -> Self {
        pin.0
    }
}

impl fmt::Display for MeetingPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_kept_in_e164_and_anything_else_is_refused() {
        let number = PhoneNumber::parse(" +1 (555) 123-4567 ").expect("a US number");
        assert_eq!((number.as_str(), number.last_four()), ("+15551234567", "4567"));
        assert_eq!(PhoneNumber::parse("+44.20.7946.0958").expect("a UK number").as_str(), "+442079460958");
        for bad in ["15551234567", "+0123456789", "+1555", "+1234567890123456", "+1 555 CALL NOW", "", "+"] {
            assert!(matches!(PhoneNumber::parse(bad), Err(ParseError::PhoneNumber(_))), "{bad}");
        }
    }

    #[test]
    fn trunks_may_leave_out_the_plus_but_not_send_anything_else() {
        for dialled in ["15551234567", "+15551234567"] {
            assert_eq!(PhoneNumber::from_dialled(dialled).expect("a number").as_str(), "+15551234567");
        }
        for bad in ["", "++15551234567", "alice", "1555", "sip:15551234567"] {
            assert!(PhoneNumber::from_dialled(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn countries_are_two_letters() {
        assert_eq!(CountryCode::parse("gb").expect("GB").as_str(), "GB");
        for bad in ["", "G", "GBR", "1A", "É1"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pins_are_nine_digits_read_in_threes_and_dialled_after_two_pauses() {
        let pin = MeetingPin::parse("123 456 789").expect("spaces are fine");
        assert_eq!((pin.as_str(), pin.grouped()), ("123456789", "123 456 789".to_owned()));
        let number = PhoneNumber::parse("+15551234567").expect("number");
        assert_eq!(pin.dial_string(&number), "+15551234567,,123456789#");
        for bad in ["12345678", "1234567890", "12345678a", ""] {
            assert_eq!(MeetingPin::parse(bad), Err(ParseError::Pin), "{bad}");
        }
        for random in [0, 1, u64::MAX, 899_999_999, 900_000_000] {
            let pin = MeetingPin::from_random(random);
            assert!(pin.as_str().len() == 9 && !pin.as_str().starts_with('0'), "{random}: {pin}");
            assert_eq!(MeetingPin::parse(pin.as_str()).as_ref(), Ok(&pin));
        }
    }
}
