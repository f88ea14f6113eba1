//! Bencode: round trips (proptest), one rejection per non-canonical or
//! malformed form, and what the lenient mode accepts on top.

use std::collections::BTreeMap;

use proptest::prelude::*;
use swarm_wire::bencode::{DEPTH_MAX, DecodeError, Kind, OwnedValue, decode, decode_lenient};

fn owned_value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Int),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
            prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..8), inner, 0..6)
                .prop_map(OwnedValue::Dict),
        ]
    })
}

proptest! {
    /// decode(encode(v)) == v, and the whole input is the top value's raw span.
    #[test]
    fn generated_values_round_trip(v in owned_value()) {
        let bytes = v.encode();
        let decoded = decode(&bytes).unwrap();
        prop_assert_eq!(decoded.raw(), &bytes[..]);
        prop_assert_eq!(decoded.span(), 0..bytes.len());
        prop_assert_eq!(decoded.to_owned_value(), v);
        prop_assert_eq!(decode_lenient(&bytes).unwrap(), decoded);
    }

    /// encode(decode(x)) == x for canonical x, and every nested value's raw
    /// span re-encodes to itself.
    #[test]
    fn canonical_input_round_trips(v in owned_value()) {
        let x = v.encode();
        let decoded = decode(&x).unwrap();
        prop_assert_eq!(decoded.to_owned_value().encode(), x.clone());
        fn check_spans(input: &[u8], v: &swarm_wire::bencode::Value<'_>) {
            assert_eq!(&input[v.span()], v.raw());
            assert_eq!(v.to_owned_value().encode(), v.raw());
            match v.kind() {
                Kind::List(items) => items.iter().for_each(|i| check_spans(input, i)),
                Kind::Dict(entries) => entries.iter().for_each(|(_, i)| check_spans(input, i)),
                _ => {}
            }
        }
        check_spans(&x, &decoded);
    }

    /// Strictness, stated as a property: whatever arbitrary bytes the strict
    /// decoder accepts are the canonical encoding of what it decoded.
    #[test]
    fn strict_accepts_only_canonical(bytes in prop::collection::vec(
        prop_oneof![Just(b'i'), Just(b'e'), Just(b'l'), Just(b'd'), Just(b':'), Just(b'-'),
                    Just(b'0'), Just(b'1'), Just(b'2'), any::<u8>()], 0..40)) {
        if let Ok(v) = decode(&bytes) {
            prop_assert_eq!(v.to_owned_value().encode(), bytes.clone());
        }
        if let (Ok(a), Ok(b)) = (decode(&bytes), decode_lenient(&bytes)) {
            prop_assert_eq!(a, b);
        }
    }
}

fn rejects(input: &[u8], check: impl Fn(&DecodeError) -> bool) {
    let e = decode(input).expect_err(&String::from_utf8_lossy(input));
    assert!(check(&e), "{}: {e:?}", input.escape_ascii());
    // Every message names the offset.
    assert!(e.to_string().contains("byte "), "{e}");
}

#[test]
fn unsorted_keys() {
    rejects(b"d1:bi1e1:ai2ee", |e| {
        matches!(e, DecodeError::UnsortedKey { offset: 7, .. })
    });
    // Sorted by raw bytes, not by length: "b" < "aa" is unsorted.
    rejects(b"d1:bi1e2:aai2ee", |e| {
        matches!(e, DecodeError::UnsortedKey { .. })
    });
    // Nested dicts too.
    rejects(b"d1:ad1:ci1e1:bi1eee", |e| {
        matches!(e, DecodeError::UnsortedKey { .. })
    });
}

#[test]
fn duplicate_keys() {
    rejects(b"d1:ai1e1:ai2ee", |e| {
        matches!(e, DecodeError::DuplicateKey { offset: 7, .. })
    });
}

#[test]
fn leading_zeros() {
    rejects(b"i01e", |e| {
        matches!(e, DecodeError::LeadingZero { offset: 0 })
    });
    rejects(b"i00e", |e| matches!(e, DecodeError::LeadingZero { .. }));
    rejects(b"i-01e", |e| matches!(e, DecodeError::LeadingZero { .. }));
    rejects(b"01:a", |e| {
        matches!(e, DecodeError::LeadingZero { offset: 0 })
    });
    rejects(b"00:", |e| matches!(e, DecodeError::LeadingZero { .. }));
    rejects(b"l02:abe", |e| {
        matches!(e, DecodeError::LeadingZero { offset: 1 })
    });
}

#[test]
fn negative_zero_and_empty_integers() {
    rejects(b"i-0e", |e| {
        matches!(e, DecodeError::NegativeZero { offset: 0 })
    });
    rejects(b"i-e", |e| {
        matches!(e, DecodeError::Unexpected { offset: 2, .. })
    });
    rejects(b"ie", |e| {
        matches!(e, DecodeError::Unexpected { offset: 1, .. })
    });
    rejects(b"i+1e", |e| {
        matches!(e, DecodeError::Unexpected { offset: 1, .. })
    });
    rejects(b"i 1e", |e| matches!(e, DecodeError::Unexpected { .. }));
    rejects(b"i1.5e", |e| {
        matches!(e, DecodeError::Unexpected { offset: 2, .. })
    });
    rejects(b"i--1e", |e| matches!(e, DecodeError::Unexpected { .. }));
}

