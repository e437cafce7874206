//! Envelope encryption of secrets kept in the database (the private halves of room-token keys): each is
//! sealed with AES-256-GCM under a key-encryption key from `CONVENE_SECRET_KEY`, bound to its row, so a
//! database dump alone mints nothing. The sealed form names the key that sealed it, which lets a rotation
//! keep the old key under `CONVENE_PREVIOUS_SECRET_KEYS` while [`rewrap`](crate::meetings::room_tokens::rewrap) moves
//! every row to the new one. The same keys sign links that must outlive a process but not a deadline
//! (recordings' download links), with a key derived for that use alone.

use std::{fmt, io::Write, path::Path};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::platform::settings::{Backend, Settings};

/// Bytes in a key-encryption key (AES-256).
const KEY_BYTES: usize = 32;
/// Bytes in an AES-GCM nonce; random per sealing, which is safe far beyond the number of keys we seal.
const NONCE_BYTES: usize = 12;
/// The sealed form's prefix and version: `kek1:<key id>:<base64 of nonce and ciphertext>`.
const PREFIX: &str = "kek1";
/// The file the embedded default keeps its generated key in, inside the data directory.
pub const KEY_FILE: &str = "secret-key";

/// A key-encryption key, as configured (`CONVENE_SECRET_KEY`): 32 bytes, written in base64.
#[derive(Clone)]
pub struct SecretKey(Box<[u8; KEY_BYTES]>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

impl SecretKey {
    /// Parses the base64 text of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = data_encoding::BASE64.decode(text.trim().as_bytes()).ok().and_then(|bytes| bytes.try_into().ok());
        bytes.map(|bytes: [u8; KEY_BYTES]| Self(Box::new(bytes))).ok_or_else(|| {
            "must be 32 random bytes in base64; make one with `convene admin generate-secret-key`".to_owned()
        })
    }

    /// A new key from the operating system's randomness.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness available: {error}"))?;
        Ok(Self(Box::new(bytes)))
    }

    /// Its base64 text, as `CONVENE_SECRET_KEY` takes it.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(data_encoding::BASE64.encode(self.0.as_slice()))
    }

    /// A short public name for the key (a hash prefix), stored beside what it seals.
    fn id(&self) -> String {
        let digest =
            Sha256::new_with_prefix(b"convene key-encryption key id\0").chain_update(self.0.as_slice()).finalize();
        data_encoding::HEXLOWER.encode(&digest[..4])
    }
}

/// Why a sealed secret does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed by a key this process was not given.
    #[error(
        "a stored secret is sealed with secret key {0}, which this process does not have: set CONVENE_SECRET_KEY \
         (or CONVENE_PREVIOUS_SECRET_KEYS during a rotation) to the key that sealed it"
    )]
    UnknownKey(String),
    /// Changed, truncated, moved to another row, or not a sealed value at all.
    #[error("a stored secret is damaged or does not belong to its row")]
    Damaged,
}

/// The keys a process seals and opens with: the current one, and the previous ones during a rotation.
#[derive(Clone)]
pub struct Envelope {
    current: (String, Aes256Gcm),
    previous: Vec<(String, Aes256Gcm)>,
    /// Link-signing keys derived from the current key, then the previous ones.
    signing: Vec<[u8; KEY_BYTES]>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Envelope").field("current", &self.current.0).field("previous", &previous).finish()
    }
}

impl Envelope {
    /// Seals with `current`; opens with it or any of `previous`.
    pub fn new(current: &SecretKey, previous: &[SecretKey]) -> Self {
        let cipher = |key: &SecretKey| (key.id(), Aes256Gcm::new(key.0.as_slice().into()));
        let signing =
            std::iter::once(current).chain(previous).map(|key| mac(key.0.as_slice(), SIGNING_PURPOSE)).collect();
        Self { current: cipher(current), previous: previous.iter().map(cipher).collect(), signing }
    }

    /// A signature of `message` (HMAC-SHA-256 under the current key's link-signing key), hex.
    pub fn sign(&self, message: &str) -> String {
        let key = self.signing.first().copied().unwrap_or_default();
        data_encoding::HEXLOWER.encode(&mac(&key, message.as_bytes()))
    }

