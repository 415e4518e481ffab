//! Writes a session's JSON from its shape and its values, for sessions that Node's side
//! hands over that way instead of running `JSON.stringify` (`lib/session-encoder.js`).
//!
//! Node's side knows the JSON of a shape but its values: the keys, the punctuation, the
//! nulls and the members `JSON.stringify` leaves out. It sends that once per shape as a
//! [`Template`]: the literal pieces, and between each two the kind of the value that goes
//! there. Here the values are written in, as `JSON.stringify` writes them:
//! - a string ([`Kind::Str`]) quoted and escaped,
//! - a number ([`Kind::Num`]) that is a safe integer, in decimal (any other number comes as
//!   its JSON text, made by JS, since JS has its own way of printing fractions),
//! - a boolean ([`Kind::Bool`]),
//! - a Date ([`Kind::Date`]) as its time value, written as `toISOString` does, or `null` for
//!   an invalid date,
//! - a piece of JSON text made by JS ([`Kind::Raw`]), copied as it is.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::error::{Result, StoreError};

/// Most templates per store; Node's side numbers its shapes below this.
pub const MAX_TEMPLATES: usize = 64;

/// Largest integer that every double below it represents exactly (2^53 - 1).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Largest time value a JS Date holds, in ms either side of the epoch.
const MAX_TIME_MS: f64 = 8.64e15;

/// What goes into one slot of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string, quoted and escaped here.
    Str,
    /// A number: a safe integer, or its JSON text.
    Num,
    /// A boolean, as 0 or 1.
    Bool,
    /// A Date's time value (NaN for an invalid date).
    Date,
    /// JSON text made by JS.
    Raw,
}

impl Kind {
    fn from_letter(letter: char) -> Option<Self> {
        Some(match letter {
            's' => Self::Str,
            'n' => Self::Num,
            'b' => Self::Bool,
            'd' => Self::Date,
            'j' => Self::Raw,
            _ => return None,
        })
    }
}

/// The JSON of one shape: `literals[0]`, value 0, `literals[1]`, ... value n-1,
/// `literals[n]`.
#[derive(Debug, PartialEq)]
pub struct Template {
    kinds: Vec<Kind>,
    literals: Vec<String>,
}

impl Template {
    /// A template of the kinds spelled by `letters` (`s`, `n`, `b`, `d`, `j`), with one
    /// literal more than kinds.
    pub fn new(letters: &str, literals: Vec<String>) -> Result<Self> {
        let kinds = letters
            .chars()
            .map(Kind::from_letter)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad_shape("a slot of an unknown kind"))?;
        if literals.len() != kinds.len() + 1 {
            return Err(bad_shape("literals do not match the slots"));
        }
        Ok(Self { kinds, literals })
    }

    /// The kinds of the slots, in order.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }
}

/// One slot's value: a number (a boolean as 0 or 1, a Date's time value), or a piece of
/// [`Filled::text`] (a string's content, or JSON text) ending at the given byte.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// A number.
    Number(f64),
    /// The text from the previous text slot's end to this byte.
    Text(usize),
}

/// A session as a template and its values, to be written as JSON off Node's thread.
#[derive(Debug)]
pub struct Filled {
    template: Arc<Template>,
    slots: Vec<Slot>,
    text: String,
}

impl Filled {
    /// `template` with `slots`, one per slot of the template, whose texts follow each other
    /// in `text`.
    pub fn new(template: Arc<Template>, slots: Vec<Slot>, text: String) -> Self {
        Self { template, slots, text }
    }

    /// The JSON: the template's literals with the values written in between.
    pub fn to_json(&self) -> Result<String> {
        let template = &self.template;
        if self.slots.len() != template.kinds.len() {
            return Err(bad_shape("values do not match the slots"));
        }
        let literals: usize = template.literals.iter().map(String::len).sum();
        let mut json = String::with_capacity(literals + self.text.len() + 16);
        let mut start = 0;

        for ((kind, literal), slot) in
            template.kinds.iter().zip(&template.literals).zip(&self.slots)
        {
            json.push_str(literal);
            let value = match *slot {
                Slot::Number(number) => Value::Number(number),
                Slot::Text(end) => {
                    let piece = self.text.get(start..end).ok_or_else(|| bad_shape("a text"))?;
                    start = end;
                    Value::Text(piece)
                }
            };
            write_value(&mut json, *kind, value)?;
        }
        json.push_str(template.literals.last().map_or("", String::as_str));
        Ok(json)
    }
}

/// A slot's value as it is written.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Number(f64),
    Text(&'a str),
}