#[test]
fn trailing_data() {
    rejects(b"i1ei2e", |e| {
        matches!(e, DecodeError::TrailingData { offset: 3, len: 3 })
    });
    rejects(b"dex", |e| matches!(e, DecodeError::TrailingData { .. }));
    assert!(matches!(
        decode_lenient(b"0:0:"),
        Err(DecodeError::TrailingData { .. })
    ));
}

fn nested(depth: usize) -> Vec<u8> {
    let mut b = vec![b'l'; depth];
    b.extend(std::iter::repeat_n(b'e', depth));
    b
}

#[test]
fn depth_limit() {
    assert!(decode(&nested(DEPTH_MAX)).is_ok());
    rejects(
        &nested(DEPTH_MAX + 1),
        |e| matches!(e, DecodeError::TooDeep { offset } if *offset == DEPTH_MAX),
    );
    // Far past the limit: an error, not a stack overflow.
    rejects(&nested(1_000_000), |e| {
        matches!(e, DecodeError::TooDeep { .. })
    });
    let mut dicts = Vec::new();
    for _ in 0..DEPTH_MAX + 1 {
        dicts.extend_from_slice(b"d1:a");
    }
    rejects(&dicts, |e| matches!(e, DecodeError::TooDeep { .. }));
}

#[test]
fn string_length_past_the_end() {
    rejects(b"5:abc", |e| {
        matches!(
            e,
            DecodeError::LengthPastEnd {
                offset: 0,
                len: 5,
                remaining: 3
            }
        )
    });
    // A huge length is refused before anything is sliced or allocated.
    rejects(b"18446744073709551615:x", |e| {
        matches!(e, DecodeError::LengthPastEnd { .. })
    });
    rejects(b"99999999999999999999999:x", |e| {
        matches!(e, DecodeError::IntegerOverflow { .. })
    });
}

#[test]
fn non_string_dict_keys() {
    rejects(b"di1ei2ee", |e| {
        matches!(e, DecodeError::KeyNotString { offset: 1 })
    });
    rejects(b"dlei2ee", |e| {
        matches!(e, DecodeError::KeyNotString { offset: 1 })
    });
    assert!(matches!(
        decode_lenient(b"ddei1ee"),
        Err(DecodeError::KeyNotString { .. })
    ));
}

#[test]
fn truncated_input() {
    for input in [
        &b""[..],
        b"i",
        b"i12",
        b"i-",
        b"3:ab",
        b"3",
        b"l",
        b"li1e",
        b"d",
        b"d1:a",
        b"d1:ai1e",
    ] {
        let e = decode(input).expect_err(&String::from_utf8_lossy(input));
        assert!(
            matches!(
                e,
                DecodeError::Truncated { .. } | DecodeError::LengthPastEnd { .. }
            ),
            "{}: {e:?}",
            input.escape_ascii()
        );
    }
    assert_eq!(
        decode(b"d1:a").unwrap_err(),
        DecodeError::Truncated {
            offset: 4,
            expected: "a value"
        }
    );
}

#[test]
fn unexpected_bytes() {
    rejects(b"x", |e| {
        matches!(e, DecodeError::Unexpected { offset: 0, .. })
    });
    rejects(b"l1:ax", |e| {
        matches!(e, DecodeError::Unexpected { offset: 4, .. })
    });
    rejects(b"3x", |e| {
        matches!(e, DecodeError::Unexpected { offset: 1, .. })
    });
}

#[test]
fn lenient_accepts_unsorted_and_repeated_keys_only() {
    let v = decode_lenient(b"d1:bi1e1:ai2e1:ai3ee").unwrap();
    assert_eq!(v.get(b"a").unwrap().as_int(), Some(2), "first one wins");
    assert_eq!(v.get(b"b").unwrap().as_int(), Some(1));
    let mut want = BTreeMap::new();
    want.insert(b"a".to_vec(), OwnedValue::Int(2));
    want.insert(b"b".to_vec(), OwnedValue::Int(1));
    assert_eq!(v.to_owned_value(), OwnedValue::Dict(want));
    // The rest is as strict as ever.
    for bad in [&b"i01e"[..], b"i-0e", b"01:a", b"ie", b"i1ee"] {
        assert!(decode_lenient(bad).is_err(), "{}", bad.escape_ascii());
    }
}

#[test]
fn integers_at_the_limits() {
    assert_eq!(
        decode(b"i-9223372036854775808e").unwrap().as_int(),
        Some(i64::MIN)
    );
    assert_eq!(
        OwnedValue::Int(i64::MIN).encode(),
        b"i-9223372036854775808e"
    );
    rejects(b"i9223372036854775808e", |e| {
        matches!(e, DecodeError::IntegerOverflow { offset: 0 })
    });
}
