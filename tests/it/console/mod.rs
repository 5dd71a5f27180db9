//! The web console under `/ui`, over HTTP as a browser speaks it (cookies, forms,
//! redirects); `browser.rs` drives a real Chromium through the same pages.

mod audit;
mod browser;
mod calendar;
mod certificates;
mod consumers;
mod decisions;
mod dependents;
mod emergency;
mod pages;
mod retirements;
mod sessions;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

/// The one number `sql` (a `COUNT(*)`) answers, read straight from the database.
pub async fn count(app: &crate::support::TestApp, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.services.store().reader();
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a count")
}

/// A browser's part of the protocol: one session cookie, redirects not followed (the
/// tests assert where they go).
pub struct Console {
    client: reqwest::Client,
    pub base: String,
    pub session: Option<String>,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `Set-Cookie` header that sets `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of hidden field `name` in the page's first form that has it.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in the page:\n{}", self.body))
            + marker.len();
        self.body[at..].split('"').next().unwrap_or("").to_owned()
    }
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

impl Console {
    pub fn new(base: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            session: None,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(s) = &self.session {
            request = request.header(COOKIE, format!("sunset_session={s}"));
        }
        answer(request.send().await.expect("GET")).await
    }

    /// Posts `form` with `cookies` (name=value pairs) as a browser would send them.
    pub async fn post_with(&self, path: &str, form: &[(&str, &str)], cookies: &[String]) -> Answer {
        let mut all = cookies.to_vec();
        if let Some(s) = &self.session {
            all.push(format!("sunset_session={s}"));
        }
        let mut request = self.client.post(format!("{}{path}", self.base)).form(form);
        if !all.is_empty() {
            request = request.header(COOKIE, all.join("; "));
        }
        answer(request.send().await.expect("POST")).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.post_with(path, form, &[]).await
    }

    /// Signs in with `token` through the form; returns the sign-in's answer.
    pub async fn sign_in(&mut self, token: &str) -> Answer {
        let form = self.get("/ui/sign-in?next=/ui/models").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let nonce_cookie = form.set_cookie("sunset_signin").expect("nonce cookie");
        let nonce = form.field("csrf");
        let answer = self
            .post_with(
                "/ui/sign-in",
                &[("token", token), ("csrf", &nonce), ("next", "/ui/models")],
                &[format!("sunset_signin={}", cookie_value(&nonce_cookie))],
            )
            .await;
        if let Some(set) = answer.set_cookie("sunset_session") {
            self.session = Some(cookie_value(&set));
        }
        answer
    }

    /// The CSRF token the signed-in pages carry.
    pub async fn csrf(&self) -> String {
        self.get("/ui/models").await.field("csrf")
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap_or_default(),
    }
}
