//! Storage locations: from a location URL and credentials to an OpenDAL
//! operator, and from a storage error to what the operator should do.
//!
//! A location names where a vault lives and nothing secret: `/srv/v1`,
//! `s3://bucket/prefix?endpoint=…&region=…`, `azblob://container/prefix?account=…`,
//! `gcs://bucket/prefix`, `sftp://user@host:port/path`, `webdav://host/path`.
//! Secrets come only from [`Credentials`] (environment variables, a
//! credentials file, or the service's configuration), so a location can be
//! logged, shown and stored in plain text. A URL that carries a password is
//! refused rather than silently used.
//!
//! Every failure is classified once, here ([`StorageFailure`]), from the
//! error kinds and messages of OpenDAL and the servers behind it; the
//! location test, the command line and the service all explain a failure
//! with the same remedy.

use std::collections::BTreeMap;
use std::path::Path;

use opendal::{ErrorKind, Operator};

pub use coffer_api_types::StorageFailure;

use crate::error::{Error, Result};

/// The kind of storage a location points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Fs,
    S3,
    AzBlob,
    Gcs,
    Sftp,
    WebDav,
    /// Reached through a Coffer service (an agent's view of its vault).
    Service,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Fs => "local path",
            Scheme::S3 => "S3",
            Scheme::AzBlob => "Azure Blob Storage",
            Scheme::Gcs => "Google Cloud Storage",
            Scheme::Sftp => "SFTP",
            Scheme::WebDav => "WebDAV",
            Scheme::Service => "Coffer service",
        }
    }

    /// Whether a write becomes visible only once complete. Where it does
    /// not (SFTP, WebDAV), objects are written under a staging name and
    /// renamed, so a reader never sees half an object under its real name.
    pub fn atomic_writes(self) -> bool {
        !matches!(self, Scheme::Sftp | Scheme::WebDav)
    }
}

/// Names of the secrets Coffer reads, per kind of location. The same names
/// serve as environment variables and as keys of a credentials file.
pub const CREDENTIAL_NAMES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "COFFER_GCS_TOKEN",
    "COFFER_SFTP_KEY_FILE",
    "COFFER_WEBDAV_USERNAME",
    "COFFER_WEBDAV_PASSWORD",
    "COFFER_WEBDAV_TOKEN",
];

/// Secrets for storage locations. Never printed: `Debug` shows only names.
#[derive(Clone, Default)]
pub struct Credentials {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Credentials {
    pub fn new() -> Self {
        Self::default()
    }

    /// The known names present in the process environment.
    pub fn from_env() -> Self {
        let mut c = Self::new();
        for name in CREDENTIAL_NAMES {
            if let Ok(v) = std::env::var(name) {
                if !v.is_empty() {
                    c.values.insert((*name).to_string(), v);
                }
            }
        }
        c
    }

    /// Reads a credentials file: `NAME=value` lines, `#` comments, blank
    /// lines. Unknown names are refused so that a typo does not silently
    /// leave a location without its secret.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut c = Self::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(Error::Invalid(format!(
                    "{} line {}: expected NAME=value",
                    path.display(),
                    n + 1
                )));
            };
            let name = name.trim();
            if !CREDENTIAL_NAMES.contains(&name) {
                return Err(Error::Invalid(format!(
                    "{} line {}: unknown credential {name:?} (known: {})",
                    path.display(),
                    n + 1,
                    CREDENTIAL_NAMES.join(", ")
                )));
            }
            let value = value.trim().trim_matches('"');
            c.values.insert(name.to_string(), value.to_string());
        }
        Ok(c)
    }

    /// `self` with every value of `other` added where `self` has none.
    pub fn or(mut self, other: Credentials) -> Self {
        for (k, v) in other.values {
            self.values.entry(k).or_insert(v);
        }
        self
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.values.insert(name.to_string(), value.to_string());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Replaces every secret value in `text` so that no message Coffer
    /// prints or logs can carry one. Paths of key files are not secret.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (name, value) in &self.values {
            let is_path =
                name == "GOOGLE_APPLICATION_CREDENTIALS" || name == "COFFER_SFTP_KEY_FILE";
            if !is_path && value.len() >= 4 {
                out = out.replace(value.as_str(), "<redacted>");
            }
        }
        out
    }
}

/// A parsed location: the operator, its kind, and how to show it.
pub struct Resolved {
    pub operator: Operator,
    pub scheme: Scheme,
    /// The location without anything secret (there is nothing secret in a
    /// location, but user names and query options stay as given).
    pub display: String,
    /// For local paths, the directory (for free-space queries).
    pub local_root: Option<std::path::PathBuf>,
}

