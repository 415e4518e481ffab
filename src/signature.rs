//! Cookie signatures in the exact format of the npm `cookie-signature` package, which
//! express-session uses for `connect.sid`: `value + "." + base64(HMAC-SHA256(secret, value))`
//! with the `=` padding removed.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Length of an unpadded base64 HMAC-SHA256 (32 bytes → 43 characters).
const SIGNATURE_LEN: usize = 43;

/// Signs `value` with `secret`; byte-identical to `cookie-signature`'s `sign`.
pub fn sign(value: &str, secret: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() + 1 + SIGNATURE_LEN);
    out.push_str(value);
    out.push('.');
    STANDARD_NO_PAD.encode_string(mac(value, secret), &mut out);
    out
}

/// Verifies a signed value against each secret in turn and returns the unsigned value.
///
/// Mirrors `cookie-signature`'s `unsign`: the value is everything before the last `.`, and
/// the whole input must equal `sign(value, secret)`. The comparison is constant-time, and
/// every secret is tried even after a match so timing does not tell which one matched.
pub fn unsign<'a, S: AsRef<[u8]>>(input: &'a str, secrets: &[S]) -> Option<&'a str> {
    let dot = input.rfind('.')?;
    let (value, signature) = (&input[..dot], &input[dot + 1..]);

    let mut matched = false;
    for secret in secrets {
        let expected = STANDARD_NO_PAD.encode(mac(value, secret.as_ref()));
        let equal: bool = expected.as_bytes().ct_eq(signature.as_bytes()).into();
        matched |= equal;
    }

    matched.then_some(value)
}

fn mac(value: &str, secret: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this constructor cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 4231, test case 2: short key, short data.
    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let tag = mac("what do ya want for nothing?", b"Jefe");
        let expected =
            hex_literal::hex!("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(tag, expected);
    }

    /// RFC 4231, test case 6: a key longer than the block size is hashed first.
    #[test]
    fn hmac_matches_rfc4231_case_6() {
        let key = [0xaa_u8; 131];
        let tag = mac("Test Using Larger Than Block-Size Key - Hash Key First", &key);
        let expected =
            hex_literal::hex!("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        assert_eq!(tag, expected);
    }

    /// Produced by `require('cookie-signature').sign('hello', 'tobiiscool')`.
    #[test]
    fn sign_matches_cookie_signature() {
        assert_eq!(
            sign("hello", b"tobiiscool"),
            "hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI"
        );
    }

    #[test]
    fn unsign_accepts_any_listed_secret_and_rejects_others() {
        let signed = sign("sid123", b"old");
        assert_eq!(unsign(&signed, &["new", "old"]), Some("sid123"));
        assert_eq!(unsign(&signed, &["new"]), None);
        assert_eq!(unsign("no-dot-here", &["old"]), None);
        assert_eq!(unsign("", &["old"]), None);
    }

    #[test]
    fn unsign_rejects_padding_and_truncation() {
        let signed = sign("abc", b"k");
        assert_eq!(unsign(&format!("{signed}="), &["k"]), None);
        assert_eq!(unsign(&signed[..signed.len() - 1], &["k"]), None);
    }

    proptest! {
        #[test]
        fn sign_then_unsign_round_trips(value in ".*", secret in ".+") {
            let signed = sign(&value, secret.as_bytes());
            prop_assert_eq!(unsign(&signed, &[secret.as_bytes()]), Some(value.as_str()));
        }

        #[test]
        fn any_single_byte_mutation_fails(
            value in "[a-zA-Z0-9_-]{1,40}",
            secret in ".+",
            index in any::<prop::sample::Index>(),
            replacement in any::<u8>(),
        ) {
            let signed = sign(&value, secret.as_bytes());
            let mut bytes = signed.clone().into_bytes();
            let at = index.index(bytes.len());
            prop_assume!(bytes[at] != replacement);
            bytes[at] = replacement;
            if let Ok(mutated) = String::from_utf8(bytes) {
                prop_assert_eq!(unsign(&mutated, &[secret.as_bytes()]), None);
            }
        }
    }
}
