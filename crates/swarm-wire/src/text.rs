//! Text that a remote party chose (a tracker's `failure reason` or `warning
//! message`, a peer's client name, a path in a torrent), made safe to print.
//!
//! Printed raw, such text can forge log lines (a newline), change the
//! terminal's title or clear the screen (escape sequences), or reorder what
//! the user reads (Unicode bidi controls). [`Escaped`] shows every control
//! character (C0, DEL, C1) and every invisible format character (bidi
//! overrides and isolates, zero-width ones, BOM) as a Rust escape (`\n`,
//! `\u{1b}`), and leaves the rest alone. Everything that prints remote text
//! goes through it: the CLI's error line, `swarm info`, the tracker client's
//! errors and warnings.

use std::fmt;

/// `text` with control and format characters escaped; `Display` only.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

/// Whether `c` must not reach a terminal as it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' // zero-width space/joiners, LRM/RLM
                | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings and overrides
                | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
                | '\u{feff}' // BOM / zero-width no-break space
        )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        let mut rest = self.0;
        while let Some(at) = rest.find(is_unsafe) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            for e in c.escape_debug() {
                f.write_char(e)?;
            }
            // `escape_debug` leaves some format characters as they are.
            if c.escape_debug().count() == 1 {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// [`Escaped`] as a `String`.
pub fn escape(text: &str) -> String {
    Escaped(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped_the_rest_kept() {
        assert_eq!(escape("plain ünïcode ☃"), "plain ünïcode ☃");
        assert_eq!(escape("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escape("\x1b]0;title\x07"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(escape("\x1b[2J"), "\\u{1b}[2J");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("\x7f"), "\\u{7f}");
        assert_eq!(escape("evil\u{202e}fdp.exe"), "evil\\u{202e}fdp.exe");
        assert_eq!(escape("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn the_output_has_no_unsafe_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = escape(&all);
        assert!(!out.chars().any(is_unsafe));
    }
}