    /// Whether `signature` is [`sign`](Self::sign)'s for `message` under any known key (compared in constant
    /// time).
    pub fn verify(&self, message: &str, signature: &str) -> bool {
        let Ok(given) = data_encoding::HEXLOWER.decode(signature.as_bytes()) else { return false };
        self.signing.iter().any(|key| {
            let expected = mac(key, message.as_bytes());
            bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_slice(), given.as_slice()))
        })
    }

    /// The envelope for a serving process: `CONVENE_SECRET_KEY` when set; otherwise, for the embedded
    /// default (SQLite), the key kept in the data directory, generated on first start. A Postgres
    /// deployment must set it: a generated key there would live on one machine's disk beside nothing else.
    pub fn for_settings(settings: &Settings) -> anyhow::Result<Self> {
        let current = match (&settings.secret_key, settings.database_url.backend()) {
            (Some(key), _) => key.clone(),
            (None, Backend::Sqlite) => key_in_data_dir(&settings.data_dir)?,
            (None, Backend::Postgres) => anyhow::bail!(
                "CONVENE_SECRET_KEY is required with a Postgres database: it seals the private signing keys the \
                 database stores. Make one with `convene admin generate-secret-key` and keep it in your secret store"
            ),
        };
        Ok(Self::new(&current, &settings.previous_secret_keys))
    }

    /// Seals `secret` for the row `row`.
    pub fn seal(&self, row: Uuid, secret: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|error| anyhow::anyhow!("no randomness available: {error}"))?;
        let (id, cipher) = &self.current;
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: row.as_bytes() })
            .map_err(|_| anyhow::anyhow!("sealing a secret failed"))?;
        let mut body = nonce.to_vec();
        body.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}:{id}:{}", data_encoding::BASE64.encode(&body)))
    }

    /// Opens what [`seal`](Self::seal) made for the row `row`.
    pub fn open(&self, row: Uuid, sealed: &str) -> Result<SecretString, OpenError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(PREFIX), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(OpenError::Damaged);
        };
        let cipher = std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|(known, cipher)| (known == id).then_some(cipher))
            .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let body = data_encoding::BASE64.decode(body.as_bytes()).map_err(|_| OpenError::Damaged)?;
        if body.len() < NONCE_BYTES {
            return Err(OpenError::Damaged);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        let opened = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: row.as_bytes() })
            .map_err(|_| OpenError::Damaged)?;
        String::from_utf8(opened).map(SecretString::from).map_err(|_| OpenError::Damaged)
    }

    /// Whether `stored` is sealed with the current key (so a rewrap leaves it alone).
    pub fn is_current(&self, stored: &str) -> bool {
        stored.strip_prefix(PREFIX).and_then(|rest| rest.strip_prefix(':')).and_then(|rest| rest.split(':').next())
            == Some(self.current.0.as_str())
    }

    /// Opens a stored secret sealed with any known key, or a PEM stored in clear before sealing existed,
    /// and seals it again with the current key.
    pub fn reseal(&self, row: Uuid, stored: &str) -> Result<String, OpenError> {
        let secret = if stored.starts_with("-----BEGIN ") {
            SecretString::from(stored.to_owned())
        } else {
            self.open(row, stored)?
        };
        self.seal(row, secret.expose_secret()).map_err(|_| OpenError::Damaged)
    }
}

/// What the link-signing keys are derived for, so they sign nothing else.
const SIGNING_PURPOSE: &[u8] = b"convene link signing v1";

