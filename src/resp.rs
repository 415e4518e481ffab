//! RESP2, the wire format of Redis, as much as the store's own connection needs: commands
//! written straight into an output buffer, replies cut into whole frames, and the shape of a
//! frame read without building a `redis::Value`.
//!
//! Only RESP2 is spoken (the connection never sends `HELLO 3`), so a server never sends the
//! RESP3 types; meeting one, or anything else that is not RESP2, is a protocol error.

use std::ops::Range;

/// The most elements a reply may announce in all: far above any reply the store asks for
/// (MGET and DEL go in batches of 500 keys), and low enough that a corrupt count cannot make
/// the reader wait forever or overflow.
const MAX_ELEMENTS: i64 = 1 << 24;

/// The longest header line (`$12345\r\n`) or simple reply accepted before its end is seen.
const MAX_LINE: usize = 64 * 1024;

/// Bytes that are not a RESP2 reply: the connection must be dropped, since what follows can
/// no longer be matched to its command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server sent bytes that are not a RESP2 reply ({0})")]
pub struct ProtocolError(pub &'static str);

/// Appends the command `args` as RESP: an array of bulk strings.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_header(out, b'*', args.len());
    for arg in args {
        push_header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, len: usize) {
    let mut digits = itoa::Buffer::new();
    out.push(kind);
    out.extend_from_slice(digits.format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The length of the whole reply at the start of `input`, or `None` while bytes are missing.
/// Nested arrays are walked with a count of the values still to come, not by recursion.
pub fn frame_len(input: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let mut at = 0;
    let mut to_come: i64 = 1;

    while to_come > 0 {
        let Some((kind, number, next)) = header(input, at)? else {
            return Ok(None);
        };
        to_come -= 1;
        at = next;

        match kind {
            b'$' if number >= 0 => {
                let end = at + number as usize + 2;
                if input.len() < end {
                    return Ok(None);
                }
                if &input[end - 2..end] != b"\r\n" {
                    return Err(ProtocolError("a bulk string without its CRLF"));
                }
                at = end;
            }
            b'*' if number > 0 => to_come += number,
            _ => {}
        }
        if to_come > MAX_ELEMENTS {
            return Err(ProtocolError("an array too large"));
        }
    }
    Ok(Some(at))
}

/// Reads the line starting at `at`: its type byte, its number (for `$` and `*`; zero for
/// the others) and where the next value starts.
fn header(input: &[u8], at: usize) -> Result<Option<(u8, i64, usize)>, ProtocolError> {
    let Some(&kind) = input.get(at) else {
        return Ok(None);
    };
    let line = &input[at + 1..];
    let Some(end) = line.windows(2).position(|pair| pair == b"\r\n") else {
        if line.len() > MAX_LINE {
            return Err(ProtocolError("a line without its end"));
        }
        return Ok(None);
    };
    let next = at + 1 + end + 2;

    match kind {
        b'+' | b'-' | b':' => Ok(Some((kind, 0, next))),
        b'$' | b'*' => Ok(Some((kind, length(&line[..end])?, next))),
        _ => Err(ProtocolError("an unknown reply type")),
    }
}

/// A bulk string's or array's length: digits, or `-1` for nil.
fn length(text: &[u8]) -> Result<i64, ProtocolError> {
    if text == b"-1" {
        return Ok(-1);
    }
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError("a length that is not a number"));
    }
    Ok(text.iter().fold(0, |n, digit| n * 10 + i64::from(digit - b'0')))
}

/// What a whole frame holds, as far as the store's hot path cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Nil: `$-1` or `*-1`.
    Nil,
    /// A bulk string, whose bytes are at this range of the frame.
    Bulk(Range<usize>),
    /// An error reply (`-CODE detail`).
    Error,
    /// Anything else (status, integer, array).
    Other,
}

/// The shape of `frame`, a whole reply as cut by [`frame_len`].
pub fn shape(frame: &[u8]) -> Shape {
    match frame.first() {
        Some(b'-') => Shape::Error,
        Some(b'$' | b'*') if frame.starts_with(b"$-1\r\n") || frame.starts_with(b"*-1\r\n") => {
            Shape::Nil
        }
        Some(b'$') => {
            let start = frame.iter().position(|&byte| byte == b'\n').map(|at| at + 1);
            let end = frame.len().saturating_sub(2);
            match start {
                Some(start) if start <= end => Shape::Bulk(start..end),
                _ => Shape::Other,
            }
        }
        _ => Shape::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"session:a", b"", b"PX", b"86400000"]);
        let expected =
            b"*5\r\n$3\r\nSET\r\n$9\r\nsession:a\r\n$0\r\n\r\n$2\r\nPX\r\n$8\r\n86400000\r\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn every_reply_kind_is_cut_whole() {
        let cases: [&[u8]; 9] = [
            b"+OK\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"$4\r\na\r\nb\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\n0\r\n*3\r\n$1\r\na\r\n$-1\r\n*1\r\n:7\r\n",
        ];
        for frame in cases {
            let mut input = frame.to_vec();
            input.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(frame_len(&input), Ok(Some(frame.len())), "{:?}", frame);

            for cut in 0..frame.len() {
                assert_eq!(frame_len(&frame[..cut]), Ok(None), "{:?} cut at {cut}", frame);
            }
        }
    }

    #[test]
    fn bytes_that_are_not_resp2_are_refused() {
        let cases: [&[u8]; 6] = [
            b"%1\r\n+a\r\n+b\r\n",
            b"_\r\n",
            b"$x\r\n",
            b"$3\r\nabcde\r\n",
            b"*99999999999999999999\r\n",
            b"*16777217\r\n",
        ];
        for input in cases {
            assert!(frame_len(input).is_err(), "{:?}", input);
        }
        assert!(frame_len(&[b'+'; MAX_LINE + 2]).is_err());
    }

    #[test]
    fn shapes_name_what_the_hot_path_needs() {
        assert_eq!(shape(b"$-1\r\n"), Shape::Nil);
        assert_eq!(shape(b"*-1\r\n"), Shape::Nil);
        assert_eq!(shape(b"$5\r\nhello\r\n"), Shape::Bulk(4..9));
        assert_eq!(shape(b"$0\r\n\r\n"), Shape::Bulk(4..4));
        assert_eq!(shape(b"-ERR no\r\n"), Shape::Error);
        assert_eq!(shape(b"+OK\r\n"), Shape::Other);
        assert_eq!(shape(b":1\r\n"), Shape::Other);
    }

    proptest! {
        /// Any bulk payload, binary or not, is cut at its end and read back whole, also
        /// when it holds CRLF or looks like RESP itself.
        #[test]
        fn bulk_strings_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut frame = Vec::new();
            push_header(&mut frame, b'$', payload.len());
            frame.extend_from_slice(&payload);
            frame.extend_from_slice(b"\r\n");

            prop_assert_eq!(frame_len(&frame), Ok(Some(frame.len())));
            let Shape::Bulk(range) = shape(&frame) else {
                return Err(TestCaseError::fail("not a bulk string"));
            };
            prop_assert_eq!(&frame[range], &payload[..]);
        }

        /// Arbitrary bytes never panic the reader.
        #[test]
        fn any_bytes_are_read_without_panic(
            input in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = frame_len(&input);
            let _ = shape(&input);
        }
    }
}
