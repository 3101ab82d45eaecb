//! The agent's one HTTP client. Over TLS, the service must present the
//! certificate whose SHA-256 the registration token named: certificate
//! authorities play no part, so a service with a self-signed certificate
//! is as trusted as one with a public one, and no other server is trusted
//! at all. Plain HTTP is accepted only where the token says the service
//! serves it (no fingerprint), and then only to a loopback address unless
//! the host's administrator allows it, since the agent's secret would
//! travel in clear.

use std::sync::Arc;
use std::time::Duration;

use coffer_api_types::error::ErrorBody;
use coffer_api_types::ErrorCode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Digest;

use crate::error::{Error, Result};

/// How the service is reached and recognised.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub fingerprint: Option<String>,
    /// Plain HTTP to an address that is not loopback.
    pub allow_plain_http: bool,
}

/// A client of one service, with or without the agent's secret.
#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    secret: Option<String>,
}

#[derive(Debug)]
struct Pinned {
    fingerprint: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if sha2::Sha256::digest(end_entity.as_ref()).as_slice() == self.fingerprint.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the service's certificate is not the one the registration token names".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Makes `builder` trust exactly the certificate whose SHA-256 is
/// `fingerprint` (hex); the remote command line uses it too.
pub fn pin(
    builder: reqwest::blocking::ClientBuilder,
    fingerprint: &str,
) -> Result<reqwest::blocking::ClientBuilder> {
    let bad = |m: String| Error::Invalid(m);
    let fingerprint = hex::decode(fingerprint.replace(':', ""))
        .ok()
        .filter(|f| f.len() == 32)
        .ok_or_else(|| bad(format!("{fingerprint:?} is not a SHA-256 fingerprint")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint,
            provider,
        }))
        .with_no_client_auth();
    Ok(builder.tls_backend_preconfigured(config))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

impl Client {
    pub fn new(endpoint: &Endpoint, secret: Option<String>) -> Result<Client> {
        let bad = |m: String| Error::Invalid(m);
        let url = reqwest::Url::parse(&endpoint.url)
            .map_err(|e| bad(format!("{:?} is not a URL: {e}", endpoint.url)))?;
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Polls are held open up to 30 s; uploads of a pack take less.
            .timeout(Duration::from_secs(300));
        match (url.scheme(), &endpoint.fingerprint) {
            ("https", Some(fp)) => {
                builder = pin(builder, fp)?;
            }
            ("https", None) => {
                return Err(bad(
                    "the token names no certificate fingerprint, so an https address cannot be checked: use the address the token names".into(),
                ))
            }
            ("http", Some(_)) => {
                return Err(bad(format!(
                    "the service serves TLS (the token names its certificate): use https://, not {}",
                    endpoint.url
                )))
            }
            ("http", None) if !is_loopback(&url) && !endpoint.allow_plain_http => {
                return Err(bad(format!(
                    "{} is plain HTTP to another machine: the agent's secret would travel in clear. Serve the service with TLS (tls_self_signed = true), or allow it with --allow-plain-http on a network you trust",
                    endpoint.url
                )))
            }
            ("http", None) => {}
            (other, _) => return Err(bad(format!("{other}: the service is reached over https or http"))),
        }
        let http = builder
            .build()
            .map_err(|e| bad(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: format!("{}/api/v1", endpoint.url.trim_end_matches('/')),
            secret,
        })
    }

    /// The same client with another secret (after a re-key).
    pub fn with_secret(&self, secret: String) -> Client {
        Client {
            secret: Some(secret),
            ..self.clone()
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.secret {
            Some(s) => r.bearer_auth(s),
            None => r,
        }
    }

    /// Sends a request and reads the service's answer or its error.
    pub fn send(
        &self,
        r: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response> {
        let answer = r.send().map_err(|e| Error::Unreachable {
            url: self.base.clone(),
            message: error_chain(&e),
        })?;
        if answer.status().is_success() {
            return Ok(answer);
        }
        let status = answer.status();
        let text = answer.text().unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Error::Refused {
                code: ErrorCode::from_api_code(&body.error.code),
                message: body.error.message,
            },
            Err(_) => Error::Refused {
                code: if status.is_server_error() {
                    ErrorCode::Internal
                } else {
                    ErrorCode::Invalid
                },
                message: format!("{status}: {}", text.chars().take(300).collect::<String>()),
            },
        })
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let answer = self.send(self.request(reqwest::Method::POST, path).json(body))?;
        answer
            .json()
            .map_err(|e| Error::Invalid(format!("the service's answer to {path}: {e}")))
    }

    /// A POST whose answer has no body.
    pub fn post_quiet<B: Serialize>(&self, path: &str, body: &B) -> Result<()> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .map(drop)
    }

    /// A POST of JSON whose answer is bytes.
    pub fn post_bytes<B: Serialize>(&self, path: &str, body: &B) -> Result<Vec<u8>> {
        self.bytes_of(self.send(self.request(reqwest::Method::POST, path).json(body))?)
    }

    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        self.bytes_of(self.send(self.request(reqwest::Method::GET, path))?)
    }

    /// An answer's body; a connection lost while reading it is unreachable.
    fn bytes_of(&self, answer: reqwest::blocking::Response) -> Result<Vec<u8>> {
        answer
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|e| Error::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })
    }

    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let answer = self.send(self.request(reqwest::Method::GET, path))?;
        answer
            .json()
            .map_err(|e| Error::Invalid(format!("the service's answer to {path}: {e}")))
    }

    pub fn put_bytes(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.send(self.request(reqwest::Method::PUT, path).body(bytes))
            .map(drop)
    }
}

/// A reqwest error with its causes (the TLS reason is in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
