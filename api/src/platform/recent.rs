//! Answers kept for a moment: a busy backend's lookups (its API key, the signing key it mints with) read the
//! database once a second rather than on every request (each read is a hand-off to a database thread and
//! back, which cost more than the rest of a mint). What this process changes it forgets at once; what
//! another replica changes is seen here within [`FRESH_FOR`].

use std::{
    hash::Hash,
    num::NonZeroUsize,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long an answer is used without asking the database again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Answers by key, each used for a while (in the product, [`FRESH_FOR`]); least recently used entries leave
/// first.
pub struct Recent<Key: Hash + Eq, Value> {
    entries: Mutex<lru::LruCache<Key, (Instant, Value)>>,
    fresh_for: Duration,
}

impl<Key: Hash + Eq, Value: Clone> Recent<Key, Value> {
    /// Room for `capacity` answers, each used for `fresh_for`.
    pub fn new(capacity: usize, fresh_for: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self { entries: Mutex::new(lru::LruCache::new(capacity)), fresh_for }
    }

    /// The answer for `key`, if one is fresh.
    pub fn get(&self, key: &Key) -> Option<Value> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.get(key) {
            Some((at, value)) if at.elapsed() < self.fresh_for => Some(value.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` as the answer for `key` from now.
    pub fn put(&self, key: Key, value: Value) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).put(key, (Instant::now(), value));
    }

    /// Drops the answer for `key` (it changed here).
    pub fn forget(&self, key: &Key) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_used_while_fresh_forgotten_on_change_and_the_cache_stays_bounded() {
        let stale_at_once = Recent::new(2, Duration::ZERO);
        stale_at_once.put("a", 1);
        assert_eq!(stale_at_once.get(&"a"), None, "an answer past its time is asked again");
        let recent = Recent::new(2, Duration::from_secs(3600));
        recent.put("a", 1);
        assert_eq!(recent.get(&"a"), Some(1));
        recent.put("a", 2);
        recent.forget(&"a");
        assert_eq!(recent.get(&"a"), None, "forgotten when it changed");
        for (key, value) in [("a", 1), ("b", 2), ("c", 3)] {
            recent.put(key, value);
        }
        assert_eq!((recent.get(&"a"), recent.get(&"c")), (None, Some(3)), "the least recently used left");
    }
}
