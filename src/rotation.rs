//! Key rotation: re-sealing every stored session with the newest key, one SCAN step at a
//! time, so that an old key can be retired without ending anyone's session.
//!
//! A step reads the string values found by one SCAN step (tombstones are hashes, and are
//! skipped) and decides for each one ([`decide`]): sealed with the newest key already, opens
//! with none of the keys held, or to be re-sealed. A re-sealed value is written back only if
//! the key still holds exactly the bytes read ([`Backend::replace_if_unchanged`]), keeping
//! its lifetime: a session that live traffic rewrote, destroyed or let expire meanwhile is
//! never replaced by an older version (a rewrite sealed it with the newest key anyway).
//! Steps are independent: a walk can stop after any step and resume from its cursor.
//!
//! [`Backend::replace_if_unchanged`]: crate::backend::Backend::replace_if_unchanged

use futures_util::future::join_all;
use zeroize::Zeroizing;

use crate::envelope;
use crate::error::{Result, StoreError};
use crate::keys::{hex, KeyRing};
use crate::store::SessionStore;

/// Compare-and-set scripts sent at once, at most, to bound what is in flight.
const WRITE_BATCH: usize = 500;

/// What rotation does with one stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Sealed with the newest key already: left alone.
    Current,
    /// Opens with none of the keys held (or is no envelope at all): left alone.
    Undecryptable,
    /// Opened with an older key; this is the value re-sealed with the newest one.
    Reseal(Vec<u8>),
}

/// Decides what to do with `stored`, read from the Redis key `key_name`. A value that names
/// the newest key is not opened; any other is opened with the key it names and re-sealed
/// with the newest key, under the same key name (the associated data of [`envelope::seal`]).
pub fn decide(ring: &KeyRing, key_name: &[u8], stored: &[u8]) -> Result<Decision> {
    if envelope::key_id_of(stored) == Some(ring.sealing_key().id()) {
        return Ok(Decision::Current);
    }

    let Ok(plaintext) = envelope::open(ring, key_name, stored) else {
        return Ok(Decision::Undecryptable);
    };
    let plaintext = Zeroizing::new(plaintext);

    envelope::seal(ring, key_name, &plaintext).map(Decision::Reseal)
}

/// One value to put back: the key, the bytes read from it, and their re-sealed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The Redis key.
    pub key: Vec<u8>,
    /// The value read, which the key must still hold for the rewrite to happen.
    pub old: Vec<u8>,
    /// The value re-sealed with the newest key.
    pub new: Vec<u8>,
}

/// Counts of one rotation step; the caller adds the steps up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationPage {
    /// Cursor of the next step; "0" when the walk is over.
    pub cursor: String,
    /// String keys this step found.
    pub scanned: u32,
    /// Values re-sealed with the newest key and written back.
    pub rotated: u32,
    /// Values sealed with the newest key already.
    pub already_current: u32,
    /// Values rewritten, destroyed or expired by live traffic between the read and the
    /// write-back: left as live traffic made them.
    pub changed_meanwhile: u32,
    /// Values that open with none of the keys held: left alone.
    pub undecryptable: u32,
    /// Hex fingerprint of the newest key, which every rotated value now names.
    pub key_id: String,
}

/// One step of counting the string keys under the prefix (the pre-pass of a rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountPage {
    /// Cursor of the next step; "0" when the walk is over.
    pub cursor: String,
    /// String keys this step found.
    pub keys: u32,
}

/// Accepts a cursor as a walk returns it: digits, or on a cluster `index:digits:host:port`
/// (or `index:digits`, as earlier versions wrote it). Anything else is refused rather than
/// read as "start again" (a damaged resume point).
pub fn check_cursor(cursor: &str) -> Result<()> {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let address = |part: &str| match part.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !host.contains(char::is_control) && digits(port),
        None => false,
    };
    let mut parts = cursor.splitn(3, ':');
    let valid = match (parts.next(), parts.next(), parts.next()) {
        (Some(at), None, None) => digits(at),
        (Some(node), Some(at), None) => digits(node) && digits(at),
        (Some(node), Some(at), Some(host)) => digits(node) && digits(at) && address(host),
        _ => false,
    };
    if !valid {
        return Err(StoreError::argument("cursor", "must be a cursor returned by a page, or 0"));
    }
    Ok(())
}

/// Sorts the values read for `keys` (`None`: gone since SCAN found it) into counts and the
/// rewrites to attempt. The rewrites are not counted yet: the caller knows how they ended.
pub fn plan(
    ring: &KeyRing,
    keys: Vec<Vec<u8>>,
    values: Vec<Option<Vec<u8>>>,
) -> Result<(RotationPage, Vec<Rewrite>)> {
    let mut page = RotationPage { scanned: saturating(keys.len()), ..RotationPage::default() };
    let mut rewrites = Vec::new();

    for (key, value) in keys.into_iter().zip(values) {
        let Some(old) = value else {
            page.changed_meanwhile += 1;
            continue;
        };
        match decide(ring, &key, &old)? {
            Decision::Current => page.already_current += 1,
            Decision::Undecryptable => page.undecryptable += 1,
            Decision::Reseal(new) => rewrites.push(Rewrite { key, old, new }),
        }
    }
    Ok((page, rewrites))
}