fn write_value(json: &mut String, kind: Kind, value: Value<'_>) -> Result<()> {
    match (kind, value) {
        (Kind::Str, Value::Text(text)) => write_string(json, text),
        (Kind::Num | Kind::Raw, Value::Text(text)) => json.push_str(text),
        (Kind::Num, Value::Number(number)) => write_integer(json, number)?,
        (Kind::Bool, Value::Number(flag)) if flag == 0.0 || flag == 1.0 => {
            json.push_str(if flag == 1.0 { "true" } else { "false" });
        }
        (Kind::Date, Value::Number(time)) => write_date(json, time)?,
        _ => return Err(bad_shape("a value of the wrong kind")),
    }
    Ok(())
}

/// A safe integer in decimal; `-0` is `0`, as in JS.
fn write_integer(json: &mut String, number: f64) -> Result<()> {
    if number.fract() != 0.0 || number.abs() > MAX_SAFE_INTEGER {
        return Err(bad_shape("a number slot holds no safe integer"));
    }
    let mut digits = itoa::Buffer::new();
    json.push_str(digits.format(number as i64));
    Ok(())
}

/// `text` quoted as `JSON.stringify` quotes it: `"` and `\` escaped, the control
/// characters as `\b`, `\f`, `\n`, `\r`, `\t` or `\u00xx`, everything else as it is.
pub fn write_string(json: &mut String, text: &str) {
    json.push('"');
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\x08' => "\\b",
            b'\x0c' => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        json.push_str(&text[start..at]);
        if escaped.is_empty() {
            let _ = write!(json, "\\u{byte:04x}");
        } else {
            json.push_str(escaped);
        }
        start = at + 1;
    }
    json.push_str(&text[start..]);
    json.push('"');
}

/// A time value as `Date.prototype.toJSON` writes it: `toISOString` in quotes, or `null`
/// for an invalid date.
fn write_date(json: &mut String, time: f64) -> Result<()> {
    if time.is_nan() {
        json.push_str("null");
        return Ok(());
    }
    if time.fract() != 0.0 || time.abs() > MAX_TIME_MS {
        return Err(bad_shape("a date slot holds no time value"));
    }
    json.push('"');
    write_iso(json, time as i64);
    json.push('"');
    Ok(())
}

/// `toISOString`: `YYYY-MM-DDTHH:mm:ss.sssZ`, the year as `±YYYYYY` outside 0 to 9999.
fn write_iso(json: &mut String, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let of_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);

    match year {
        0..=9999 => push_digits(json, year, 4),
        _ => {
            json.push(if year < 0 { '-' } else { '+' });
            push_digits(json, year.abs(), 6);
        }
    }
    let fields = [
        ('-', month, 2),
        ('-', day, 2),
        ('T', of_day / 3_600_000, 2),
        (':', of_day / 60_000 % 60, 2),
        (':', of_day / 1000 % 60, 2),
        ('.', of_day % 1000, 3),
    ];
    for (separator, value, width) in fields {
        json.push(separator);
        push_digits(json, value, width);
    }
    json.push('Z');
}

/// `value` (0 or more, below 10^`width`) in `width` decimal digits, zeros first.
fn push_digits(json: &mut String, value: i64, width: u32) {
    let mut unit = 10_i64.pow(width - 1);
    while unit > 0 {
        json.push(char::from(b'0' + (value / unit % 10) as u8));
        unit /= 10;
    }
}

/// Year, month (1-12) and day of a count of days since 1970-01-01, in the proleptic
/// Gregorian calendar (H. Hinnant's days-to-civil algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn bad_shape(reason: &str) -> StoreError {
    StoreError::Internal(format!("session shape: {reason}"))
}

/// The templates Node's side defined, by number. Used on Node's thread as batches arrive.
#[derive(Debug, Default)]
pub struct Templates {
    by_number: Mutex<Vec<Option<Arc<Template>>>>,
}

impl Templates {
    /// Records `template` as number `number`, replacing any earlier one; `None` records
    /// that the definition was refused, so that its uses are refused too.
    pub fn define(&self, number: usize, template: Option<Template>) -> Result<()> {
        if number >= MAX_TEMPLATES {
            return Err(bad_shape("too many shapes"));
        }
        let mut by_number = self.by_number.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if by_number.len() <= number {
            by_number.resize(number + 1, None);
        }
        by_number[number] = template.map(Arc::new);
        Ok(())
    }

