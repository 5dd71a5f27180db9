//! The console in a real browser: Chromium driven over WebDriver (chromedriver, both from
//! Debian, started per test), against a real `sunset` application. Each page visited is
//! checked by axe-core (from npm; `tests/run` installs it) for serious or critical
//! accessibility violations, and a screenshot of it is kept under
//! `target/console-screenshots/`.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};

/// A headless Chromium under its own chromedriver; both end with the value.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn tool(variable: &str, default: &str) -> String {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: the browser tests need Debian's chromium and chromium-driver and npm's axe-core (tests/run installs them; {variable} names another)"
    );
    path
}

impl Browser {
    pub async fn start() -> Self {
        let driver_path = tool("SUNSET_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("SUNSET_TEST_CHROMIUM", "/usr/bin/chromium");
        let port = crate::support::free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile folder");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = connect(&url, caps).await;
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// Clicks what `locator` finds (failing the test when nothing is there).
    pub async fn click(&self, locator: Locator<'_>) {
        let described = format!("{locator:?}");
        self.client
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("{described} not found: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("{described} not clickable: {e}"));
    }

    /// Types `value` into what `locator` finds.
    pub async fn fill(&self, locator: Locator<'_>, value: &str) {
        let described = format!("{locator:?}");
        self.client
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("{described} not found: {e}"))
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("could not type into {described}: {e}"));
    }

    /// The text of what `locator` finds, once it appears.
    pub async fn text_of(&self, locator: Locator<'_>) -> String {
        let described = format!("{locator:?}");
        self.client
            .wait()
            .for_element(locator)
            .await
            .unwrap_or_else(|e| panic!("{described} never appeared: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("no text in {described}: {e}"))
    }

    /// Waits until `locator` finds something.
    pub async fn wait_for(&self, locator: Locator<'_>) {
        let described = format!("{locator:?}");
        self.client
            .wait()
            .for_element(locator)
            .await
            .unwrap_or_else(|e| panic!("{described} never appeared: {e}"));
    }

    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .expect("a body")
            .text()
            .await
            .expect("its text")
    }

    /// Signs in through the form at `base` with `token`.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/ui/sign-in")).await;
        self.fill(Locator::Id("token"), token).await;
        self.click(Locator::Css("main form button[type=submit]"))
            .await;
        // Signed in: the header names who.
        self.wait_for(Locator::Css("form.who")).await;
    }

    /// Asserts that `markup`, typed into some field, shows in the page as text: no
    /// image was made from it and no script ran.
    pub async fn assert_inert(&self, markup: &str) {
        let text = self.text().await;
        assert!(text.contains(markup), "{markup} shows as text: {text}");
        let images: Value = self
            .client
            .execute("return document.images.length", vec![])
            .await
            .expect("counted");
        assert_eq!(images, json!(0), "no image was made from {markup}");
        assert!(self.client.get_alert_text().await.is_err(), "no script ran");
    }

    /// Runs axe-core in the page; fails on any serious or critical violation. Then keeps
    /// a screenshot named `name`.
    pub async fn check_page(&self, name: &str) {
        let axe = std::fs::read_to_string(tool(
            "SUNSET_TEST_AXE",
            "target/test-npm/node_modules/axe-core/axe.min.js",
        ))
        .expect("axe-core");
        self.client.execute(&axe, vec![]).await.expect("axe loads");
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                    .then(r => done(r.violations
                        .filter(v => v.impact === 'serious' || v.impact === 'critical')
                        .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                                     nodes: v.nodes.slice(0, 3).map(n => n.html) }))))
                    .catch(e => done([{ id: 'axe-failed', help: String(e) }]));",
                vec![],
            )
            .await
            .expect("axe runs");
        assert_eq!(
            found,
            Value::Array(vec![]),
            "accessibility violations on {name}"
        );
        let png = self.client.screenshot().await.expect("screenshot");
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot kept");
    }
}

