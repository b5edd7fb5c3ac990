//! The one HTTP(S) client setup shared by `lanewatch sync` and the alert webhook.
//!
//! `http://` always works (the watchlist is authenticated by its ed25519 signature, the webhook
//! carries alerts on the lane's own network) but is reported as unauthenticated. `https://` needs
//! the cargo feature `https`: rustls on the *ring* provider (aws-lc would bring cmake and a C/asm
//! build into the ARM cross build), trusting Mozilla's roots bundled in the binary (`webpki-roots`:
//! a box's minimal rootfs may have no CA store, or a stale one) or, instead of them, the private CA
//! given with `--ca-cert` / `webhook_ca_cert` (like curl's `--cacert`).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a URL's bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP: anyone on the path can read and change what is sent.
    Plain,
    /// TLS with the server's certificate verified.
    Tls,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: only http:// and https:// URLs are supported")]
    UnsupportedScheme { url: String },
    #[error(
        "{url}: this lanewatch was built without HTTPS support; rebuild it with `--features https` (on by default)"
    )]
    HttpsNotBuilt { url: String },
    #[error(
        "{url}: a CA certificate ({}) was given but the URL is plain http://, which would not use it; use https:// or drop the CA",
        path.display()
    )]
    CaCertWithoutTls { url: String, path: PathBuf },
    #[error("CA certificate file {}: {why}", path.display())]
    CaCert { path: PathBuf, why: String },
}

/// What to build an agent for.
#[derive(Debug, Clone)]
pub struct ClientConfig<'a> {
    pub url: &'a str,
    /// Whole-request limit, connect and TLS handshake included.
    pub timeout: Duration,
    /// PEM file of the CA(s) to trust instead of the bundled roots.
    pub ca_cert: Option<&'a Path>,
}

/// The transport `url` would use, or why it cannot be fetched by this build.
pub fn transport_of(url: &str) -> Result<Transport, HttpError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") => Ok(Transport::Plain),
        Some("https") if cfg!(feature = "https") => Ok(Transport::Tls),
        Some("https") => Err(HttpError::HttpsNotBuilt { url: url.into() }),
        _ => Err(HttpError::UnsupportedScheme { url: url.into() }),
    }
}

/// A ureq agent for `config.url`. Status codes are left to the caller (304 and 4xx are answers,
/// not errors). The CA file is read and checked here, so a bad one fails at start-up, naming it.
pub fn agent(config: &ClientConfig) -> Result<(ureq::Agent, Transport), HttpError> {
    let transport = transport_of(config.url)?;
    if let (Transport::Plain, Some(path)) = (transport, config.ca_cert) {
        return Err(HttpError::CaCertWithoutTls {
            url: config.url.into(),
            path: path.to_path_buf(),
        });
    }
    let builder = ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false);
    #[cfg(feature = "https")]
    let builder = builder.tls_config(tls::config(config.ca_cert)?);
    Ok((builder.build().into(), transport))
}

/// A one-line description of a transport failure: certificate problems say what to check.
pub fn describe(error: &ureq::Error) -> String {
    #[cfg(feature = "https")]
    if let Some(why) = tls::certificate_error(error) {
        return format!(
            "TLS: the server's certificate was refused ({why}); if the server uses a private CA, give its certificate with --ca-cert (webhook: alerts.webhook_ca_cert)"
        );
    }
    error.to_string()
}

/// Whether trying again later could make the request succeed: the network (DNS, connect,
/// timeouts, I/O) may come back; a malformed URL or answer, a redirect loop, a redirect to a bad
/// scheme or an over-limit body will not change by retrying.
pub fn is_transient(error: &ureq::Error) -> bool {
    if is_certificate_error(error) {
        return false;
    }
    matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::ConnectProxyFailed(_)
            | ureq::Error::BodyStalled
    )
}

/// Whether `error` is a refused server certificate (retrying will not help until someone changes
/// the server or the trusted CA).
pub fn is_certificate_error(error: &ureq::Error) -> bool {
    #[cfg(feature = "https")]
    return tls::certificate_error(error).is_some();
    #[cfg(not(feature = "https"))]
    {
        let _ = error;
        false
    }
}

