//! HTTPS on `listen` when `http.tls` names a certificate and key ("encrypt models in
//! transit"): rustls with the ring provider, TLS 1.2 and 1.3 only. The files are read
//! again on SIGHUP and new connections use them at once; connections already open keep
//! the session they have, so a certificate renewal drops nobody. With `client_ca_file`
//! a client may present a certificate issued by that CA; the webhook routes then refuse
//! a request whose connection presented none (`http::require_client_certificate`).
//!
//! Handshakes run in tasks of their own, so a slow or silent client holds up nobody
//! else's; the finished connections reach axum through [`TlsListener`].

use crate::config::TlsSettings;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The longest a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const BACKLOG: usize = 1_024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("http.tls: {path}: {reason}")]
    File { path: String, reason: String },
    #[error("http.tls: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Where the certificate, key and client CA are read from.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl Files {
    /// Reads and checks the files into a server configuration.
    fn load(&self) -> Result<ServerConfig, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| file_error(&self.cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_error(&self.cert, e))?;
        if chain.is_empty() {
            return Err(file_error(&self.cert, "holds no PEM certificate"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| file_error(&self.key, format!("no PEM private key read: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
                    roots
                        .add(cert.map_err(|e| file_error(path, e))?)
                        .map_err(|e| file_error(path, e))?;
                }
                if roots.is_empty() {
                    return Err(file_error(path, "holds no PEM certificate"));
                }
                // Optional at the handshake: only the webhook routes require one, and
                // they refuse a connection that presented none.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| file_error(path, e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| file_error(&self.key, format!("does not match the certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The configuration new handshakes use, replaced whole by [`Tls::reload`].
#[derive(Clone)]
pub struct Tls {
    files: Files,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl Tls {
    /// `None` when `settings` names no certificate: plain HTTP, the default.
    pub fn from_settings(settings: &TlsSettings) -> Result<Option<Self>, TlsError> {
        let (cert, key) = match (&settings.cert_file, &settings.key_file) {
            (None, None) if settings.client_ca_file.is_none() => return Ok(None),
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            _ => {
                return Err(TlsError::Config(
                    "cert_file and key_file go together (client_ca_file needs both)".into(),
                ));
            }
        };
        let files = Files {
            cert,
            key,
            client_ca: settings.client_ca_file.clone(),
        };
        let config = files.load()?;
        Ok(Some(Self {
            files,
            current: Arc::new(RwLock::new(Arc::new(config))),
        }))
    }

    /// Reads the files again; on any error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(self.files.load()?);
        match self.current.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }

    /// Reloads on every SIGHUP until the process ends.
    pub fn reload_on_hangup(&self) {
        let tls = self.clone();
        tokio::spawn(async move {
            let kind = tokio::signal::unix::SignalKind::hangup();
            let Ok(mut hangups) = tokio::signal::unix::signal(kind) else {
                tracing::warn!("cannot listen for SIGHUP: the TLS certificate is not reloaded");
                return;
            };
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificate not reloaded; the one in use stays")
                    }
                }
            }
        });
    }

    /// Accepts on `tcp` and hands each connection over once its handshake is done.
    pub fn listen(&self, tcp: TcpListener) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, incoming) = mpsc::channel(BACKLOG);
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                // Once the server stops taking connections, stop accepting them too.
                let accepted = tokio::select! {
                    accepted = tcp.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = tls.acceptor();
                let handed = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let _ = handed.send((tls_stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { incoming, local })
    }
}

/// Connections whose handshake is done, for `axum::serve`.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Who is on the other end of a request's connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// It presented a client certificate that the configured client CA issued (rustls
    /// verified it during the handshake; one that failed ended the handshake).
    pub client_certificate: bool,
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            client_certificate: stream.io().get_ref().1.peer_certificates().is_some(),
        }
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            client_certificate: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cert: Option<&Path>, key: Option<&Path>, ca: Option<&Path>) -> TlsSettings {
        TlsSettings {
            cert_file: cert.map(Path::to_path_buf),
            key_file: key.map(Path::to_path_buf),
            client_ca_file: ca.map(Path::to_path_buf),
        }
    }

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let made =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, made.cert.pem()).expect("cert");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("key");
        (cert, key)
    }

    #[test]
    fn no_certificate_is_plain_http_and_half_a_configuration_is_refused() {
        assert!(matches!(
            Tls::from_settings(&TlsSettings::default()),
            Ok(None)
        ));
        let dir = tempfile::tempdir().expect("tmp");
        let (cert, key) = pair(dir.path(), "a");
        for half in [
            settings(Some(&cert), None, None),
            settings(None, Some(&key), None),
            settings(None, None, Some(&cert)),
        ] {
            let e = Tls::from_settings(&half).err().expect("refused");
            assert!(e.to_string().contains("go together"), "{e}");
        }
        assert!(matches!(
            Tls::from_settings(&settings(Some(&cert), Some(&key), Some(&cert))),
            Ok(Some(_))
        ));
    }

    #[test]
    fn missing_empty_and_mismatched_files_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cert, key) = pair(dir.path(), "a");
        let (_, other_key) = pair(dir.path(), "b");
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("empty");
        for (s, says) in [
            (settings(Some(&missing), Some(&key), None), "missing.pem"),
            (
                settings(Some(&empty), Some(&key), None),
                "holds no PEM certificate",
            ),
            (
                settings(Some(&cert), Some(&empty), None),
                "no PEM private key",
            ),
            (
                settings(Some(&cert), Some(&other_key), None),
                "does not match",
            ),
            (settings(Some(&cert), Some(&key), Some(&empty)), "empty.pem"),
        ] {
            let e = Tls::from_settings(&s).err().expect("refused");
            assert!(e.to_string().contains(says), "{says} in {e}");
        }
    }

    #[test]
    fn a_failed_reload_keeps_the_configuration_in_use() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cert, key) = pair(dir.path(), "a");
        let tls = Tls::from_settings(&settings(Some(&cert), Some(&key), None))
            .expect("loads")
            .expect("configured");
        let before = tls.acceptor().config().clone();
        std::fs::write(&key, "not a key").expect("broken");
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, tls.acceptor().config()));
        let (fresh_cert, fresh_key) = pair(dir.path(), "c");
        std::fs::rename(fresh_cert, &cert).expect("cert");
        std::fs::rename(fresh_key, &key).expect("key");
        tls.reload().expect("reloads");
        assert!(!Arc::ptr_eq(&before, tls.acceptor().config()));
    }
}
