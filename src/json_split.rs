//! Cuts a session's JSON into its shape and its values, off Node's thread.
//!
//! `JSON.parse` of a session is most of what a read costs Node's main thread. Sessions of
//! one application share a handful of shapes (the same keys, the same kinds of values), so
//! this module reads the JSON here instead, on the store's thread, and hands over the shape
//! and the values apart: Node's side builds the object with a function compiled once per
//! shape (`lib/session-shape.js`), which costs a fraction of the parse.
//!
//! The result must be the very object `JSON.parse` would build. So a split is only made of
//! JSON this module reads completely and strictly; anything it does not take (invalid JSON,
//! a top level that is not an object, a value it cannot hand over exactly) makes
//! [`split`] give `None`, and the caller hands the JSON over whole, to `JSON.parse`.
//!
//! The shape (the descriptor) is JSON too, a tree in which an object is
//! `["o", key, node, key, node, ...]` and a value is one letter: `"s"` a string, `"n"` a
//! number, `"b"` a boolean, `"z"` null, `"j"` any value handed over as its own JSON text (for
//! `JSON.parse` on Node's side). Objects are spelled out at the top level and one level
//! below; deeper objects, arrays, and objects whose keys could not be written into compiled
//! code as they are (escapes, `__proto__`, duplicates, too many) go as `"j"`.
//!
//! The values are slots in order, one number each: the length of a string (in UTF-16 code
//! units, the string itself following the previous ones in [`Split::text`]), a number, or
//! 0 / 1 for a boolean. Null takes no slot.

/// Objects at this depth and deeper go as raw JSON (the session is depth 0).
const SPELLED_OUT_DEPTH: usize = 2;

/// Longest shape (bytes of descriptor): an object past it goes as raw JSON, and a session
/// past it goes whole to `JSON.parse`. It bounds the code compiled for one shape.
pub const MAX_DESCRIPTOR_BYTES: usize = 1024;

/// Most members of one spelled-out object; a bigger object goes as raw JSON.
const MAX_MEMBERS: usize = 32;

/// Longest key (bytes) written into a shape; an object with a longer one goes as raw JSON.
const MAX_KEY_BYTES: usize = 64;

/// Deepest nesting read; deeper JSON goes whole to `JSON.parse`, which has its own limit.
const MAX_DEPTH: usize = 128;

/// A session's JSON, cut: its shape and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The shape, as described in the module documentation.
    pub descriptor: String,
    /// One number per slot.
    pub slots: Vec<f64>,
    /// The strings and raw JSON pieces of the slots, one after the other.
    pub text: String,
}

/// Cuts `json`, or gives `None` when it must go whole to `JSON.parse`.
pub fn split(json: &str) -> Option<Split> {
    let out = Split::with_room_for(json);
    let mut reader = Reader { src: json.as_bytes(), json, at: 0, out };

    reader.skip_space();
    if reader.peek() != Some(b'{') {
        return None;
    }
    reader.object(0).ok()?;
    reader.skip_space();
    (reader.at == reader.src.len()).then_some(reader.out)
}

impl Split {
    /// An empty split with the room a split of `json` needs, so that it never grows: the
    /// values' text is never longer than the JSON.
    fn with_room_for(json: &str) -> Self {
        Self {
            descriptor: String::with_capacity(MAX_DESCRIPTOR_BYTES.min(json.len() * 2 + 16)),
            slots: Vec::with_capacity(32),
            text: String::with_capacity(json.len()),
        }
    }
}

/// Why reading a value stopped.
#[derive(Debug, PartialEq)]
enum Stop {
    /// Not JSON that `JSON.parse` reads the same way: the whole session goes to it.
    Invalid,
    /// Valid, but this object (or string) cannot be spelled out: it goes as raw JSON.
    Raw,
}

type Step = Result<(), Stop>;

