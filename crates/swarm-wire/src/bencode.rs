//! Bencode (BEP 3): the serialisation format of .torrent files, tracker
//! responses and extension messages.
//!
//! Decoding is zero-copy: a [`Value`] borrows its byte strings from the
//! input and remembers the exact raw bytes it was decoded from
//! ([`Value::raw`], [`Value::span`]). The v1 info-hash is the SHA-1 of the
//! info dictionary *as received*, so it must be hashed from those raw bytes,
//! never from a re-encoding (a re-encoding of a non-canonical dictionary
//! would give another hash, i.e. another torrent).
//!
//! Two modes:
//! - [`decode`] is strict: exactly the canonical form BEP 3 describes. Dict
//!   keys sorted as raw bytes and unique, integers without leading zeros or
//!   `-0`, string lengths without leading zeros, nothing after the value. So
//!   every accepted input is the one encoding of its value, and
//!   `encode(decode(x)) == x`.
//! - [`decode_lenient`] also accepts dictionaries whose keys are unsorted or
//!   repeated (lookups return the first), because real trackers and peers
//!   send those in tracker responses and BEP 10 handshakes. Everything else
//!   (integer and length syntax, depth, trailing data) is as strict as
//!   [`decode`]: no client we know of writes `i03e`, and refusing it costs
//!   nothing.
//!
//! Limits: nesting deeper than [`DEPTH_MAX`] is refused (recursion is
//! bounded, so hostile input cannot overflow the stack); a string's declared
//! length is checked against the bytes that remain before anything is
//! sliced; nothing is allocated in proportion to a length read from the
//! input. Memory is bounded by a value budget, not by the input length: a
//! decode holding more than [`VALUES_MAX`] values is refused with
//! [`DecodeError::TooManyValues`]. Each value costs at most 72 bytes of tree
//! (a dict entry: key slice and [`Value`]; list and dict buffers are shrunk
//! to their length when they close), so a tree holds at most about
//! 144 MB plus allocator overhead, whatever the input; the peak while the
//! longest list is still growing is under twice that. Without the budget,
//! tiny values (`le`, `i0e`, nested `ll…ee`) cost 28 to 110 times the input
//! length. Real torrents are far below the budget: their bulk is the
//! `pieces` string, and a file costs about 5 values.
//!
//! Encoding ([`OwnedValue::encode`], [`put_int`], [`put_bytes`]) is always
//! canonical: [`OwnedValue::Dict`] is a `BTreeMap`, sorted and unique by
//! construction.

use std::collections::BTreeMap;
use std::ops::Range;

/// Deepest nesting of lists and dicts accepted. The deepest real structure,
/// a multi-file torrent's `path`, is 4 levels down (torrent → info → files →
/// file → path).
pub const DEPTH_MAX: usize = 64;

/// Most values (integers, strings, lists and dicts; dict keys are not
/// counted apart from their values) one decode accepts, over the whole input.
/// A multi-file torrent costs about 4 values per file plus one per path
/// component (`d6:lengthi…e4:pathl…ee`), so this admits about 300,000 files
/// with two-component paths, while a tree of tiny values stays under about
/// 144 MB (72 bytes per value at most, see the module docs).
pub const VALUES_MAX: usize = 2_000_000;

/// A decoded bencode value, borrowing from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value<'a> {
    kind: Kind<'a>,
    raw: &'a [u8],
    start: usize,
}

/// What a [`Value`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Entries in input order (sorted and unique after a strict decode).
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

