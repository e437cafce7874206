//! In-process fixed-window rate limits (sign-in attempts per account and per client, mail resends, room
//! passwords). One process is the unit: behind several `convene api` processes each keeps its own count,
//! which still bounds guessing per process.
//!
//! Memory is bounded whatever callers pass: keys are stored as a 128-bit digest, never as given (an
//! attacker's 256 KB "address" costs 16 bytes), and at most `capacity` keys are kept, the least recently
//! used going first. Eviction can forget a key's count early; callers check the per-client limit first, so
//! one client cannot churn through enough keys to reset someone else's.

use std::{
    num::NonZeroUsize,
    sync::Mutex,
    time::{Duration, Instant},
};

use lru::LruCache;
use sha2::{Digest, Sha256};

/// The window of the limits on what sends mail (sign-ups, invitations, meeting mail), in seconds.
pub const MAIL_WINDOW_SECS: u64 = 3600;
/// The same as a duration.
pub const MAIL_WINDOW: Duration = Duration::from_secs(MAIL_WINDOW_SECS);

/// Keys kept by default: about 8 MB at most.
const DEFAULT_CAPACITY: usize = 100_000;

/// A key as stored: the first 128 bits of its SHA-256.
type KeyDigest = [u8; 16];

/// Counts events per key in fixed windows.
#[derive(Debug)]
pub struct RateLimiter {
    windows: Mutex<LruCache<KeyDigest, (Instant, u32)>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::with_capacity(NonZeroUsize::new(DEFAULT_CAPACITY).unwrap_or(NonZeroUsize::MIN))
    }
}

impl RateLimiter {
    /// A limiter that keeps at most `capacity` keys.
    pub fn with_capacity(capacity: NonZeroUsize) -> Self {
        Self { windows: Mutex::new(LruCache::new(capacity)) }
    }

    /// Counts one event for `key`; `false` when the key already had `limit` events in the current window.
    pub fn allow(&self, key: &str, limit: u32, window: Duration, now: Instant) -> bool {
        let digest = digest(key);
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = windows.get_or_insert_mut(digest, || (now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Whether `key` is still within `limit` in the current window, without counting an event (for limits
    /// on failures, counted with [`RateLimiter::allow`] once they happen).
    pub fn allows(&self, key: &str, limit: u32, window: Duration, now: Instant) -> bool {
        let windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        windows
            .peek(&digest(key))
            .is_none_or(|(started, count)| now.duration_since(*started) >= window || *count < limit)
    }
}

fn digest(key: &str) -> KeyDigest {
    let hash = Sha256::digest(key.as_bytes());
    let mut digest = KeyDigest::default();
    digest.copy_from_slice(&hash[..16]);
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_per_window_and_others_are_unaffected() {
        let limiter = RateLimiter::default();
        let window = Duration::from_secs(60);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.allow("ann", 3, window, start));
        }
        assert!(!limiter.allow("ann", 3, window, start + Duration::from_secs(59)));
        assert!(!limiter.allows("ann", 3, window, start + Duration::from_secs(59)));
        assert!(limiter.allows("ann", 3, window, start + window), "peeking sees the window end");
        assert!(limiter.allow("bob", 3, window, start), "keys are independent");
        assert!(limiter.allow("ann", 3, window, start + window), "a new window starts afresh");
    }

    #[test]
    fn memory_stays_bounded_under_many_long_keys() {
        let capacity = NonZeroUsize::new(1_000).unwrap_or(NonZeroUsize::MIN);
        let limiter = RateLimiter::with_capacity(capacity);
        let window = Duration::from_secs(900);
        let start = Instant::now();
        let long = "x".repeat(256 * 1024);
        for index in 0..5_000 {
            limiter.allow(&format!("{index}{long}"), 1, window, start);
        }
        let windows = limiter.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(windows.len(), 1_000, "no more keys than the capacity, each stored as a digest");
    }
}