#[cfg(feature = "https")]
mod tls {
    use std::path::Path;
    use std::sync::Arc;

    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

    use super::HttpError;

    /// The certificate problem behind `error`: ureq reports rustls's verdict directly or, from
    /// the handshake inside its transport, wrapped in an io::Error.
    pub(super) fn certificate_error(error: &ureq::Error) -> Option<&rustls::CertificateError> {
        let tls = match error {
            ureq::Error::Rustls(e) => Some(e),
            ureq::Error::Io(e) => e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        match tls? {
            rustls::Error::InvalidCertificate(why) => Some(why),
            _ => None,
        }
    }

    pub(super) fn config(ca_cert: Option<&Path>) -> Result<TlsConfig, HttpError> {
        let roots = match ca_cert {
            Some(path) => RootCerts::Specific(Arc::new(read_ca_file(path)?)),
            None => RootCerts::WebPki,
        };
        Ok(TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .build())
    }

    /// Every certificate in the PEM file, each checked to be usable as a trust anchor (ureq would
    /// silently skip unparsable ones and then refuse every server).
    pub(super) fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, HttpError> {
        let bad = |why: String| HttpError::CaCert {
            path: path.to_path_buf(),
            why,
        };
        let pem = crate::fsio::read_regular(path, 1 << 20)
            .map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item.map_err(|e| bad(format!("not valid PEM: {e}")))? {
                PemItem::Certificate(cert) => {
                    let der = rustls::pki_types::CertificateDer::from(cert.der());
                    rustls::RootCertStore::empty().add(der).map_err(|e| {
                        bad(format!(
                            "certificate {} is not usable: {e}",
                            certs.len() + 1
                        ))
                    })?;
                    certs.push(cert);
                }
                PemItem::PrivateKey(_) => {
                    return Err(bad(
                        "holds a private key; give only the CA's certificate".into()
                    ));
                }
                _ => {}
            }
        }
        if certs.is_empty() {
            return Err(bad(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
            ));
        }
        Ok(certs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> ClientConfig<'_> {
        ClientConfig {
            url,
            timeout: Duration::from_secs(1),
            ca_cert: None,
        }
    }

    #[test]
    fn schemes() {
        assert_eq!(transport_of("http://a/b").unwrap(), Transport::Plain);
        assert_eq!(transport_of("HTTP://a/b").unwrap(), Transport::Plain);
        for bad in ["ftp://a/b", "a/b", "", "file:///etc/passwd"] {
            let err = transport_of(bad).unwrap_err();
            assert!(matches!(err, HttpError::UnsupportedScheme { .. }), "{bad}");
        }
        let https = transport_of("https://a/b");
        if cfg!(feature = "https") {
            assert_eq!(https.unwrap(), Transport::Tls);
        } else {
            let err = https.unwrap_err().to_string();
            assert!(err.contains("--features https"), "{err}");
        }
    }

    #[test]
    fn a_ca_with_plain_http_is_refused() {
        let path = Path::new("/nonexistent/ca.pem");
        let err = agent(&ClientConfig {
            ca_cert: Some(path),
            ..config("http://a/b")
        })
        .unwrap_err();
        assert!(matches!(err, HttpError::CaCertWithoutTls { .. }), "{err}");
    }

    #[cfg(feature = "https")]
    #[test]
    fn bad_ca_files_are_named() {
        let dir = std::env::temp_dir().join(format!("lanewatch-http-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&str, &[u8], &str); 4] = [
            ("missing.pem", b"", "cannot read it"),
            ("empty.pem", b"hello\n", "no PEM certificate"),
            (
                "garbage.pem",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not usable",
            ),
            (
                "key.pem",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
        ];
        for (name, text, why) in cases {
            let path = dir.join(name);
            if name != "missing.pem" {
                std::fs::write(&path, text).unwrap();
            }
            let err = agent(&ClientConfig {
                ca_cert: Some(&path),
                ..config("https://a/b")
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(name) && err.contains(why), "{name}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