/// Why bytes are not (canonical) bencode. Every variant names the byte
/// offset in the input where the problem is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("bencode: input ends at byte {offset}, expected {expected}")]
    Truncated {
        offset: usize,
        expected: &'static str,
    },
    #[error("bencode: byte {offset} is {found}, expected {expected}")]
    Unexpected {
        offset: usize,
        found: String,
        expected: &'static str,
    },
    #[error("bencode: number at byte {offset} has a leading zero")]
    LeadingZero { offset: usize },
    #[error("bencode: integer at byte {offset} is -0")]
    NegativeZero { offset: usize },
    #[error("bencode: integer at byte {offset} does not fit in 64 bits")]
    IntegerOverflow { offset: usize },
    #[error(
        "bencode: string at byte {offset} claims {len} bytes, only {remaining} remain in the input"
    )]
    LengthPastEnd {
        offset: usize,
        len: u64,
        remaining: usize,
    },
    #[error("bencode: dictionary key at byte {offset} is not a byte string")]
    KeyNotString { offset: usize },
    #[error("bencode: dictionary key {key} at byte {offset} is not in sorted order")]
    UnsortedKey { offset: usize, key: String },
    #[error("bencode: dictionary key {key} at byte {offset} is repeated")]
    DuplicateKey { offset: usize, key: String },
    #[error("bencode: nesting at byte {offset} is deeper than {DEPTH_MAX} levels")]
    TooDeep { offset: usize },
    #[error("bencode: {len} bytes of trailing data after the value, from byte {offset}")]
    TrailingData { offset: usize, len: usize },
    #[error(
        "bencode: more than {limit} values, at byte {offset}: refused to bound memory \
         (a real torrent has about 5 per file: this input is hostile, or has more files \
         than swarm supports)"
    )]
    TooManyValues { offset: usize, limit: usize },
}

impl DecodeError {
    /// The byte offset the error names.
    pub fn offset(&self) -> usize {
        match *self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::Unexpected { offset, .. }
            | DecodeError::LeadingZero { offset }
            | DecodeError::NegativeZero { offset }
            | DecodeError::IntegerOverflow { offset }
            | DecodeError::LengthPastEnd { offset, .. }
            | DecodeError::KeyNotString { offset }
            | DecodeError::UnsortedKey { offset, .. }
            | DecodeError::DuplicateKey { offset, .. }
            | DecodeError::TooDeep { offset }
            | DecodeError::TrailingData { offset, .. }
            | DecodeError::TooManyValues { offset, .. } => offset,
        }
    }

    /// The same error with its offset moved by `base` (for a value decoded
    /// out of a larger input).
    pub fn shifted(mut self, base: usize) -> Self {
        match &mut self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::Unexpected { offset, .. }
            | DecodeError::LeadingZero { offset }
            | DecodeError::NegativeZero { offset }
            | DecodeError::IntegerOverflow { offset }
            | DecodeError::LengthPastEnd { offset, .. }
            | DecodeError::KeyNotString { offset }
            | DecodeError::UnsortedKey { offset, .. }
            | DecodeError::DuplicateKey { offset, .. }
            | DecodeError::TooDeep { offset }
            | DecodeError::TrailingData { offset, .. }
            | DecodeError::TooManyValues { offset, .. } => *offset = offset.saturating_add(base),
        }
        self
    }
}

/// Decodes `input`, which must be exactly one canonical bencode value.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, true)
}

/// Decodes `input` like [`decode`], but accepts dictionaries with unsorted
/// or repeated keys (see the module docs for why).
pub fn decode_lenient(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, false)
}

/// Decodes one value at the front of `input` like [`decode_lenient`] and
/// returns it with the number of bytes it took; the bytes after it are left
/// to the caller. For messages that put raw bytes after a bencoded
/// dictionary (BEP 9's `ut_metadata` data message).
pub fn decode_lenient_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    let mut d = Decoder {
        input,
        pos: 0,
        strict: false,
        values: 0,
    };
    let value = d.value(0)?;
    Ok((value, d.pos))
}

fn decode_with(input: &[u8], strict: bool) -> Result<Value<'_>, DecodeError> {
    let mut d = Decoder {
        input,
        pos: 0,
        strict,
        values: 0,
    };
    let value = d.value(0)?;
    if d.pos != input.len() {
        return Err(DecodeError::TrailingData {
            offset: d.pos,
            len: input.len() - d.pos,
        });
    }
    Ok(value)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    strict: bool,
    /// Values decoded so far (for [`VALUES_MAX`]).
    values: usize,
}

