//! Each channel against a real receiver: wiremock HTTP servers that check the Standard
//! Webhooks signature of what they are sent, and an in-process SMTP server.

use chrono::{DateTime, Utc};
use notifiers::email::{EmailNotifier, Recipients, Security, SmtpSettings, Templates};
use notifiers::standard_webhooks::{Headers, Message, Secret};
use notifiers::webhook::{WebhookAddress, WebhookNotifier};
use notifiers::{Notice, NoticeData, NoticeKind, Notifier, Outcome, Replacement};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

fn notice(kind: NoticeKind, reason: &str) -> Notice {
    Notice {
        kind,
        timestamp: at("2026-12-01T00:00:00Z"),
        data: NoticeData {
            notice_id: "ntc_01JDX3".into(),
            retirement_id: "ret_7".into(),
            model: "fraud-scorer".into(),
            versions: "^2".into(),
            affected_versions: vec!["2.0.0".into(), "2.1.0".into()],
            reason: reason.into(),
            effective_at: at("2027-03-01T00:00:00Z"),
            replacement: Some(Replacement {
                model: "fraud-scorer".into(),
                version: Some("3.0.0".into()),
            }),
            dependent: "checkout".into(),
            notice_ends_at: at("2027-03-01T00:00:00Z"),
            acknowledge_url: "https://sunset.example/v1/acknowledgements/tok123".into(),
            problem: None,
            etag: None,
            closed_to_new_consumers: false,
            brownouts: Vec::new(),
            refused: Vec::new(),
        },
    }
}

/// Matches only requests whose Standard Webhooks signature verifies under `SECRET`, at
/// the time the test sends them.
struct Signed;

impl wiremock::Match for Signed {
    fn matches(&self, request: &Request) -> bool {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        let headers = Headers {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
        };
        let secret = Secret::parse(SECRET).expect("the test secret");
        Message::parse(&headers, Utc::now(), 300)
            .is_ok_and(|m| m.id == "ntc_01JDX3" && m.verify(&secret, &request.body))
    }
}

fn address(url: String) -> WebhookAddress {
    WebhookAddress {
        url,
        secret: Secret::parse(SECRET).expect("the test secret"),
    }
}

fn webhooks() -> WebhookNotifier {
    // The receivers here are wiremock servers on loopback, admitted by the allowlist.
    let policy = notifiers::outbound::OutboundPolicy {
        allow_http: true,
        allowed: vec![notifiers::outbound::Network::parse("127.0.0.0/8").expect("net")],
    };
    WebhookNotifier::new(Duration::from_secs(5), policy).expect("a webhook client")
}

#[tokio::test]
async fn a_webhook_notice_is_signed_with_the_consumers_secret_and_carries_the_payload() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/sunset"))
        .and(Signed)
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&receiver)
        .await;
    let n = notice(NoticeKind::Scheduled, "superseded by 3.0");
    let outcome = webhooks()
        .deliver(
            &n,
            &address(format!("{}/hooks/sunset", receiver.uri())),
            Utc::now(),
        )
        .await;
    assert_eq!(outcome, Outcome::Delivered);
    let got = &receiver.received_requests().await.unwrap()[0];
    let body: Notice = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body, n);
    assert_eq!(got.headers["content-type"], "application/json");

    // The same notice signed with another secret is not what the receiver accepts.
    let wrong = WebhookAddress {
        url: format!("{}/hooks/sunset", receiver.uri()),
        secret: Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap(),
    };
    let outcome = webhooks().deliver(&n, &wrong, Utc::now()).await;
    assert!(matches!(outcome, Outcome::Retry { ref reason, .. } if reason.contains("404")));
}

