//! The encryption keys of a store: the first seals, all open.
//!
//! Keys come either from the `encryptionKeys` option (32 raw bytes each) or, by default,
//! one per cookie secret through HKDF-SHA256 with a fixed label, in the secrets' order, so
//! that prepending a new cookie secret keeps every existing session readable. Each key is
//! identified in the stored envelope by a 4-byte fingerprint, not by its position, so the
//! list can be reordered or extended without breaking what is already stored.

use std::mem::ManuallyDrop;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use ring::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

/// Length in bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// Length in bytes of a key fingerprint in the envelope.
pub const KEY_ID_LEN: usize = 4;

/// The HKDF `info` label for keys derived from cookie secrets; changing it changes every
/// derived key, so it is part of the stored format.
const DERIVE_LABEL: &[u8] = b"sealed-redis-session v1 aes-256-gcm session key";

/// The HMAC label used to fingerprint a key.
const KEY_ID_LABEL: &[u8] = b"sealed-redis-session v1 key id";

/// One AES-256-GCM key, ready to use: the cipher's key schedule is computed once here.
pub struct SessionKey {
    id: [u8; KEY_ID_LEN],
    cipher: Cipher,
}

/// ring's AES-256-GCM key (its expanded key schedule and GHASH table), wiped when dropped:
/// ring itself leaves them in memory.
#[repr(transparent)]
struct Cipher(ManuallyDrop<LessSafeKey>);

impl Drop for Cipher {
    fn drop(&mut self) {
        let start = std::ptr::addr_of_mut!(self.0).cast::<u8>();
        for offset in 0..std::mem::size_of::<LessSafeKey>() {
            // SAFETY: `start` points to the `size_of::<LessSafeKey>()` bytes this struct owns,
            // so every write stays inside them. Nothing reads them as a `LessSafeKey` after
            // this drop: `ManuallyDrop` runs no drop glue on the zeroed bytes, and there is
            // none to skip (`LessSafeKey` owns no heap memory, as
            // `keys::tests::the_cipher_owns_no_heap_memory` checks).
            unsafe { std::ptr::write_volatile(start.add(offset), 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl SessionKey {
    /// Builds a key from 32 raw bytes. The caller's copy is not kept.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(bytes.try_into().map_err(|_| {
            StoreError::option(
                "encryptionKeys",
                format!("each key must be {KEY_LEN} bytes, got {}", bytes.len()),
            )
        })?);

        let unbound = UnboundKey::new(&AES_256_GCM, bytes.as_slice())
            .map_err(|_| StoreError::option("encryptionKeys", "key rejected by AES-256-GCM"))?;
        let cipher = Cipher(ManuallyDrop::new(LessSafeKey::new(unbound)));

        Ok(Self { id: fingerprint(&bytes), cipher })
    }

    /// Derives a key from a cookie secret with HKDF-SHA256 and the fixed label.
    pub fn derive_from_secret(secret: &[u8]) -> Result<Self> {
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        Hkdf::<Sha256>::new(None, secret)
            .expand(DERIVE_LABEL, okm.as_mut_slice())
            .map_err(|_| StoreError::option("secret", "key derivation failed"))?;
        Self::from_bytes(okm.as_slice())
    }

    /// The fingerprint that names this key in stored envelopes.
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }

    /// The AES-256-GCM cipher for this key (ring's, for its assembly GHASH: about a third
    /// of the instructions of the portable one per sealed session).
    pub fn cipher(&self) -> &LessSafeKey {
        &self.cipher.0
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the public fingerprint; the key itself never reaches a log line.
        f.debug_struct("SessionKey").field("id", &hex(&self.id)).finish_non_exhaustive()
    }
}

/// The ordered keys of a store.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<SessionKey>,
}

