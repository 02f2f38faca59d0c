//! Input limits. Every string and number a client sends is bounded here, so
//! the edges and the core agree on what is acceptable.

use super::refusal::Refusal;
pub use crate::limits::{
    EMAIL_MAX_CHARS, ID_HEX_DIGITS, NAME_MAX_CHARS, NOTE_MAX_CHARS, PASSWORD_MAX_CHARS,
    PASSWORD_MIN_CHARS, SEATS_MAX, TOKEN_MAX_CHARS,
};

/// Whether `id` has the shape of an id admind issues with `prefix`
/// (`acc`, `usr`, ...). Anything else cannot exist, so the edge answers 404
/// without touching the store or any per-id state.
pub fn id_has_shape(prefix: &str, id: &str) -> bool {
    id.len() == prefix.len() + 1 + ID_HEX_DIGITS
        && id.starts_with(prefix)
        && id.as_bytes()[prefix.len()] == b'_'
        && id[prefix.len() + 1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn text(field: &str, value: &str, max: usize) -> Result<String, Refusal> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Refusal::invalid(format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > max {
        return Err(Refusal::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(Refusal::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    if trimmed.chars().any(is_bidi_control) {
        return Err(Refusal::invalid(format!(
            "{field} must not contain bidirectional override characters (U+202A-U+202E, U+2066-U+2069): they make a text read as another"
        )));
    }
    Ok(trimmed.to_string())
}

/// The embedding, override and isolate characters of Unicode's
/// bidirectional algorithm: shown in a mail or a page they reorder what
/// follows, so "Ana\u{202E}nimda" reads as another name. The joiners real
/// names need (ZWJ U+200D, ZWNJ U+200C) are not among them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The languages admind writes mails and pages in.
pub const LANGUAGES: &[&str] = &["en", "fr"];

/// One of [`LANGUAGES`].
pub fn language(field: &str, value: &str) -> Result<String, Refusal> {
    let value = value.trim().to_ascii_lowercase();
    if LANGUAGES.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(Refusal::invalid(format!(
            "{field} must be one of: {}",
            LANGUAGES.join(", ")
        )))
    }
}

pub fn name(field: &str, value: &str) -> Result<String, Refusal> {
    text(field, value, NAME_MAX_CHARS)
}

pub fn note(field: &str, value: &str) -> Result<String, Refusal> {
    text(field, value, NOTE_MAX_CHARS)
}

/// A deliberately plain address check: one `@`, a dotted domain, no spaces
/// or characters that need quoting. Mail delivery is the real proof.
pub fn email(field: &str, value: &str) -> Result<String, Refusal> {
    let v = value.trim();
    let bad = || Refusal::invalid(format!("{field} is not a valid email address"));
    if v.is_empty() || v.chars().count() > EMAIL_MAX_CHARS {
        return Err(bad());
    }
    let (local, domain) = v.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(bad());
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(bad());
    }
    if domain.contains("..") || local.starts_with('.') || local.ends_with('.') {
        return Err(bad());
    }
    let forbidden = |c: char| {
        c.is_whitespace() || c.is_control() || is_bidi_control(c) || "<>()[],;:\"\\".contains(c)
    };
    if v.chars().any(forbidden) {
        return Err(bad());
    }
    Ok(v.to_string())
}

pub fn password(value: &str) -> Result<(), Refusal> {
    let n = value.chars().count();
    if n < PASSWORD_MIN_CHARS {
        return Err(Refusal::invalid(format!(
            "password must have at least {PASSWORD_MIN_CHARS} characters"
        )));
    }
    if n > PASSWORD_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "password must have at most {PASSWORD_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

pub fn seats(field: &str, value: u32) -> Result<u32, Refusal> {
    if value > SEATS_MAX {
        return Err(Refusal::invalid(format!(
            "{field} must be at most {SEATS_MAX}"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_accept_plain_and_refuse_malformed() {
        assert!(email("e", "a.b+c@example.com").is_ok());
        for bad in [
            "", "no-at", "a@b", "a@@b.c", "a b@c.d", "a@.c", "<a@b.c>", "a@b.c.",
        ] {
            assert!(email("e", bad).is_err(), "{bad} should be refused");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(email("e", &long).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("n", "  Ana ").unwrap(), "Ana");
        assert!(name("n", "   ").is_err());
        assert!(name("n", &"x".repeat(201)).is_err());
        assert!(name("n", "a\u{0}b").is_err());
    }

    #[test]
    fn bidirectional_overrides_are_refused_and_joiners_kept() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}',
        ] {
            let err = name("name", &format!("Ana{c}nimda")).unwrap_err();
            assert_eq!(err.code, "validation_failed");
            assert!(err.detail.contains("bidirectional"), "{}", err.detail);
            assert!(note("reason", &format!("ok{c}")).is_err());
            assert!(email("address", &format!("a{c}@acme.test")).is_err());
        }
        // Names need the joiners: Persian (ZWNJ), emoji sequences (ZWJ).
        assert!(name("name", "می\u{200C}خواهم").is_ok());
        assert!(name("name", "Ana \u{1F469}\u{200D}\u{1F4BB}").is_ok());
    }
}