fn mac(key: &[u8], message: &[u8]) -> [u8; KEY_BYTES] {
    use hmac::Mac;
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC key"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Reads the embedded default's key from the data directory, creating it (owner-only) on first use.
fn key_in_data_dir(data_dir: &Path) -> anyhow::Result<SecretKey> {
    let path = data_dir.join(KEY_FILE);
    let fresh = SecretKey::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            writeln!(file, "{}", fresh.to_base64().expose_secret())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the secret key to {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated the secret key that seals signing keys; back it up with the database");
            Ok(fresh)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the secret key in {}", path.display()))?;
            SecretKey::parse(&text).map_err(|message| anyhow::anyhow!("the secret key in {} {message}", path.display()))
        }
        Err(error) => Err(error).with_context(|| format!("cannot create the secret key in {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::generate().expect("randomness")
    }

    #[test]
    fn sealed_secrets_open_only_for_their_row_and_key() {
        let (current, old) = (key(), key());
        let envelope = Envelope::new(&current, &[]);
        let row = Uuid::new_v4();
        let sealed = envelope.seal(row, "-----BEGIN PRIVATE KEY-----").expect("seals");
        assert!(!sealed.contains("PRIVATE"), "{sealed}");
        assert_eq!(envelope.open(row, &sealed).expect("opens").expose_secret(), "-----BEGIN PRIVATE KEY-----");
        assert_eq!(envelope.open(Uuid::new_v4(), &sealed).err(), Some(OpenError::Damaged), "bound to its row");
        let mut tampered = sealed.clone();
        tampered.replace_range(tampered.len() - 4.., "AAA=");
        assert_eq!(envelope.open(row, &tampered).err(), Some(OpenError::Damaged));
        for junk in
            ["", "kek1", "kek1::", "kek1:x:", "-----BEGIN PRIVATE KEY-----", &format!("kek1:{}:AAAA", current.id())]
        {
            assert!(envelope.open(row, junk).is_err(), "{junk:?}");
        }
        let stranger = Envelope::new(&old, &[]);
        assert_eq!(stranger.open(row, &sealed).err(), Some(OpenError::UnknownKey(current.id())));
        assert!(stranger.open(row, &sealed).unwrap_err().to_string().contains("CONVENE_PREVIOUS_SECRET_KEYS"));
    }

    #[test]
    fn signatures_verify_for_their_message_only_and_survive_a_rotation() {
        let (old, new) = (key(), key());
        let before = Envelope::new(&old, &[]);
        let signature = before.sign("recordings/1/recording.mp4/1700000000");
        assert!(before.verify("recordings/1/recording.mp4/1700000000", &signature));
        assert!(!before.verify("recordings/1/recording.mp4/1700000001", &signature));
        assert!(!before.verify("recordings/1/recording.mp4/1700000000", "not hex"));
        assert!(!Envelope::new(&new, &[]).verify("recordings/1/recording.mp4/1700000000", &signature));
        let rotated = Envelope::new(&new, &[old]);
        assert!(
            rotated.verify("recordings/1/recording.mp4/1700000000", &signature),
            "old links work until they expire"
        );
        assert_ne!(rotated.sign("m"), before.sign("m"), "new links use the new key");
    }

    #[test]
    fn a_rotation_opens_with_the_previous_key_and_reseals_with_the_new_one() {
        let (old, new) = (key(), key());
        let row = Uuid::new_v4();
        let sealed_by_old = Envelope::new(&old, &[]).seal(row, "secret").expect("seals");
        let rotating = Envelope::new(&new, &[old]);
        assert!(!rotating.is_current(&sealed_by_old));
        assert_eq!(rotating.open(row, &sealed_by_old).expect("opens with the previous key").expose_secret(), "secret");
        let resealed = rotating.reseal(row, &sealed_by_old).expect("reseals");
        assert!(rotating.is_current(&resealed));
        assert_eq!(Envelope::new(&new, &[]).open(row, &resealed).expect("the new key alone").expose_secret(), "secret");
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQ==\n-----END PRIVATE KEY-----\n";
        let from_clear = rotating.reseal(row, pem).expect("seals a PEM stored in clear");
        assert_eq!(rotating.open(row, &from_clear).expect("opens").expose_secret(), pem);
        assert_eq!(rotating.reseal(row, "neither sealed nor PEM"), Err(OpenError::Damaged));
    }

    #[test]
    fn keys_parse_from_base64_and_never_print() {
        let key = key();
        let text = key.to_base64();
        let parsed = SecretKey::parse(text.expose_secret()).expect("parses its own text");
        assert_eq!(parsed.id(), key.id());
        assert!(!format!("{key:?}").contains(text.expose_secret()));
        for bad in ["", "not base64!", "AAAA", &data_encoding::BASE64.encode(&[0u8; 31])] {
            assert!(SecretKey::parse(bad).unwrap_err().contains("generate-secret-key"), "{bad:?}");
        }
    }

    #[test]
    fn postgres_deployments_must_bring_their_key_and_the_embedded_default_makes_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = |database: &str| {
            let env = [
                ("CONVENE_DATA_DIR", dir.path().to_string_lossy().into_owned()),
                ("CONVENE_DATABASE_URL", database.to_owned()),
            ];
            let env = env.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
            Settings::load(&env).expect("loads").settings
        };
        let refused = Envelope::for_settings(&settings("postgres://db.internal/convene")).expect_err("no key");
        assert!(refused.to_string().contains("CONVENE_SECRET_KEY is required"), "{refused}");
        assert!(!dir.path().join(KEY_FILE).exists(), "nothing generated for Postgres");
        let sqlite = format!("sqlite://{}/convene.db?mode=rwc", dir.path().display());
        Envelope::for_settings(&settings(&sqlite)).expect("the embedded default makes its own");
        assert!(dir.path().join(KEY_FILE).is_file());
    }

    #[test]
    fn the_embedded_default_generates_its_key_once_for_the_owner_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = key_in_data_dir(dir.path()).expect("generated");
        let again = key_in_data_dir(dir.path()).expect("read back");
        assert_eq!(first.id(), again.id(), "the same key on every start");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(KEY_FILE), "garbage").expect("write");
        let error = key_in_data_dir(dir.path()).expect_err("a damaged key file is refused, not replaced");
        assert!(error.to_string().contains(KEY_FILE), "{error}");
    }
}
