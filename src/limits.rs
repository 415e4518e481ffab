//! What the store accepts as a session id and a session payload, checked before Redis is
//! called so that bad input is refused with an error naming it and never reaches a key.

use crate::error::{Result, StoreError};

/// The longest session id accepted, in bytes. express-session's ids are 32 characters; custom
/// `genid` functions (UUIDs, prefixed ids) stay far below this.
pub const MAX_SID_BYTES: usize = 256;

/// The default largest session JSON accepted, in bytes (1 MiB).
pub const DEFAULT_MAX_SESSION_BYTES: usize = 1 << 20;

/// Accepts a sid that is non-empty, at most [`MAX_SID_BYTES`], and free of control
/// characters. Glob characters are harmless here: keys are always used literally, and SCAN
/// patterns escape the prefix.
pub fn check_sid(sid: &str) -> Result<()> {
    if sid.is_empty() {
        return Err(StoreError::argument("sid", "must not be empty"));
    }
    if sid.len() > MAX_SID_BYTES {
        return Err(StoreError::argument(
            "sid",
            format!("is {} bytes; at most {MAX_SID_BYTES} are accepted", sid.len()),
        ));
    }
    // express-session's ids are ASCII: a byte scan, without decoding characters, covers them.
    let control = if sid.is_ascii() {
        sid.bytes().any(|byte| byte.is_ascii_control())
    } else {
        sid.chars().any(char::is_control)
    };
    if control {
        return Err(StoreError::argument("sid", "must not contain control characters"));
    }
    Ok(())
}

/// Accepts a serialised session of at most `max_bytes`.
pub fn check_payload(json: &[u8], max_bytes: usize) -> Result<()> {
    if json.len() > max_bytes {
        return Err(StoreError::argument(
            "session",
            format!(
                "serialises to {} bytes; the limit (maxSessionBytes) is {max_bytes}",
                json.len()
            ),
        ));
    }
    Ok(())
}

/// Escapes `*`, `?`, `[`, `]` and `\` so that `prefix` matches itself literally in a SCAN
/// `MATCH` pattern.
pub fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_checked() {
        assert!(check_sid("E7xg2wS3lG0pFw1VdK8Hc2a6qvPT-u4y").is_ok());
        assert!(check_sid("a*b?[c]").is_ok());
        assert!(check_sid("").is_err());
        assert!(check_sid("a\nb").is_err());
        assert!(check_sid("a\0b").is_err());
        assert!(check_sid("a\u{7f}b").is_err(), "DEL is a control character");
        assert!(check_sid("sid-é-\u{85}").is_err(), "a C1 control among non-ASCII text");
        assert!(check_sid("sid-é-ü").is_ok());
        assert!(check_sid(&"x".repeat(MAX_SID_BYTES + 1)).is_err());
        assert_eq!(check_sid("").unwrap_err().code(), "ERR_INVALID_ARG");
    }

    #[test]
    fn payload_limit_names_the_option() {
        let err = check_payload(&[b'x'; 11], 10).unwrap_err();
        assert!(err.to_string().contains("maxSessionBytes"));
        assert!(check_payload(&[b'x'; 10], 10).is_ok());
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("sess:"), "sess:");
        assert_eq!(glob_escape("a*b?c[d]e\\"), "a\\*b\\?c\\[d\\]e\\\\");
    }
}