/// Where the output stood, to go back to when a value goes raw after all.
struct Mark {
    at: usize,
    descriptor: usize,
    slots: usize,
    text: usize,
}

struct Reader<'a> {
    src: &'a [u8],
    json: &'a str,
    at: usize,
    out: Split,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Step {
        self.skip_space();
        if self.peek() != Some(byte) {
            return Err(Stop::Invalid);
        }
        self.at += 1;
        Ok(())
    }

    fn mark(&self) -> Mark {
        Mark {
            at: self.at,
            descriptor: self.out.descriptor.len(),
            slots: self.out.slots.len(),
            text: self.out.text.len(),
        }
    }

    fn rewind(&mut self, mark: &Mark) {
        self.at = mark.at;
        self.out.descriptor.truncate(mark.descriptor);
        self.out.slots.truncate(mark.slots);
        self.out.text.truncate(mark.text);
    }

    /// One value at `depth`, the reader on its first byte.
    fn value(&mut self, depth: usize) -> Step {
        self.skip_space();
        match self.peek() {
            Some(b'{') if depth < SPELLED_OUT_DEPTH => self.object_or_raw(depth),
            Some(b'{' | b'[') => self.raw(depth),
            Some(b'"') => self.string_or_raw(depth),
            Some(b't') => self.literal(b"true", "\"b\"", Some(1.0)),
            Some(b'f') => self.literal(b"false", "\"b\"", Some(0.0)),
            Some(b'n') => self.literal(b"null", "\"z\"", None),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(Stop::Invalid),
        }
    }

    fn object_or_raw(&mut self, depth: usize) -> Step {
        let mark = self.mark();
        match self.object(depth) {
            Err(Stop::Raw) => {
                self.rewind(&mark);
                self.raw(depth)
            }
            done => done,
        }
    }

    /// A spelled-out object. A reason to go raw is only acted on once the object is known
    /// to be valid JSON, so that `Raw` never hides an error.
    fn object(&mut self, depth: usize) -> Step {
        self.at += 1;
        self.out.descriptor.push_str("[\"o\"");
        let mut keys: Vec<&str> = Vec::new();

        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            self.out.descriptor.push(']');
            return Ok(());
        }
        loop {
            let key = self.key()?;
            self.expect(b':')?;
            if !spellable(key, &keys) {
                self.skip_value(depth + 1)?;
                return self.rest_of_object(depth);
            }
            keys.push(key);
            self.out.descriptor.push_str(",\"");
            self.out.descriptor.push_str(key);
            self.out.descriptor.push_str("\",");
            self.value(depth + 1)?;

            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => break,
                _ => return Err(Stop::Invalid),
            }
        }
        self.at += 1;
        self.out.descriptor.push(']');
        if self.out.descriptor.len() > MAX_DESCRIPTOR_BYTES {
            return Err(Stop::Raw);
        }
        Ok(())
    }

    /// Validates the members after the current one, then asks for the object to go raw.
    fn rest_of_object(&mut self, depth: usize) -> Step {
        loop {
            self.skip_space();
            match self.peek() {
                Some(b'}') => return Err(Stop::Raw),
                Some(b',') => self.at += 1,
                _ => return Err(Stop::Invalid),
            }
            self.skip_space();
            self.skip_string()?;
            self.expect(b':')?;
            self.skip_value(depth + 1)?;
        }
    }

    /// A member's key, as written (escapes included), the reader after it.
    fn key(&mut self) -> Result<&'a str, Stop> {
        self.skip_space();
        let start = self.at + 1;
        self.skip_string()?;
        let json = self.json;
        Ok(&json[start..self.at - 1])
    }

    fn literal(&mut self, word: &[u8], kind: &str, slot: Option<f64>) -> Step {
        if !self.src[self.at..].starts_with(word) {
            return Err(Stop::Invalid);
        }
        self.at += word.len();
        self.out.descriptor.push_str(kind);
        self.out.slots.extend(slot);
        Ok(())
    }

    fn number(&mut self) -> Step {
        let start = self.at;
        self.skip_number()?;
        let value: f64 = self.json[start..self.at].parse().map_err(|_| Stop::Invalid)?;
        self.out.descriptor.push_str("\"n\"");
        self.out.slots.push(value);
        Ok(())
    }

    fn string_or_raw(&mut self, depth: usize) -> Step {
        let mark = self.mark();
        match self.string() {
            Err(Stop::Raw) => {
                self.rewind(&mark);
                self.raw(depth)
            }
            done => done,
        }
    }

    /// A string slot: its unescaped text goes to the output text.
    fn string(&mut self) -> Step {
        let start = self.out.text.len();
        self.scan_string(true)?;
        self.out.descriptor.push_str("\"s\"");
        self.out.slots.push(utf16_len(&self.out.text[start..]) as f64);
        Ok(())
    }

    /// Reads a string, the reader on its opening quote, to after its closing quote; with
    /// `decode`, its unescaped text goes to the output text.
    fn scan_string(&mut self, decode: bool) -> Step {
        if self.peek() != Some(b'"') {
            return Err(Stop::Invalid);
        }
        self.at += 1;
        loop {
            let run = self.src[self.at..]
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
                .ok_or(Stop::Invalid)?;
            if decode {
                let json = self.json;
                self.out.text.push_str(&json[self.at..self.at + run]);
            }
            self.at += run;
            match self.src[self.at] {
                b'"' => break,
                b'\\' if decode => self.escape()?,
                b'\\' => self.skip_escape()?,
                _ => return Err(Stop::Invalid),
            }
        }
        self.at += 1;
        Ok(())
    }

    /// One escape, the reader on its backslash; a lone surrogate makes the string go raw
    /// (`JSON.parse` keeps it, a Rust string cannot).
    fn escape(&mut self) -> Step {
        let decoded = match self.src.get(self.at + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(),
            _ => return Err(Stop::Invalid),
        };
        self.at += 2;
        self.out.text.push(decoded);
        Ok(())
    }

    fn unicode_escape(&mut self) -> Step {
        let high = self.hex4(self.at + 2)?;
        self.at += 6;
        let code = match high {
            0xD800..=0xDBFF => {
                let low = match self.src[self.at..].starts_with(b"\\u") {
                    true => self.hex4(self.at + 2)?,
                    false => return Err(Stop::Raw),
                };
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(Stop::Raw);
                }
                self.at += 6;
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(Stop::Raw),
            _ => high,
        };
        self.out.text.push(char::from_u32(code).ok_or(Stop::Invalid)?);
        Ok(())
    }

    fn hex4(&self, at: usize) -> Result<u32, Stop> {
        let digits = self.src.get(at..at + 4).ok_or(Stop::Invalid)?;
        digits.iter().try_fold(0, |code, &digit| {
            let value = (digit as char).to_digit(16).ok_or(Stop::Invalid)?;
            Ok(code * 16 + value)
        })
    }

    /// Any value, validated and handed over as its JSON text.
    fn raw(&mut self, depth: usize) -> Step {
        let start = self.at;
        self.skip_value(depth)?;
        let piece = &self.json[start..self.at];
        self.out.text.push_str(piece);
        self.out.descriptor.push_str("\"j\"");
        self.out.slots.push(utf16_len(piece) as f64);
        Ok(())
    }

    /// Validates one value and moves past it.
    fn skip_value(&mut self, depth: usize) -> Step {
        if depth > MAX_DEPTH {
            return Err(Stop::Invalid);
        }
        self.skip_space();
        match self.peek() {
            Some(b'{') => self.skip_container(depth, b'}', true),
            Some(b'[') => self.skip_container(depth, b']', false),
            Some(b'"') => self.skip_string(),
            Some(b't') => self.skip_word(b"true"),
            Some(b'f') => self.skip_word(b"false"),
            Some(b'n') => self.skip_word(b"null"),
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            _ => Err(Stop::Invalid),
        }
    }

    fn skip_container(&mut self, depth: usize, close: u8, keyed: bool) -> Step {
        self.at += 1;
        self.skip_space();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            if keyed {
                self.skip_space();
                self.skip_string()?;
                self.expect(b':')?;
            }
            self.skip_value(depth + 1)?;
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(byte) if byte == close => break,
                _ => return Err(Stop::Invalid),
            }
        }
        self.at += 1;
        Ok(())
    }

    /// Validates a string (the reader on its opening quote) and moves past it.
    fn skip_string(&mut self) -> Step {
        self.scan_string(false)
    }

    fn skip_escape(&mut self) -> Step {
        match self.src.get(self.at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 2,
            Some(b'u') => {
                self.hex4(self.at + 2)?;
                self.at += 6;
            }
            _ => return Err(Stop::Invalid),
        }
        Ok(())
    }

    fn skip_word(&mut self, word: &[u8]) -> Step {
        if !self.src[self.at..].starts_with(word) {
            return Err(Stop::Invalid);
        }
        self.at += word.len();
        Ok(())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as JSON has it.
    fn skip_number(&mut self) -> Step {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(Stop::Invalid),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.require_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.require_digits()?;
        }
        Ok(())
    }

    fn require_digits(&mut self) -> Step {
        match self.peek() {
            Some(b'0'..=b'9') => {
                self.skip_digits();
                Ok(())
            }
            _ => Err(Stop::Invalid),
        }
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }
}

