//! Notices as email over SMTP (lettre): a text and an HTML body rendered from templates,
//! which operators can replace by putting files of the same names in a folder.

use crate::{Notice, Notifier, Outcome};
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS from the first byte (usually port 465).
    Tls,
    /// Plain, then upgraded with STARTTLS, which is required (usually port 587).
    StartTls,
    /// No TLS at all: only for a relay on the same host or a test server.
    Plain,
}

/// Where and how to send mail.
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// User name and password, if the server wants AUTH.
    pub credentials: Option<(String, Zeroizing<String>)>,
    /// The From address, e.g. `sunset <sunset@example.org>`.
    pub from: String,
    /// The most one attempt may take, connection included.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpSettings {
    /// What [`EmailNotifier::new`] would refuse, found without building the transport
    /// (which needs a running Tokio runtime): so configuration can be checked first.
    pub fn check(&self) -> Result<(), EmailError> {
        if self.host.trim().is_empty() {
            return Err(EmailError::Transport(
                self.host.clone(),
                "no host given".into(),
            ));
        }
        self.from
            .parse::<Mailbox>()
            .map_err(|e| EmailError::Address(self.from.clone(), e.to_string()))?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("invalid email address {0:?}: {1}")]
    Address(String, String),
    #[error("cannot set up SMTP to {0}: {1}")]
    Transport(String, String),
    #[error("notice template {name}: {detail}")]
    Template { name: String, detail: String },
    #[error("cannot read the notice template {0}: {1}")]
    TemplateFile(String, std::io::Error),
}

/// The addresses one notice goes to (a consumer's contacts).
#[derive(Debug, Clone)]
pub struct Recipients(Vec<Mailbox>);

impl Recipients {
    /// The most addresses one notice goes to.
    pub const MAX: usize = 32;

    pub fn parse<'a>(addresses: impl IntoIterator<Item = &'a str>) -> Result<Self, EmailError> {
        let list = addresses
            .into_iter()
            .map(|a| {
                a.parse::<Mailbox>()
                    .map_err(|e| EmailError::Address(a.to_owned(), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() || list.len() > Self::MAX {
            return Err(EmailError::Address(
                format!("{} addresses", list.len()),
                format!("a notice goes to 1 to {} addresses", Self::MAX),
            ));
        }
        Ok(Self(list))
    }
}

/// The three templates a notice email is rendered from.
const TEMPLATES: [(&str, &str); 3] = [
    (
        "notice.subject.txt",
        include_str!("../templates/notice.subject.txt"),
    ),
    ("notice.txt", include_str!("../templates/notice.txt")),
    ("notice.html", include_str!("../templates/notice.html")),
];

/// The notice templates: the built-in ones, each replaced by a file of the same name in
/// the operator's folder if there is one. `.html` output is HTML-escaped.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// Loads and checks every template now, so a broken override stops start-up with its
    /// file and line, rather than failing the first notice.
    pub fn load(overrides: Option<&Path>) -> Result<Self, EmailError> {
        let mut env = minijinja::Environment::new();
        // A placeholder the notice lacks is an error, not an empty string in a mail.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, builtin) in TEMPLATES {
            let source = match overrides.map(|dir| dir.join(name)) {
                Some(path) if path.exists() => std::fs::read_to_string(&path)
                    .map_err(|e| EmailError::TemplateFile(path.display().to_string(), e))?,
                _ => builtin.to_owned(),
            };
            env.add_template_owned(name, source)
                .map_err(|e| template_error(name, e))?;
        }
        let templates = Self { env };
        // Rendering a sample catches what parsing cannot, such as an unknown field.
        templates.render(&crate::notice::sample())?;
        Ok(templates)
    }

    /// Subject, text and HTML of `notice`.
    pub fn render(&self, notice: &Notice) -> Result<(String, String, String), EmailError> {
        let ctx = context(notice);
        let render = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| template_error(name, e))
        };
        // One line, whatever the template did: a header cannot hold a line break.
        let subject = render("notice.subject.txt")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok((subject, render("notice.txt")?, render("notice.html")?))
    }
}

