//! Printing a watchlist's own strings (ids, names, list names) on a terminal or into a log line:
//! they come from a file and may hold escape sequences, newlines or bidi overrides.

/// `s` with every control character (C0, DEL, C1), every Unicode format character that can
/// reorder or hide text (bidi overrides and isolates, zero-width characters) and the backslash
/// written as `\u{XX}` escapes, so that a list can neither drive the terminal nor forge lines.
/// Text without such characters is returned unchanged.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] in double quotes (for names, which may hold spaces).
pub fn quoted(s: &str) -> String {
    let mut out = printable(s).replace('"', "\\u{22}");
    out.insert(0, '"');
    out.push('"');
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{061c}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_bidi_characters_only() {
        assert_eq!(printable("Ana María-1"), "Ana María-1");
        assert_eq!(printable("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\ny\rz\u{9b}"), "x\\u{a}y\\u{d}z\\u{9b}");
        assert_eq!(printable("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(printable("back\\slash"), "back\\u{5c}slash");
        assert_eq!(quoted("say \"hi\"\n"), "\"say \\u{22}hi\\u{22}\\u{a}\"");
    }
}