impl KeyRing {
    /// A key ring from explicit keys; the first one seals.
    pub fn from_keys(keys: Vec<SessionKey>) -> Result<Self> {
        if keys.is_empty() {
            return Err(StoreError::option("encryptionKeys", "at least one key is required"));
        }
        Ok(Self { keys })
    }

    /// A key ring derived from cookie secrets, one key per secret, in the same order.
    pub fn derive_from_secrets<S: AsRef<[u8]>>(secrets: &[S]) -> Result<Self> {
        let keys = secrets
            .iter()
            .map(|secret| SessionKey::derive_from_secret(secret.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Self::from_keys(keys)
            .map_err(|_| StoreError::option("secret", "at least one secret is required"))
    }

    /// The key that seals new values.
    pub fn sealing_key(&self) -> &SessionKey {
        &self.keys[0]
    }

    /// The keys whose fingerprint is `id` (normally one; a collision yields several).
    pub fn by_id(&self, id: [u8; KEY_ID_LEN]) -> impl Iterator<Item = &SessionKey> {
        self.keys.iter().filter(move |key| key.id == id)
    }
}

fn fingerprint(key: &[u8; KEY_LEN]) -> [u8; KEY_ID_LEN] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(KEY_ID_LABEL);
    let tag = mac.finalize().into_bytes();
    [tag[0], tag[1], tag[2], tag[3]]
}

/// Lower-case hex of a public value (a key fingerprint).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cipher_owns_no_heap_memory() {
        assert!(!std::mem::needs_drop::<LessSafeKey>(), "wiping it would skip its drop");
    }

    #[test]
    fn a_dropped_cipher_leaves_only_zeros() {
        let key = SessionKey::from_bytes(&[0xa5; KEY_LEN]).unwrap();
        let mut slot = std::mem::MaybeUninit::new(key.cipher);
        let size = std::mem::size_of::<Cipher>();
        // SAFETY: the slot holds a live `Cipher`, dropped once here and never used again.
        unsafe { std::ptr::drop_in_place(slot.as_mut_ptr()) };

        // SAFETY: every byte of the slot was just written by the drop; read as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size) };
        assert!(bytes.iter().all(|&byte| byte == 0));
    }

    #[test]
    fn wrong_length_key_names_the_option() {
        let err = SessionKey::from_bytes(&[0u8; 31]).unwrap_err();
        assert_eq!(err.code(), "ERR_INVALID_OPTION");
        assert!(err.to_string().contains("encryptionKeys"));
        assert!(err.to_string().contains("31"));
    }

    #[test]
    fn derivation_is_stable_and_secret_specific() {
        let a1 = SessionKey::derive_from_secret(b"secret-a").unwrap();
        let a2 = SessionKey::derive_from_secret(b"secret-a").unwrap();
        let b = SessionKey::derive_from_secret(b"secret-b").unwrap();
        assert_eq!(a1.id(), a2.id());
        assert_ne!(a1.id(), b.id());
    }

    #[test]
    fn prepending_a_secret_keeps_old_keys_reachable() {
        let old = KeyRing::derive_from_secrets(&["old"]).unwrap();
        let rotated = KeyRing::derive_from_secrets(&["new", "old"]).unwrap();
        let old_id = old.sealing_key().id();
        assert_ne!(rotated.sealing_key().id(), old_id);
        assert_eq!(rotated.by_id(old_id).count(), 1);
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let key = SessionKey::from_bytes(&[0x41; KEY_LEN]).unwrap();
        let printed = format!("{:?}", KeyRing::from_keys(vec![key]).unwrap());
        assert!(printed.contains("SessionKey"));
        assert!(!printed.contains("65, 65"), "{printed}");
        assert!(!printed.to_lowercase().contains("4141414141"), "{printed}");
    }

    #[test]
    fn empty_rings_are_refused() {
        assert!(KeyRing::from_keys(vec![]).is_err());
        let err = KeyRing::derive_from_secrets::<&str>(&[]).unwrap_err();
        assert!(err.to_string().contains("secret"));
    }
}
