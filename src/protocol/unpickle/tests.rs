//! The decoder's tests, against pickles made by Python 3.11.

use std::collections::BTreeMap;

use super::*;

// Made with Python 3.11 `pickle.dumps(..., protocol=N)`; see each name.
/// `('jobs.add', None, (2, 3), {})`, protocol 5.
const JOB5: &[u8] = b"\x80\x05\x95\x18\x00\x00\x00\x00\x00\x00\x00(\x8c\x08jobs.add\x94NK\x02K\x03\x86\x94}\x94t\x94.";
/// `d = {'a': 1}; [d, d]`, protocol 5 (serde-pickle 1.2 fails on it).
const SHARED_DICT: &[u8] =
    b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00]\x94(}\x94\x8c\x01a\x94K\x01sh\x01e.";
/// `('f', None, (datetime(2024,1,1), datetime(2024,1,2)), {})`: the second STACK_GLOBAL
/// takes its operands from the memo.
const DATETIME_TWICE: &[u8] = b"\x80\x05\x95I\x00\x00\x00\x00\x00\x00\x00(\x8c\x01f\x94N\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\x0a\x07\xe8\x01\x01\x00\x00\x00\x00\x00\x00\x94\x85\x94R\x94h\x03C\x0a\x07\xe8\x01\x02\x00\x00\x00\x00\x00\x00\x94\x85\x94R\x94\x86\x94}\x94t\x94.";
/// `('f', None, [1, -5, 2**70, 1.5, 'é\n', True, None, (1,)], {'k': 'v'})`, protocol 0.
const PROTO0: &[u8] = b"(Vf\x0ap0\x0aN(lp1\x0aI1\x0aaI-5\x0aaL1180591620717411303424L\x0aaF1.5\x0aaV\xe9\x5cu000a\x0ap2\x0aaI01\x0aaNa(I1\x0atp3\x0aa(dp4\x0aVk\x0ap5\x0aVv\x0ap6\x0astp7\x0a.";
/// `('f', None, [1, 2**70, -2**70, 1.5, 'é', (1, 2, 3, 4)], {'k': [True]})`, protocol 2.
const PROTO2: &[u8] = b"\x80\x02(X\x01\x00\x00\x00fq\x00N]q\x01(K\x01\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xc0G?\xf8\x00\x00\x00\x00\x00\x00X\x02\x00\x00\x00\xc3\xa9q\x02(K\x01K\x02K\x03K\x04tq\x03e}q\x04X\x01\x00\x00\x00kq\x05]q\x06\x88astq\x07.";
/// `[bytearray(b'ab'), b'cd']`, protocol 5.
const BYTEARRAY: &[u8] = b"\x80\x05\x95\x16\x00\x00\x00\x00\x00\x00\x00]\x94(\x96\x02\x00\x00\x00\x00\x00\x00\x00ab\x94C\x02cd\x94e.";
/// `({1, 2}, frozenset({'a'}))`, protocol 5.
const SETS: &[u8] = b"\x80\x05\x95\x12\x00\x00\x00\x00\x00\x00\x00\x8f\x94(K\x01K\x02\x90(\x8c\x01a\x94\x91\x94\x86\x94.";

const FUZZ_ROUNDS: usize = 20_000;

const VALID: &[&[u8]] = &[JOB5, SHARED_DICT, PROTO0, PROTO2, BYTEARRAY, SETS];

fn s(text: &str) -> PyValue {
    PyValue::String(text.into())
}

fn int(digits: &str) -> PyValue {
    crate::value::int_from_decimal(digits.as_bytes()).unwrap()
}

fn forbidden(pickle: &[u8]) -> (String, Option<usize>) {
    match scan(pickle) {
        Err(e @ UnpickleError::Forbidden { outer_item, .. }) => {
            (e.forbidden_label().unwrap(), outer_item)
        }
        other => panic!("expected a forbidden opcode, got {other:?}"),
    }
}

#[test]
fn decodes_plain_data_like_python() {
    assert_eq!(
        decode(JOB5).unwrap(),
        PyValue::Tuple(vec![
            s("jobs.add"),
            PyValue::None,
            PyValue::Tuple(vec![PyValue::I64(2), PyValue::I64(3)]),
            PyValue::Dict(BTreeMap::new()),
        ])
    );
    let dict = PyValue::Dict(
        [(
            serde_pickle::HashableValue::String("a".into()),
            PyValue::I64(1),
        )]
        .into(),
    );
    assert_eq!(
        decode(SHARED_DICT).unwrap(),
        PyValue::List(vec![dict.clone(), dict])
    );
    assert_eq!(
        decode(BYTEARRAY).unwrap(),
        PyValue::List(vec![
            PyValue::Bytes(b"ab".to_vec()),
            PyValue::Bytes(b"cd".to_vec())
        ])
    );
    let PyValue::Tuple(sets) = decode(SETS).unwrap() else {
        panic!()
    };
    assert_eq!(
        sets[0],
        PyValue::Set([1, 2].map(serde_pickle::HashableValue::I64).into())
    );
    assert_eq!(
        sets[1],
        PyValue::FrozenSet([serde_pickle::HashableValue::String("a".into())].into())
    );
}

