//! Password rules and hashing. Hashing is Argon2id at the crate's defaults, which are OWASP's parameters
//! (19 MiB, 2 passes, 1 lane); it costs tens of milliseconds of CPU, so it runs off the async runtime.

use argon2::{Argon2, PasswordHasher};
use secrecy::{ExposeSecret, SecretString};

/// NIST SP 800-63B's minimum for user-chosen passwords.
pub const MIN_LEN: usize = 8;
/// Long enough for any passphrase, short enough to bound hashing work.
pub const MAX_LEN: usize = 128;

/// Passwords that appear at the top of every breach list.
const COMMON: &[&str] = &["password", "12345678", "123456789", "1234567890", "qwertyui", "iloveyou", "11111111"];

/// A password that passed the rules, still secret.
#[derive(Debug)]
pub struct Password(SecretString);

/// Why a password was refused; shown to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Too short.
    #[error("the password is too short: use at least {MIN_LEN} characters")]
    TooShort,
    /// Too long.
    #[error("the password is too long: use at most {MAX_LEN} characters")]
    TooLong,
    /// Guessable.
    #[error("the password is one of the most common passwords; choose another")]
    Common,
    /// The same as the email address it protects.
    #[error("the password must not be the email address")]
    SameAsEmail,
}

impl Password {
    /// Applies the rules: length, not a top breached password, not the account's own email address.
    pub fn parse(text: SecretString, email: &str) -> Result<Self, WeakPassword> {
        let exposed = text.expose_secret();
        let length = exposed.chars().count();
        if length < MIN_LEN {
            return Err(WeakPassword::TooShort);
        }
        if length > MAX_LEN {
            return Err(WeakPassword::TooLong);
        }
        let lower = exposed.to_lowercase();
        let one_repeated_char = exposed.chars().all(|c| exposed.starts_with(c));
        if one_repeated_char || COMMON.contains(&lower.as_str()) {
            return Err(WeakPassword::Common);
        }
        if lower == email.to_lowercase() {
            return Err(WeakPassword::SameAsEmail);
        }
        Ok(Self(text))
    }

    /// Hashes on a blocking thread and returns the PHC string.
    pub async fn hash(self) -> anyhow::Result<String> {
        let hash = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .hash_password(self.0.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| anyhow::anyhow!("password hashing failed: {error}"))
        })
        .await??;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Password, WeakPassword> {
        Password::parse(SecretString::from(text.to_owned()), "ann@example.com")
    }

    #[test]
    fn rules_say_why_a_password_is_refused() {
        assert_eq!(parse("short").err(), Some(WeakPassword::TooShort));
        assert_eq!(parse(&"x".repeat(MAX_LEN + 1)).err(), Some(WeakPassword::TooLong));
        assert_eq!(parse("Password").err(), Some(WeakPassword::Common));
        assert_eq!(parse("zzzzzzzzzz").err(), Some(WeakPassword::Common));
        assert_eq!(parse("ANN@example.com").err(), Some(WeakPassword::SameAsEmail));
        assert!(parse("correct horse battery").is_ok());
        assert!(parse(&"éa".repeat(MAX_LEN / 2)).is_ok(), "length counts characters, not bytes");
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_with_owasp_parameters() {
        let hash = parse("correct horse battery").expect("accepted").hash().await.expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    }
}
