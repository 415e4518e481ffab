//! The compact forms in which per-request operations cross between Node's thread and the
//! store, a whole batch at a time.
//!
//! Each value that crosses the Node-API boundary costs a call into the engine, more than
//! the work of one session operation; so a batch crosses as one text and one array of
//! numbers, whatever its size.
//!
//! Requests: `records` holds [`RECORD_LEN`] numbers per operation: its code, its id, then
//! the lengths (in UTF-16 code units, -1 for none) of its key, its JSON and its user id,
//! which follow each other in `text`, then the cookie's expiry (epoch ms) and the TTL
//! (seconds), NaN for none, and last the number of its session's shape, NaN for none.
//! A session written as its shape's values (see [`crate::json_join`]) has no JSON: its
//! values come from `values` in the order of its template's slots (a string or JSON piece
//! as its length, its text following the key in `text`; a number as itself, or NaN and
//! then the length of its JSON text; a boolean as 0 or 1; a Date as its time value).
//! A shape is defined by a record with the code [`OP_DEFINE_SHAPE`] before its first use:
//! the shape's number in place of the id, the length of its slot kinds (letters, see
//! [`crate::json_join::Template::new`]) in place of the key's, and in `values` the lengths
//! of its literal pieces, whose texts follow the letters in `text`.
//!
//! Outcomes: [`OUTCOME_LEN`] numbers per outcome (id, status, length of its value in
//! `text` in UTF-16 code units, -1 for none), the values following each other in `text`.
//! A session read that was cut (see [`crate::json_split`]) has the status
//! [`STATUS_SHAPED`] and the number of its shape in place of the length, then the number
//! of its slots and the slots, and its text is one string of its own in `texts`, so that
//! the strings built from it hold on to nothing of other sessions. The first use of a shape
//! is preceded by its definition: status [`STATUS_SHAPE`], the shape's number in place of
//! the id, and its descriptor as the value.

use crate::batch_queue::Batch;
use crate::dispatch::{Op, Outcome, Request, ShapedSession, Written};
use crate::error::StoreError;
use crate::json_join::{Filled, Kind, Slot, Template, Templates};
use crate::json_split::utf16_len;

/// Numbers per request record.
pub const RECORD_LEN: usize = 8;

/// The code of a record that defines a shape rather than asks for an operation.
pub const OP_DEFINE_SHAPE: u32 = 5;

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
/// The definition of a shape (see the module documentation).
pub const STATUS_SHAPE: f64 = 4.0;
/// A session read, cut into its shape's slots (see the module documentation).
pub const STATUS_SHAPED: f64 = 5.0;

/// A request that could not be read: its id and why.
pub type Refused = (u32, StoreError);

/// Reads the requests of one batch, defining the shapes it defines on the way; a
/// malformed record is refused by id, the others go on. A record whose lengths run past
/// `text` or `values` ends the batch: nothing after it can be placed.
pub fn decode_requests(
    text: &str,
    records: &[f64],
    values: &[f64],
    templates: &Templates,
) -> (Vec<Request>, Vec<Refused>) {
    let mut requests = Vec::with_capacity(records.len() / RECORD_LEN);
    let mut refused = Vec::new();
    let mut cursor = Cursor { text, at: 0, values, value_at: 0, lost: false };

    for record in records.chunks_exact(RECORD_LEN) {
        if record[0] as u32 == OP_DEFINE_SHAPE {
            define(&mut cursor, record, templates);
            continue;
        }
        let id = record[1] as u32;
        match decode_one(&mut cursor, record, templates) {
            Ok(request) => requests.push(request),
            Err(err) => refused.push((id, err)),
        }
    }
    (requests, refused)
}

