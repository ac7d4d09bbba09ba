//! TLS to the server with rustls (no OpenSSL): libpq's `sslmode` and `sslrootcert`, taken out of
//! the URL here (the `postgres` crate knows only `disable`, `prefer` and `require`, and no root
//! certificates).
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default, as in libpq) | when the server offers it | not checked |
//! | `require` | always | not checked; with `sslrootcert`, as `verify-ca` (as libpq does) |
//! | `verify-ca` | always | signed by a CA of `sslrootcert` |
//! | `verify-full` | always | as `verify-ca`, and issued for the host of the URL |
//!
//! `sslrootcert` is a PEM file of CA certificates (default for the `verify-*` modes:
//! `~/.postgresql/root.crt`, as libpq), or `system`: the operating system's trusted CAs (a
//! managed service whose certificate a public CA signed), which, as in libpq 16, makes
//! `verify-full` the default and any weaker `sslmode` an error. A Unix-socket host never uses
//! TLS (libpq ignores `sslmode` there too). Client certificates (`sslcert`, `sslkey`) are refused with a message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    /// The `sslmode` value.
    fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// What the URL says about TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub mode: Mode,
    /// `sslrootcert`: the CA certificates the server's must be signed by.
    pub root_cert: Option<Root>,
}

/// `sslrootcert`: a PEM file, or `system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Root {
    File(PathBuf),
    /// The operating system's trusted CAs (`SSL_CERT_FILE` and `SSL_CERT_DIR` name others).
    System,
}

/// How connections are made: without TLS, or with rustls.
#[derive(Clone)]
pub enum Connector {
    Plain,
    Rustls(MakeRustlsConnect),
}

/// Why the URL's TLS settings cannot be used (never quoting the URL: it may hold the password).
#[derive(Debug, thiserror::Error)]
pub(super) enum TlsError {
    #[error(
        "sslmode `{}` is none of disable, allow, prefer, require, verify-ca, verify-full",
        crate::text::Clean(.0)
    )]
    Mode(String),
    #[error(
        "`{0}` is not supported: outwatch does not log in with a client certificate nor read \
         revocation lists (use a password, see docs/postgres.md)"
    )]
    Unsupported(String),
    #[error("the value of `{0}` misses its closing quote")]
    Unquoted(String),
    #[error(
        "sslmode=verify-ca and verify-full need the CA's certificate: sslrootcert=FILE (PEM), \
         ~/.postgresql/root.crt, or sslrootcert=system for the system's CAs"
    )]
    NoRootCert,
    #[error("sslrootcert {path} cannot be read: {source}")]
    RootUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sslrootcert {path}: not a PEM certificate: {source}")]
    RootNotPem {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("sslrootcert {path}: {source}")]
    RootRefused {
        path: String,
        #[source]
        source: rustls::Error,
    },
    #[error("sslrootcert {path}: {source}")]
    Verifier {
        path: String,
        #[source]
        source: rustls::client::VerifierBuilderError,
    },
    #[error("sslrootcert {0} holds no certificate (a PEM file of the CA's is needed)")]
    RootEmpty(String),
    #[error("TLS: {0}")]
    Protocol(#[source] rustls::Error),
    #[error(
        "sslmode `{0}` may not be used with sslrootcert=system: the system's CAs sign \
         certificates for anyone, so only verify-full (the default with it) checks the server"
    )]
    WeakWithSystem(&'static str),
    #[error("sslrootcert=system: the system's CA certificates: {0}")]
    System(#[source] rustls::Error),
}

/// The parameters taken out of the URL (the others stay for the `postgres` crate).
const TAKEN: [&str; 2] = ["sslmode", "sslrootcert"];
/// libpq parameters of client certificates and revocation, which this client does not do.
const REFUSED: [&str; 5] = ["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];

/// Splits the TLS parameters off `url` (a `postgres://` URL or a `key=value` string): the rest
/// for the `postgres` crate, and the settings. Errors name the parameter, never the URL.
pub(super) fn split(url: &str) -> Result<(String, Settings), TlsError> {
    let (rest, params) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url)
    } else {
        split_key_values(url)?
    };
    let (mut mode, mut root_cert) = (None, None);
    for (k, v) in params {
        match k.as_str() {
            "sslmode" => {
                mode = Some(match v.as_str() {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    _ => return Err(TlsError::Mode(v)),
                })
            }
            "sslrootcert" if v == "system" => root_cert = Some(Root::System),
            "sslrootcert" => root_cert = Some(Root::File(PathBuf::from(v))),
            _ => return Err(TlsError::Unsupported(k)),
        }
    }
    let mode = match (mode, &root_cert) {
        (None, Some(Root::System)) => Mode::VerifyFull,
        (Some(m), Some(Root::System)) if m != Mode::VerifyFull => {
            return Err(TlsError::WeakWithSystem(m.name()));
        }
        (m, _) => m.unwrap_or(Mode::Prefer),
    };
    Ok((rest, Settings { mode, root_cert }))
}

/// A URL's query parameters: those of [`TAKEN`] and [`REFUSED`] out, the others kept.
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let (mut kept, mut params) = (Vec::new(), Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split('=').next().unwrap_or("");
        if TAKEN.contains(&key) || REFUSED.contains(&key) {
            if let Some((k, v)) = form_urlencoded::parse(pair.as_bytes()).next() {
                params.push((k.into_owned(), v.into_owned()));
            }
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, params)
}

