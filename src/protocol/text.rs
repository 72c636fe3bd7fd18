//! Hostile text made safe to echo: ids, origins, function names and messages come from job
//! hashes anyone with write access to Redis controls. Wherever rqw echoes them (log fields,
//! failure texts, Redis values) they go through here first:
//! - [`shown`] escapes every control character (`\n`, `\r`, `\t`, ESC, C1, U+2028/9...) and
//!   every byte that is not UTF-8 (`\xff`), and bounds the length with a marker saying how
//!   much was cut, so a value can neither forge a log line nor flood one;
//! - [`one_line`] does the same for the parts of a failure text, so its last line stays one
//!   valid `Type: message` line.

use std::fmt::Write as _;

/// Longest hostile value shown in a log field, in characters of the escaped form.
pub const MAX_SHOWN_CHARS: usize = 200;

/// Longest message kept in a failure text (`exc_string`), in characters of the escaped form.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// `bytes` escaped and bounded to [`MAX_SHOWN_CHARS`], for a log field.
pub fn shown(bytes: &[u8]) -> String {
    escaped(bytes, MAX_SHOWN_CHARS)
}

/// `text` escaped and bounded to `max_chars` characters, for one line of a failure text.
pub fn one_line(text: &str, max_chars: usize) -> String {
    escaped(text.as_bytes(), max_chars)
}

/// Escapes control characters and invalid UTF-8 of `bytes`; once the escaped form reaches
/// `max_chars` characters, the rest is replaced by `…[+N bytes]`.
pub fn escaped(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = 0usize;
    let mut consumed = 0usize;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let before = out.len();
            push_escaped(&mut out, c);
            chars += out[before..].chars().count();
            if chars > max_chars {
                out.truncate(before);
                return cut(out, bytes.len() - consumed);
            }
            consumed += c.len_utf8();
        }
        for b in chunk.invalid() {
            chars += 4;
            if chars > max_chars {
                return cut(out, bytes.len() - consumed);
            }
            let _ = write!(out, "\\x{b:02x}");
            consumed += 1;
        }
    }
    out
}

fn cut(mut out: String, rest: usize) -> String {
    let _ = write!(out, "…[+{rest} bytes]");
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}') => {
            let code = c as u32;
            if code <= 0xff {
                let _ = write!(out, "\\x{code:02x}");
            } else {
                let _ = write!(out, "\\u{code:04x}");
            }
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_a_line() {
        assert_eq!(shown(b"job\nINFO forged"), "job\\nINFO forged");
        assert_eq!(
            shown(b"a\r\nb\tc\x1b[31m\x7f"),
            "a\\r\\nb\\tc\\x1b[31m\\x7f"
        );
        assert_eq!(shown("x\u{2028}y\u{85}".as_bytes()), "x\\u2028y\\x85");
        // Backslashes stay as they are: escaping twice (a shown value inside a failure text)
        // must not double them; an escaped form cannot break a line either way.
        assert_eq!(shown(b"back\\slash"), "back\\slash");
        assert_eq!(one_line(&one_line("a\nb", 10), 10), "a\\nb");
        assert_eq!(shown(b"caf\xc3\xa9 ok"), "café ok");
    }

    #[test]
    fn shows_invalid_utf8_as_hex() {
        assert_eq!(shown(b"id-\xff\xfe-x"), "id-\\xff\\xfe-x");
        assert_eq!(shown(b"\xc3"), "\\xc3");
    }

    #[test]
    fn bounds_with_a_marker() {
        let long = "x".repeat(100_000);
        let out = shown(long.as_bytes());
        assert_eq!(
            out,
            format!("{}…[+{} bytes]", "x".repeat(200), 100_000 - 200)
        );
        let newlines = "\n".repeat(300);
        let out = one_line(&newlines, 10);
        assert_eq!(out, format!("{}…[+295 bytes]", "\\n".repeat(5)));
        assert!(!out.contains('\n'));
        let bad = vec![0xffu8; 1000];
        assert!(shown(&bad).ends_with("…[+950 bytes]"), "{}", shown(&bad));
        assert_eq!(shown(b"short"), "short");
    }
}