fn bad(location: &str, reason: impl Into<String>) -> Error {
    Error::BadLocation {
        location: without_password(location),
        reason: reason.into(),
    }
}

/// The location as it may be shown: a password someone put in the URL is
/// masked, so even the error refusing it does not repeat it.
fn without_password(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(mut url) if url.password().is_some() => {
            if url.set_password(Some("***")).is_ok() {
                url.to_string()
            } else {
                "(a location with a password)".to_string()
            }
        }
        _ => location.to_string(),
    }
}

/// The query options a scheme understands; anything else is a typo.
fn options(location: &str, url: &url::Url, known: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in url.query_pairs() {
        let k = k.to_string();
        let secretish = [
            "key",
            "secret",
            "password",
            "token",
            "sig",
            "sas",
            "credential",
        ];
        if secretish.iter().any(|s| k.to_ascii_lowercase().contains(s))
            && !known.contains(&k.as_str())
        {
            return Err(bad(
                location,
                format!(
                    "the option {k:?} looks like a secret; secrets never go in a location: \
                     set them in the environment or a credentials file ({})",
                    CREDENTIAL_NAMES.join(", ")
                ),
            ));
        }
        if !known.contains(&k.as_str()) {
            return Err(bad(
                location,
                format!(
                    "unknown option {k:?}; this kind of location takes: {}",
                    known.join(", ")
                ),
            ));
        }
        out.insert(k, v.to_string());
    }
    Ok(out)
}

/// The bucket or container (the URL's host) and the prefix under it.
fn bucket_and_root(location: &str, url: &url::Url, what: &str) -> Result<(String, String)> {
    let bucket = url.host_str().unwrap_or_default().to_string();
    if bucket.is_empty() {
        return Err(bad(
            location,
            format!(
                "the {what} name is missing ({}://{what}/prefix)",
                url.scheme()
            ),
        ));
    }
    Ok((bucket, root_of(url)))
}

/// The URL's path as an OpenDAL root: absolute, ending in `/`.
fn root_of(url: &url::Url) -> String {
    let path = url.path().trim_end_matches('/');
    format!("{}/", if path.is_empty() { "" } else { path })
}

fn refuse_password(location: &str, url: &url::Url, instead: &str) -> Result<()> {
    if url.password().is_some() {
        return Err(bad(
            location,
            format!("the location contains a password; remove it and set {instead} instead (environment or credentials file)"),
        ));
    }
    Ok(())
}

fn truthy(location: &str, name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(bad(
            location,
            format!("option {name} must be true or false, not {other:?}"),
        )),
    }
}

/// Parses a location and builds its operator (without any network access).
pub fn resolve(location: &str, creds: &Credentials) -> Result<Resolved> {
    if location.is_empty() {
        return Err(bad(location, "empty location"));
    }
    if !location.contains("://") {
        let root = std::path::absolute(location).map_err(|e| bad(location, e.to_string()))?;
        return fs(location, root);
    }
    let url = url::Url::parse(location).map_err(|e| bad(location, e.to_string()))?;
    let built = |operator: std::result::Result<Operator, opendal::Error>, scheme| {
        operator
            .map(|operator| Resolved {
                operator,
                scheme,
                display: location.to_string(),
                local_root: None,
            })
            .map_err(|e| bad(location, creds.redact(&e.to_string())))
    };
    match url.scheme() {
        "file" => {
            if url.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                return Err(bad(location, "file:// URLs must name a local path (file:///path)"));
            }
            let root = url
                .to_file_path()
                .map_err(|_| bad(location, "file:// URL does not name an absolute path"))?;
            fs(location, root)
        }
        "s3" => built(Operator::new(s3(location, &url, creds)?), Scheme::S3),
        "azblob" => built(Operator::new(azblob(location, &url, creds)?), Scheme::AzBlob),
        "gcs" => built(Operator::new(gcs(location, &url, creds)?), Scheme::Gcs),
        "sftp" => built(Operator::new(sftp(location, &url, creds)?), Scheme::Sftp),
        "webdav" | "webdav+http" => {
            built(Operator::new(webdav(location, &url, creds)?), Scheme::WebDav)
        }
        other => Err(bad(
            location,
            format!(
                "unknown kind of location {other:?}; use a path, file://, s3://, azblob://, gcs://, sftp://, webdav:// or webdav+http://"
            ),
        )),
    }
}