impl SessionStore {
    /// One rotation step from `cursor` ("0" to start): every string key of one SCAN step is
    /// re-sealed with the newest key unless it already is, or does not open, or changed
    /// before it could be written back. Lifetimes are kept.
    pub async fn rotate_page(&self, cursor: &str) -> Result<RotationPage> {
        check_cursor(cursor)?;
        let pattern = self.scan_pattern();
        let (next, keys) = self.backend().scan_page(&pattern, cursor, Some("string")).await?;
        let values = self.backend().mget(&keys).await?;

        let (mut page, rewrites) = plan(self.key_ring(), keys, values)?;
        let rotated = self.write_back(&rewrites).await?;

        page.rotated = rotated;
        page.changed_meanwhile += saturating(rewrites.len()).saturating_sub(rotated);
        page.cursor = next;
        page.key_id = hex(&self.key_ring().sealing_key().id());
        Ok(page)
    }

    /// One step of counting the sessions under the prefix from `cursor` ("0" to start);
    /// nothing is kept in memory between steps.
    pub async fn count_page(&self, cursor: &str) -> Result<CountPage> {
        check_cursor(cursor)?;
        let pattern = self.scan_pattern();
        let (next, keys) = self.backend().scan_page(&pattern, cursor, Some("string")).await?;
        Ok(CountPage { cursor: next, keys: saturating(keys.len()) })
    }

    /// Runs the compare-and-set of each rewrite, many at once on the shared connection;
    /// returns how many replaced their value.
    async fn write_back(&self, rewrites: &[Rewrite]) -> Result<u32> {
        let mut replaced = 0;
        for batch in rewrites.chunks(WRITE_BATCH) {
            let each = batch.iter().map(|rewrite| {
                self.backend().replace_if_unchanged(&rewrite.key, &rewrite.old, &rewrite.new)
            });
            for outcome in join_all(each).await {
                replaced += u32::from(outcome?);
            }
        }
        Ok(replaced)
    }
}

fn saturating(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SessionKey;

    fn ring(keys: &[u8]) -> KeyRing {
        let keys = keys.iter().map(|&b| SessionKey::from_bytes(&[b; 32]).unwrap()).collect();
        KeyRing::from_keys(keys).unwrap()
    }

    #[test]
    fn a_value_on_the_newest_key_is_left_alone() {
        let sealed = envelope::seal(&ring(&[2]), b"session:a", b"{}").unwrap();
        assert_eq!(decide(&ring(&[2, 1]), b"session:a", &sealed).unwrap(), Decision::Current);
    }

    #[test]
    fn a_value_on_an_old_key_is_resealed_for_the_newest_key_alone() {
        let sealed = envelope::seal(&ring(&[1]), b"session:a", b"{\"n\":1}").unwrap();

        let Decision::Reseal(new) = decide(&ring(&[2, 1]), b"session:a", &sealed).unwrap() else {
            panic!("an old value was not re-sealed");
        };

        assert_eq!(envelope::key_id_of(&new), Some(ring(&[2]).sealing_key().id()));
        assert_eq!(envelope::open(&ring(&[2]), b"session:a", &new).unwrap(), b"{\"n\":1}");
        assert!(envelope::open(&ring(&[2]), b"session:b", &new).is_err(), "not bound to key");
        assert!(envelope::open(&ring(&[1]), b"session:a", &new).is_err());
    }

    #[test]
    fn what_no_key_opens_is_undecryptable() {
        let foreign = envelope::seal(&ring(&[9]), b"session:a", b"{}").unwrap();
        let mut tampered = envelope::seal(&ring(&[1]), b"session:a", b"{}").unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let moved = envelope::seal(&ring(&[1]), b"session:b", b"{}").unwrap();

        for stored in [foreign, tampered, moved, b"{\"cookie\":{}}".to_vec(), Vec::new()] {
            let decision = decide(&ring(&[2, 1]), b"session:a", &stored).unwrap();
            assert_eq!(decision, Decision::Undecryptable);
        }
    }

    #[test]
    fn a_plan_counts_every_key_once() {
        let old = ring(&[1]);
        let keys: Vec<Vec<u8>> = ["s:old", "s:new", "s:bad", "s:gone"].map(Into::into).into();
        let values = vec![
            Some(envelope::seal(&old, b"s:old", b"{}").unwrap()),
            Some(envelope::seal(&ring(&[2]), b"s:new", b"{}").unwrap()),
            Some(b"garbage".to_vec()),
            None,
        ];

        let (page, rewrites) = plan(&ring(&[2, 1]), keys, values.clone()).unwrap();

        assert_eq!((page.scanned, page.already_current, page.undecryptable), (4, 1, 1));
        assert_eq!((page.changed_meanwhile, page.rotated), (1, 0));
        assert_eq!(rewrites.len(), 1);
        assert_eq!(rewrites[0].key, b"s:old");
        assert_eq!(Some(&rewrites[0].old), values[0].as_ref());
    }

    #[test]
    fn cursors_are_checked_before_redis_is_called() {
        for good in ["0", "17", "2:0", "10:123456789", "1:42:127.0.0.1:7001", "0:0:[::1]:7000"] {
            assert!(check_cursor(good).is_ok(), "{good}");
        }
        for bad in ["", "x", "-1", " 1", "1:", ":1", "1:2:3", "1:x", "0x10", "1:2:host:", "1:2::7"]
        {
            let err = check_cursor(bad).unwrap_err();
            assert_eq!(err.code(), "ERR_INVALID_ARG", "{bad}");
            assert!(err.to_string().contains("cursor"));
        }
    }
}
