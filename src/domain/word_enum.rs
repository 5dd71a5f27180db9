//! `word_enum!`: a closed set of lowercase words, for the domain's small vocabularies
//! (consumer kinds, edge origins, retirement states).

/// A closed set of lowercase words, parsed from and shown as text.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                Self::ALL.iter().copied().find(|v| v.as_str() == raw).ok_or_else(|| {
                    let accepted: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    ParseError::new(
                        $field,
                        format!("{raw:?} is not accepted; one of {} is", accepted.join(", ")),
                    )
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
