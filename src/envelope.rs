//! The sealed value stored in Redis at `prefix + sid`.
//!
//! Byte layout, version 1 (33 bytes of overhead over the session JSON):
//!
//! ```text
//! offset  size  field
//! 0       1     format version, 0x01
//! 1       4     key id: fingerprint of the AES key that sealed it (see `keys`)
//! 5       12    nonce: fresh from the OS random generator for every write (see `nonce`)
//! 17      n+16  AES-256-GCM ciphertext of the n-byte session JSON, then the 16-byte tag
//! ```
//!
//! The associated data is the 5-byte header followed by the Redis key name, so a value copied
//! under another key (another sid, another prefix) fails authentication and reads as no
//! session, and the header cannot be edited either.

use ring::aead::{Aad, Nonce};

use crate::error::{Result, StoreError};
use crate::keys::{KeyRing, KEY_ID_LEN};
use crate::nonce;

/// The format version this code writes and reads.
pub const VERSION: u8 = 1;

/// Length of the GCM nonce.
pub const NONCE_LEN: usize = nonce::NONCE_LEN;

/// Length of the GCM tag.
pub const TAG_LEN: usize = 16;

/// Bytes before the ciphertext: version, key id, nonce.
pub const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Total bytes added to the plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Seals `plaintext` for the Redis key `key_name` with the ring's sealing key. The value is
/// encrypted where it lies in the one buffer returned.
pub fn seal(ring: &KeyRing, key_name: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let key = ring.sealing_key();
    let nonce = nonce::fresh()?;

    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(VERSION);
    out.extend_from_slice(&key.id());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);

    let aad = associated_data(&out[..1 + KEY_ID_LEN], key_name);
    let nonce = Nonce::assume_unique_for_key(nonce);
    let tag = key
        .cipher()
        .seal_in_place_separate_tag(nonce, Aad::from(&aad), &mut out[HEADER_LEN..])
        .map_err(|_| StoreError::Internal("encryption failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a value read from the Redis key `key_name`.
///
/// Every failure is a [`StoreError::Decrypt`] naming the reason class only: a value that is
/// too short, of an unknown version, sealed with a key this ring lacks, or not authentic.
pub fn open(ring: &KeyRing, key_name: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
    if stored.len() < OVERHEAD {
        return Err(StoreError::Decrypt("value is too short to be a sealed session"));
    }
    if stored[0] != VERSION {
        return Err(StoreError::Decrypt("unknown envelope version"));
    }

    let header = &stored[..HEADER_LEN];
    let key_id: [u8; KEY_ID_LEN] = header[1..1 + KEY_ID_LEN]
        .try_into()
        .map_err(|_| StoreError::Decrypt("malformed header"))?;
    let nonce: [u8; NONCE_LEN] = header[1 + KEY_ID_LEN..]
        .try_into()
        .map_err(|_| StoreError::Decrypt("malformed header"))?;
    let aad = associated_data(&header[..1 + KEY_ID_LEN], key_name);

    let mut candidates = ring.by_id(key_id).peekable();
    if candidates.peek().is_none() {
        return Err(StoreError::Decrypt("sealed with a key this store does not hold"));
    }
    candidates
        .find_map(|key| {
            // Opened in a copy, the plaintext moved to its start: one allocation, returned.
            let mut buffer = stored.to_vec();
            let nonce = Nonce::assume_unique_for_key(nonce);
            let cipher = key.cipher();
            let length =
                cipher.open_within(nonce, Aad::from(&aad), &mut buffer, HEADER_LEN..).ok()?.len();
            buffer.truncate(length);
            Some(buffer)
        })
        .ok_or(StoreError::Decrypt("authentication failed (tampered or moved value)"))
}

/// Reads the key id of a sealed value without opening it (for statistics and rotation).
pub fn key_id_of(stored: &[u8]) -> Option<[u8; KEY_ID_LEN]> {
    if stored.len() < OVERHEAD || stored[0] != VERSION {
        return None;
    }
    stored[1..1 + KEY_ID_LEN].try_into().ok()
}

fn associated_data(version_and_key_id: &[u8], key_name: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(version_and_key_id.len() + key_name.len());
    aad.extend_from_slice(version_and_key_id);
    aad.extend_from_slice(key_name);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SessionKey;
    use proptest::prelude::*;

    fn ring(bytes: u8) -> KeyRing {
        KeyRing::from_keys(vec![SessionKey::from_bytes(&[bytes; 32]).unwrap()]).unwrap()
    }

    /// NIST GCM test vector (gcmEncryptExtIV256.rsp, Count = 0 with PTlen = 128, AADlen = 0):
    /// checks that the cipher under the envelope is standard AES-256-GCM.
    #[test]
    fn cipher_matches_nist_vector() {
        let key =
            hex_literal::hex!("31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22");
        let iv = hex_literal::hex!("0d18e06c7c725ac9e362e1ce");
        let pt = hex_literal::hex!("2db5168e932556f8089a0622981d017d");
        let ct = hex_literal::hex!("fa4362189661d163fcd6a56d8bf0405a");
        let tag = hex_literal::hex!("d636ac1bbedd5cc3ee727dc2ab4a9489");

        let key = SessionKey::from_bytes(&key).unwrap();
        let mut out = pt.to_vec();
        let nonce = Nonce::assume_unique_for_key(iv);
        let sealed_tag =
            key.cipher().seal_in_place_separate_tag(nonce, Aad::empty(), &mut out).unwrap();
        assert_eq!(out, ct.as_slice());
        assert_eq!(sealed_tag.as_ref(), tag.as_slice());
    }

    #[test]
    fn round_trip_and_layout() {
        let ring = ring(7);
        let sealed = seal(&ring, b"session:abc", b"{\"a\":1}").unwrap();
        assert_eq!(sealed.len(), 7 + OVERHEAD);
        assert_eq!(sealed[0], VERSION);
        assert_eq!(key_id_of(&sealed), Some(ring.sealing_key().id()));
        assert_eq!(open(&ring, b"session:abc", &sealed).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn every_write_uses_a_fresh_nonce() {
        let ring = ring(7);
        let a = seal(&ring, b"k", b"same").unwrap();
        let b = seal(&ring, b"k", b"same").unwrap();
        assert_ne!(a[5..HEADER_LEN], b[5..HEADER_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn value_moved_to_another_key_does_not_open() {
        let ring = ring(7);
        let sealed = seal(&ring, b"session:a", b"{}").unwrap();
        let err = open(&ring, b"session:b", &sealed).unwrap_err();
        assert_eq!(err.code(), "ERR_DECRYPT");
    }

    #[test]
    fn wrong_key_truncated_and_foreign_values_do_not_open() {
        let sealed = seal(&ring(7), b"k", b"{}").unwrap();
        assert!(open(&ring(8), b"k", &sealed).is_err());
        assert!(open(&ring(7), b"k", &sealed[..sealed.len() - 1]).is_err());
        assert!(open(&ring(7), b"k", &sealed[..OVERHEAD - 1]).is_err());
        assert!(open(&ring(7), b"k", b"{\"cookie\":{}}").is_err());
        assert!(open(&ring(7), b"k", &[]).is_err());
    }

    #[test]
    fn old_keys_still_open_after_rotation() {
        let old = SessionKey::from_bytes(&[1; 32]).unwrap();
        let sealed = seal(&KeyRing::from_keys(vec![old]).unwrap(), b"k", b"v").unwrap();
        let rotated = KeyRing::from_keys(vec![
            SessionKey::from_bytes(&[2; 32]).unwrap(),
            SessionKey::from_bytes(&[1; 32]).unwrap(),
        ])
        .unwrap();
        assert_eq!(open(&rotated, b"k", &sealed).unwrap(), b"v");
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_is_detected(
            plaintext in proptest::collection::vec(any::<u8>(), 0..200),
            index in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let ring = ring(9);
            let mut sealed = seal(&ring, b"session:x", &plaintext).unwrap();
            let at = index.index(sealed.len());
            sealed[at] ^= 1 << bit;
            prop_assert!(open(&ring, b"session:x", &sealed).is_err());
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = open(&ring(9), b"k", &bytes);
        }
    }
}