/// The builder for an S3 bucket (or an S3-compatible server).
fn s3(location: &str, url: &url::Url, creds: &Credentials) -> Result<opendal::services::S3> {
    refuse_password(location, url, "AWS_SECRET_ACCESS_KEY")?;
    let opts = options(location, url, &["endpoint", "region", "virtual-host-style"])?;
    let (bucket, root) = bucket_and_root(location, url, "bucket")?;
    let mut b = opendal::services::S3::default()
        .bucket(&bucket)
        .root(&root)
        // A custom endpoint without a region is a local S3-compatible
        // server; they accept any region in signatures.
        .region(opts.get("region").map_or("us-east-1", String::as_str));
    if let Some(e) = opts.get("endpoint") {
        b = b.endpoint(e);
    }
    if let Some(v) = opts.get("virtual-host-style") {
        if truthy(location, "virtual-host-style", v)? {
            b = b.enable_virtual_host_style();
        }
    }
    match (
        creds.get("AWS_ACCESS_KEY_ID"),
        creds.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => {
            b = b.access_key_id(id).secret_access_key(secret);
            if let Some(t) = creds.get("AWS_SESSION_TOKEN") {
                b = b.session_token(t);
            }
        }
        (None, None) => {}
        _ => {
            return Err(bad(
                location,
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be given together",
            ))
        }
    }
    Ok(b)
}

/// The builder for an Azure Blob Storage container.
fn azblob(
    location: &str,
    url: &url::Url,
    creds: &Credentials,
) -> Result<opendal::services::Azblob> {
    refuse_password(location, url, "AZURE_STORAGE_ACCOUNT_KEY")?;
    let opts = options(location, url, &["account", "endpoint"])?;
    let (container, root) = bucket_and_root(location, url, "container")?;
    let account = opts
        .get("account")
        .cloned()
        .ok_or_else(|| bad(location, "the storage account is missing (?account=NAME)"))?;
    let endpoint = opts
        .get("endpoint")
        .cloned()
        .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
    let mut b = opendal::services::Azblob::default()
        .container(&container)
        .root(&root)
        .endpoint(&endpoint)
        .account_name(&account);
    if let Some(k) = creds
        .get("AZURE_STORAGE_ACCOUNT_KEY")
        .or(creds.get("AZURE_STORAGE_KEY"))
    {
        b = b.account_key(k);
    }
    if let Some(s) = creds.get("AZURE_STORAGE_SAS_TOKEN") {
        b = b.sas_token(s);
    }
    Ok(b)
}

/// The builder for a Google Cloud Storage bucket.
fn gcs(location: &str, url: &url::Url, creds: &Credentials) -> Result<opendal::services::Gcs> {
    refuse_password(location, url, "GOOGLE_APPLICATION_CREDENTIALS")?;
    let opts = options(location, url, &["endpoint", "anonymous"])?;
    let (bucket, root) = bucket_and_root(location, url, "bucket")?;
    let mut b = opendal::services::Gcs::default()
        .bucket(&bucket)
        .root(&root);
    if let Some(e) = opts.get("endpoint") {
        b = b.endpoint(e);
    }
    if let Some(path) = creds.get("GOOGLE_APPLICATION_CREDENTIALS") {
        b = b.credential_path(path);
    }
    if let Some(t) = creds.get("COFFER_GCS_TOKEN") {
        b = b.token(t.to_string());
    }
    if let Some(v) = opts.get("anonymous") {
        if truthy(location, "anonymous", v)? {
            // A local emulator, or a public bucket: no metadata
            // server, no ambient credentials.
            b = b
                .skip_signature()
                .disable_vm_metadata()
                .disable_config_load();
        }
    }
    Ok(b)
}

/// The builder for a directory on an SFTP server.
fn sftp(location: &str, url: &url::Url, creds: &Credentials) -> Result<opendal::services::Sftp> {
    refuse_password(
        location,
        url,
        "COFFER_SFTP_KEY_FILE (SFTP logs in with a key)",
    )?;
    let opts = options(location, url, &["known-hosts"])?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad(location, "the host is missing (sftp://user@host:port/path)"))?;
    let endpoint = match url.port() {
        Some(p) => format!("ssh://{host}:{p}"),
        None => format!("ssh://{host}"),
    };
    let mut b = opendal::services::Sftp::default()
        .endpoint(&endpoint)
        .root(&root_of(url))
        .known_hosts_strategy(match opts.get("known-hosts").map(String::as_str) {
            None | Some("strict") => "strict",
            Some("accept-new") => "add",
            Some(other) => {
                return Err(bad(
                    location,
                    format!("known-hosts must be strict or accept-new, not {other:?}"),
                ))
            }
        });
    if !url.username().is_empty() {
        b = b.user(url.username());
    }
    if let Some(k) = creds.get("COFFER_SFTP_KEY_FILE") {
        b = b.key(k);
    }
    Ok(b)
}