#[test]
fn decodes_protocols_0_and_2() {
    let kwargs = |v| PyValue::Dict([(serde_pickle::HashableValue::String("k".into()), v)].into());
    assert_eq!(
        decode(PROTO0).unwrap(),
        PyValue::Tuple(vec![
            s("f"),
            PyValue::None,
            PyValue::List(vec![
                PyValue::I64(1),
                PyValue::I64(-5),
                int("1180591620717411303424"),
                PyValue::F64(1.5),
                s("é\n"),
                PyValue::Bool(true),
                PyValue::None,
                PyValue::Tuple(vec![PyValue::I64(1)]),
            ]),
            kwargs(s("v")),
        ])
    );
    let four = (1..=4).map(PyValue::I64).collect();
    assert_eq!(
        decode(PROTO2).unwrap(),
        PyValue::Tuple(vec![
            s("f"),
            PyValue::None,
            PyValue::List(vec![
                PyValue::I64(1),
                int("1180591620717411303424"),
                int("-1180591620717411303424"),
                PyValue::F64(1.5),
                s("é"),
                PyValue::Tuple(four),
            ]),
            kwargs(PyValue::List(vec![PyValue::Bool(true)])),
        ])
    );
}

/// Why this decoder exists (see the module docs): serde-pickle 1.2 refuses the shared dict
/// of memoized items that Python writes for `d = {'a': 1}; [d, d]`, which we decode.
#[test]
fn serde_pickle_still_fails_on_a_shared_dict() {
    let theirs = serde_pickle::value_from_slice(
        SHARED_DICT,
        serde_pickle::DeOptions::new().decode_strings(),
    );
    assert!(theirs.is_err(), "serde-pickle now decodes it: {theirs:?}");
    assert!(decode(SHARED_DICT).is_ok());
}

#[test]
fn agrees_with_serde_pickle_where_it_works() {
    // Integers in every long form (Python reads 5, -2**92, -12, 2**70, [2**70, -5, 7]): LONG1
    // of 9 bytes that fits 64 bits (not minimal), a negative LONG4, LONG with and without its
    // `L` suffix.
    let longs: &[&[u8]] = &[
        b"\x80\x02\x8a\x09\x05\x00\x00\x00\x00\x00\x00\x00\x00.",
        b"\x80\x02\x8b\x0e\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0\xff\xff.",
        b"L-12L\n.",
        b"L1180591620717411303424\n.",
        b"(L1180591620717411303424L\nL-5L\nI7\nl.",
    ];
    for pickle in [JOB5, PROTO0, PROTO2, BYTEARRAY, SETS].iter().chain(longs) {
        let ours = decode(pickle).unwrap();
        let theirs =
            serde_pickle::value_from_slice(pickle, serde_pickle::DeOptions::new().decode_strings())
                .unwrap();
        assert_eq!(ours, theirs);
    }
}

#[test]
fn every_truncation_is_an_error() {
    for pickle in VALID.iter().chain([&DATETIME_TWICE]) {
        for end in 0..pickle.len() {
            assert!(
                scan(&pickle[..end]).is_err(),
                "prefix of {end} bytes accepted"
            );
        }
    }
    assert_eq!(
        scan(b""),
        Err(UnpickleError::Truncated {
            opcode: "STOP",
            offset: 0
        })
    );
}

#[test]
fn length_fields_are_checked_before_use() {
    let mut huge = b"\x80\x05\x8d".to_vec(); // BINUNICODE8 with a 2**64-1 length
    huge.extend(u64::MAX.to_le_bytes());
    huge.extend(b"abc.");
    assert_eq!(
        scan(&huge),
        Err(UnpickleError::Truncated {
            opcode: "BINUNICODE8",
            offset: 2
        })
    );
    for op in [b'\x8e', b'\x96'] {
        let mut bytes8 = vec![op];
        bytes8.extend((1u64 << 40).to_le_bytes());
        assert!(matches!(
            scan(&bytes8),
            Err(UnpickleError::Truncated { .. })
        ));
    }
    assert!(matches!(
        scan(b"X\xff\xff\xff\xffab."),
        Err(UnpickleError::Truncated { .. })
    ));
    assert!(matches!(
        scan(b"T\xff\xff\xff\xffab."),
        Err(UnpickleError::Malformed { .. })
    ));
    assert!(matches!(
        scan(b"\x8b\x00\x00\x00\x80."),
        Err(UnpickleError::Malformed { .. })
    ));
    assert!(matches!(
        scan(b"Vno newline"),
        Err(UnpickleError::Truncated { .. })
    ));
}

