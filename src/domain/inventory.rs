//! The vocabulary of the consumer inventory (AISVS 3.1.5): what a consumer is, how it
//! depends on a model, and where each piece of knowledge came from.

use super::{ParseError, Version};
use std::fmt;
use std::sync::Arc;

word_enum!(
    /// What sort of system a consumer is. `DerivedStore` (an embedding or RAG index, a
    /// cache of model outputs) matters at decommissioning: its data must be purged too.
    ConsumerKind, "consumer kind", {
        Service => "service",
        Pipeline => "pipeline",
        Job => "job",
        Notebook => "notebook",
        Model => "model",
        DerivedStore => "derived_store",
        /// A gateway serving models: an enforcement point of kill switches. Registered by an
        /// admin only.
        Gateway => "gateway",
        Other => "other",
    }
);

word_enum!(
    /// The three kinds of edge in the inventory graph, each pointing from the dependent
    /// to what it depends on.
    EdgeKind, "edge kind", {
        /// A consumer uses a model at a version or semver range.
        Uses => "uses",
        /// A model version was made from another (fine-tune, distillation, …).
        DerivedFrom => "derived_from",
        /// A consumer calls another consumer.
        DependsOn => "depends_on",
    }
);

word_enum!(
    /// Where the knowledge of an edge came from. One edge may be known from several.
    EdgeOrigin, "edge origin", {
        /// Declared by a person or tool through GraphQL.
        Api => "api",
        /// Declared by a registration webhook from a CI/CD system or controller.
        Webhook => "webhook",
        /// Observed in gateway access logs by a traffic scan.
        Scan => "scan",
        /// Observed as an artifact download with a token bound to the consumer.
        Download => "download",
    }
);

impl EdgeOrigin {
    /// Declared by someone, as opposed to observed in traffic.
    pub fn is_declared(self) -> bool {
        matches!(self, EdgeOrigin::Api | EdgeOrigin::Webhook)
    }

    /// Whether a remover may take away this piece of an edge's evidence (from
    /// `origin_name`). Evidence belongs to whoever gave it: a token its own API
    /// declarations, the dependent's team every API declaration of its own dependency.
    /// What a source or traffic reported is theirs: it goes stale on its own, or an admin
    /// removes it. So a model's owner cannot erase another team's usage before a
    /// retirement, and that dependent would never be told.
    pub fn removable_by(self, origin_name: &str, remover: &EvidenceRemover<'_>) -> bool {
        remover.is_admin
            || (self == EdgeOrigin::Api && (origin_name == remover.name || remover.owns_dependent))
    }
}

/// Who asks to remove an edge's evidence.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceRemover<'a> {
    /// The remover's token name (what its API declarations carry as origin name).
    pub name: &'a str,
    pub is_admin: bool,
    /// Whether it manages the dependent end (the consumer, or the derived version).
    pub owns_dependent: bool,
}

word_enum!(
    /// How a derived model version was made from its parent.
    Derivation, "derivation", {
        FineTune => "fine-tune",
        Adapter => "adapter",
        Distillation => "distillation",
        Quantisation => "quantisation",
        Merge => "merge",
        Other => "other",
    }
);

/// The unique name of a consumer, e.g. `checkout-api` or `nightly-scoring.eu`: the model
/// name alphabet, so a gateway's caller identity usually fits as it is.
///
/// Shared rather than owned: an inventory answer names each consumer it lists (in its
/// paths too), and a hub's answer lists a thousand, so naming one is a reference count
/// rather than an allocation and a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerName(Arc<str>);