/// The builder for a WebDAV collection.
fn webdav(
    location: &str,
    url: &url::Url,
    creds: &Credentials,
) -> Result<opendal::services::Webdav> {
    refuse_password(location, url, "COFFER_WEBDAV_PASSWORD")?;
    options(location, url, &[])?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad(location, "the host is missing (webdav://host/path)"))?;
    // webdav:// is HTTPS; plain HTTP must be asked for by name.
    let http = if url.scheme() == "webdav" {
        "https"
    } else {
        "http"
    };
    let endpoint = match url.port() {
        Some(p) => format!("{http}://{host}:{p}"),
        None => format!("{http}://{host}"),
    };
    let mut b = opendal::services::Webdav::default()
        .endpoint(&endpoint)
        .root(&root_of(url));
    let user = creds
        .get("COFFER_WEBDAV_USERNAME")
        .or((!url.username().is_empty()).then(|| url.username()));
    if let Some(u) = user {
        b = b.username(u);
    }
    if let Some(p) = creds.get("COFFER_WEBDAV_PASSWORD") {
        b = b.password(p);
    }
    if let Some(t) = creds.get("COFFER_WEBDAV_TOKEN") {
        b = b.token(t);
    }
    Ok(b)
}

/// Directory inside a local vault where objects are staged before an
/// atomic rename, so that a reader never sees a half-written object.
pub const STAGING_DIR: &str = ".staging";

fn fs(location: &str, root: std::path::PathBuf) -> Result<Resolved> {
    let root_str = root
        .to_str()
        .ok_or_else(|| bad(location, "the path is not valid UTF-8"))?
        .to_string();
    let builder = opendal::services::Fs::default()
        .root(&root_str)
        .atomic_write_dir(&format!("{root_str}/{STAGING_DIR}"));
    let operator = Operator::new(builder).map_err(|e| bad(location, e.to_string()))?;
    Ok(Resolved {
        operator,
        scheme: Scheme::Fs,
        display: root_str,
        local_root: Some(root),
    })
}

/// Classifies an OpenDAL error by its kind and the server's words.
pub fn classify_failure(e: &opendal::Error) -> StorageFailure {
    let text = describe(e).to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if any(&[
        "no space left",
        "enospc",
        "quota",
        "insufficient storage",
        "insufficientstorage",
        // The status, not any 507 in a port, a path or an object name.
        "status: 507",
        "storage full",
        "disk full",
    ]) {
        return StorageFailure::OutOfCapacity;
    }
    if any(&[
        "host key is known",
        "host key verification failed",
        "remote host identification has changed",
    ]) {
        return StorageFailure::UntrustedServer;
    }
    if any(&[
        "invalidaccesskeyid",
        "signaturedoesnotmatch",
        "authenticationfailed",
        "invalidauthenticationinfo",
        "failed to authenticate",
        "unauthorized",
        "status: 401",
        "permission denied (publickey",
        "authentication failed",
        "invalid_grant",
        "expiredtoken",
        "failed to load signing credential",
        "invalidclienttokenid",
    ]) {
        return StorageFailure::AuthenticationFailed;
    }
    if any(&[
        "connection refused",
        "dns error",
        "failed to lookup",
        "name or service not known",
        "network is unreachable",
        "no route to host",
        "timed out",
        "connection reset",
        "could not resolve",
        "connect error",
        "error trying to connect",
        "connection closed",
        "broken pipe",
    ]) {
        return StorageFailure::Unreachable;
    }
    if any(&[
        "nosuchbucket",
        "containernotfound",
        "no such file",
        "nosuchcontainer",
    ]) {
        return StorageFailure::PathNotFound;
    }
    match e.kind() {
        ErrorKind::NotFound => StorageFailure::PathNotFound,
        ErrorKind::PermissionDenied => StorageFailure::PermissionDenied,
        _ => StorageFailure::Other,
    }
}

/// One line for an OpenDAL error: its kind, what it was doing, the
/// service's message and the innermost cause (a refused connection, a
/// server's error body), without backtraces.
pub fn describe(e: &opendal::Error) -> String {
    let mut text = format!("{}: {}", e.kind(), e.message().trim());
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut innermost = None;
    while let Some(s) = source {
        innermost = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = innermost {
        let cause = cause.lines().next().unwrap_or_default().trim().to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_ports_and_names_do_not_decide_the_class() {
        let refused = opendal::Error::new(
            opendal::ErrorKind::Unexpected,
            "ssh error: connect to host 127.0.0.1 port 35507: Connection refused",
        );
        assert_eq!(classify_failure(&refused), StorageFailure::Unreachable);
        let full = opendal::Error::new(
            opendal::ErrorKind::Unexpected,
            "put object failed: status: 507 Insufficient Storage",
        );
        assert_eq!(classify_failure(&full), StorageFailure::OutOfCapacity);
    }
}
