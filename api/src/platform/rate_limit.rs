//! Fixed-window rate limits, in two kinds. [`SharedLimiter`] keeps its counts in the database: the
//! control plane's limits (sign-in attempts per account and per client, mail sent on someone's behalf), so
//! every replica behind a load balancer counts against the same limit and counts outlive restarts.
//! [`RateLimiter`] counts in the process: the media node's room-password guesses, where the node has no
//! database and a room lives on one node.
//!
//! Keys are stored as a 128-bit digest, never as given (an attacker's 256 KB "address" costs 16 bytes).
//! In the process at most `capacity` keys are kept, the least recently used going first: eviction can
//! forget a key's count early, so callers check the per-client limit first, and one client cannot churn
//! through enough keys to reset someone else's. In the database, windows are swept a day after they start.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use lru::LruCache;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use sha2::{Digest, Sha256};

use crate::entities::rate_limit_window;

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

/// Windows in the database are deleted this long after they start: longer than any window callers use.
const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// One call in this many, per process, sweeps the windows past [`RETENTION`].
const SWEEP_EVERY: u32 = 256;

/// Counts events per key in fixed windows of at most a day, in the database.
#[derive(Debug, Clone)]
pub struct SharedLimiter {
    db: DatabaseConnection,
    calls: Arc<AtomicU32>,
}

impl SharedLimiter {
    /// Limits counted in `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db, calls: Arc::default() }
    }

    /// Counts one event for `key`; `false` when the key already had `limit` events in the current window.
    pub async fn allow(&self, key: &str, limit: u32, window: Duration) -> Result<bool, DbErr> {
        self.allow_at(key, limit, window, Utc::now()).await
    }

    /// Whether `key` already had `limit` events in the current window (counting nothing): for limits that
    /// count only failures, checked before trying.
    pub async fn exhausted(&self, key: &str, limit: u32, window: Duration) -> Result<bool, DbErr> {
        let since = Utc::now().timestamp_millis().saturating_sub(millis(window));
        let key = data_encoding::HEXLOWER.encode(&digest(key));
        let current = rate_limit_window::Entity::find_by_id(key).one(&self.db).await?;
        Ok(current.is_some_and(|window| window.started_ms > since && u32::try_from(window.count).unwrap_or(0) >= limit))
    }

    async fn allow_at(&self, key: &str, limit: u32, window: Duration, now: DateTime<Utc>) -> Result<bool, DbErr> {
        use rate_limit_window::{Column, Entity};
        let now_ms = now.timestamp_millis();
        let key = data_encoding::HEXLOWER.encode(&digest(key));
        // One statement starts a window afresh once it has ended, or counts the event in it, so replicas
        // counting the same key at once never lose an event.
        let ended = Expr::col((Entity, Column::StartedMs)).lte(now_ms.saturating_sub(millis(window)));
        let count = Expr::case(ended.clone(), 1).finally(Expr::col((Entity, Column::Count)).add(1));
        let started = Expr::case(ended, now_ms).finally(Expr::col((Entity, Column::StartedMs)));
        let first = rate_limit_window::ActiveModel { key: Set(key.clone()), started_ms: Set(now_ms), count: Set(1) };
        Entity::insert(first)
            .on_conflict(
                OnConflict::column(Column::Key)
                    .values([(Column::Count, count.into()), (Column::StartedMs, started.into())])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        // Read after the write: another replica's event in between makes this one count it too, which errs
        // on the side of refusing.
        let counted = Entity::find_by_id(key).one(&self.db).await?.map_or(1, |window| window.count);
        if self.calls.fetch_add(1, Ordering::Relaxed).is_multiple_of(SWEEP_EVERY) {
            let expired = now_ms.saturating_sub(millis(RETENTION));
            Entity::delete_many().filter(Column::StartedMs.lt(expired)).exec(&self.db).await?;
        }
        Ok(u32::try_from(counted).is_ok_and(|counted| counted <= limit))
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn digest(key: &str) -> KeyDigest {
    let hash = Sha256::digest(key.as_bytes());
    let mut digest = KeyDigest::default();
    digest.copy_from_slice(&hash[..16]);
    digest
}

#[cfg(test)]
mod tests {
    use convene_migrations::{Migrator, MigratorTrait};
    use sea_orm::{ConnectOptions, Database, PaginatorTrait};

    use super::*;

    async fn shared() -> SharedLimiter {
        // One connection: each connection to `:memory:` is a database of its own.
        let db = Database::connect(ConnectOptions::new("sqlite::memory:").max_connections(1).to_owned())
            .await
            .expect("an in-memory database");
        Migrator::up(&db, None).await.expect("migrated");
        SharedLimiter::new(db)
    }

    #[tokio::test]
    async fn a_shared_key_gets_its_limit_per_window_across_limiters_and_old_windows_are_swept() {
        let (first, window) = (shared().await, Duration::from_secs(60));
        // Another replica: the same database, a limiter of its own.
        let second = SharedLimiter { db: first.db.clone(), calls: Arc::default() };
        let start = Utc::now();
        let at = |seconds: i64| start + chrono::TimeDelta::seconds(seconds);
        for limiter in [&first, &second, &first] {
            assert!(limiter.allow_at("ann", 3, window, start).await.unwrap());
        }
        assert!(!second.allow_at("ann", 3, window, at(59)).await.unwrap(), "the other replica counted too");
        assert!(first.allow_at("bob", 3, window, at(59)).await.unwrap(), "keys are independent");
        assert!(second.allow_at("ann", 3, window, at(60)).await.unwrap(), "a new window starts afresh");
        assert!(second.allow_at("ann", 3, window, at(61)).await.unwrap());

        // Every 256th call sweeps windows that started over a day before it.
        let windows = || rate_limit_window::Entity::find().count(&first.db);
        assert_eq!(windows().await.unwrap(), 2);
        let tomorrow = at(24 * 3600 + 61);
        for index in 0..SWEEP_EVERY {
            second.allow_at(&format!("key {index}"), 1, window, tomorrow).await.unwrap();
        }
        assert_eq!(windows().await.unwrap(), u64::from(SWEEP_EVERY), "ann's and bob's windows are gone");
    }

    #[tokio::test]
    async fn a_limit_of_failures_is_read_without_counting() {
        let (limiter, window) = (shared().await, Duration::from_secs(60));
        assert!(!limiter.exhausted("cy", 2, window).await.unwrap(), "nothing counted yet");
        limiter.allow("cy", 2, window).await.unwrap();
        assert!(!limiter.exhausted("cy", 2, window).await.unwrap(), "reading counts nothing");
        assert!(!limiter.exhausted("cy", 2, window).await.unwrap());
        limiter.allow("cy", 2, window).await.unwrap();
        assert!(limiter.exhausted("cy", 2, window).await.unwrap(), "two failures of two");
        assert!(!limiter.exhausted("dan", 2, window).await.unwrap(), "keys are independent");
        let old = Utc::now() - chrono::TimeDelta::seconds(61);
        limiter.allow_at("eve", 1, window, old).await.unwrap();
        assert!(!limiter.exhausted("eve", 1, window).await.unwrap(), "a window that ended is over");
    }

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
