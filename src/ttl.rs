//! How long a session key lives in Redis.
//!
//! The cookie's `expires`, when set, decides: the key gets exactly the milliseconds left
//! until then, so it dies with the cookie. Without it, the store's `ttl` (seconds) applies.
//! Zero or less means the session is already over, and the key is deleted instead. With
//! neither (the `disableTTL` option), the key never expires.

/// The default `ttl` option: one day, in seconds.
pub const DEFAULT_TTL_SECS: f64 = 86_400.0;

/// The longest lifetime written (about 31,700 years): far past any real cookie, and small
/// enough that Redis never overflows adding it to its clock.
pub const MAX_TTL_MS: f64 = 1e15;

/// What a write does with the key's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Keep the key this many milliseconds (at least 1).
    Millis(u64),
    /// The session has expired already: delete the key.
    Delete,
    /// No lifetime at all: the key is written without expiry.
    Never,
}

/// Chooses the expiry from the cookie's absolute `expires` (epoch ms), the store's TTL in
/// seconds, and the current time (epoch ms). A non-finite `expires` counts as absent, a
/// non-finite TTL as expired.
pub fn expiry(expires_at_ms: Option<f64>, ttl_secs: Option<f64>, now_ms: f64) -> Expiry {
    let millis = match (expires_at_ms.filter(|at| at.is_finite()), ttl_secs) {
        (Some(at), _) => at - now_ms,
        (None, Some(ttl)) => ttl * 1000.0,
        (None, None) => return Expiry::Never,
    };

    if !millis.is_finite() || millis < 1.0 {
        return Expiry::Delete;
    }
    Expiry::Millis(millis.min(MAX_TTL_MS) as u64)
}

/// The current wall-clock time in epoch milliseconds (as `Date.now()` gives it).
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as f64)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_expiry_wins_to_the_millisecond() {
        assert_eq!(expiry(Some(10_500.0), Some(60.0), 10_000.0), Expiry::Millis(500));
    }

    #[test]
    fn ttl_applies_without_expires() {
        assert_eq!(expiry(None, Some(DEFAULT_TTL_SECS), 0.0), Expiry::Millis(86_400_000));
        assert_eq!(expiry(Some(f64::NAN), Some(2.5), 0.0), Expiry::Millis(2_500));
        assert_eq!(expiry(None, Some(1e300), 0.0), Expiry::Millis(MAX_TTL_MS as u64));
    }

    #[test]
    fn past_zero_or_bad_lifetimes_delete() {
        assert_eq!(expiry(Some(9_000.0), Some(60.0), 10_000.0), Expiry::Delete);
        assert_eq!(expiry(Some(10_000.0), None, 10_000.0), Expiry::Delete);
        assert_eq!(expiry(None, Some(0.0), 0.0), Expiry::Delete);
        assert_eq!(expiry(None, Some(-5.0), 0.0), Expiry::Delete);
        assert_eq!(expiry(None, Some(f64::NAN), 0.0), Expiry::Delete);
    }

    #[test]
    fn neither_means_no_expiry() {
        assert_eq!(expiry(None, None, 0.0), Expiry::Never);
        assert_eq!(expiry(Some(f64::INFINITY), None, 0.0), Expiry::Never);
    }
}