#[tokio::test]
async fn answers_other_than_2xx_are_retried_and_410_means_gone() {
    let receiver = MockServer::start().await;
    Mock::given(path("/gone"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&receiver)
        .await;
    Mock::given(path("/busy"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "30"))
        .mount(&receiver)
        .await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&receiver)
        .await;
    Mock::given(path("/moved"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "http://127.0.0.1:9/"))
        .mount(&receiver)
        .await;
    let n = notice(NoticeKind::Reminder, "superseded");
    let send = |p: &str| {
        let url = format!("{}{p}", receiver.uri());
        let n = n.clone();
        async move { webhooks().deliver(&n, &address(url), Utc::now()).await }
    };
    assert_eq!(
        send("/gone").await,
        Outcome::Gone {
            reason: "the receiver answered HTTP 410".into()
        }
    );
    assert_eq!(
        send("/busy").await,
        Outcome::Retry {
            reason: "the receiver answered HTTP 503".into(),
            after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(
        send("/broken").await,
        Outcome::Retry {
            reason: "the receiver answered HTTP 500".into(),
            after: None
        }
    );
    // Redirects are not followed: the receiver is the URL its owner registered.
    assert!(
        matches!(send("/moved").await, Outcome::Retry { ref reason, .. } if reason.contains("301"))
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_a_bad_url_is_refused_without_leaking_it() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let n = notice(NoticeKind::Reminder, "superseded");
    let outcome = webhooks()
        .deliver(
            &n,
            &address(format!("http://127.0.0.1:{port}/x?token=s3cret")),
            Utc::now(),
        )
        .await;
    let Outcome::Retry {
        reason,
        after: None,
    } = outcome
    else {
        panic!("expected a retry, got {outcome:?}");
    };
    assert!(!reason.contains("s3cret"), "{reason}");
    assert!(reason.to_lowercase().contains("connect"), "{reason}");

    let outcome = webhooks()
        .deliver(&n, &address("not a url?token=s3cret".into()), Utc::now())
        .await;
    let Outcome::Refused { reason } = outcome else {
        panic!("expected a refusal, got {outcome:?}");
    };
    assert!(!reason.contains("s3cret"), "{reason}");
}

/// An SMTP server on a free port, handing each mail it receives to the channel.
fn smtp_server() -> (u16, std::sync::mpsc::Receiver<mogimail::Email>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server = mogimail::SmtpServer::new("smtp.test");
        let _ = server
            .start_with_listener(listener, tx)
            .map_err(|e| e.to_string());
    });
    (port, rx)
}

fn smtp(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        credentials: None,
        from: "sunset <sunset@example.org>".into(),
        timeout: Duration::from_secs(5),
    }
}

