//! Any text as a decrypted session: cutting it never panics, the shape stays within its
//! bound, every slot is a number, and the values' text is no longer than the JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_redis_session::json_split::{split, utf16_len, MAX_DESCRIPTOR_BYTES};

fuzz_target!(|input: &[u8]| {
    let Ok(json) = std::str::from_utf8(input) else { return };
    let Some(cut) = split(json) else { return };

    assert!(cut.descriptor.len() <= MAX_DESCRIPTOR_BYTES);
    assert!(cut.slots.iter().all(|slot| !slot.is_nan()));
    assert!(utf16_len(&cut.text) <= utf16_len(json));
});
