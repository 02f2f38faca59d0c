//! Client text in logs. A value a client chose (a path, a webhook source, a
//! header) is logged through [`Clean`], which writes control characters as
//! escapes: a newline or an ANSI sequence in a path segment can then neither
//! forge a log line nor repaint a terminal.

use std::fmt;

/// Longest client value written to a log, in characters; the rest is cut.
pub const LOGGED_VALUE_MAX_CHARS: usize = 256;

/// Displays a client-supplied string with control characters escaped
/// (`\n`, `\u{1b}`), cut to [`LOGGED_VALUE_MAX_CHARS`].
pub struct Clean<'a>(pub &'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for (n, c) in self.0.chars().enumerate() {
            if n == LOGGED_VALUE_MAX_CHARS {
                return f.write_str("…");
            }
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        let forged = "crm\n2026-01-01T00:00:00Z  INFO forged\u{1b}[31m";
        let shown = Clean(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\u{1b}'));
        assert!(shown.contains("\\n") && shown.contains("\\u{1b}"));
        let long = "x".repeat(10_000);
        assert_eq!(
            Clean(&long).to_string().chars().count(),
            LOGGED_VALUE_MAX_CHARS + 1
        );
    }
}