#[test]
fn names_globals_even_from_the_memo() {
    assert_eq!(
        forbidden(DATETIME_TWICE),
        ("STACK_GLOBAL datetime.datetime".into(), Some(2))
    );
    // The same module/name pushed through BINGET only.
    let memo_only = b"\x80\x05\x8c\x01m\x94\x8c\x01n\x94h\x00h\x01\x93.";
    assert_eq!(forbidden(memo_only).0, "STACK_GLOBAL m.n");
    assert_eq!(forbidden(b"cdatetime\ndate\n.").0, "GLOBAL datetime.date");
    assert_eq!(forbidden(b"(imod\nCls\n.").0, "INST mod.Cls");
    // STACK_GLOBAL over non-strings still names the opcode.
    assert_eq!(forbidden(b"\x80\x05K\x01K\x02\x93.").0, "STACK_GLOBAL");
    let long_name = [b"c".as_slice(), &[b'x'; 500], b"\n\x01y\n."].concat();
    let (label, _) = forbidden(&long_name);
    assert!(label.len() < 200 && label.ends_with('…'), "{label}");
}

#[test]
fn refuses_every_object_building_opcode() {
    let cases: &[(&[u8], &str)] = &[
        (b"cm\nf\n)R.", "GLOBAL m.f"),
        (b"N)R.", "REDUCE"),
        (b"N)\x81.", "NEWOBJ"),
        (b"N)}\x92.", "NEWOBJ_EX"),
        (b"N}b.", "BUILD"),
        (b"(N)o.", "OBJ"),
        (b"\x82\x01.", "EXT1"),
        (b"\x83\x01\x00.", "EXT2"),
        (b"\x84\x01\x00\x00\x00.", "EXT4"),
        (b"Pid\n.", "PERSID"),
        (b"NQ.", "BINPERSID"),
        (b"\x97.", "NEXT_BUFFER"),
        (b"N\x98.", "READONLY_BUFFER"),
    ];
    for (pickle, label) in cases {
        assert_eq!(&forbidden(pickle).0, label);
    }
    assert_eq!(
        scan(b"\xff."),
        Err(UnpickleError::UnknownOpcode {
            byte: 0xff,
            offset: 0
        })
    );
    assert_eq!(
        scan(b"\x80\x05\x99."),
        Err(UnpickleError::UnknownOpcode {
            byte: 0x99,
            offset: 2
        })
    );
    assert_eq!(
        scan(b"\x80\x06N."),
        Err(UnpickleError::UnsupportedProtocol(6))
    );
}

#[test]
fn locates_the_offending_element_of_the_job_tuple() {
    // (name, <object>, (), {}) — a bound method's instance.
    assert_eq!(forbidden(b"(X\x01\x00\x00\x00fcm\nC\n)\x81)}t.").1, Some(1));
    // (name, None, (), {'k': <object>})
    assert_eq!(
        forbidden(b"(X\x01\x00\x00\x00fN)}X\x01\x00\x00\x00kcm\nC\n)Rst.").1,
        Some(3)
    );
    // Not a MARK-built tuple: no position.
    assert_eq!(forbidden(b"]cm\nC\n)Ra.").1, None);
}

#[test]
fn memo_references_share_until_built() {
    // x = []; memo x; [x, x]; then append 1 through the memo: both copies see it.
    let pickle = b"]\x94(h\x00h\x00l\x94h\x00K\x01a0.";
    // The list pushed last is x itself (after POP of the outer list), so build the outer.
    assert!(scan(pickle).is_ok());
    let outer = b"]\x94(h\x00h\x00l\x94h\x00K\x01a0h\x01.";
    let one = PyValue::List(vec![PyValue::I64(1)]);
    assert_eq!(
        decode(outer).unwrap(),
        PyValue::List(vec![one.clone(), one])
    );
    assert!(matches!(
        scan(b"h\x05."),
        Err(UnpickleError::Malformed { .. })
    ));
}

#[test]
fn refuses_a_lying_frame_length() {
    // FRAME 2**63, and FRAME one byte longer than what follows; Python's unpickler
    // refuses both ("pickle data was truncated" / frame size).
    let mut huge = b"\x80\x05\x95".to_vec();
    huge.extend((1u64 << 63).to_le_bytes());
    huge.extend(b"N.");
    assert!(
        scan(&huge)
            == Err(UnpickleError::Truncated {
                opcode: "FRAME",
                offset: 2
            }),
        "{:?}",
        scan(&huge)
    );
    let mut past = b"\x80\x05\x95".to_vec();
    past.extend(3u64.to_le_bytes());
    past.extend(b"N.");
    assert!(matches!(
        scan(&past),
        Err(UnpickleError::Truncated {
            opcode: "FRAME",
            ..
        })
    ));
    // An honest frame (the whole rest of the pickle) decodes.
    past[3] = 2;
    assert_eq!(decode(&past), Ok(PyValue::None));
    assert!(decode(JOB5).is_ok());
}