fn template_error(name: &str, e: minijinja::Error) -> EmailError {
    EmailError::Template {
        name: name.to_owned(),
        detail: format!("{e:#}"),
    }
}

/// What templates see: the notice's fields under snake_case names, its `type`, and
/// dates written for people.
fn context(notice: &Notice) -> minijinja::Value {
    let d = &notice.data;
    minijinja::context! {
        type => notice.kind.as_str(),
        notice_id => &d.notice_id,
        retirement_id => &d.retirement_id,
        model => &d.model,
        versions => &d.versions,
        affected_versions => &d.affected_versions,
        reason => &d.reason,
        replacement => &d.replacement,
        dependent => &d.dependent,
        acknowledge_url => &d.acknowledge_url,
        problem => d.problem.as_deref().unwrap_or_default(),
        closed_to_new_consumers => d.closed_to_new_consumers,
        brownouts => d
            .brownouts
            .iter()
            .map(|w| format!("{} to {}", human(w.start), w.end.format("%H:%M UTC")))
            .collect::<Vec<_>>(),
        effective_at => human(d.effective_at),
        effective_date => d.effective_at.format("%Y-%m-%d").to_string(),
        notice_ends_at => human(d.notice_ends_at),
    }
}

fn human(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    templates: Templates,
}

impl EmailNotifier {
    pub fn new(settings: &SmtpSettings, templates: Templates) -> Result<Self, EmailError> {
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|e| EmailError::Address(settings.from.clone(), e.to_string()))?;
        let unusable = |e: lettre::transport::smtp::Error| {
            EmailError::Transport(settings.host.clone(), e.to_string())
        };
        let mut builder = match settings.security {
            Security::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host).map_err(unusable)?
            }
            Security::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(unusable)?
            }
            Security::Plain => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
        }
        .port(settings.port)
        .timeout(Some(settings.timeout));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            templates,
        })
    }

    fn message(&self, notice: &Notice, to: &Recipients) -> Result<Message, String> {
        let (subject, text, html) = self.templates.render(notice).map_err(|e| e.to_string())?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            // The notice id as Message-ID: a repeat after a crash is recognisably the same mail.
            .message_id(Some(format!("<{}@sunset.notice>", notice.id())));
        for mailbox in &to.0 {
            builder = builder.to(mailbox.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| e.to_string())
    }
}

impl EmailNotifier {
    /// A plain-text message outside the notice schema (an announcement to a model's
    /// contacts), with `message_id` as its Message-ID so a repeat is recognisable.
    pub async fn send_plain(
        &self,
        message_id: &str,
        (subject, text): (&str, &str),
        to: &Recipients,
    ) -> Outcome {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(format!("<{message_id}@sunset.notice>")));
        for mailbox in &to.0 {
            builder = builder.to(mailbox.clone());
        }
        match builder.body(text.to_owned()) {
            Ok(message) => self.send(message).await,
            Err(e) => Outcome::Refused {
                reason: e.to_string(),
            },
        }
    }

    /// Hands `message` to the SMTP server: delivered, refused for good, or to retry.
    async fn send(&self, message: Message) -> Outcome {
        match self.transport.send(message).await {
            Ok(_) => Outcome::Delivered,
            Err(e) if e.is_permanent() => Outcome::Refused {
                reason: format!("the SMTP server refused the mail: {e}"),
            },
            Err(e) => Outcome::Retry {
                reason: format!("SMTP: {e}"),
                after: None,
            },
        }
    }
}

impl Notifier for EmailNotifier {
    type Address = Recipients;

    async fn deliver(&self, notice: &Notice, to: &Recipients, _now: DateTime<Utc>) -> Outcome {
        match self.message(notice, to) {
            Ok(message) => self.send(message).await,
            Err(reason) => Outcome::Refused { reason },
        }
    }
}
