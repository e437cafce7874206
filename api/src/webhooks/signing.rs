//! Signatures as the Standard Webhooks specification has them: a secret `whsec_<base64>` per endpoint, and
//! each delivery's `webhook-signature: v1,<base64 of HMAC-SHA256("{webhook-id}.{webhook-timestamp}.{body}")>`
//! under the secret's bytes, so receivers verify with any of the specification's libraries.

use data_encoding::BASE64;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

/// The prefix of a secret's text.
const PREFIX: &str = "whsec_";
/// Random bytes in a new secret (as Svix makes them).
const SECRET_BYTES: usize = 24;

/// An endpoint's signing secret.
pub struct WebhookSecret(SecretBox<Vec<u8>>);

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness available: {error}"))?;
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    /// Reads `whsec_<base64>` (as stored, sealed, and shown once).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = BASE64.decode(text.strip_prefix(PREFIX)?.as_bytes()).ok()?;
        (16..=64).contains(&bytes.len()).then(|| Self(SecretBox::new(Box::new(bytes))))
    }

    /// `whsec_<base64>`, to store sealed and to show the endpoint's owner once.
    pub fn to_text(&self) -> SecretString {
        SecretString::from(format!("{PREFIX}{}", BASE64.encode(self.0.expose_secret())))
    }

    /// The `webhook-signature` header of message `id`'s `body` sent at `timestamp` (Unix seconds).
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        format!("v1,{}", BASE64.encode(&mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_specification_s_example() {
        // The example in the Standard Webhooks specification (and its libraries' tests).
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, r#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_read_back_as_written_and_bad_ones_are_refused() {
        let secret = WebhookSecret::generate().unwrap();
        let text = secret.to_text();
        assert!(text.expose_secret().starts_with("whsec_") && text.expose_secret().len() == 6 + 32);
        let again = WebhookSecret::parse(text.expose_secret()).unwrap();
        assert_eq!(again.sign("msg_1", 1, "{}"), secret.sign("msg_1", 1, "{}"));
        for bad in ["", "whsec_", "whsec_!!!!", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_AAAA"] {
            assert!(WebhookSecret::parse(bad).is_none(), "{bad}");
        }
    }
}