#[test]
fn budget_covers_the_walk_and_the_value() {
    // 100k Nones in a list: about LEAF + SLOT each while walking, VALUE each once built.
    let mut pickle = b"](".to_vec();
    pickle.extend(std::iter::repeat_n(b'N', 100_000));
    pickle.extend(b"e.");
    let walk = 100_000 * (cost::LEAF + cost::SLOT);
    let built = 100_000 * cost::VALUE;
    assert!(decode_within(&pickle, walk + built + 4096).is_ok());
    assert!(matches!(
        decode_within(&pickle, walk / 2),
        Err(UnpickleError::TooLarge {
            stage: "while reading",
            ..
        })
    ));
    assert!(matches!(
        decode_within(&pickle, walk + built / 2),
        Err(UnpickleError::TooLarge {
            stage: "once expanded",
            ..
        })
    ));
}

#[test]
fn refuses_self_reference() {
    // l = []; l.append(l)
    assert_eq!(scan(b"]\x94h\x00a."), Err(UnpickleError::Recursive));
}

#[test]
fn refuses_exponential_expansion() {
    // l0 = ['x' * 8]; l(n+1) = [ln, ln]: 2**40 copies from a few hundred bytes.
    let mut pickle = b"](C\x08abcdefghe\x94".to_vec();
    for _ in 0..40 {
        pickle.extend(b"](h");
        pickle.push((pickle.iter().filter(|&&b| b == 0x94).count() - 1) as u8);
        pickle.push(b'h');
        pickle.push((pickle.iter().filter(|&&b| b == 0x94).count() - 1) as u8);
        pickle.extend(b"e\x94");
    }
    pickle.push(b'.');
    assert!(pickle.len() < 400);
    assert!(
        matches!(scan(&pickle), Err(UnpickleError::TooLarge { .. })),
        "{:?}",
        scan(&pickle)
    );
}

fn nested_lists(depth: usize) -> Vec<u8> {
    let mut pickle = b"]".repeat(depth);
    pickle.extend(b"a".repeat(depth - 1));
    pickle.push(b'.');
    pickle
}

#[test]
fn caps_nesting() {
    assert_eq!(
        scan(&nested_lists(MAX_DEPTH + 1)),
        Err(UnpickleError::TooDeep)
    );
    let mut marks = b"(".repeat(MAX_DEPTH + 1);
    marks.extend(b"N.");
    assert_eq!(scan(&marks), Err(UnpickleError::TooDeep));
    // The deepest accepted value builds, compares and drops on a small stack.
    let pickle = nested_lists(MAX_DEPTH);
    let handle = std::thread::Builder::new()
        .stack_size(4096 << 10)
        .spawn(move || {
            let value = decode(&pickle).unwrap();
            assert_eq!(value, value.clone());
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn refuses_malformed_streams() {
    assert!(matches!(scan(b"a."), Err(UnpickleError::Malformed { .. })));
    assert!(matches!(
        scan(b"NNa."),
        Err(UnpickleError::Malformed { .. })
    ));
    assert!(matches!(
        scan(b"}(Nu."),
        Err(UnpickleError::Malformed { .. })
    ));
    assert!(matches!(
        scan(b"(Nd."),
        Err(UnpickleError::Malformed { .. })
    ));
    assert!(matches!(scan(b"e."), Err(UnpickleError::Malformed { .. })));
    assert!(matches!(scan(b"(."), Err(UnpickleError::Malformed { .. })));
    assert!(matches!(
        scan(b"X\x02\x00\x00\x00\xff\xfe."),
        Err(UnpickleError::Malformed { .. })
    ));
    assert_eq!(
        decode(b"\x8f(]\x90."),
        Err(UnpickleError::Unhashable("set item"))
    );
    assert_eq!(decode(b"}]Ns."), Err(UnpickleError::Unhashable("dict key")));
}

#[test]
fn never_panics_on_mutated_input() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..FUZZ_ROUNDS {
        let base = VALID[round % VALID.len()];
        let mut bytes = base.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => bytes.insert(at, next() as u8),
                _ => {
                    bytes.remove(at);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        let _ = decode(&bytes);
    }
    for _ in 0..FUZZ_ROUNDS {
        let len = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = decode(&bytes);
    }
}
