//! Contact email addresses. Parsing is deliberately modest: one `@`, a non-empty local
//! part, a dotted domain, no whitespace or angle brackets, at most 254 bytes. Deliverability
//! is the mail server's business; this only keeps garbage and header injection out.

use super::ParseError;
use std::fmt;

pub const MAX_CONTACTS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        const FIELD: &str = "contact";
        let bad =
            |why: &str| ParseError::new(FIELD, format!("{raw:?} is not an email address: {why}"));
        if raw.len() > 254 {
            return Err(bad("longer than 254 bytes"));
        }
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
        {
            return Err(bad(
                "contains whitespace, a control character or one of <>,;\"()[]\\",
            ));
        }
        let (local, domain) = raw.split_once('@').ok_or_else(|| bad("no '@'"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before '@' must be 1 to 64 bytes"));
        }
        if domain.contains('@') {
            return Err(bad("more than one '@'"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels
                .iter()
                .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        {
            return Err(bad("the domain must be dotted labels such as example.org"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bounded, de-duplicated list of contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Contacts(Vec<EmailAddress>);

impl Contacts {
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ParseError> {
        if raw.len() > MAX_CONTACTS {
            return Err(ParseError::new(
                "contacts",
                format!(
                    "has {} entries; at most {MAX_CONTACTS} are accepted",
                    raw.len()
                ),
            ));
        }
        let mut out: Vec<EmailAddress> = Vec::with_capacity(raw.len());
        for r in raw {
            let address = EmailAddress::parse(r.as_ref())?;
            if !out.contains(&address) {
                out.push(address);
            }
        }
        Ok(Self(out))
    }

    pub fn as_slice(&self) -> &[EmailAddress] {
        &self.0
    }

    pub fn iter(&self) -> std::slice::Iter<'_, EmailAddress> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_addresses_parse_and_header_injection_does_not() {
        assert!(EmailAddress::parse("ml-team@example.org").is_ok());
        for bad in [
            "",
            "x",
            "a@b",
            "a@@b.org",
            "a b@c.org",
            "a@b.org\r\nBcc: x@y.org",
            "<a@b.org>",
            "a@-b.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn contacts_are_bounded_and_deduplicated() {
        let c = Contacts::parse(&["a@b.org", "a@b.org"]).unwrap();
        assert_eq!(c.as_slice().len(), 1);
        let many: Vec<String> = (0..21).map(|i| format!("u{i}@b.org")).collect();
        assert!(Contacts::parse(&many).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            if let Ok(a) = EmailAddress::parse(&s) {
                prop_assert!(a.as_str().contains('@'));
            }
        }
    }
}
