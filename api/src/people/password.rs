//! Password rules and hashing. Hashing is Argon2id at the crate's defaults, which are OWASP's parameters
//! (19 MiB, 2 passes, 1 lane); it costs tens of milliseconds of CPU and 19 MiB of memory, so it runs off the
//! async runtime, at most one per core at a time, with a bounded queue: a flood of sign-ins or sign-ups
//! gets [`Busy`] (answered 503 with `Retry-After`) instead of taking the machine's memory and every
//! other request's latency.

use std::sync::{
    Arc, LazyLock, OnceLock,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

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

    /// Hashes through the gate and returns the PHC string.
    pub async fn hash(self) -> anyhow::Result<String> {
        GATE.run(move || {
            Argon2::default()
                .hash_password(self.0.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| anyhow::anyhow!("password hashing failed: {error}"))
        })
        .await?
    }
}

/// Checks a password against a stored PHC hash through the gate. Without a stored hash (no such account) it
/// still verifies once, against a dummy, so timing does not reveal which accounts exist.
pub async fn verify(stored: Option<String>, password: SecretString) -> anyhow::Result<bool> {
    let exists = stored.is_some();
    let verified = GATE
        .run(move || {
            let stored = stored.unwrap_or_else(|| dummy_hash().to_owned());
            PasswordHash::new(&stored)
                .map(|hash| Argon2::default().verify_password(password.expose_secret().as_bytes(), &hash).is_ok())
                .unwrap_or(false)
        })
        .await?;
    Ok(exists && verified)
}

/// A valid Argon2id hash of a fixed password, verified against when the account does not exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"no account has this password")
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// Refused because as many hashes are queued as the gate admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy checking passwords; try again in a moment")]
pub struct Busy;

/// Seconds a refused client is told to wait: the queue drains in well under that.
pub const BUSY_RETRY_AFTER_SECS: u64 = 2;

/// Whether `error`, or anything it was caused by, is [`Busy`].
pub fn is_busy(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |error| error.source()).any(|error| error.is::<Busy>())
}

/// Hashes waiting per core beyond the ones running: at ≈ 50 ms a hash, the last waits under a second.
const QUEUED_PER_CORE: usize = 16;

/// The process's one gate: hashing is a machine-wide cost.
static GATE: LazyLock<HashingGate> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    HashingGate::new(cores, cores * QUEUED_PER_CORE)
});

/// Runs at most `running` hashes at once on blocking threads and admits at most `queued` more to wait.
struct HashingGate {
    running: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    capacity: usize,
}

/// Gives back a place in the gate once the admitted hash is over (finished, failed, or cancelled before it
/// started). A caller that goes away mid-hash does not free the place: the blocking thread still works.
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashingGate {
    fn new(running: usize, queued: usize) -> Self {
        Self {
            running: Arc::new(Semaphore::new(running)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: running + queued,
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy.into());
        }
        let admission = Admission(self.admitted.clone());
        let permit = self.running.clone().acquire_owned().await?;
        // The place and the permit go with the work, so they are held until the hash itself ends.
        Ok(tokio::task::spawn_blocking(move || {
            let _held = (admission, permit);
            work()
        })
        .await?)
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
    async fn the_gate_runs_its_share_queues_a_bounded_number_and_refuses_the_rest() {
        let gate = std::sync::Arc::new(HashingGate::new(1, 1));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(move || held.recv().is_ok()).await }
        });
        let queued = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(|| "second").await }
        });
        // Both are admitted once the counter says so; the third finds the gate full.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while gate.admitted.load(Ordering::Acquire) < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("both calls admitted");
        let refused = gate.run(|| "third").await.expect_err("the gate is full");
        assert!(is_busy(refused.as_ref()), "{refused}");
        release.send(()).expect("the running hash waits");
        assert!(running.await.expect("joins").expect("ran"));
        assert_eq!(queued.await.expect("joins").expect("ran after the first"), "second");
        assert_eq!(gate.admitted.load(Ordering::Acquire), 0, "every place given back");
        assert_eq!(gate.run(|| "fourth").await.expect("room again"), "fourth");
    }

    #[tokio::test]
    async fn verification_is_true_only_for_the_right_password_of_an_existing_account() {
        let hash = parse("correct horse battery").expect("accepted").hash().await.expect("hashes");
        let secret = |text: &str| SecretString::from(text.to_owned());
        assert!(verify(Some(hash.clone()), secret("correct horse battery")).await.expect("verifies"));
        assert!(!verify(Some(hash), secret("wrong horse battery")).await.expect("verifies"));
        assert!(!verify(None, secret("no account has this password")).await.expect("verifies"));
        assert!(!verify(Some("not a hash".into()), secret("x")).await.expect("verifies"));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_with_owasp_parameters() {
        let hash = parse("correct horse battery").expect("accepted").hash().await.expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    }
}
