//! The compact forms in which per-request operations cross between Node's thread and the
//! store, a whole batch at a time.
//!
//! Each value that crosses the Node-API boundary costs a call into the engine, more than
//! the work of one session operation; so a batch crosses as one text and one array of
//! numbers, whatever its size.
//!
//! Requests: `records` holds [`RECORD_LEN`] numbers per operation: its code, its id, then
//! the lengths (in UTF-16 code units, -1 for none) of its key, its JSON and its user id,
//! which follow each other in `text`, and last the cookie's expiry (epoch ms) and the TTL
//! (seconds), NaN for none.
//!
//! Outcomes: [`OUTCOME_LEN`] numbers per outcome (id, status, length of its value in
//! `text` in UTF-16 code units, -1 for none), the values following each other in `text`.

use crate::batch_queue::Batch;
use crate::dispatch::{Op, Outcome, Request};
use crate::error::StoreError;

/// Numbers per request record.
pub const RECORD_LEN: usize = 7;

/// Numbers per outcome.
pub const OUTCOME_LEN: usize = 3;

/// Outcome statuses: a value (JSON, or none), an error message, the link came up, the link
/// was lost (the value is the reason).
pub const STATUS_DONE: f64 = 0.0;
/// See [`STATUS_DONE`].
pub const STATUS_FAILED: f64 = 1.0;
/// See [`STATUS_DONE`].
pub const STATUS_CONNECTED: f64 = 2.0;
/// See [`STATUS_DONE`].
pub const STATUS_DISCONNECTED: f64 = 3.0;

/// A request that could not be read: its id and why.
pub type Refused = (u32, StoreError);

/// Reads the requests of one batch; a malformed record is refused by id, the others go on.
/// A record whose lengths run past `text` ends the batch: nothing after it can be placed.
pub fn decode_requests(text: &str, records: &[f64]) -> (Vec<Request>, Vec<Refused>) {
    let mut requests = Vec::with_capacity(records.len() / RECORD_LEN);
    let mut refused = Vec::new();
    let mut cursor = Cursor { text, at: 0, lost: false };

    for record in records.chunks_exact(RECORD_LEN) {
        let id = record[1] as u32;
        match decode_one(&mut cursor, record) {
            Ok(request) => requests.push(request),
            Err(err) => refused.push((id, err)),
        }
    }
    (requests, refused)
}

fn decode_one(cursor: &mut Cursor<'_>, record: &[f64]) -> Result<Request, StoreError> {
    let key = cursor.take(record[2]);
    let json = cursor.take(record[3]);
    let user = cursor.take(record[4]);
    let op = Op::from_code(record[0] as u32)
        .ok_or_else(|| StoreError::argument("op", "unknown operation"))?;
    let key = key?.ok_or_else(|| StoreError::argument("sid", "is missing"))?;

    Ok(Request {
        id: record[1] as u32,
        op,
        key,
        json: json?,
        user: user?,
        expires_at: number(record[5]),
        ttl_secs: number(record[6]),
    })
}

fn number(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}

/// Walks `text`, taking pieces measured in UTF-16 code units.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
    /// A length ran past the text: where the later pieces start is unknown.
    lost: bool,
}

impl Cursor<'_> {
    /// The next piece of `units` code units; `None` for a negative length.
    fn take(&mut self, units: f64) -> Result<Option<String>, StoreError> {
        if units.is_nan() || units < 0.0 {
            return Ok(None);
        }
        if self.lost {
            return Err(StoreError::argument("batch", "an earlier length ran past the text"));
        }
        let units = units as usize;
        let rest = &self.text[self.at..];

        // Most pieces are ASCII, where a code unit is a byte.
        let bytes = match rest.as_bytes().get(..units) {
            Some(head) if head.is_ascii() => units,
            _ => utf8_len_of_units(rest, units).inspect_err(|_| self.lost = true)?,
        };
        self.at += bytes;
        Ok(Some(rest[..bytes].to_owned()))
    }
}

/// Bytes of the first `units` UTF-16 code units of `text`.
fn utf8_len_of_units(text: &str, units: usize) -> Result<usize, StoreError> {
    let mut counted = 0;
    for (at, c) in text.char_indices() {
        if counted == units {
            return Ok(at);
        }
        counted += c.len_utf16();
    }
    if counted == units {
        return Ok(text.len());
    }
    Err(StoreError::argument("batch", "a length runs past the text"))
}

/// Outcomes written as the numbers and the text that JS reads back, built on the store's
/// thread as they arrive, so that Node's thread only hands them over.
#[derive(Debug, Default)]
pub struct EncodedOutcomes {
    /// [`OUTCOME_LEN`] numbers per outcome.
    pub numbers: Vec<f64>,
    /// The outcomes' values, one after the other.
    pub text: String,
}

