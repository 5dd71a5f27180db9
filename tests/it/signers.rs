//! Authorised signers: registered by admins, by PEM public key.

use crate::support::{error_code, error_message};
use serde_json::json;

pub const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA8T1jGJj3Zhx1fWQMGGUfQ84cytj1Ypj8tMJSVHydKV4=\n-----END PUBLIC KEY-----\n";
pub const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8NOVjyoaMnNtJF4g0iPYWhWq/i0D\ngkXlv6KJxXMcupsfikYtTN1nJshjKPCZxFFrhufTyDNnszW9+1UmF/aaeA==\n-----END PUBLIC KEY-----\n";
const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL3nhN+ttZbC0J5iNKQzLxfrFOXBjQyS\nRYFyUfdTsoE2pChW2FWbUdRBhhBIU2R3O3ReLBQdDPB1Cb9EFyl2nXsCAwEAAQ==\n-----END PUBLIC KEY-----\n";

const ADD: &str = "mutation($n: String!, $k: String!) { addSigner(name: $n, publicKeyPem: $k) { name algorithm keyId enabled } }";

on_both_backends! {
    async fn admins_register_and_disable_signers_of_both_algorithms(app) {
        let p = app.gql_ok(&app.admin, ADD, json!({ "n": "release-bot", "k": P256_PEM })).await;
        assert_eq!(p["addSigner"]["algorithm"], "ecdsa-p256");
        assert_eq!(p["addSigner"]["keyId"].as_str().map(str::len), Some(64));
        let e = app.gql_ok(&app.admin, ADD, json!({ "n": "jane-doe", "k": ED25519_PEM })).await;
        assert_eq!(e["addSigner"]["algorithm"], "ed25519");

        for (name, key, code, needle) in [
            ("release-bot", ED25519_PEM, "CONFLICT", "release-bot"),
            ("other-name", P256_PEM, "CONFLICT", "already registered"),
            ("rsa-signer", RSA_PEM, "VALIDATION", "P-256"),
            ("bad-pem", "not a key", "VALIDATION", "PEM"),
            ("Bad Name", ED25519_PEM, "VALIDATION", "signer name"),
        ] {
            let body = app.gql(&app.admin, ADD, json!({ "n": name, "k": key })).await;
            assert_eq!(error_code(&body), code, "{name}: {body}");
            assert!(error_message(&body).contains(needle), "{name}: {body}");
        }

        let disabled = app.gql_ok(&app.admin, "mutation { disableSigner(name: \"jane-doe\") { enabled disabledAt } }", json!({})).await;
        assert_eq!(disabled["disableSigner"]["enabled"], false);
        let reader = app.token("reader", "reader", None).await;
        let list = app.gql_ok(&reader, "{ signers { name enabled publicKeyPem } }", json!({})).await;
        assert_eq!(list["signers"].as_array().map(Vec::len), Some(2));
        assert_eq!(list["signers"][0]["name"], "jane-doe");
        assert_eq!(list["signers"][0]["enabled"], false);
        assert_eq!(list["signers"][1]["publicKeyPem"], P256_PEM);

        let auditor = app.token("aud", "auditor", None).await;
        let log = app.gql_ok(&auditor, "{ auditLog(filter: { subject: \"jane-doe\" }) { edges { node { action actor } } } }", json!({})).await;
        let actions: Vec<&str> = log["auditLog"]["edges"].as_array().map(|e| e.iter().filter_map(|x| x["node"]["action"].as_str()).collect()).unwrap_or_default();
        assert_eq!(actions, vec!["signer.added", "signer.disabled"]);
    }
}