/// Whether `key` can be written into compiled code as an object literal's key, as it is
/// written in the JSON: no escape to decode, not `__proto__` (which a literal would take as
/// the prototype), no duplicate (`JSON.parse` keeps the last), within the limits.
fn spellable(key: &str, earlier: &[&str]) -> bool {
    key.len() <= MAX_KEY_BYTES
        && earlier.len() < MAX_MEMBERS
        && key != "__proto__"
        && !key.contains('\\')
        && !earlier.contains(&key)
}

/// Length of `text` in UTF-16 code units, as JS counts it.
pub fn utf16_len(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().map(char::len_utf16).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    /// The value a split stands for, rebuilt the way Node's side builds it.
    fn rebuild(split: &Split) -> Value {
        let shape: Value = serde_json::from_str(&split.descriptor).unwrap();
        let mut slots = split.slots.iter().copied();
        let mut text = split.text.encode_utf16().collect::<Vec<u16>>().into_iter();
        build(&shape, &mut slots, &mut text)
    }

    fn build(
        node: &Value,
        slots: &mut impl Iterator<Item = f64>,
        text: &mut impl Iterator<Item = u16>,
    ) -> Value {
        let mut take_text = |slots: &mut dyn Iterator<Item = f64>| {
            let units: Vec<u16> = text.take(slots.next().unwrap() as usize).collect();
            String::from_utf16(&units).unwrap()
        };
        match node {
            Value::String(kind) if kind == "s" => Value::String(take_text(slots)),
            Value::String(kind) if kind == "j" => parsed(&take_text(slots)),
            Value::String(kind) if kind == "n" => number(slots.next().unwrap()),
            Value::String(kind) if kind == "b" => Value::Bool(slots.next().unwrap() == 1.0),
            Value::String(kind) if kind == "z" => Value::Null,
            Value::Array(members) => {
                let mut object = Map::new();
                for pair in members[1..].chunks(2) {
                    let value = build(&pair[1], slots, text);
                    object.insert(pair[0].as_str().unwrap().to_owned(), value);
                }
                Value::Object(object)
            }
            other => panic!("not a shape node: {other}"),
        }
    }

    fn number(value: f64) -> Value {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }

    fn parsed(json: &str) -> Value {
        as_doubles(serde_json::from_str(json).unwrap())
    }

    /// `value` with every number a double, as in JS.
    fn as_doubles(value: Value) -> Value {
        match value {
            Value::Number(n) => number(n.as_f64().unwrap()),
            Value::Array(items) => Value::Array(items.into_iter().map(as_doubles).collect()),
            Value::Object(members) => {
                Value::Object(members.into_iter().map(|(k, v)| (k, as_doubles(v))).collect())
            }
            other => other,
        }
    }

    const SESSION: &str = concat!(
        r#"{"cookie":{"originalMaxAge":86400000,"expires":"2026-12-05T16:00:41.225Z","#,
        r#""secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"#,
        r#""userId":"user-100000","n":null}"#
    );

    #[test]
    fn a_session_splits_into_shape_and_values() {
        let split = split(SESSION).unwrap();
        let cookie = concat!(
            r#"["o","originalMaxAge","n","expires","s","secure","b","httpOnly","b","#,
            r#""path","s","sameSite","s"]"#
        );
        let expected = format!(r#"["o","cookie",{cookie},"userId","s","n","z"]"#);
        assert_eq!(split.descriptor, expected);
        assert_eq!(split.slots, vec![86400000.0, 24.0, 0.0, 1.0, 1.0, 3.0, 11.0]);
        assert_eq!(split.text, "2026-12-05T16:00:41.225Z/laxuser-100000");
        assert_eq!(rebuild(&split), parsed(SESSION));
    }

    #[test]
    fn escapes_are_decoded_and_lengths_count_utf16_units() {
        let json = r#"{"a":"q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00x","b":"é😀"}"#;
        let split = split(json).unwrap();
        assert_eq!(split.text, "q\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1f600}xé😀");
        assert_eq!(split.slots, vec![13.0, 3.0]);
        assert_eq!(rebuild(&split), parsed(json));
    }

    #[test]
    fn a_lone_surrogate_goes_raw_for_json_parse_to_keep() {
        for lone in [r#""\ud800""#, r#""\udc00x""#, r#""\ud800\u0041""#, r#""a\ud800""#] {
            let json = format!(r#"{{"a":{lone},"b":1}}"#);
            let split = split(&json).unwrap();
            assert_eq!(split.descriptor, r#"["o","a","j","b","n"]"#, "{json}");
            assert_eq!(split.text, lone);
        }
    }

    #[test]
    fn arrays_and_deep_objects_go_raw() {
        let json = r#"{"list":[1,{"x":2}],"one":{"two":{"three":3},"k":"v"}}"#;
        let split = split(json).unwrap();
        assert_eq!(split.descriptor, r#"["o","list","j","one",["o","two","j","k","s"]]"#);
        assert_eq!(split.text, r#"[1,{"x":2}]{"three":3}v"#);
        assert_eq!(rebuild(&split), parsed(json));
    }

    #[test]
    fn keys_that_compiled_code_would_misread_make_their_object_raw() {
        let keys =
            [r#""__proto__""#, r#""a\u0062""#, r#""d","d""#, &format!("\"{}\"", "k".repeat(65))];
        for key in keys {
            let inner = if key.contains(',') {
                r#"{"d":1,"d":2}"#.to_owned()
            } else {
                format!("{{{key}:1,\"z\":[2]}}")
            };
            let json = format!(r#"{{"inner":{inner},"after":true}}"#);
            let split = split(&json).unwrap();
            assert_eq!(split.descriptor, r#"["o","inner","j","after","b"]"#, "{json}");
            assert_eq!(split.text, inner);
            assert_eq!(super::split(&inner), None, "at the top level: {inner}");
        }
    }

    #[test]
    fn too_many_members_or_too_big_a_shape_go_raw() {
        let members: Vec<String> = (0..=MAX_MEMBERS).map(|n| format!("\"k{n}\":{n}")).collect();
        let wide = format!("{{{}}}", members.join(","));
        assert_eq!(split(&format!(r#"{{"w":{wide}}}"#)).unwrap().descriptor, r#"["o","w","j"]"#);
        assert_eq!(split(&wide), None);

        let long_key = "k".repeat(MAX_KEY_BYTES);
        let big: Vec<String> =
            (0..20).map(|n| format!(r#""{long_key}{n:02}":{{"{long_key}":1}}"#)).collect();
        assert_eq!(split(&format!("{{{}}}", big.join(","))), None);
    }

    #[test]
    fn numbers_read_as_js_reads_them() {
        let split = split(r#"{"a":-0,"b":1e400,"c":1E+2,"d":0.1,"e":-12.5e-1}"#).unwrap();
        assert!(split.slots[0] == 0.0 && split.slots[0].is_sign_negative());
        assert_eq!(split.slots[1..], [f64::INFINITY, 100.0, 0.1, -1.25]);
    }

    #[test]
    fn space_around_tokens_is_accepted() {
        let json = " \t\n{ \"a\" : [ 1 , 2 ] ,\r\"b\" : { } , \"c\" : null } \n";
        let split = split(json).unwrap();
        assert_eq!(split.descriptor, r#"["o","a","j","b",["o"],"c","z"]"#);
        assert_eq!(split.text, "[ 1 , 2 ]");
    }

    #[test]
    fn anything_but_a_valid_object_goes_whole_to_json_parse() {
        let refused = [
            "",
            "[]",
            "\"s\"",
            "1",
            "null",
            "{",
            "{}x",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\" 1}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":+1}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":\"open}",
            "{\"a\":[1,]}",
            "{\"a\":{\"b\":[,]}}",
            "{\"a\":{\"__proto__\":1,\"b\":[,]}}",
            "{\"a\":1}{}",
            "{\"a\":'x'}",
            "{\"a\":NaN}",
            "{\"a\":Infinity}",
            "{\"a\":[1 2]}",
            "{\"a\":{\"b\"}}",
        ];
        for json in refused {
            assert_eq!(split(json), None, "{json:?}");
            assert!(serde_json::from_str::<Value>(json).map_or(true, |v| !v.is_object()));
        }
    }

    #[test]
    fn nesting_past_the_limit_goes_whole_to_json_parse() {
        let deep =
            format!("{{\"a\":{}1{}}}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(split(&deep), None);
        let fine = format!("{{\"a\":{}1{}}}", "[".repeat(10), "]".repeat(10));
        assert!(split(&fine).is_some());
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(number),
            (-1_000_000i64..1_000_000).prop_map(Value::from),
            "[a-z\u{e9}\u{1f600}\"\\\\/\n\t\u{1}]{0,12}".prop_map(Value::String),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-d_]{1,3}|__proto__|\u{e9}", inner), 0..6)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    fn session() -> impl Strategy<Value = Value> {
        prop::collection::vec(("[a-f]{1,4}", tree()), 0..8)
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn a_split_stands_for_exactly_the_json_it_came_from(session in session()) {
            let json = serde_json::to_string(&session).unwrap();
            if let Some(split) = split(&json) {
                prop_assert_eq!(rebuild(&split), as_doubles(session));
            } else {
                prop_assert!(json.len() > MAX_DESCRIPTOR_BYTES / 2, "refused: {}", json);
            }
        }

        #[test]
        fn damaged_json_is_never_split(session in session(), cut in any::<prop::sample::Index>()) {
            let json = serde_json::to_string(&session).unwrap();
            let mut damaged = json.clone();
            let at = cut.index(json.len());
            if json.is_char_boundary(at) && at > 0 {
                damaged.truncate(at);
                let valid_object = serde_json::from_str::<Value>(&damaged)
                    .is_ok_and(|value| value.is_object());
                prop_assert!(valid_object || split(&damaged).is_none(), "{}", damaged);
            }
        }
    }
}
