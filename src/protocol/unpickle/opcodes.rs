//! The opcode table of pickle protocols 0-5: each opcode byte's `pickletools` name and how
//! its argument is laid out.

/// How an opcode's argument is laid out (pickletools' argument descriptors).
#[derive(Debug, Clone, Copy)]
pub(super) enum Arg {
    /// No argument.
    None,
    /// `n` bytes.
    Fixed(usize),
    /// Up to a newline, which is consumed.
    Line,
    /// Two lines (`GLOBAL`, `INST`).
    Lines,
    /// An `n`-byte little-endian unsigned length, then that many bytes.
    Counted(usize),
    /// A 4-byte little-endian signed length, then that many bytes.
    SignedCounted,
}

/// The name and argument layout of an opcode (protocols 0-5).
pub(super) fn opcode(op: u8) -> Option<(&'static str, Arg)> {
    Some(match op {
        b'(' => ("MARK", Arg::None),
        b'.' => ("STOP", Arg::None),
        b'0' => ("POP", Arg::None),
        b'1' => ("POP_MARK", Arg::None),
        b'2' => ("DUP", Arg::None),
        b'F' => ("FLOAT", Arg::Line),
        b'I' => ("INT", Arg::Line),
        b'J' => ("BININT", Arg::Fixed(4)),
        b'K' => ("BININT1", Arg::Fixed(1)),
        b'L' => ("LONG", Arg::Line),
        b'M' => ("BININT2", Arg::Fixed(2)),
        b'N' => ("NONE", Arg::None),
        b'P' => ("PERSID", Arg::Line),
        b'Q' => ("BINPERSID", Arg::None),
        b'R' => ("REDUCE", Arg::None),
        b'S' => ("STRING", Arg::Line),
        b'T' => ("BINSTRING", Arg::SignedCounted),
        b'U' => ("SHORT_BINSTRING", Arg::Counted(1)),
        b'V' => ("UNICODE", Arg::Line),
        b'X' => ("BINUNICODE", Arg::Counted(4)),
        b'a' => ("APPEND", Arg::None),
        b'b' => ("BUILD", Arg::None),
        b'c' => ("GLOBAL", Arg::Lines),
        b'd' => ("DICT", Arg::None),
        b'}' => ("EMPTY_DICT", Arg::None),
        b'e' => ("APPENDS", Arg::None),
        b'g' => ("GET", Arg::Line),
        b'h' => ("BINGET", Arg::Fixed(1)),
        b'i' => ("INST", Arg::Lines),
        b'j' => ("LONG_BINGET", Arg::Fixed(4)),
        b'l' => ("LIST", Arg::None),
        b']' => ("EMPTY_LIST", Arg::None),
        b'o' => ("OBJ", Arg::None),
        b'p' => ("PUT", Arg::Line),
        b'q' => ("BINPUT", Arg::Fixed(1)),
        b'r' => ("LONG_BINPUT", Arg::Fixed(4)),
        b's' => ("SETITEM", Arg::None),
        b't' => ("TUPLE", Arg::None),
        b')' => ("EMPTY_TUPLE", Arg::None),
        b'u' => ("SETITEMS", Arg::None),
        b'G' => ("BINFLOAT", Arg::Fixed(8)),
        b'\x80' => ("PROTO", Arg::Fixed(1)),
        b'\x81' => ("NEWOBJ", Arg::None),
        b'\x82' => ("EXT1", Arg::Fixed(1)),
        b'\x83' => ("EXT2", Arg::Fixed(2)),
        b'\x84' => ("EXT4", Arg::Fixed(4)),
        b'\x85' => ("TUPLE1", Arg::None),
        b'\x86' => ("TUPLE2", Arg::None),
        b'\x87' => ("TUPLE3", Arg::None),
        b'\x88' => ("NEWTRUE", Arg::None),
        b'\x89' => ("NEWFALSE", Arg::None),
        b'\x8a' => ("LONG1", Arg::Counted(1)),
        b'\x8b' => ("LONG4", Arg::SignedCounted),
        b'B' => ("BINBYTES", Arg::Counted(4)),
        b'C' => ("SHORT_BINBYTES", Arg::Counted(1)),
        b'\x8c' => ("SHORT_BINUNICODE", Arg::Counted(1)),
        b'\x8d' => ("BINUNICODE8", Arg::Counted(8)),
        b'\x8e' => ("BINBYTES8", Arg::Counted(8)),
        b'\x8f' => ("EMPTY_SET", Arg::None),
        b'\x90' => ("ADDITEMS", Arg::None),
        b'\x91' => ("FROZENSET", Arg::None),
        b'\x92' => ("NEWOBJ_EX", Arg::None),
        b'\x93' => ("STACK_GLOBAL", Arg::None),
        b'\x94' => ("MEMOIZE", Arg::None),
        b'\x95' => ("FRAME", Arg::Fixed(8)),
        b'\x96' => ("BYTEARRAY8", Arg::Counted(8)),
        b'\x97' => ("NEXT_BUFFER", Arg::None),
        b'\x98' => ("READONLY_BUFFER", Arg::None),
        _ => return None,
    })
}

/// A little-endian unsigned integer of up to 8 bytes.
pub(super) fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |acc, &b| acc << 8 | u64::from(b))
}