fn decode_one(
    cursor: &mut Cursor<'_>,
    record: &[f64],
    templates: &Templates,
) -> Result<Request, StoreError> {
    let key = cursor.take(record[2]);
    let json = match number(record[7]) {
        Some(shape) => {
            filled(cursor, shape, templates).map(|filled| Some(Written::Filled(filled)))
        }
        None => cursor.take(record[3]).map(|json| json.map(Written::Json)),
    };
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

/// Defines a shape; a definition that cannot be read leaves its number undefined, so that
/// its uses are refused rather than written wrong.
fn define(cursor: &mut Cursor<'_>, record: &[f64], templates: &Templates) {
    let read = |cursor: &mut Cursor<'_>| -> Result<Template, StoreError> {
        let letters = cursor.take_str(record[2])?;
        let literals = (0..=letters.chars().count())
            .map(|_| {
                cursor.take_value().and_then(|units| cursor.take_str(units)).map(str::to_owned)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Template::new(letters, literals)
    };
    let template = read(cursor).inspect_err(|_| cursor.lost = true).ok();
    let _ = templates.define(record[1] as usize, template);
}

/// A session sent as the values of shape `shape`: the values, and their texts copied
/// at once (they follow each other in `text`).
fn filled(
    cursor: &mut Cursor<'_>,
    shape: f64,
    templates: &Templates,
) -> Result<Filled, StoreError> {
    let read = |cursor: &mut Cursor<'_>| -> Result<Filled, StoreError> {
        let template = templates.get(shape as usize)?;
        let start = cursor.at;
        let mut slots = Vec::with_capacity(template.kinds().len());
        for kind in template.kinds() {
            slots.push(match cursor.take_slot(*kind)? {
                Taken::Number(number) => Slot::Number(number),
                Taken::Text => Slot::Text(cursor.at - start),
            });
        }
        let text = cursor.text[start..cursor.at].to_owned();
        Ok(Filled::new(template, slots, text))
    };
    // Where this record's values end is known only through its template.
    read(cursor).inspect_err(|_| cursor.lost = true)
}

/// What one slot took: a number, or a piece of the text (the cursor is after it).
enum Taken {
    Number(f64),
    Text,
}

fn number(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}

/// Walks `text`, taking pieces measured in UTF-16 code units, and `values`.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
    values: &'a [f64],
    value_at: usize,
    /// A length ran past the text: where the later pieces start is unknown.
    lost: bool,
}

impl<'a> Cursor<'a> {
    /// The next piece of `units` code units, copied; `None` for a negative length.
    fn take(&mut self, units: f64) -> Result<Option<String>, StoreError> {
        if units.is_nan() || units < 0.0 {
            return Ok(None);
        }
        self.take_str(units).map(|piece| Some(piece.to_owned()))
    }

    /// The next piece of `units` code units.
    fn take_str(&mut self, units: f64) -> Result<&'a str, StoreError> {
        if self.lost {
            return Err(StoreError::argument("batch", "an earlier length ran past the text"));
        }
        if units.is_nan() || units < 0.0 {
            return Err(StoreError::argument("batch", "a length is missing"));
        }
        let units = units as usize;
        let text = self.text;
        let rest = &text[self.at..];

        // Most pieces are ASCII, where a code unit is a byte.
        let bytes = match rest.as_bytes().get(..units) {
            Some(head) if head.is_ascii() => units,
            _ => utf8_len_of_units(rest, units).inspect_err(|_| self.lost = true)?,
        };
        self.at += bytes;
        Ok(&rest[..bytes])
    }

    /// The next number of `values`.
    fn take_value(&mut self) -> Result<f64, StoreError> {
        let value = self.values.get(self.value_at).copied();
        self.value_at += 1;
        value.ok_or_else(|| StoreError::argument("batch", "a value runs past the values"))
    }

    /// The value of one slot of kind `kind` (see the module documentation).
    fn take_slot(&mut self, kind: Kind) -> Result<Taken, StoreError> {
        let number = self.take_value()?;
        let units = match kind {
            Kind::Str | Kind::Raw => number,
            Kind::Num if number.is_nan() => self.take_value()?,
            Kind::Num | Kind::Bool | Kind::Date => return Ok(Taken::Number(number)),
        };
        self.take_str(units)?;
        Ok(Taken::Text)
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
    /// The text of each cut session, in order.
    pub texts: Vec<String>,
}

impl Batch for EncodedOutcomes {
    type Item = Outcome;

