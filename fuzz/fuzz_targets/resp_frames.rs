//! Any bytes from a server: cutting them into replies never panics, a cut frame lies within
//! the input and is not empty, and a bulk string's range lies within its frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_redis_session::resp::{frame_len, shape, Shape};

fuzz_target!(|input: &[u8]| {
    let mut at = 0;
    while let Ok(Some(len)) = frame_len(&input[at..]) {
        assert!(len > 0 && at + len <= input.len());
        if let Shape::Bulk(range) = shape(&input[at..at + len]) {
            assert!(range.start <= range.end && range.end <= len);
        }
        at += len;
    }
});
