//! Fresh AES-GCM nonces, drawn from the operating system's random generator in blocks.
//!
//! One `getrandom` system call per write cost a kernel entry and a ChaCha block of the
//! kernel's generator for 12 bytes. Each thread instead fills a pool of [`POOL_NONCES`]
//! nonces with one call and hands them out in turn: every nonce is still 96 bits straight
//! from the OS generator, each is handed out once, and its bytes are wiped from the pool as
//! it is taken (the pool itself is wiped when its thread ends). Whoever can read the pool
//! can read the process, keys included, so holding unused nonces adds nothing to expose.
//!
//! A process that forked without exec would share its pool with the child, and both would
//! seal with the same nonces. Node cannot do that: `child_process` and `cluster` start new
//! processes (fork then exec), which load the addon afresh.

use std::cell::RefCell;

use zeroize::Zeroize;

use crate::error::{Result, StoreError};

/// Length in bytes of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;

/// Nonces drawn per system call.
pub const POOL_NONCES: usize = 64;

const POOL_BYTES: usize = NONCE_LEN * POOL_NONCES;

/// Nonces drawn and not handed out yet.
struct Pool {
    bytes: [u8; POOL_BYTES],
    /// Offset of the next nonce; `POOL_BYTES` when the pool is used up.
    next: usize,
}

impl Pool {
    const fn empty() -> Self {
        Self { bytes: [0; POOL_BYTES], next: POOL_BYTES }
    }

    /// The next nonce, refilling the pool from `fill` when it is used up.
    fn take(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> std::result::Result<(), getrandom::Error>,
    ) -> Result<[u8; NONCE_LEN]> {
        if self.next == POOL_BYTES {
            fill(&mut self.bytes)
                .map_err(|_| StoreError::Internal("the OS random generator failed".into()))?;
            self.next = 0;
        }

        let slot = &mut self.bytes[self.next..self.next + NONCE_LEN];
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(slot);
        slot.zeroize();
        self.next += NONCE_LEN;
        Ok(nonce)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool::empty()) };
}

/// A nonce never handed out before, from the OS random generator.
pub fn fresh() -> Result<[u8; NONCE_LEN]> {
    POOL.with(|pool| pool.borrow_mut().take(getrandom::getrandom))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn nonces_differ_across_many_refills() {
        let drawn: HashSet<[u8; NONCE_LEN]> =
            (0..POOL_NONCES * 20 + 5).map(|_| fresh().unwrap()).collect();
        assert_eq!(drawn.len(), POOL_NONCES * 20 + 5);
    }

    #[test]
    fn one_system_call_fills_a_whole_pool_and_taken_bytes_are_wiped() {
        let mut pool = Pool::empty();
        let mut calls = 0;
        for _ in 0..POOL_NONCES * 2 {
            pool.take(|bytes| {
                calls += 1;
                getrandom::getrandom(bytes)
            })
            .unwrap();
            assert!(pool.bytes[..pool.next].iter().all(|&byte| byte == 0));
        }
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_failing_generator_is_an_error_and_hands_out_nothing() {
        let mut pool = Pool::empty();
        let err = pool.take(|_| Err(getrandom::Error::UNSUPPORTED)).unwrap_err();
        assert_eq!(err.code(), "ERR_INTERNAL");
        assert_eq!(pool.next, POOL_BYTES, "the pool stays empty");
    }
}
