//! Logging with `tracing`, to standard error so that standard output stays clean for
//! commands whose output is data (`sunset token create` prints only the token). Lines are
//! text for people, or JSON (`log.format = "json"`) for a log pipeline, where each
//! request's lines carry its span: method, route and the W3C trace id.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The trace id of a request: the one its W3C `traceparent` header carries, so its lines
/// join the caller's trace, or a new random one.
pub fn trace_id(traceparent: Option<&str>) -> String {
    traceparent
        .and_then(|t| {
            let mut parts = t.split('-');
            let (version, id) = (parts.next()?, parts.next()?);
            (version.len() == 2
                && id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && id.bytes().any(|b| b != b'0'))
            .then(|| id.to_owned())
        })
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_valid_traceparent_gives_its_trace_id_and_anything_else_a_new_one() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            super::trace_id(Some(&format!("00-{id}-00f067aa0ba902b7-01"))),
            id
        );
        for bad in [
            "00-0000000000000000000000000000000-x",
            "junk",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let made = super::trace_id(Some(bad));
            assert_eq!(made.len(), 32, "{bad}");
            assert_ne!(made, bad);
        }
        assert_ne!(super::trace_id(None), super::trace_id(None));
    }
}