/// The mail as a reader sees it: SMTP's dot-stuffing (which this test server leaves in)
/// and quoted-printable soft breaks and escapes undone.
fn readable(data: &str) -> String {
    data.lines()
        .map(|l| {
            l.strip_prefix('.')
                .filter(|r| r.starts_with('.'))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("=\n", "")
        .replace("=3D", "=")
}

#[tokio::test]
async fn an_email_notice_has_a_text_and_an_escaped_html_body() {
    let (port, mails) = smtp_server();
    let email = EmailNotifier::new(&smtp(port), Templates::load(None).unwrap()).unwrap();
    let to = Recipients::parse(["ml-oncall@example.org", "Ana <ana@example.org>"]).unwrap();
    let n = notice(NoticeKind::Scheduled, "prompt injection <b>CVE-2026-1</b>");
    assert_eq!(email.deliver(&n, &to, Utc::now()).await, Outcome::Delivered);

    let mail = tokio::task::spawn_blocking(move || mails.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the SMTP server received the mail");
    assert_eq!(mail.from, "sunset@example.org");
    assert_eq!(mail.to, vec!["ml-oncall@example.org", "ana@example.org"]);
    let data = readable(&mail.data);
    assert!(
        data.contains("Subject: [sunset] fraud-scorer ^2 retires on 2027-03-01"),
        "{data}"
    );
    assert!(
        data.contains("Message-ID: <ntc_01JDX3@sunset.notice>"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    // The text part says it plainly; the HTML part escapes what came from people.
    assert!(data.contains("checkout depends on fraud-scorer ^2 (2.0.0, 2.1.0), which retires on 2027-03-01 00:00 UTC."), "{data}");
    assert!(
        data.contains("Reason: prompt injection <b>CVE-2026-1</b>"),
        "{data}"
    );
    let html = &data[data.find("text/html").expect("an HTML part")..];
    assert!(
        html.contains("Reason: prompt injection &lt;b&gt;CVE-2026-1&lt;"),
        "{html}"
    );
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("(2.0.0, 2.1.0)"), "{html}");
    assert!(
        data.contains("https://sunset.example/v1/acknowledgements/tok123"),
        "{data}"
    );
    assert!(
        data.contains("Suggested replacement: fraud-scorer 3.0.0"),
        "{data}"
    );
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let email = EmailNotifier::new(&smtp(port), Templates::load(None).unwrap()).unwrap();
    let to = Recipients::parse(["ml-oncall@example.org"]).unwrap();
    let outcome = email
        .deliver(&notice(NoticeKind::Reminder, "x"), &to, Utc::now())
        .await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
}

#[test]
fn operators_override_templates_and_a_broken_one_stops_loading_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("notice.subject.txt"),
        "Heads up:\n{{ model }} goes on {{ effective_date }}",
    )
    .unwrap();
    let templates = Templates::load(Some(dir.path())).unwrap();
    let (subject, text, _) = templates
        .render(&notice(NoticeKind::Scheduled, "superseded"))
        .unwrap();
    // One line, whatever the template did.
    assert_eq!(subject, "Heads up: fraud-scorer goes on 2027-03-01");
    assert!(text.contains("Reason: superseded"), "{text}");

    std::fs::write(dir.path().join("notice.html"), "{{ model }").unwrap();
    let err = Templates::load(Some(dir.path()))
        .err()
        .expect("a broken template");
    assert!(err.to_string().contains("notice.html"), "{err}");

    // A field no notice has is an error when loading, not an empty space in a mail.
    std::fs::write(dir.path().join("notice.html"), "{{ modle }}").unwrap();
    let err = Templates::load(Some(dir.path()))
        .err()
        .expect("an unknown field");
    assert!(err.to_string().contains("notice.html"), "{err}");
}

#[test]
fn recipients_are_parsed_and_bounded() {
    assert!(Recipients::parse(["not an address"]).is_err());
    assert!(Recipients::parse(Vec::<&str>::new()).is_err());
    let many: Vec<String> = (0..=Recipients::MAX)
        .map(|i| format!("u{i}@example.org"))
        .collect();
    assert!(Recipients::parse(many.iter().map(String::as_str)).is_err());
}

/// The guard acts at delivery too: a host name that resolves to loopback is refused
/// without a connection (the receiver hears nothing), and admitted once allowlisted.
#[tokio::test]
async fn a_host_name_resolving_to_an_internal_address_is_refused_unless_allowlisted() {
    use notifiers::outbound::{Network, OutboundPolicy};
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let port = receiver.address().port();
    let to = address(format!("http://localhost:{port}/hooks/sunset"));
    let strict = OutboundPolicy {
        allow_http: true,
        allowed: vec![],
    };
    let notifier = WebhookNotifier::new(Duration::from_secs(5), strict).expect("client");
    match notifier
        .deliver(
            &notice(NoticeKind::Scheduled, "superseded"),
            &to,
            Utc::now(),
        )
        .await
    {
        Outcome::Refused { reason } => {
            assert!(reason.contains("internal address"), "{reason}")
        }
        other => panic!("not refused: {other:?}"),
    }
    let literal = address(format!("http://127.0.0.1:{port}/hooks/sunset"));
    assert!(matches!(
        notifier
            .deliver(
                &notice(NoticeKind::Scheduled, "superseded"),
                &literal,
                Utc::now()
            )
            .await,
        Outcome::Refused { .. }
    ));
    assert!(
        receiver
            .received_requests()
            .await
            .expect("recorded")
            .is_empty()
    );

    let allowing = OutboundPolicy {
        allow_http: true,
        allowed: vec![
            Network::parse("127.0.0.0/8").expect("net"),
            Network::parse("::1").expect("net"),
        ],
    };
    let notifier = WebhookNotifier::new(Duration::from_secs(5), allowing).expect("client");
    assert_eq!(
        notifier
            .deliver(
                &notice(NoticeKind::Scheduled, "superseded"),
                &to,
                Utc::now()
            )
            .await,
        Outcome::Delivered
    );
    assert_eq!(
        receiver.received_requests().await.expect("recorded").len(),
        1
    );
}