    fn add(&mut self, outcome: Outcome) {
        let (id, status, value) = match outcome {
            Outcome::Shaped(id, session) => return self.add_shaped(id, session),
            Outcome::Done(id, value) => (id, STATUS_DONE, value),
            Outcome::Failed(id, err) => (id, STATUS_FAILED, Some(coded_message(&err))),
            Outcome::Connected => (0, STATUS_CONNECTED, None),
            Outcome::Disconnected(reason) => (0, STATUS_DISCONNECTED, Some(reason)),
        };
        self.add_plain(f64::from(id), status, value.as_deref());
    }

    fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

impl EncodedOutcomes {
    fn add_plain(&mut self, id: f64, status: f64, value: Option<&str>) {
        let length = match value {
            Some(value) => {
                self.text.push_str(value);
                utf16_len(value) as f64
            }
            None => -1.0,
        };
        self.numbers.extend([id, status, length]);
    }

    fn add_shaped(&mut self, id: u32, session: ShapedSession) {
        let shape = f64::from(session.shape);
        if let Some(definition) = &session.definition {
            self.add_plain(shape, STATUS_SHAPE, Some(definition));
        }
        let count = session.slots.len() as f64;
        self.numbers.extend([f64::from(id), STATUS_SHAPED, shape, count]);
        self.numbers.extend_from_slice(&session.slots);
        self.texts.push(session.text);
    }
}

/// The message JS turns into an `Error` with `code`: the stable code, then the text.
pub fn coded_message(err: &StoreError) -> String {
    format!("{}: {err}", err.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: f64, id: f64, lens: [f64; 3], expiry: f64, ttl: f64) -> Vec<f64> {
        vec![op, id, lens[0], lens[1], lens[2], expiry, ttl, f64::NAN]
    }

    fn decode_requests(text: &str, records: &[f64]) -> (Vec<Request>, Vec<Refused>) {
        super::decode_requests(text, records, &[], &Templates::default())
    }

    /// A definition of shape `number`: `{"a":<string>,"n":<number>,"ok":<boolean>}`.
    fn definition(number: f64) -> (String, Vec<f64>, Vec<f64>) {
        let literals = ["{\"a\":", ",\"n\":", ",\"ok\":", "}"];
        let text = format!("snb{}", literals.concat());
        let values = literals.iter().map(|piece| piece.len() as f64).collect();
        let record =
            vec![OP_DEFINE_SHAPE as f64, number, 3.0, -1.0, -1.0, f64::NAN, f64::NAN, -1.0];
        (text, record, values)
    }

    fn json_of(request: &Request) -> String {
        match request.json.as_ref().unwrap() {
            Written::Json(json) => json.clone(),
            Written::Filled(filled) => filled.to_json().unwrap(),
        }
    }

    fn shaped_set(id: f64, shape: f64, key_len: f64) -> Vec<f64> {
        vec![1.0, id, key_len, -1.0, -1.0, f64::NAN, 60.0, shape]
    }

    #[test]
    fn a_session_sent_as_values_is_written_as_json_stringify_writes_it() {
        let templates = Templates::default();
        let (mut text, mut records, mut values) = definition(3.0);
        text.push_str("sid-1é\"\n\u{1}sid-21.5");
        records.extend(shaped_set(7.0, 3.0, 5.0));
        values.extend([4.0, 42.0, 1.0]);
        records.extend(shaped_set(8.0, 3.0, 5.0));
        values.extend([0.0, f64::NAN, 3.0, 0.0]);

        let (requests, refused) = super::decode_requests(&text, &records, &values, &templates);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(requests[0].key, "sid-1");
        assert_eq!(json_of(&requests[0]), r#"{"a":"é\"\n\u0001","n":42,"ok":true}"#);
        assert_eq!(requests[1].key, "sid-2");
        assert_eq!(json_of(&requests[1]), r#"{"a":"","n":1.5,"ok":false}"#);
    }

    #[test]
    fn a_session_of_an_unknown_shape_is_refused_with_the_rest_of_its_batch() {
        let templates = Templates::default();
        let mut records = shaped_set(1.0, 9.0, 1.0);
        records.extend(record(0.0, 2.0, [1.0, -1.0, -1.0], f64::NAN, f64::NAN));
        let (requests, refused) = super::decode_requests("ab", &records, &[1.0], &templates);
        assert!(requests.is_empty());
        let ids: Vec<u32> = refused.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(refused[0].1.code(), "ERR_INTERNAL");
    }

    #[test]
    fn a_definition_that_cannot_be_read_leaves_its_shape_undefined() {
        let templates = Templates::default();
        let (text, mut records, mut values) = definition(0.0);
        super::decode_requests(&text, &records, &values, &templates);
        assert!(templates.get(0).is_ok());

        values.pop();
        records[1] = 0.0;
        let (requests, refused) = super::decode_requests(&text, &records, &values, &templates);
        assert!(requests.is_empty() && refused.is_empty());
        assert!(templates.get(0).is_err(), "the earlier definition must not stand");
    }

    #[test]
    fn requests_are_read_back_in_order() {
        let text = "sid-1{\"a\":1}user-9sid-2";
        let mut records = record(1.0, 7.0, [5.0, 7.0, 6.0], 1e12, f64::NAN);
        records.extend(record(0.0, 8.0, [5.0, -1.0, -1.0], f64::NAN, f64::NAN));

        let (requests, refused) = decode_requests(text, &records);
        assert!(refused.is_empty());
        assert_eq!(requests[0].key, "sid-1");
        assert_eq!(json_of(&requests[0]), "{\"a\":1}");
        assert_eq!(requests[0].user.as_deref(), Some("user-9"));
        assert_eq!((requests[0].expires_at, requests[0].ttl_secs), (Some(1e12), None));
        assert_eq!(
            (requests[1].id, requests[1].op, requests[1].key.as_str()),
            (8, Op::Get, "sid-2")
        );
        assert!(requests[1].json.is_none());
    }

    #[test]
    fn lengths_count_utf16_units_over_utf8_text() {
        // "é" is one unit and two bytes; "😀" is two units and four bytes.
        let text = "é😀x{\"v\":\"😀\"}";
        let records = record(1.0, 1.0, [4.0, 10.0, -1.0], f64::NAN, 60.0);
        let (requests, _) = decode_requests(text, &records);
        assert_eq!(requests[0].key, "é😀x");
        assert_eq!(json_of(&requests[0]), "{\"v\":\"😀\"}");
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
        let EncodedOutcomes { numbers, text, .. } = encoded;
        assert_eq!(&numbers[..6], &[4.0, STATUS_DONE, 9.0, 5.0, STATUS_DONE, -1.0]);
        assert_eq!(numbers[7], STATUS_FAILED);
        assert_eq!(numbers[10..], [STATUS_CONNECTED, -1.0]);
        assert!(text.starts_with("{\"n\":\"é\"}ERR_CLOSED: "));
    }

    fn shaped(shape: u32, definition: Option<&str>, slots: Vec<f64>, text: &str) -> ShapedSession {
        let definition = definition.map(str::to_owned);
        ShapedSession { shape, definition, slots, text: text.to_owned() }
    }

    #[test]
    fn a_shape_is_defined_before_its_first_use_only() {
        let outcomes = vec![
            Outcome::Shaped(7, shaped(0, Some(r#"["o","a","s"]"#), vec![2.0], "hi")),
            Outcome::Done(8, None),
            Outcome::Shaped(9, shaped(0, None, vec![3.0], "you")),
        ];
        let mut encoded = EncodedOutcomes::default();
        outcomes.into_iter().for_each(|outcome| encoded.add(outcome));

        let definition = [0.0, STATUS_SHAPE, 13.0];
        let first = [7.0, STATUS_SHAPED, 0.0, 1.0, 2.0];
        let plain = [8.0, STATUS_DONE, -1.0];
        let second = [9.0, STATUS_SHAPED, 0.0, 1.0, 3.0];
        assert_eq!(encoded.numbers, [&definition[..], &first, &plain, &second].concat());
        assert_eq!(encoded.text, r#"["o","a","s"]"#);
        assert_eq!(encoded.texts, vec!["hi", "you"]);
    }
}
