//! The one error type of the store core, and the stable codes JS sees.
//!
//! Messages never contain a session id, a key, a secret or a payload: they name what was
//! wrong (an option, an argument, the Redis condition) and nothing more.

use thiserror::Error;

/// Everything that can go wrong in the store core.
///
/// Expected outcomes (a missing session, a bad cookie signature) are not errors: they are
/// `None` / `false` values. This type is for conditions the caller must hear about.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A constructor option is missing or malformed; `option` is its public name.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The option's name as the user wrote it (`secret`, `encryptionKeys`, `url`, ...).
        option: &'static str,
        /// What is wrong with it, without echoing its value.
        reason: String,
    },

    /// An argument of a method call cannot be accepted (refused before Redis is called).
    #[error("invalid argument `{argument}`: {reason}")]
    InvalidArgument {
        /// The argument's name (`sid`, `session`, `ttl`, ...).
        argument: &'static str,
        /// What is wrong with it, without echoing its value.
        reason: String,
    },

    /// Redis answered with an error, the connection broke, or no connection could be had.
    #[error("redis: {0}")]
    Redis(String),

    /// Redis did not answer within the command timeout.
    #[error("redis did not answer within {0} ms")]
    Timeout(u64),

    /// A write reached the primary but fewer replicas than asked for (`waitReplicas`).
    #[error("only {reached} of {wanted} replicas had the write after {timeout_ms} ms")]
    NotReplicated {
        /// Replicas that acknowledged it.
        reached: u32,
        /// Replicas asked for.
        wanted: u32,
        /// How long Redis waited.
        timeout_ms: u64,
    },

    /// A stored value could not be opened: tampered, truncated, foreign, or sealed with a key
    /// this store does not hold.
    #[error("stored session could not be decrypted: {0}")]
    Decrypt(&'static str),

    /// A per-user operation was called on a store that keeps no per-user index.
    #[error("the per-user index is off: create the store with `userIndex: true`")]
    UserIndexOff,

    /// The store was closed; no more commands are accepted.
    #[error("the store is closed")]
    Closed,

    /// A bug: a panic was caught before it could reach Node.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StoreError {
    /// The stable code that JS receives as `err.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidOption { .. } => "ERR_INVALID_OPTION",
            Self::InvalidArgument { .. } => "ERR_INVALID_ARG",
            Self::Redis(_) => "ERR_REDIS",
            Self::Timeout(_) => "ERR_REDIS_TIMEOUT",
            Self::NotReplicated { .. } => "ERR_REDIS_WAIT",
            Self::Decrypt(_) => "ERR_DECRYPT",
            Self::UserIndexOff => "ERR_USER_INDEX_OFF",
            Self::Closed => "ERR_CLOSED",
            Self::Internal(_) => "ERR_INTERNAL",
        }
    }

    /// Shorthand for an [`StoreError::InvalidOption`].
    pub fn option(option: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidOption { option, reason: reason.into() }
    }

    /// Shorthand for an [`StoreError::InvalidArgument`].
    pub fn argument(argument: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { argument, reason: reason.into() }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        // The redis-rs message names the command kind and server reply; it never contains
        // the arguments we sent (keys or values), so it is safe to pass on.
        Self::Redis(err.to_string())
    }
}

/// Result type of the store core.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(StoreError::option("secret", "x").code(), "ERR_INVALID_OPTION");
        assert_eq!(StoreError::argument("sid", "x").code(), "ERR_INVALID_ARG");
        assert_eq!(StoreError::Redis("x".into()).code(), "ERR_REDIS");
        assert_eq!(StoreError::Timeout(5).code(), "ERR_REDIS_TIMEOUT");
        assert_eq!(StoreError::Decrypt("x").code(), "ERR_DECRYPT");
        assert_eq!(StoreError::Closed.code(), "ERR_CLOSED");
    }

    #[test]
    fn messages_name_the_option() {
        let msg = StoreError::option("encryptionKeys", "must be 32 bytes").to_string();
        assert!(msg.contains("encryptionKeys"), "{msg}");
    }
}
