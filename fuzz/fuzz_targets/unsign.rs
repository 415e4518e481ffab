//! Any signed-looking input: unsign never panics, never accepts what sign did not make,
//! and always accepts what sign made.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_redis_session::signature::{sign, unsign};

fuzz_target!(|input: (&str, &str)| {
    let (candidate, value) = input;
    let secrets = ["fuzz secret", "older secret"];

    if let Some(unsigned) = unsign(candidate, &secrets) {
        let matches = secrets.iter().any(|s| sign(unsigned, s.as_bytes()) == candidate);
        assert!(matches, "accepted a value no secret signed");
    }
    let signed = sign(value, secrets[1].as_bytes());
    assert_eq!(unsign(&signed, &secrets), Some(value));
});
