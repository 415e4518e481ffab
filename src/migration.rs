//! Migration from connect-redis without logging anyone out: with `legacyPrefix` set, a
//! session that connect-redis stored as plaintext JSON at `legacyPrefix + sid` is served as
//! it is, and the next write seals it under `prefix + sid` and removes the plaintext copy.
//!
//! Opt-in and meant for the migration period only: while it is on, whoever can write to
//! Redis can plant a plaintext session there, which the store would accept.

/// Where connect-redis kept its sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legacy {
    prefix: String,
    same_prefix: bool,
}

impl Legacy {
    /// Plaintext sessions under `legacy_prefix`, for a store whose own prefix is `prefix`.
    pub fn new(legacy_prefix: String, prefix: &str) -> Self {
        let same_prefix = legacy_prefix == prefix;
        Self { prefix: legacy_prefix, same_prefix }
    }

    /// Whether the plaintext sessions sit at the store's own keys (the same prefix); they are
    /// then replaced in place by the next write, and there is no second key to look up.
    pub fn shares_keys(&self) -> bool {
        self.same_prefix
    }

    /// The key at which connect-redis stored `sid`.
    pub fn key(&self, sid: &str) -> Vec<u8> {
        [self.prefix.as_bytes(), sid.as_bytes()].concat()
    }
}

/// The JSON text of a plaintext session, if `value` is one: UTF-8 whose first non-blank
/// character opens an object. A sealed value starts with its version byte, never with `{`.
pub fn plaintext_session(value: &[u8]) -> Option<String> {
    let first = value.iter().find(|byte| !byte.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    String::from_utf8(value.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_objects_are_plaintext_sessions() {
        assert_eq!(plaintext_session(b" {\"a\":1}").as_deref(), Some(" {\"a\":1}"));
        assert_eq!(plaintext_session(b"[1]"), None);
        assert_eq!(plaintext_session(&[1, b'{', 0, 0]), None);
        assert_eq!(plaintext_session(b"{\xff}"), None);
        assert_eq!(plaintext_session(b""), None);
    }

    #[test]
    fn legacy_keys_use_their_own_prefix() {
        let legacy = Legacy::new("sess:".into(), "session:");
        assert_eq!(legacy.key("abc"), b"sess:abc".to_vec());
        assert!(!legacy.shares_keys());
        assert!(Legacy::new("session:".into(), "session:").shares_keys());
    }
}