    /// Template number `number`.
    pub fn get(&self, number: usize) -> Result<Arc<Template>> {
        let by_number = self.by_number.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        by_number.get(number).cloned().flatten().ok_or_else(|| bad_shape("an unknown shape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_of(text: &str) -> String {
        let mut json = String::new();
        write_string(&mut json, text);
        json
    }

    #[test]
    fn strings_are_escaped_as_json_stringify_escapes_them() {
        assert_eq!(json_of("plain é 😀 \u{2028} \u{7f}"), "\"plain é 😀 \u{2028} \u{7f}\"");
        assert_eq!(json_of("q\"b\\s/"), r#""q\"b\\s/""#);
        assert_eq!(json_of("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(json_of("\u{0}\u{1}\u{1f}x"), r#""\u0000\u0001\u001fx""#);
    }

    #[test]
    fn a_template_writes_its_literals_around_the_values() {
        let literals = ["{\"s\":", ",\"n\":", ",\"b\":", ",\"d\":", ",\"j\":", ",\"z\":null}"];
        let template = Template::new("snbdj", literals.map(str::to_owned).to_vec()).unwrap();
        let slots = vec![
            Slot::Text(1),
            Slot::Number(-0.0),
            Slot::Number(1.0),
            Slot::Number(0.0),
            Slot::Text(7),
        ];
        let filled = Filled::new(Arc::new(template), slots, "x[1,{}]".into());
        assert_eq!(
            filled.to_json().unwrap(),
            r#"{"s":"x","n":0,"b":true,"d":"1970-01-01T00:00:00.000Z","j":[1,{}],"z":null}"#
        );
    }

    #[test]
    fn values_that_do_not_fit_their_slot_are_refused() {
        let template = Arc::new(Template::new("nbd", vec![String::new(); 4]).unwrap());
        let write = |slots: &[Slot], text: &str| {
            Filled::new(template.clone(), slots.to_vec(), text.to_owned()).to_json()
        };
        let fine = [Slot::Number(1.0), Slot::Number(0.0), Slot::Number(f64::NAN)];
        assert_eq!(write(&fine, "").unwrap(), "1falsenull");
        for wrong in [
            [Slot::Number(1.5), Slot::Number(0.0), Slot::Number(0.0)],
            [Slot::Number(2f64.powi(53)), Slot::Number(0.0), Slot::Number(0.0)],
            [Slot::Number(1.0), Slot::Number(2.0), Slot::Number(0.0)],
            [Slot::Number(1.0), Slot::Number(0.0), Slot::Number(8.64e15 + 1.0)],
            [Slot::Number(1.0), Slot::Text(4), Slot::Number(0.0)],
            [Slot::Text(9), Slot::Number(0.0), Slot::Number(0.0)],
        ] {
            assert!(write(&wrong, "true").is_err(), "{wrong:?}");
        }
        assert!(write(&[Slot::Number(1.0)], "").is_err());
        assert!(Template::new("x", vec![String::new(); 2]).is_err());
        assert!(Template::new("s", vec![String::new(); 1]).is_err());
    }

    fn iso(ms: i64) -> String {
        let mut json = String::new();
        write_iso(&mut json, ms);
        json
    }

    #[test]
    fn dates_are_written_as_to_iso_string_writes_them() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(1_733_332_509_969), "2024-12-04T17:15:09.969Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso(253_402_300_800_000), "+010000-01-01T00:00:00.000Z");
        assert_eq!(iso(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
        assert_eq!(iso(-62_167_219_200_001), "-000001-12-31T23:59:59.999Z");
        assert_eq!(iso(8_640_000_000_000_000), "+275760-09-13T00:00:00.000Z");
        assert_eq!(iso(-8_640_000_000_000_000), "-271821-04-20T00:00:00.000Z");
    }

    #[test]
    fn templates_are_kept_by_number_and_replaced_by_a_new_definition() {
        let templates = Templates::default();
        let one = || Template::new("s", vec!["[".into(), "]".into()]).unwrap();
        templates.define(2, Some(one())).unwrap();
        assert_eq!(*templates.get(2).unwrap(), one());
        assert!(templates.get(0).is_err() && templates.get(3).is_err());
        templates.define(2, None).unwrap();
        assert!(templates.get(2).is_err());
        assert!(templates.define(MAX_TEMPLATES, Some(one())).is_err());
    }

    proptest! {
        #[test]
        fn a_written_string_reads_back_as_itself(text in "\\PC*|[\u{0}-\u{1f}\"\\\\]*") {
            let json = json_of(&text);
            let back: String = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, text);
        }

        #[test]
        fn civil_dates_agree_with_a_day_by_day_count(days in -1_000_000i64..1_000_000) {
            let (year, month, day) = civil_from_days(days);
            let (next_year, next_month, next_day) = civil_from_days(days + 1);
            let month_ended = next_day == 1 && (next_month == month % 12 + 1);
            prop_assert!(next_day == day + 1 || month_ended);
            prop_assert!(next_year == year || (month == 12 && next_year == year + 1));
        }
    }
}
