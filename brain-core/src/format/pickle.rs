//! A pickle-5 object as one plain pickle: its out-of-band buffers put back
//! in the stream, so that `pickle.loads` alone reads it (as `brain cat`
//! writes it).
//!
//! The stream is walked opcode by opcode (every opcode of protocols 0 to 5,
//! as CPython's `pickletools` lists them). Each `NEXT_BUFFER` becomes a
//! `BYTEARRAY8` holding the next buffer (a `READONLY_BUFFER` after it, kept,
//! makes it read-only again, as it made the out-of-band buffer), and each
//! `FRAME` goes: a frame's length would no longer hold, and framing is only
//! a hint to the reader. Memo indices do not depend on offsets, so nothing
//! else changes.

use std::borrow::Cow;

const FRAME: u8 = 0x95;
const BYTEARRAY8: u8 = 0x96;
const NEXT_BUFFER: u8 = 0x97;
const STOP: u8 = b'.';

/// What follows an opcode.
enum Argument {
    /// Nothing, or this many bytes.
    Fixed(usize),
    /// A length of this many bytes (little-endian), then that many bytes.
    Counted(usize),
    /// This many lines, each ended by `\n`.
    Lines(usize),
}

fn argument(opcode: u8) -> Option<Argument> {
    use Argument::{Counted, Fixed, Lines};
    Some(match opcode {
        // MARK STOP POP POP_MARK DUP NONE BINPERSID REDUCE APPEND BUILD DICT
        // EMPTY_DICT APPENDS LIST EMPTY_LIST OBJ SETITEM TUPLE EMPTY_TUPLE
        // SETITEMS
        b'(' | b'.' | b'0' | b'1' | b'2' | b'N' | b'Q' | b'R' | b'a' | b'b' | b'd' | b'}'
        | b'e' | b'l' | b']' | b'o' | b's' | b't' | b')' | b'u' => Fixed(0),
        // NEWOBJ TUPLE1 TUPLE2 TUPLE3 NEWTRUE NEWFALSE EMPTY_SET ADDITEMS
        // FROZENSET NEWOBJ_EX STACK_GLOBAL MEMOIZE NEXT_BUFFER READONLY_BUFFER
        0x81 | 0x85..=0x89 | 0x8f..=0x94 | 0x97 | 0x98 => Fixed(0),
        // BININT1 BINGET BINPUT PROTO EXT1
        b'K' | b'h' | b'q' | 0x80 | 0x82 => Fixed(1),
        // BININT2 EXT2
        b'M' | 0x83 => Fixed(2),
        // BININT LONG_BINGET LONG_BINPUT EXT4
        b'J' | b'j' | b'r' | 0x84 => Fixed(4),
        // BINFLOAT FRAME
        b'G' | 0x95 => Fixed(8),
        // SHORT_BINSTRING SHORT_BINBYTES LONG1 SHORT_BINUNICODE
        b'U' | b'C' | 0x8a | 0x8c => Counted(1),
        // BINSTRING BINUNICODE BINBYTES LONG4
        b'T' | b'X' | b'B' | 0x8b => Counted(4),
        // BINUNICODE8 BINBYTES8 BYTEARRAY8
        0x8d | 0x8e | 0x96 => Counted(8),
        // FLOAT INT LONG PERSID STRING UNICODE GET PUT
        b'F' | b'I' | b'L' | b'P' | b'S' | b'V' | b'g' | b'p' => Lines(1),
        // GLOBAL INST
        b'c' | b'i' => Lines(2),
        _ => return None,
    })
}