impl EncodedOutcomes {
    /// Whether the text is ASCII, which JS can take as Latin-1, without decoding.
    pub fn is_ascii(&self) -> bool {
        self.text.is_ascii()
    }
}

impl Batch for EncodedOutcomes {
    type Item = Outcome;

    fn add(&mut self, outcome: Outcome) {
        let (id, status, value) = match outcome {
            Outcome::Done(id, value) => (id, STATUS_DONE, value),
            Outcome::Failed(id, err) => (id, STATUS_FAILED, Some(coded_message(&err))),
            Outcome::Connected => (0, STATUS_CONNECTED, None),
            Outcome::Disconnected(reason) => (0, STATUS_DISCONNECTED, Some(reason)),
        };
        let length = match value {
            Some(value) => {
                self.text.push_str(&value);
                utf16_len(&value) as f64
            }
            None => -1.0,
        };
        self.numbers.extend([f64::from(id), status, length]);
    }

    fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

/// The message JS turns into an `Error` with `code`: the stable code, then the text.
pub fn coded_message(err: &StoreError) -> String {
    format!("{}: {err}", err.code())
}

fn utf16_len(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.encode_utf16().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: f64, id: f64, lens: [f64; 3], expiry: f64, ttl: f64) -> Vec<f64> {
        vec![op, id, lens[0], lens[1], lens[2], expiry, ttl]
    }

    #[test]
    fn requests_are_read_back_in_order() {
        let text = "sid-1{\"a\":1}user-9sid-2";
        let mut records = record(1.0, 7.0, [5.0, 7.0, 6.0], 1e12, f64::NAN);
        records.extend(record(0.0, 8.0, [5.0, -1.0, -1.0], f64::NAN, f64::NAN));

        let (requests, refused) = decode_requests(text, &records);
        assert!(refused.is_empty());
        assert_eq!(requests[0].key, "sid-1");
        assert_eq!(requests[0].json.as_deref(), Some("{\"a\":1}"));
        assert_eq!(requests[0].user.as_deref(), Some("user-9"));
        assert_eq!((requests[0].expires_at, requests[0].ttl_secs), (Some(1e12), None));
        assert_eq!(
            (requests[1].id, requests[1].op, requests[1].key.as_str()),
            (8, Op::Get, "sid-2")
        );
        assert_eq!(requests[1].json, None);
    }

    #[test]
    fn lengths_count_utf16_units_over_utf8_text() {
        // "é" is one unit and two bytes; "😀" is two units and four bytes.
        let text = "é😀x{\"v\":\"😀\"}";
        let records = record(1.0, 1.0, [4.0, 10.0, -1.0], f64::NAN, 60.0);
        let (requests, _) = decode_requests(text, &records);
        assert_eq!(requests[0].key, "é😀x");
        assert_eq!(requests[0].json.as_deref(), Some("{\"v\":\"😀\"}"));
    }

    #[test]
    fn a_bad_record_is_refused_alone() {
        let mut records = record(9.0, 1.0, [1.0, -1.0, -1.0], f64::NAN, f64::NAN);
        records.extend(record(0.0, 2.0, [1.0, -1.0, -1.0], f64::NAN, f64::NAN));
        records.extend(record(0.0, 3.0, [50.0, -1.0, -1.0], f64::NAN, f64::NAN));
        records.extend(record(0.0, 4.0, [1.0, -1.0, -1.0], f64::NAN, f64::NAN));
        let (requests, refused) = decode_requests("abc", &records);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].key, "b");
        let ids: Vec<u32> = refused.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![1, 3, 4]);
    }

    #[test]
    fn outcomes_carry_utf16_lengths() {
        let outcomes = vec![
            Outcome::Done(4, Some("{\"n\":\"é\"}".into())),
            Outcome::Done(5, None),
            Outcome::Failed(6, StoreError::Closed),
            Outcome::Connected,
        ];
        let mut encoded = EncodedOutcomes::default();
        outcomes.into_iter().for_each(|outcome| encoded.add(outcome));
        let EncodedOutcomes { numbers, text } = encoded;
        assert_eq!(&numbers[..6], &[4.0, STATUS_DONE, 9.0, 5.0, STATUS_DONE, -1.0]);
        assert_eq!(numbers[7], STATUS_FAILED);
        assert_eq!(numbers[10..], [STATUS_CONNECTED, -1.0]);
        assert!(text.starts_with("{\"n\":\"é\"}ERR_CLOSED: "));
    }
}
