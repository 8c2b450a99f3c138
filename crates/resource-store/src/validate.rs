//! Field validation that collects every violation of a request at once, as
//! `google.rpc.BadRequest` field violations.

use tonic_types::FieldViolation;

/// Longest accepted display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Collected field violations; empty means the input is valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// A single violation.
    pub fn one(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Self::new();
        v.add(field, description);
        v
    }

    /// `result`'s error as a single violation of `field`.
    pub fn one_if(field: &str, result: Result<(), String>) -> Result<(), Violations> {
        let mut v = Self::new();
        v.check(field, result);
        v.into_result()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push((field.into(), description.into()));
    }

    /// Records `result`'s error under `field`.
    pub fn check(&mut self, field: &str, result: Result<(), String>) {
        if let Err(description) = result {
            self.add(field, description);
        }
    }

    pub fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when there are none, else `Err(self)`.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The field paths, in order; handy in tests and log lines.
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|(f, _)| f.as_str()).collect()
    }

    pub fn to_field_violations(&self) -> Vec<FieldViolation> {
        self.0
            .iter()
            .map(|(f, d)| FieldViolation::new(f, d))
            .collect()
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(field, d)| format!("{field}: {d}"))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// Required display name: non-blank after trimming, at most [`MAX_NAME_CHARS`].
pub fn name(value: &str) -> Result<(), String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    Ok(())
}

/// Required, non-blank identifier-like value (e.g. an id or a SKU).
pub fn required(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

/// A pragmatic e-mail check: `local@domain.tld`, no whitespace, at most 254 bytes.
pub fn email(value: &str) -> Result<(), String> {
    const MSG: &str = "must be an e-mail address like name@example.com";
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(MSG.into());
    }
    let Some((local, domain)) = value.split_once('@') else {
        return Err(MSG.into());
    };
    let domain_ok = !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || !domain_ok {
        return Err(MSG.into());
    }
    Ok(())
}

/// Optional phone number: empty, or `+`, digits, spaces, `-`, `(`, `)`, `.`
/// with 7 to 15 digits (E.164 allows at most 15).
pub fn phone(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let body = value.strip_prefix('+').unwrap_or(value);
    let allowed = body
        .chars()
        .all(|c| c.is_ascii_digit() || " -().".contains(c));
    let digits = body.chars().filter(char::is_ascii_digit).count();
    if allowed && (7..=15).contains(&digits) {
        Ok(())
    } else {
        Err("must be a phone number like +1 555-0100 (7 to 15 digits)".into())
    }
}

/// ISO 4217 style code: exactly three upper-case ASCII letters.
pub fn currency_code(value: &str) -> Result<(), String> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("must be three upper-case letters (ISO 4217), e.g. USD".into())
    }
}

/// Never negative.
pub fn non_negative(value: i64) -> Result<(), String> {
    if value < 0 {
        Err("must not be negative".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("Ada").is_ok());
        assert!(name("   ").is_err());
        assert!(name("").is_err());
        assert!(name(&"é".repeat(200)).is_ok());
        assert!(name(&"é".repeat(201)).is_err());
        assert!(
            name(&format!("  {}  ", "a".repeat(200))).is_ok(),
            "trimmed before counting"
        );
    }

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "ada.lovelace+shop@example.org",
            "x@sub.example.com",
        ] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            "a@b..com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        for ok in ["", "+1 555-0100", "+44 (20) 7946 0958", "5550100"] {
            assert!(phone(ok).is_ok(), "{ok}");
        }
        for bad in ["123", "call me", "+1 555 0100 ext 5", "1234567890123456"] {
            assert!(phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_and_numbers() {
        assert!(currency_code("EUR").is_ok());
        for bad in ["", "eur", "EURO", "E1R", "ÉUR"] {
            assert!(currency_code(bad).is_err(), "{bad}");
        }
        assert!(non_negative(0).is_ok());
        assert!(non_negative(-1).is_err());
    }

    #[test]
    fn violations_collect_in_order() {
        let mut v = Violations::new();
        v.check("a", Ok(()));
        v.check("b", Err("bad".into()));
        v.add("c", "worse");
        assert_eq!(v.fields(), ["b", "c"]);
        assert_eq!(v.to_field_violations().len(), 2);
        assert_eq!(v.to_string(), "b: bad; c: worse");
        assert!(Violations::new().into_result().is_ok());
    }
}
