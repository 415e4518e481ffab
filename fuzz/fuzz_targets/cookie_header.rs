//! Any Cookie header: parsing never panics, and a found value is part of the header or
//! its percent-decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_redis_session::cookie_header::{find_cookie, signed_payload};

fuzz_target!(|header: &str| {
    if let Some(value) = find_cookie(header, "connect.sid") {
        let _ = signed_payload(&value);
        assert!(value.len() <= header.len());
    }
});
