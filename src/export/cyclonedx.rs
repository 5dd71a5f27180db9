//! CycloneDX 1.6 JSON: the inventory's answer as a bill of materials, so supply-chain
//! tools can read who depends on a model. Consumers become components (`application`,
//! or `data` for derived stores, `machine-learning-model` for models), model versions
//! `machine-learning-model` components; every link among them is a `dependencies` entry
//! pointing from the dependent to what it depends on. An answer cut short by a limit says
//! so in the metadata properties, as it does over GraphQL.

use crate::domain::ConsumerKind;
use crate::graph::{Answer, Target};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json; version=1.6";

fn bom_ref(t: &Target) -> String {
    match t {
        Target::Consumer(c) => format!("consumer:{}", c.name),
        Target::Version { model, version } => format!("model:{model}@{version}"),
    }
}

fn ref_of_label(label: &str) -> String {
    if label.contains('@') {
        format!("model:{label}")
    } else {
        format!("consumer:{label}")
    }
}

fn component(t: &Target) -> Value {
    match t {
        Target::Consumer(c) => {
            let kind = match c.kind {
                ConsumerKind::Model => "machine-learning-model",
                ConsumerKind::DerivedStore => "data",
                _ => "application",
            };
            let mut properties = vec![
                json!({ "name": "sunset:consumer-kind", "value": c.kind.as_str() }),
                json!({ "name": "sunset:owner-team", "value": c.owner_team.as_str() }),
                json!({ "name": "sunset:environment", "value": c.environment.as_str() }),
                json!({ "name": "sunset:discovered", "value": c.discovered.to_string() }),
            ];
            for contact in c.contacts.as_slice() {
                properties.push(json!({ "name": "sunset:contact", "value": contact.as_str() }));
            }
            json!({
                "type": kind,
                "bom-ref": bom_ref(t),
                "name": c.name.as_str(),
                "group": c.owner_team.as_str(),
                "properties": properties,
            })
        }
        Target::Version { model, version } => json!({
            "type": "machine-learning-model",
            "bom-ref": bom_ref(t),
            "name": model.as_str(),
            "version": version.to_string(),
        }),
    }
}

/// The BOM of `answer`, computed about `root`, with the links among its nodes.
pub fn bom(
    root: &Target,
    answer: &Answer,
    links: &[(String, String)],
    serial: [u8; 16],
    at: DateTime<Utc>,
) -> Value {
    let mut depends: BTreeMap<String, Vec<String>> = BTreeMap::new();
    depends.entry(bom_ref(root)).or_default();
    for r in &answer.reached {
        depends.entry(bom_ref(&r.target)).or_default();
    }
    for (from, to) in links {
        depends
            .entry(ref_of_label(from))
            .or_default()
            .push(ref_of_label(to));
    }
    let dependencies: Vec<Value> = depends
        .into_iter()
        .map(|(r, mut on)| {
            on.sort();
            on.dedup();
            json!({ "ref": r, "dependsOn": on })
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_v4(serial)),
        "version": 1,
        "metadata": {
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "tools": { "components": [
                { "type": "application", "name": "sunset", "version": env!("CARGO_PKG_VERSION") }
            ] },
            "component": component(root),
            "properties": [
                { "name": "sunset:inventory-revision", "value": answer.revision.to_string() },
                { "name": "sunset:complete", "value": answer.complete().to_string() },
                { "name": "sunset:total", "value": answer.total.to_string() },
                { "name": "sunset:omitted-by-depth", "value": answer.omitted_by_depth.to_string() },
                { "name": "sunset:omitted-by-limit", "value": answer.omitted_by_limit.to_string() },
            ],
        },
        "components": answer.reached.iter().map(|r| component(&r.target)).collect::<Vec<_>>(),
        "dependencies": dependencies,
    })
}

/// RFC 4122 version 4 from random bytes.
fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_version_4_uuids() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(u.len(), 36);
    }
}