async fn connect(url: &str, caps: serde_json::Map<String, Value>) -> Client {
    // chromedriver answers once it listens; until then the connection is refused.
    let mut last = None;
    for _ in 0..200 {
        match ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps.clone())
            .connect(url)
            .await
        {
            Ok(client) => return client,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not answer at {url}: {last:?}");
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A reader signs in through the form, finds a model in the catalogue, opens its
/// dependents, clicks a node of the drawing and reads its evidence; every page passes
/// axe-core. Markup in a model's description renders as text: no image, no dialog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_finds_a_model_and_clicks_through_its_dependents_in_chromium() {
    let app = crate::support::TestApp::spawn(crate::support::Backend::Sqlite).await;
    let (ml, _) = crate::inventory::landscape(&app).await;
    app.gql_ok(
        &ml,
        "mutation { updateModel(name: \"base\", input: { description: \"<img src=x onerror=alert(1)></script><script>alert(2)</script>\" }) { name } }",
        json!({}),
    )
    .await;
    let reader = app.token("reader", "reader", None).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/ui/models", app.address)).await;
    assert!(
        browser
            .client
            .current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/ui/sign-in")
    );
    browser.check_page("sign-in").await;
    browser.sign_in(&app.address, &reader).await;
    assert!(browser.text().await.contains("reader (reader)"));
    browser.check_page("catalogue").await;

    browser.click(Locator::LinkText("base")).await;
    browser
        .assert_inert("<img src=x onerror=alert(1)></script>")
        .await;
    browser.check_page("model").await;

    browser.click(Locator::LinkText("Dependents")).await;
    browser.check_page("dependents").await;
    browser
        .click(Locator::Css("svg a.node[href*='node=frontend']"))
        .await;
    let evidence = browser.text_of(Locator::Id("evidence")).await;
    assert!(
        evidence.contains("Evidence for frontend") && evidence.contains("depends_on"),
        "{evidence}"
    );
    browser.check_page("dependents-evidence").await;

    // A reader is offered no schedule form; one forged in the page and posted with the
    // reader's own CSRF token is refused by the server, and nothing is scheduled.
    browser
        .goto(&format!("{}/ui/retirements", app.address))
        .await;
    assert!(!browser.text().await.contains("Schedule a retirement"));
    browser
        .client
        .execute(
            "const form = document.createElement('form');
             form.method = 'post';
             form.action = '/ui/retirements';
             const fields = { csrf: document.querySelector('input[name=csrf]').value,
                              model: 'base', versions: '1.0.0',
                              reason: 'forged in the page by a reader',
                              effective_at: '2030-01-01T00:00' };
             for (const [name, value] of Object.entries(fields)) {
               const input = document.createElement('input');
               input.type = 'hidden'; input.name = name; input.value = value;
               form.appendChild(input);
             }
             document.body.appendChild(form);
             form.submit();",
            vec![],
        )
        .await
        .expect("the forged form is posted");
    let refused = browser
        .text_of(Locator::XPath("//h1[starts-with(., '403')]"))
        .await;
    assert!(refused.contains("Forbidden"), "{refused}");
    assert!(browser.text().await.contains("role reader may not"));
    let scheduled = app
        .gql_ok(&reader, "query { retirements { id } }", json!({}))
        .await;
    assert_eq!(scheduled["retirements"], json!([]));
}

/// The address notices link to in the browser tests: plain HTTP, so the session cookie
/// is not `Secure` on loopback.
const PUBLIC_URL: &str = "http://sunset.test";

/// The acknowledgement link in the first mail that has one, on the test's address.
fn link_in_mail(w: &crate::retirements::World) -> String {
    let prefix = format!("{PUBLIC_URL}/v1/acknowledgements/");
    crate::retirements::mails(&w.mail)
        .iter()
        .map(|m| {
            m.data
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=")
        })
        .find_map(|data| {
            let at = data.find(&prefix)?;
            let token: String = data[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .collect();
            Some(format!("{prefix}{token}"))
        })
        .expect("a mail with an acknowledgement link")
        .replace(PUBLIC_URL, &w.app.address)
}

/// Governance fills in the schedule form, previews (checkout and billing would be
/// told), schedules; checkout's webhook receiver and the SMTP inbox get their notices;
/// a dependent acknowledges from the link in its mail; governance sees it on the
/// retirement's page. Every page passes axe-core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_schedules_from_the_form_and_sees_the_acknowledgement_in_chromium() {
    let w = crate::retirements::world_with(crate::support::Backend::Sqlite, |s| {
        s.notifications.public_url = Some(PUBLIC_URL.into());
    })
    .await;
    crate::retirements::accept_webhooks(&w).await;
    let browser = Browser::start().await;
    browser.sign_in(&w.app.address, &w.governance).await;
    browser
        .goto(&format!("{}/ui/retirements", w.app.address))
        .await;
    browser.check_page("retirements").await;
    browser
        .click(Locator::LinkText("Schedule a retirement"))
        .await;
    for (field, value) in [
        ("model", "fraud"),
        ("versions", "^2"),
        ("reason", REASON),
        ("replacement_model", "fraud"),
        ("replacement_version", "3.0.0"),
    ] {
        browser.fill(Locator::Id(field), value).await;
    }
    let effective = (crate::retirements::t0() + chrono::Duration::days(60))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    browser
        .client
        .execute(
            "document.getElementById('effective_at').value = arguments[0]",
            vec![json!(effective)],
        )
        .await
        .expect("date set");
    browser.check_page("retirement-form").await;
    browser
        .click(Locator::XPath("//button[text()='Preview']"))
        .await;
    let preview = browser.text_of(Locator::Id("preview-title")).await;
    assert!(preview.contains("What scheduling would do"));
    let told = browser.text().await;
    assert!(
        told.contains("checkout") && told.contains("billing"),
        "{told}"
    );
    browser.check_page("retirement-preview").await;
    browser
        .client
        .find(Locator::XPath(
            "//button[starts-with(text(), 'Schedule and notify')]",
        ))
        .await
        .expect("schedule button")
        .click()
        .await
        .expect("scheduled");
    browser.wait_for(Locator::Css("span.state-scheduled")).await;
    let page_url = browser.client.current_url().await.expect("url").to_string();
    browser.assert_inert(REASON).await;
    browser.check_page("retirement").await;
    browser.click(Locator::LinkText("calendar")).await;
    browser.wait_for(Locator::Css("table.calendar")).await;
    assert!(browser.text().await.contains("fraud ^2"));
    browser.check_page("calendar").await;

    crate::retirements::deliver(&w).await;
    let hooks = w.receiver.received_requests().await.expect("requests");
    assert_eq!(hooks.len(), 1, "checkout's receiver got its signed notice");
    let link = link_in_mail(&w);
    browser.goto(&link).await;
    browser
        .click(Locator::XPath("//button[text()='Acknowledge']"))
        .await;
    // The click only starts the form's navigation: wait for its answer before leaving,
    // or the next navigation races it.
    browser
        .wait_for(Locator::XPath("//p[starts-with(text(), 'Thank you')]"))
        .await;
    browser.goto(&page_url).await;
    let page = browser.text().await;
    assert!(page.contains("acknowledged"), "{page}");

    // From a dependent to its page: what it uses, and the retirement, with its reason inert.
    browser.click(Locator::LinkText("billing")).await;
    browser.wait_for(Locator::Id("affecting-title")).await;
    let consumer = browser.text().await;
    assert!(
        consumer.contains("Retirements affecting it (1)") && consumer.contains("checkout"),
        "{consumer}"
    );
    browser.check_page("consumer").await;
}

/// A reason with markup in it, which every page must show as text.
const REASON: &str =
    "superseded by 3.0 <img src=x onerror=alert(1)></script><script>alert(2)</script>";

/// A risk assessment with markup in it, which every page must show as text.
const RISK: &str =
    "the weights reproduce training records verbatim <img src=x onerror=alert(1)></script>";

/// Security declares an emergency from the console (form, then the page that says what
/// cannot be undone), a second security officer approves its erasure there; an auditor
/// opens the certificate, pastes the service's public key, and the browser says the
/// signature is valid; with one byte of the envelope changed it says invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_is_declared_approved_and_its_certificate_verified_in_chromium() {
    let w = crate::retirements::world_with(crate::support::Backend::Sqlite, |s| {
        s.notifications.public_url = Some(PUBLIC_URL.into());
    })
    .await;
    let first = w.app.token("sec-1", "security", None).await;
    let second = w.app.token("sec-2", "security", None).await;
    let browser = Browser::start().await;
    browser.sign_in(&w.app.address, &first).await;
    browser
        .goto(&format!("{}/ui/emergency", w.app.address))
        .await;
    for (field, value) in [
        ("model", "fraud"),
        ("versions", "2.1.0"),
        ("risk_assessment", RISK),
    ] {
        browser.fill(Locator::Id(field), value).await;
    }
    browser.check_page("emergency").await;
    browser
        .click(Locator::XPath("//button[text()='Continue']"))
        .await;
    browser.wait_for(Locator::Id("confirm-title")).await;
    browser.assert_inert(RISK).await;
    browser.check_page("emergency-confirm").await;
    browser
        .click(Locator::XPath("//button[text()='Retire now']"))
        .await;
    browser.wait_for(Locator::Css("span.state-executing")).await;
    browser
        .click(Locator::XPath("//button[text()='Sign out']"))
        .await;

    browser.sign_in(&w.app.address, &second).await;
    browser
        .goto(&format!("{}/ui/emergency", w.app.address))
        .await;
    browser
        .fill(Locator::Css("input[name=note]"), "forensic image taken")
        .await;
    browser.click(Locator::Css("input[name=understood]")).await;
    browser.assert_inert(RISK).await;
    browser.check_page("emergency-approve").await;
    browser
        .click(Locator::XPath("//button[text()='Approve the erasure']"))
        .await;
    browser.wait_for(Locator::Css("span.state-retired")).await;
    browser
        .click(Locator::XPath("//button[text()='Sign out']"))
        .await;

    let auditor = w.app.token("aud", "auditor", None).await;
    browser.sign_in(&w.app.address, &auditor).await;
    // The model's compliance report: the emergency, its risk assessment inert, through axe.
    browser
        .goto(&format!("{}/ui/models/fraud/compliance", w.app.address))
        .await;
    browser.wait_for(Locator::Css("dl.facts")).await;
    assert!(browser.text().await.contains("verified from genesis"));
    browser.check_page("compliance").await;
    browser
        .goto(&format!("{}/ui/certificates", w.app.address))
        .await;
    browser.check_page("certificates").await;
    browser
        .click(Locator::Css("td a[href^='/ui/certificates/']"))
        .await;
    let pem = w.app.services.service_key().public_key_pem();
    browser.fill(Locator::Id("public-key"), &pem).await;
    let verdict = || async {
        browser.click(Locator::Id("verify")).await;
        browser
            .text_of(Locator::Css("#verdict.valid, #verdict.invalid"))
            .await
    };
    let valid = verdict().await;
    assert!(valid.starts_with("Valid"), "{valid}");
    browser
        .client
        .execute(
            "document.getElementById('verify').scrollIntoView({ block: 'center' })",
            vec![],
        )
        .await
        .expect("scrolled");
    browser.check_page("certificate").await;

    // One byte of the signed payload changed: the browser must refuse it.
    let changed: Value = browser
        .client
        .execute(
            "const e = document.getElementById('envelope');
             const env = JSON.parse(e.value);
             const i = 20;
             const c = env.payload[i] === 'A' ? 'B' : 'A';
             env.payload = env.payload.slice(0, i) + c + env.payload.slice(i + 1);
             e.value = JSON.stringify(env);
             document.getElementById('verdict').className = '';
             return env.payload.length",
            vec![],
        )
        .await
        .expect("changed");
    assert!(changed.as_u64().unwrap_or(0) > 20);
    let invalid = verdict().await;
    assert!(invalid.starts_with("Invalid"), "{invalid}");

    browser
        .goto(&format!("{}/ui/audit?verify=1", w.app.address))
        .await;
    assert!(browser.text().await.contains("The chain is intact"));
    browser.check_page("audit").await;
    browser
        .goto(&format!("{}/ui/revocations", w.app.address))
        .await;
    browser.check_page("revocations").await;
}
