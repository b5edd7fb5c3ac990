//! A throwaway PKI and a one-connection-at-a-time HTTPS server on 127.0.0.1 for the TLS tests:
//! a CA and a server certificate made at test time with rcgen, served with rustls (ring).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A CA (its PEM written to `ca_pem`) and a server certificate it signed for `names`.
pub struct Pki {
    pub ca_pem: PathBuf,
    pub server: Arc<ServerConfig>,
}

pub fn pki(dir: &Path, names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lanewatch test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();

    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Pki {
        ca_pem,
        server: Arc::new(server),
    }
}

pub struct Canned {
    pub status: u16,
    pub etag: Option<&'static str>,
    pub body: Vec<u8>,
}

/// Serves `responses` over TLS in order, one per connection, then stops. Returns the URL and the
/// server thread, which ends with, per connection, the request head (lower-cased) or
/// `handshake failed: …`.
pub fn serve(pki: &Pki, responses: Vec<Canned>) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://{}/lists/watchlist.lwl",
        listener.local_addr().unwrap()
    );
    let config = pki.server.clone();
    let server = std::thread::spawn(move || {
        let mut log = Vec::new();
        for canned in responses {
            let Ok((tcp, _)) = listener.accept() else {
                break;
            };
            tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let conn = ServerConnection::new(config.clone()).unwrap();
            let mut tls = StreamOwned::new(conn, tcp);
            match read_head(&mut tls) {
                Ok(head) => log.push(head),
                Err(e) => {
                    log.push(format!("handshake failed: {e}"));
                    continue;
                }
            }
            let reason = if canned.status == 304 {
                "Not Modified"
            } else {
                "OK"
            };
            let mut out = format!(
                "HTTP/1.1 {} {reason}\r\nConnection: close\r\nContent-Length: {}\r\n",
                canned.status,
                canned.body.len()
            );
            if let Some(etag) = canned.etag {
                out.push_str(&format!("ETag: {etag}\r\n"));
            }
            out.push_str("\r\n");
            let _ = tls.write_all(out.as_bytes());
            let _ = tls.write_all(&canned.body);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        log
    });
    (url, server)
}

fn read_head(tls: &mut StreamOwned<ServerConnection, TcpStream>) -> std::io::Result<String> {
    let mut reader = BufReader::new(tls);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            return Ok(head);
        }
        head.push_str(&line.to_ascii_lowercase());
    }
}