/// A `key=value ...` string's TLS pairs out (values may be `'quoted'` with `\` escapes).
fn split_key_values(s: &str) -> Result<(String, Vec<(String, String)>), TlsError> {
    let (mut rest, mut params) = (String::new(), Vec::new());
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            // Not ours to judge: the `postgres` crate says what is wrong.
            return Ok((s.to_string(), Vec::new()));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                    None => return Err(TlsError::Unquoted(key)),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        let end = chars.peek().map_or(s.len(), |&(i, _)| i);
        if TAKEN.contains(&key.as_str()) || REFUSED.contains(&key.as_str()) {
            params.push((key, value));
        } else {
            rest.push_str(s[start..end].trim_end());
            rest.push(' ');
        }
    }
    Ok((rest.trim_end().to_string(), params))
}

impl Settings {
    /// The `postgres` crate's mode and the connector for these settings; `unix_only`: every
    /// host is a Unix socket (no TLS there). Reads `sslrootcert` now, so a bad file is an
    /// error of the configuration, not of some later connection.
    pub(super) fn connector(&self, unix_only: bool) -> Result<(SslMode, Connector), TlsError> {
        if self.mode == Mode::Disable || unix_only {
            return Ok((SslMode::Disable, Connector::Plain));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let root = match (&self.root_cert, self.mode) {
            (Some(r), _) => Some(r.clone()),
            (None, Mode::VerifyCa | Mode::VerifyFull) => {
                Some(Root::File(default_root().ok_or(TlsError::NoRootCert)?))
            }
            (None, _) => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match root {
            None => Arc::new(Unchecked(provider.clone())),
            // Checks the host name too: `split` allows only verify-full with it.
            Some(Root::System) => Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone())
                    .map_err(TlsError::System)?,
            ),
            Some(Root::File(path)) => {
                let roots = read_roots(&path)?;
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|source| TlsError::Verifier {
                    path: path.display().to_string(),
                    source,
                })?;
                Arc::new(Verified {
                    webpki,
                    host_too: self.mode == Mode::VerifyFull,
                })
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Protocol)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let mode = match self.mode {
            Mode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        };
        Ok((mode, Connector::Rustls(MakeRustlsConnect::new(config))))
    }
}

/// libpq's default root certificate file, when it exists.
fn default_root() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".postgresql/root.crt")).filter(|p| p.is_file())
}

/// The CA certificates of a PEM file; an error names the file and what is wrong.
fn read_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let shown = || path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TlsError::RootUnreadable {
        path: shown(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|source| TlsError::RootNotPem {
            path: shown(),
            source,
        })?;
        roots.add(cert).map_err(|source| TlsError::RootRefused {
            path: shown(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::RootEmpty(shown()));
    }
    Ok(roots)
}

/// `prefer` and `require` without a root: any certificate (encryption, no authentication, as
/// libpq), the handshake's signatures still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (the chain only) and `verify-full` (and the host name).
#[derive(Debug)]
struct Verified {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    host_too: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // The chain is good (names are checked last): enough for verify-ca.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.host_too => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_come_out_of_urls_and_key_value_strings() {
        let (rest, s) =
            split("postgres://u:pw@db:5432/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u:pw@db:5432/x?application_name=a");
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.root_cert, Some(Root::File("/etc/ca.pem".into())));
        let (rest, s) = split("postgres://u@db/x").unwrap();
        assert_eq!((rest.as_str(), s.mode), ("postgres://u@db/x", Mode::Prefer));
        let (rest, s) =
            split("host=db sslmode = require dbname=x sslrootcert='/a b/c\\'s.pem' user=u")
                .unwrap();
        assert_eq!(rest, "host=db dbname=x user=u");
        assert_eq!(s.mode, Mode::Require);
        assert_eq!(s.root_cert, Some(Root::File("/a b/c's.pem".into())));
        assert_eq!(split("sslmode=disable").unwrap().1.mode, Mode::Disable);
        assert_eq!(split("host=h sslmode=allow").unwrap().1.mode, Mode::Prefer);
        // `system`: the system's CAs, verify-full by default (as libpq 16).
        let (_, s) = split("postgres://u@db/x?sslrootcert=system").unwrap();
        assert_eq!(
            (s.mode, s.root_cert),
            (Mode::VerifyFull, Some(Root::System))
        );
        let (_, s) = split("sslrootcert=system sslmode=verify-full host=db").unwrap();
        assert_eq!(
            (s.mode, s.root_cert),
            (Mode::VerifyFull, Some(Root::System))
        );
    }

    #[test]
    fn a_weak_sslmode_with_the_system_cas_is_refused() {
        for mode in ["disable", "prefer", "require", "verify-ca"] {
            let e = split(&format!(
                "postgres://u:Sekr1t@db/x?sslmode={mode}&sslrootcert=system"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains(&format!(
                    "sslmode `{mode}` may not be used with sslrootcert=system"
                )) && !e.contains("Sekr1t"),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_tls_parameters_are_named_without_the_url() {
        let e = split("postgres://u:Sekr1t@db/x?sslmode=verify-everything")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("verify-everything") && !e.contains("Sekr1t"),
            "{e}"
        );
        let e = split("postgres://u:Sekr1t@db/x?sslcert=/c.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslcert") && !e.contains("Sekr1t"), "{e}");
        let s = Settings {
            mode: Mode::VerifyFull,
            root_cert: Some(Root::File("/nonexistent/ca.pem".into())),
        };
        let e = s.connector(false).err().unwrap().to_string();
        assert!(
            e.contains("sslrootcert /nonexistent/ca.pem cannot be read"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let s = Settings {
            mode: Mode::VerifyCa,
            root_cert: Some(Root::File(p)),
        };
        let e = s.connector(false).err().unwrap().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        // Unix sockets never use TLS, whatever the mode.
        let s = Settings {
            mode: Mode::Require,
            root_cert: None,
        };
        assert!(matches!(
            s.connector(true),
            Ok((SslMode::Disable, Connector::Plain))
        ));
    }
}
