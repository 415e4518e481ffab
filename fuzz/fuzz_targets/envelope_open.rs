//! Any stored bytes: opening never panics and never succeeds on bytes this key did not seal;
//! a sealed value always opens, and only under its own key name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_redis_session::envelope::{open, seal};
use sealed_redis_session::keys::{KeyRing, SessionKey};

fuzz_target!(|input: (&[u8], &[u8])| {
    let (stored, plaintext) = input;
    let ring = match SessionKey::from_bytes(&[0x5a; 32]).and_then(|k| KeyRing::from_keys(vec![k]))
    {
        Ok(ring) => ring,
        Err(_) => return,
    };

    assert!(open(&ring, b"session:fuzz", stored).is_err(), "forged envelope opened");

    if let Ok(sealed) = seal(&ring, b"session:fuzz", plaintext) {
        assert_eq!(open(&ring, b"session:fuzz", &sealed).ok().as_deref(), Some(plaintext));
        assert!(open(&ring, b"session:other", &sealed).is_err());
    }
});
