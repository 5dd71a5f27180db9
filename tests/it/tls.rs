//! HTTPS on `listen` (`http.tls`): an artifact downloaded by a client that verifies the
//! server's certificate, a client that does not trust it refused; webhook routes that
//! need a client certificate; a certificate replaced and reloaded on SIGHUP by a real
//! `sunset serve` without dropping an open connection.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A CA of the test's own.
struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        Self(CertifiedIssuer::self_signed(params, key).expect("CA certificate"))
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A certificate for 127.0.0.1 and localhost (or a client named `name`): (PEM
    /// certificate, PEM key).
    fn issue(&self, name: &str) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.0).expect("certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// A client that trusts `ca` only, presenting `identity` (PEM certificate and key) if given.
fn client(ca: &Ca, identity: Option<&(String, String)>) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("CA"))
        .expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            )
            .expect("client identity"),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .expect("client")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_downloads_over_tls_and_webhooks_need_a_client_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let server_ca = Ca::new("sunset test server CA");
    let (cert, key) = server_ca.issue("sunset");
    let client_ca = Ca::new("sunset test client CA");
    let (cert_file, key_file, client_ca_file) = (
        write(dir.path(), "server.pem", &cert),
        write(dir.path(), "server.key", &key),
        write(dir.path(), "clients.pem", &client_ca.pem()),
    );
    let app = crate::support::TestApp::spawn_with(
        crate::support::Backend::Sqlite,
        std::sync::Arc::new(sunset::clock::SystemClock),
        |s| {
            s.http.tls = sunset::config::TlsSettings {
                cert_file: Some(cert_file),
                key_file: Some(key_file),
                client_ca_file: Some(client_ca_file),
            };
        },
    )
    .await;
    let base = app.address.replace("http://", "https://");
    let owner = app.token("ml-owner", "owner", Some("ml")).await;
    let actor = app
        .services
        .admin()
        .authenticate(&owner)
        .await
        .expect("auth")
        .expect("actor");
    let registry = app.services.registry();
    registry
        .create_model(
            &actor,
            sunset::service::ModelInput {
                name: "fraud".into(),
                owner_team: "ml".into(),
                tier: "standard".into(),
                description: String::new(),
                contacts: vec![],
            },
        )
        .await
        .expect("model");
    registry
        .create_version(
            &actor,
            sunset::service::VersionInput {
                model: "fraud".into(),
                version: "1.0.0".into(),
                provenance: Default::default(),
            },
        )
        .await
        .expect("version");

    let trusting = client(&server_ca, None);
    let url = format!("{base}/v1/models/fraud/versions/1.0.0/artifacts/model.bin");
    let weights: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let put = trusting
        .put(&url)
        .bearer_auth(&owner)
        .body(weights.clone())
        .send()
        .await
        .expect("upload over TLS");
    assert_eq!(put.status(), 201);
    let got = trusting
        .get(&url)
        .bearer_auth(&owner)
        .send()
        .await
        .expect("download over TLS");
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.bytes().await.expect("body").as_ref(),
        weights.as_slice()
    );

    // A client that does not trust the server's CA, and plain HTTP, get nothing.
    let stranger = client(&Ca::new("someone else's CA"), None);
    let refused = stranger.get(&url).bearer_auth(&owner).send().await;
    assert!(refused.is_err(), "the server's certificate is not trusted");
    let plain = crate::support::loopback_client()
        .get(format!("{}/healthz", app.address))
        .send()
        .await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP is not served on the TLS port"
    );

    // The webhook routes need a client certificate from the client CA.
    let hook = format!("{base}/v1/hooks/registrations");
    let anonymous = trusting.post(&hook).body("{}").send().await.expect("post");
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous
            .text()
            .await
            .expect("body")
            .contains("needs a client certificate")
    );
    let identified = client(&server_ca, Some(&client_ca.issue("gateway-1")));
    let signed_in = identified
        .post(&hook)
        .body("{}")
        .send()
        .await
        .expect("post");
    let said = signed_in.text().await.expect("body");
    assert!(
        !said.contains("client certificate"),
        "past the certificate check (the message's own signature is checked next): {said}"
    );
    // A client certificate from another CA ends the handshake.
    let foreign = client(&server_ca, Some(&Ca::new("forged").issue("gateway-2")));
    assert!(foreign.post(&hook).body("{}").send().await.is_err());
    // Other routes take a connection without one, as before.
    assert_eq!(
        trusting
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("health")
            .status(),
        200
    );
}

/// Waits for `sunset serve`'s log line containing `wanted`; returns the line.
fn wait_for_line(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    wanted: &str,
) -> String {
    for line in lines {
        let line = line.expect("a log line");
        if line.contains(wanted) {
            return line;
        }
    }
    panic!("sunset serve ended before logging {wanted:?}");
}

#[test]
fn a_renewed_certificate_is_loaded_on_sighup_without_dropping_connections() {
    let dir = tempfile::tempdir().expect("tmp");
    let (first_ca, second_ca) = (Ca::new("first CA"), Ca::new("second CA"));
    let (cert, key) = first_ca.issue("sunset");
    let cert_file = write(dir.path(), "server.pem", &cert);
    let key_file = write(dir.path(), "server.key", &key);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sunset"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SUNSET_METRICS__LISTEN", "127.0.0.1:0")
        .env("SUNSET_HTTP__TLS__CERT_FILE", &cert_file)
        .env("SUNSET_HTTP__TLS__KEY_FILE", &key_file)
        .env("RUST_LOG", "info")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("SUNSET_DATA_DIR")
        .env_remove("SUNSET_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let listening = wait_for_line(&mut lines, "sunset is listening");
    assert!(listening.contains("https"), "{listening}");
    let addr = listening
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("addr")
        .to_owned();
    let health = format!("https://{addr}/healthz");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let status = |c: &reqwest::Client| {
        rt.block_on(async { c.get(&health).send().await.map(|r| r.status().as_u16()) })
    };
    let kept = client(&first_ca, None);
    assert_eq!(status(&kept).expect("first CA trusted"), 200);
    assert!(status(&client(&second_ca, None)).is_err());

    // Renewed by another CA, written in place, then SIGHUP.
    let (cert, key) = second_ca.issue("sunset");
    std::fs::write(&cert_file, cert).expect("cert");
    std::fs::write(&key_file, key).expect("key");
    let hup = |pid: u32| {
        let sent = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    };
    hup(child.id());
    wait_for_line(&mut lines, "TLS certificate reloaded");
    assert_eq!(status(&client(&second_ca, None)).expect("renewed"), 200);
    assert!(
        status(&client(&first_ca, None)).is_err(),
        "new connections get the new certificate"
    );
    assert_eq!(
        status(&kept).expect("the open connection stays"),
        200,
        "the connection opened before the reload was not dropped"
    );

    // A broken key is refused and the certificate in use stays.
    std::fs::write(&key_file, "not a key").expect("key");
    hup(child.id());
    let refused = wait_for_line(&mut lines, "TLS certificate not reloaded");
    assert!(refused.contains("server.key"), "{refused}");
    assert_eq!(
        status(&client(&second_ca, None)).expect("still served"),
        200
    );

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = child.wait().expect("wait");
    assert!(stopped.success(), "{stopped:?}");
}