/// The pieces of one plain pickle equal to `stream` read with `buffers` as
/// its out-of-band buffers, in order: slices of the two, and the opcodes
/// put between them. Nothing after the stream's `STOP` is kept.
///
/// # Errors
/// A description of what does not hold: an opcode unknown to protocol 5,
/// an argument cut short, a stream without `STOP`, more `NEXT_BUFFER`s
/// than buffers, or buffers left over.
pub fn in_band<'a>(stream: &'a [u8], buffers: &[&'a [u8]]) -> Result<Vec<Cow<'a, [u8]>>, String> {
    let mut pieces = Vec::new();
    let mut next_buffer = 0;
    // The start of the bytes not yet handed out as a piece.
    let mut kept_from = 0;
    let mut at = 0;
    loop {
        let Some(&opcode) = stream.get(at) else {
            return Err(format!("the pickle stream ends at byte {at} without STOP"));
        };
        let cut = |what: &str| format!("the pickle stream ends inside {what} at byte {at}");
        let end = match argument(opcode) {
            Some(Argument::Fixed(n)) => at + 1 + n,
            Some(Argument::Counted(width)) => {
                let bytes = stream
                    .get(at + 1..at + 1 + width)
                    .ok_or_else(|| cut("a length"))?;
                let mut length = [0u8; 8];
                length[..width].copy_from_slice(bytes);
                let length = u64::from_le_bytes(length);
                // BINSTRING and LONG4 read their length as a signed 32-bit
                // number (BINUNICODE and BINBYTES as an unsigned one).
                if matches!(opcode, b'T' | 0x8b) && length > i32::MAX as u64 {
                    return Err(format!(
                        "opcode {opcode:#04x} at byte {at} has a negative length"
                    ));
                }
                usize::try_from(length)
                    .ok()
                    .and_then(|length| (at + 1 + width).checked_add(length))
                    .ok_or_else(|| cut("an argument"))?
            }
            Some(Argument::Lines(lines)) => {
                let mut end = at + 1;
                for _ in 0..lines {
                    let line = stream.get(end..).unwrap_or_default();
                    let newline = line
                        .iter()
                        .position(|&b| b == b'\n')
                        .ok_or_else(|| cut("a line"))?;
                    end += newline + 1;
                }
                end
            }
            None => {
                return Err(format!(
                    "byte {at} of the pickle stream is {opcode:#04x}, not an opcode of protocol 5"
                ))
            }
        };
        if end > stream.len() {
            return Err(cut("an argument"));
        }
        match opcode {
            FRAME => {
                pieces.push(Cow::Borrowed(&stream[kept_from..at]));
                kept_from = end;
            }
            NEXT_BUFFER => {
                let buffer = *buffers.get(next_buffer).ok_or_else(|| {
                    format!(
                        "the pickle stream asks for buffer {} of {}",
                        next_buffer + 1,
                        buffers.len()
                    )
                })?;
                next_buffer += 1;
                pieces.push(Cow::Borrowed(&stream[kept_from..at]));
                let mut opcode = Vec::with_capacity(9);
                opcode.push(BYTEARRAY8);
                opcode.extend_from_slice(&(buffer.len() as u64).to_le_bytes());
                pieces.push(Cow::Owned(opcode));
                pieces.push(Cow::Borrowed(buffer));
                kept_from = end;
            }
            STOP => {
                pieces.push(Cow::Borrowed(&stream[kept_from..end]));
                if next_buffer != buffers.len() {
                    return Err(format!(
                        "the pickle stream uses {next_buffer} of its {} buffers",
                        buffers.len()
                    ));
                }
                pieces.retain(|piece| !piece.is_empty());
                return Ok(pieces);
            }
            _ => {}
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // A damaged object's stream is an error, never a panic.
        #[test]
        fn any_bytes_give_pieces_or_an_error(stream in proptest::collection::vec(any::<u8>(), 0..64), buffers in 0usize..3) {
            let buffers = vec![&b"buf"[..]; buffers];
            if let Ok(pieces) = in_band(&stream, &buffers) {
                prop_assert!(pieces.concat().ends_with(&[STOP]));
            }
        }
    }

    fn joined(stream: &[u8], buffers: &[&[u8]]) -> Result<Vec<u8>, String> {
        Ok(in_band(stream, buffers)?.concat())
    }

    #[test]
    fn buffers_go_in_band_and_frames_go() {
        // PROTO 5, FRAME 3, NEXT_BUFFER, READONLY_BUFFER, STOP, then junk.
        let stream = [
            &[0x80, 5, FRAME][..],
            &3u64.to_le_bytes(),
            &[NEXT_BUFFER, 0x98, STOP, 0xff],
        ]
        .concat();
        let out = joined(&stream, &[b"abc"]).unwrap();
        let expected = [
            &[0x80, 5, BYTEARRAY8][..],
            &3u64.to_le_bytes(),
            b"abc",
            &[0x98, STOP],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn arguments_that_look_like_opcodes_are_skipped() {
        // SHORT_BINBYTES of the bytes of NEXT_BUFFER and FRAME, a line, STOP.
        let stream = [&[b'C', 2, NEXT_BUFFER, FRAME][..], b"I12\n", &[STOP]].concat();
        assert_eq!(joined(&stream, &[]).unwrap(), stream);
    }

    #[test]
    fn malformed_streams_are_errors() {
        type Case<'a> = (&'a [u8], &'a [&'a [u8]], &'a str);
        let cases: [Case; 6] = [
            (&[0x80, 5], &[], "without STOP"),
            (&[b'C', 5, 1, STOP], &[], "inside an argument"),
            (&[b'I', b'1', STOP], &[], "inside a line"),
            (&[0xff, STOP], &[], "not an opcode"),
            (&[NEXT_BUFFER, STOP], &[], "asks for buffer 1 of 0"),
            (&[STOP], &[b"x"], "uses 0 of its 1 buffers"),
        ];
        for (stream, buffers, message) in cases {
            let err = joined(stream, buffers).unwrap_err();
            assert!(err.contains(message), "{err:?} lacks {message:?}");
        }
        let negative = [&[b'T'][..], &u32::MAX.to_le_bytes(), &[STOP]].concat();
        assert!(joined(&negative, &[])
            .unwrap_err()
            .contains("negative length"));
        // BINBYTES reads its length unsigned: past 2^31 is a length, here
        // one the stream lacks.
        let unsigned = [&[b'B'][..], &u32::MAX.to_le_bytes(), &[STOP]].concat();
        assert!(joined(&unsigned, &[])
            .unwrap_err()
            .contains("inside an argument"));
    }
}
