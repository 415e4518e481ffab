//! Reading one cookie out of a raw `Cookie` request header, as express-session does through
//! the npm `cookie` package: pairs split on `;`, the first pair of a name wins, surrounding
//! double quotes are dropped, and `%XX` escapes are decoded (a value whose escapes are not
//! valid UTF-8 is kept as written, like `decodeURIComponent` failing over to the raw value).

use std::borrow::Cow;

/// The longest Cookie header this parser reads; Node's default header limit is 16 KiB, so
/// anything longer did not come from a real HTTP request and is refused as a whole.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Returns the decoded value of the cookie called `name`, if the header has one.
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<Cow<'a, str>> {
    if header.len() > MAX_HEADER_LEN {
        return None;
    }

    let raw = header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })?;

    Some(percent_decode(strip_quotes(raw)))
}

/// The signed session id inside a `connect.sid`-style value: express-session prefixes signed
/// values with `s:` and ignores any cookie without it.
pub fn signed_payload(value: &str) -> Option<&str> {
    value.strip_prefix("s:")
}

fn strip_quotes(value: &str) -> &str {
    value.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')).unwrap_or(value)
}

fn percent_decode(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }

    match decode_escapes(value.as_bytes()).and_then(|bytes| String::from_utf8(bytes).ok()) {
        Some(decoded) => Cow::Owned(decoded),
        None => Cow::Borrowed(value),
    }
}

/// Decodes every `%XX`; `None` when a `%` is not followed by two hex digits, which makes
/// `decodeURIComponent` throw (and the `cookie` package then keep the raw value).
fn decode_escapes(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_a_url_encoded_signed_cookie() {
        let header = "theme=dark; connect.sid=s%3Aabc.sig%2Bx%2Fy; other=1";
        assert_eq!(find_cookie(header, "connect.sid").as_deref(), Some("s:abc.sig+x/y"));
    }

    #[test]
    fn first_occurrence_wins_and_whitespace_is_trimmed() {
        let header = "  connect.sid = first ;connect.sid=second";
        assert_eq!(find_cookie(header, "connect.sid").as_deref(), Some("first"));
    }

    #[test]
    fn quotes_are_removed_and_bad_escapes_kept() {
        assert_eq!(find_cookie("a=\"q%20\"", "a").as_deref(), Some("q "));
        assert_eq!(find_cookie("a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(find_cookie("a=%ff", "a").as_deref(), Some("%ff"));
    }

    #[test]
    fn missing_cookie_or_missing_prefix_gives_none() {
        assert_eq!(find_cookie("", "connect.sid"), None);
        assert_eq!(find_cookie("connect.sid", "connect.sid"), None);
        assert_eq!(signed_payload("abc.sig"), None);
        assert_eq!(signed_payload("s:abc.sig"), Some("abc.sig"));
    }

    #[test]
    fn oversized_header_is_refused() {
        let header = format!("connect.sid=x; pad={}", "a".repeat(MAX_HEADER_LEN));
        assert_eq!(find_cookie(&header, "connect.sid"), None);
    }

    proptest! {
        #[test]
        fn never_panics(header in ".{0,300}", name in ".{0,20}") {
            let _ = find_cookie(&header, &name);
        }
    }
}
