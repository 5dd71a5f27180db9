//! Artifact paths and kinds.
//!
//! A path is relative and made of `/`-separated segments as the OpenSSF model-signing
//! format names files (`model.safetensors`, `tokenizer/vocab.json`): 1 to 512 bytes, at
//! most 32 segments of 1 to 255 bytes; no empty, `.` or `..` segment, no leading `/`, no
//! backslash, no control characters. So a path can never leave its version's folder.

use super::ParseError;
use std::fmt;

pub const MAX_PATH_BYTES: usize = 512;
const MAX_SEGMENTS: usize = 32;
const MAX_SEGMENT_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        const FIELD: &str = "artifact path";
        let bad = |why: &str| ParseError::new(FIELD, format!("{raw:?} {why}"));
        if raw.is_empty() {
            return Err(ParseError::new(FIELD, "is empty"));
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(bad(&format!("is longer than {MAX_PATH_BYTES} bytes")));
        }
        if raw.starts_with('/') {
            return Err(bad(
                "is absolute; a path relative to the version is expected",
            ));
        }
        if raw.contains('\\') || raw.chars().any(char::is_control) {
            return Err(bad("contains a backslash or a control character"));
        }
        let segments: Vec<&str> = raw.split('/').collect();
        if segments.len() > MAX_SEGMENTS {
            return Err(bad(&format!("has more than {MAX_SEGMENTS} segments")));
        }
        for segment in segments {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(bad("has an empty, '.' or '..' segment"));
            }
            if segment.len() > MAX_SEGMENT_BYTES {
                return Err(bad(&format!(
                    "has a segment longer than {MAX_SEGMENT_BYTES} bytes"
                )));
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an artifact is, for people and for the certificates that later list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    Weights,
    Config,
    Tokenizer,
    Other,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 4] = [
        ArtifactKind::Weights,
        ArtifactKind::Config,
        ArtifactKind::Tokenizer,
        ArtifactKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Weights => "weights",
            ArtifactKind::Config => "config",
            ArtifactKind::Tokenizer => "tokenizer",
            ArtifactKind::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw).ok_or_else(|| {
            ParseError::new("artifact kind", format!("{raw:?} is not a kind; one of weights, config, tokenizer, other is accepted"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn relative_paths_parse_and_escapes_do_not() {
        for ok in [
            "model.safetensors",
            "tokenizer/vocab.json",
            "a/b/c.bin",
            "..hidden",
            "x..y",
        ] {
            assert!(ArtifactPath::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a/",
            "a\\b",
            "a\nb",
            &"x".repeat(513),
        ] {
            assert!(ArtifactPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn no_parsed_path_can_escape_its_folder(s in ".*") {
            if let Ok(p) = ArtifactPath::parse(&s) {
                let path = std::path::Path::new(p.as_str());
                prop_assert!(path.is_relative());
                prop_assert!(path.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}