/// `b` for an error message: printable ASCII as `'x'`, other bytes in hex.
fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("0x{b:02x}")
    }
}

/// A key for an error message: escaped, and cut if long.
fn show_key(key: &[u8]) -> String {
    let cut = &key[..key.len().min(64)];
    format!("\"{}\"", cut.escape_ascii())
}

impl<'a> Decoder<'a> {
    fn peek(&self, expected: &'static str) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated {
                offset: self.pos,
                expected,
            })
    }

    fn unexpected(&self, found: u8, expected: &'static str) -> DecodeError {
        DecodeError::Unexpected {
            offset: self.pos,
            found: show_byte(found),
            expected,
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        let start = self.pos;
        self.values += 1;
        if self.values > VALUES_MAX {
            return Err(DecodeError::TooManyValues {
                offset: start,
                limit: VALUES_MAX,
            });
        }
        let kind = match self.peek("a value")? {
            b'i' => Kind::Int(self.int()?),
            b'0'..=b'9' => Kind::Bytes(self.bytes()?),
            b'l' => {
                if depth >= DEPTH_MAX {
                    return Err(DecodeError::TooDeep { offset: start });
                }
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek("a list item or 'e'")? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                // Vec growth leaves up to half a buffer unused (a one-item
                // list holds room for 4): give it back, as the tree is kept.
                items.shrink_to_fit();
                Kind::List(items)
            }
            b'd' => {
                if depth >= DEPTH_MAX {
                    return Err(DecodeError::TooDeep { offset: start });
                }
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                loop {
                    let b = self.peek("a dictionary key or 'e'")?;
                    if b == b'e' {
                        break;
                    }
                    let key_offset = self.pos;
                    if !b.is_ascii_digit() {
                        return Err(DecodeError::KeyNotString { offset: key_offset });
                    }
                    let key = self.bytes()?;
                    if let (true, Some((last, _))) = (self.strict, entries.last()) {
                        if key == *last {
                            return Err(DecodeError::DuplicateKey {
                                offset: key_offset,
                                key: show_key(key),
                            });
                        }
                        if key < *last {
                            return Err(DecodeError::UnsortedKey {
                                offset: key_offset,
                                key: show_key(key),
                            });
                        }
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                entries.shrink_to_fit();
                Kind::Dict(entries)
            }
            other => return Err(self.unexpected(other, "'i', 'l', 'd' or a digit")),
        };
        Ok(Value {
            kind,
            raw: &self.input[start..self.pos],
            start,
        })
    }

    /// `i<digits>e`; at `self.pos` is the `i`.
    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1;
        let negative = self.peek("'-' or a digit")? == b'-';
        if negative {
            self.pos += 1;
        }
        let magnitude = self.digits(start, b'e')?;
        let value = if negative {
            if magnitude == 0 {
                return Err(DecodeError::NegativeZero { offset: start });
            }
            // -(2^63) is the one magnitude that fits only as a negative.
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        };
        value.ok_or(DecodeError::IntegerOverflow { offset: start })
    }

    /// `<len>:<bytes>`; at `self.pos` is the first digit.
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.digits(start, b':')?;
        let remaining = self.input.len() - self.pos;
        // The length is checked against what is left before it is used.
        let Some(len_usize) = usize::try_from(len).ok().filter(|&l| l <= remaining) else {
            return Err(DecodeError::LengthPastEnd {
                offset: start,
                len,
                remaining,
            });
        };
        let bytes = &self.input[self.pos..self.pos + len_usize];
        self.pos += len_usize;
        Ok(bytes)
    }

    /// One or more decimal digits without a leading zero (a lone `0` is
    /// fine), then `end`, which is consumed. `start` is the offset errors
    /// name (the start of the number's token).
    fn digits(&mut self, start: usize, end: u8) -> Result<u64, DecodeError> {
        let first_digit = self.pos;
        let mut n: u64 = 0;
        loop {
            let b = self.peek(if end == b'e' {
                "a digit or 'e'"
            } else {
                "a digit or ':'"
            })?;
            if b == end && self.pos > first_digit {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(self.unexpected(b, "a digit"));
            }
            if self.pos > first_digit && self.input[first_digit] == b'0' {
                return Err(DecodeError::LeadingZero { offset: start });
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or(DecodeError::IntegerOverflow { offset: start })?;
            self.pos += 1;
        }
        self.pos += 1;
        Ok(n)
    }
}

impl<'a> Value<'a> {
    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }

    /// The exact bytes this value was decoded from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Where [`Value::raw`] lies in the decoded input.
    pub fn span(&self) -> Range<usize> {
        self.start..self.start + self.raw.len()
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value under `key` if this is a dictionary holding it (the first
    /// one, after a lenient decode with repeated keys).
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// An owned copy (re-encodes canonically: keys sorted, repeats dropped
    /// after the first).
    pub fn to_owned_value(&self) -> OwnedValue {
        match &self.kind {
            Kind::Int(i) => OwnedValue::Int(*i),
            Kind::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            Kind::List(l) => OwnedValue::List(l.iter().map(Value::to_owned_value).collect()),
            Kind::Dict(d) => {
                let mut map = BTreeMap::new();
                for (k, v) in d {
                    map.entry(k.to_vec()).or_insert_with(|| v.to_owned_value());
                }
                OwnedValue::Dict(map)
            }
        }
    }
}

/// An owned bencode value, for building messages and files. Its encoding is
/// canonical by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedValue {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<OwnedValue>),
    Dict(BTreeMap<Vec<u8>, OwnedValue>),
}

impl OwnedValue {
    /// A byte string value from text.
    pub fn text(s: &str) -> Self {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::Int(i) => put_int(out, *i),
            OwnedValue::Bytes(b) => put_bytes(out, b),
            OwnedValue::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode_into(out));
                out.push(b'e');
            }
            OwnedValue::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    put_bytes(out, k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// Appends `i<n>e`.
pub fn put_int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    out.extend_from_slice(n.to_string().as_bytes());
    out.push(b'e');
}

/// Appends `<len>:<bytes>`.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_spans_are_exact() {
        let input = b"d1:ai1e1:bl3:xyzee";
        let v = decode(input).unwrap();
        let b = v.get(b"b").unwrap();
        assert_eq!(b.raw(), b"l3:xyze");
        assert_eq!(b.span(), 10..17);
        assert_eq!(&input[b.span()], b.raw());
        assert_eq!(v.get(b"a").unwrap().as_int(), Some(1));
        assert_eq!(v.raw(), input);
    }

    #[test]
    fn integer_extremes() {
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap().as_int(),
            Some(i64::MAX)
        );
        assert!(matches!(
            decode(b"i9223372036854775808e"),
            Err(DecodeError::IntegerOverflow { offset: 0 })
        ));
        assert!(matches!(
            decode(b"i-9223372036854775809e"),
            Err(DecodeError::IntegerOverflow { offset: 0 })
        ));
        assert!(matches!(
            decode(b"i99999999999999999999999e"),
            Err(DecodeError::IntegerOverflow { offset: 0 })
        ));
        assert_eq!(decode(b"i0e").unwrap().as_int(), Some(0));
    }

    #[test]
    fn errors_name_the_offset() {
        let e = decode(b"d1:ai1e1:bi01ee").unwrap_err();
        assert_eq!(e, DecodeError::LeadingZero { offset: 10 });
        assert!(e.to_string().contains("byte 10"), "{e}");
        assert_eq!(e.clone().shifted(100).offset(), 110);
    }
}
