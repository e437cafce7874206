//! In-process fixed-window rate limits (login attempts per account and per address, verification mail
//! resends). One process is the unit: behind several `convene api` processes each keeps its own count,
//! which still bounds guessing per process.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Keys tracked before expired windows are swept; bounds memory under a flood of distinct keys.
const SWEEP_AT: usize = 10_000;

/// Counts events per key in fixed windows.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// Counts one event for `key`; `false` when the key already had `limit` events in the current window.
    pub fn allow(&self, key: &str, limit: u32, window: Duration, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (started, _)| now.duration_since(*started) < window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }
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
        assert!(limiter.allow("bob", 3, window, start), "keys are independent");
        assert!(limiter.allow("ann", 3, window, start + window), "a new window starts afresh");
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let limiter = RateLimiter::default();
        let window = Duration::from_secs(1);
        let start = Instant::now();
        for index in 0..SWEEP_AT {
            limiter.allow(&index.to_string(), 1, window, start);
        }
        limiter.allow("late", 1, window, start + Duration::from_secs(2));
        let size = limiter.windows.lock().map(|windows| windows.len()).unwrap_or_default();
        assert_eq!(size, 1, "expired windows were swept");
    }
}