impl ConsumerName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        super::names::parse_slug("consumer name", raw, 100, true).map(|s| Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an answer's paths hold it, without copying it.
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

impl serde::Serialize for ConsumerName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A deployment environment such as `production`, `staging` or `dev-eu`. Shared, as
/// names are: a few environments are named by every consumer the inventory holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Environment(Arc<str>);

impl Environment {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        super::names::parse_slug("environment", raw, 32, false).map(|s| Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hashes and compares as its text does.
impl std::borrow::Borrow<str> for Environment {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Environment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which versions of a model a consumer uses: an exact version (`2.1.0`) or a semver
/// range with Cargo's semantics (`^2.1`, `~2.1.3`, `>=1.4, <2`, `*`). A bare version means
/// exactly that version (unlike Cargo, where it means `^`): a consumer that names a
/// version is pinned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    text: String,
    req: semver::VersionReq,
    /// The version a pin names, kept apart so that matching a pin, by far the most
    /// common range, is one comparison rather than semver's general evaluation.
    exact: Option<Version>,
}

pub const MAX_RANGE_LEN: usize = 64;

impl VersionRange {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        const FIELD: &str = "version range";
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > MAX_RANGE_LEN {
            return Err(ParseError::new(
                FIELD,
                format!("must be 1 to {MAX_RANGE_LEN} bytes, e.g. 2.1.0, ^2.1 or >=1.4, <2"),
            ));
        }
        if let Ok(exact) = Version::parse(raw) {
            return Ok(Self::exact(exact));
        }
        let req = semver::VersionReq::parse(raw).map_err(|e| {
            ParseError::new(
                FIELD,
                format!(
                    "{raw:?} is not a version or semver range ({e}); e.g. 2.1.0, ^2.1 or >=1.4, <2"
                ),
            )
        })?;
        if req.comparators.iter().any(|c| !c.pre.is_empty()) {
            return Err(ParseError::new(
                FIELD,
                format!("{raw:?} names a pre-release, which model versions never are"),
            ));
        }
        // Canonical text, so that `^2.1` and `^ 2.1` are one edge.
        Ok(Self {
            text: req.to_string(),
            req,
            exact: None,
        })
    }

    pub fn exact(v: Version) -> Self {
        let req = semver::VersionReq {
            comparators: vec![semver::Comparator {
                op: semver::Op::Exact,
                major: u64::from(v.major),
                minor: Some(u64::from(v.minor)),
                patch: Some(u64::from(v.patch)),
                pre: semver::Prerelease::EMPTY,
            }],
        };
        Self {
            text: v.to_string(),
            req,
            exact: Some(v),
        }
    }

    pub fn matches(&self, v: Version) -> bool {
        if let Some(exact) = self.exact {
            return exact == v;
        }
        self.req.matches(&semver::Version::new(
            u64::from(v.major),
            u64::from(v.minor),
            u64::from(v.patch),
        ))
    }

    /// The exact version this range pins, if it is one.
    pub fn as_exact(&self) -> Option<Version> {
        self.exact
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where notices to a consumer are delivered: an `https://` URL (or `http://` for a
/// loopback or private test receiver, which the operator allows in configuration).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        const FIELD: &str = "webhook url";
        if raw.len() > 2048 {
            return Err(ParseError::new(FIELD, "is longer than 2048 bytes"));
        }
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or_else(|| {
                ParseError::new(
                    FIELD,
                    format!("{raw:?} must start with https:// or http://"),
                )
            })?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.contains('@') {
            return Err(ParseError::new(
                FIELD,
                format!("{raw:?} must name a host and carry no credentials"),
            ));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParseError::new(
                FIELD,
                format!("{raw:?} contains whitespace or a control character"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A consumer as the rest of the service sees it. Serialisable as an audit snapshot:
/// the webhook secret is not part of it (it is sealed in the database and shown once).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Consumer {
    pub name: ConsumerName,
    pub kind: ConsumerKind,
    pub owner_team: super::TeamName,
    pub environment: Environment,
    pub contacts: super::Contacts,
    pub webhook_url: Option<WebhookUrl>,
    /// Created by observed traffic rather than declared: nobody has vouched for it yet.
    pub discovered: bool,
}

/// What a registration webhook may do to a consumer that already exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChange {
    /// It declares what is there already.
    Unchanged,
    /// It changes a consumer the same source created: allowed, and audited.
    Changed,
    /// It would change a consumer it does not own: the consumer stays as it is (the
    /// message's links are still recorded as the source's own evidence).
    Kept(String),
}

impl Consumer {
    /// Whether registration source `source` (its audit identity, `webhook:<name>`) may
    /// make this consumer, created by `created_by`, into `declared`. A source owns only
    /// the consumers it created; an enforcement point (a gateway, which only an admin
    /// registers) is never changed by a webhook.
    pub fn judge_registration(
        &self,
        created_by: &str,
        declared: &Consumer,
        source: &str,
    ) -> SourceChange {
        let differs: Vec<&str> = [
            ("kind", self.kind != declared.kind),
            ("ownerTeam", self.owner_team != declared.owner_team),
            ("environment", self.environment != declared.environment),
            ("contacts", self.contacts != declared.contacts),
        ]
        .into_iter()
        .filter_map(|(field, changed)| changed.then_some(field))
        .collect();
        if self.discovered && self.kind != ConsumerKind::Gateway {
            // Only traffic showed it: any source may vouch for it and say what it is.
            return SourceChange::Changed;
        }
        if differs.is_empty() {
            return SourceChange::Unchanged;
        }
        let why = if self.kind == ConsumerKind::Gateway {
            format!(
                "{} is an enforcement point, which no webhook changes",
                self.name
            )
        } else if created_by != source {
            format!(
                "{} was created by {created_by}, not by this source",
                self.name
            )
        } else {
            return SourceChange::Changed;
        };
        SourceChange::Kept(format!(
            "consumer {} kept as it is ({} not changed): {why}",
            self.name,
            differs.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn a_bare_version_pins_exactly_and_ranges_follow_cargo() {
        let pinned = VersionRange::parse("2.1.0").unwrap();
        assert!(pinned.matches(v("2.1.0")));
        assert!(!pinned.matches(v("2.1.1")));
        assert_eq!(pinned.as_exact(), Some(v("2.1.0")));

        let caret = VersionRange::parse("^2.1").unwrap();
        assert!(caret.matches(v("2.1.0")) && caret.matches(v("2.9.3")));
        assert!(!caret.matches(v("3.0.0")) && !caret.matches(v("2.0.9")));
        assert_eq!(caret.as_exact(), None);

        let window = VersionRange::parse(">=1.4,<2").unwrap();
        assert!(window.matches(v("1.4.0")) && window.matches(v("1.99.0")));
        assert!(!window.matches(v("2.0.0")) && !window.matches(v("1.3.9")));
        assert_eq!(window, VersionRange::parse(">=1.4, <2").unwrap());
    }

    #[test]
    fn bad_ranges_say_what_is_accepted() {
        for bad in ["", "two", "^2.1-rc1", ">=", &"1".repeat(65)] {
            let e = VersionRange::parse(bad).unwrap_err();
            assert_eq!(e.field, "version range", "{bad:?}");
        }
    }

    fn consumer(kind: &str, team: &str) -> Consumer {
        Consumer {
            name: ConsumerName::parse("web").unwrap(),
            kind: ConsumerKind::parse(kind).unwrap(),
            owner_team: super::super::TeamName::parse(team).unwrap(),
            environment: Environment::parse("prod").unwrap(),
            contacts: super::super::Contacts::parse(&["a@example.org".to_owned()]).unwrap(),
            webhook_url: None,
            discovered: false,
        }
    }

    #[test]
    fn a_source_changes_only_the_consumers_it_created_and_never_a_gateway() {
        let here = consumer("service", "web");
        let moved = consumer("service", "other");
        assert_eq!(
            here.judge_registration("webhook:a", &here, "webhook:b"),
            SourceChange::Unchanged
        );
        assert_eq!(
            here.judge_registration("webhook:a", &moved, "webhook:a"),
            SourceChange::Changed
        );
        let SourceChange::Kept(why) = here.judge_registration("admin-token", &moved, "webhook:a")
        else {
            panic!("kept")
        };
        assert!(
            why.contains("ownerTeam") && why.contains("admin-token"),
            "{why}"
        );
        let gateway = consumer("gateway", "web");
        let SourceChange::Kept(why) = gateway.judge_registration("webhook:a", &here, "webhook:a")
        else {
            panic!("kept")
        };
        assert!(
            why.contains("enforcement point") && why.contains("kind"),
            "{why}"
        );
    }

    #[test]
    fn evidence_is_removed_only_by_whoever_gave_it() {
        let model_owner = EvidenceRemover {
            name: "ml-owner",
            is_admin: false,
            owns_dependent: false,
        };
        let consumer_team = EvidenceRemover {
            name: "payments-bot",
            is_admin: false,
            owns_dependent: true,
        };
        let admin = EvidenceRemover {
            name: "root",
            is_admin: true,
            owns_dependent: false,
        };
        assert!(EdgeOrigin::Api.removable_by("ml-owner", &model_owner));
        assert!(!EdgeOrigin::Api.removable_by("payments-bot", &model_owner));
        assert!(EdgeOrigin::Api.removable_by("someone-else", &consumer_team));
        for observed in [EdgeOrigin::Scan, EdgeOrigin::Download, EdgeOrigin::Webhook] {
            assert!(!observed.removable_by("gw", &model_owner));
            assert!(!observed.removable_by("gw", &consumer_team));
            assert!(observed.removable_by("gw", &admin));
        }
    }

    #[test]
    fn kinds_parse_from_their_words_only() {
        assert_eq!(
            ConsumerKind::parse("derived_store").unwrap(),
            ConsumerKind::DerivedStore
        );
        let e = ConsumerKind::parse("Service").unwrap_err();
        assert!(e.message.contains("service, pipeline"), "{e}");
        assert_eq!(
            Derivation::parse("fine-tune").unwrap(),
            Derivation::FineTune
        );
    }

    #[test]
    fn webhook_urls_need_a_scheme_and_a_host_without_credentials() {
        assert!(WebhookUrl::parse("https://hooks.example.org/sunset").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https://user:pw@x.org/",
            "https://a b",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_range_text_parses_or_errs_without_panicking(s in ".{0,80}") {
            if let Ok(r) = VersionRange::parse(&s) {
                prop_assert!(r.as_str().len() <= MAX_RANGE_LEN * 2);
            }
        }
    }
}
