//! Real storage servers for tests, each started on its own port on
//! 127.0.0.1 with its own data directory, and killed and removed when the
//! handle is dropped, so tests using them run in parallel.
//!
//! | kind | server | from |
//! |---|---|---|
//! | S3 | moto in server mode | PyPI |
//! | Azure Blob | Azurite | npm |
//! | GCS | gcp-storage-emulator | PyPI |
//! | SFTP | OpenSSH's sshd | Debian |
//! | WebDAV | `rclone serve webdav` | Debian |
//!
//! `scripts/install-test-servers.sh` installs them (the README's test
//! command runs it); the npm and PyPI ones live under `COFFER_TEST_TOOLS`
//! (default `~/.cache/coffer-test-tools`), with the SSH keys the SFTP server
//! and its clients share. Nothing here imitates a storage API: the tests talk
//! to the same server programs operators run or test against.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account and key (public, documented by
/// Microsoft for the emulator).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    AzBlob,
    Gcs,
    Sftp,
    WebDav,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::S3, Kind::AzBlob, Kind::Gcs, Kind::Sftp, Kind::WebDav];
}

/// Where the installed servers live.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("COFFER_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/coffer-test-tools")
        })
}

fn require(path: &Path) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-servers.sh (scripts/test.sh does)",
        path.display()
    );
    path.to_path_buf()
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    /// A location URL for a fresh vault on this server.
    pub location: String,
    /// The secrets the location needs, as `NAME=value` pairs (environment
    /// variables or credentials-file lines).
    pub credentials: Vec<(String, String)>,
    pub port: u16,
    program: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    /// Server data and logs; removed on drop.
    pub dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn random_name() -> String {
    format!("t{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

impl Server {
    /// Starts a server of this kind, ready for a vault.
    pub fn start(kind: Kind) -> Server {
        Self::start_with(kind, &[])
    }

    /// Starts a server with extra arguments (for example `--read-only` for
    /// the WebDAV server).
    pub fn start_with(kind: Kind, extra: &[&str]) -> Server {
        let mut last = String::new();
        // A port found free can be taken by a parallel test before the
        // server binds it: try again with another.
        for _ in 0..4 {
            let dir = tempfile::Builder::new()
                .prefix("coffer-server-")
                .tempdir_in("/var/tmp")
                .expect("a temporary directory for the server");
            let port = free_port();
            let mut s = Self::configure(kind, port, dir, extra);
            match s.launch() {
                Ok(()) => {
                    s.prepare();
                    return s;
                }
                Err(e) => last = e,
            }
        }
        panic!("{kind:?} server did not start: {last}");
    }

    fn configure(kind: Kind, port: u16, dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let tools = tools_dir();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("server data directory");
        let data_str = data.to_string_lossy().to_string();
        let name = random_name();
        let (program, mut args, location, credentials): (PathBuf, Vec<String>, String, Vec<(String, String)>) = match kind {
            Kind::S3 => (
                require(&tools.join("venv/bin/moto_server")),
                vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()],
                format!("s3://coffer/{name}?endpoint=http://127.0.0.1:{port}&region=us-east-1"),
                vec![
                    ("AWS_ACCESS_KEY_ID".into(), "cofferaccess".into()),
                    ("AWS_SECRET_ACCESS_KEY".into(), "coffersecretkey123".into()),
                ],
            ),
            Kind::AzBlob => (
                require(&tools.join("node/node_modules/.bin/azurite-blob")),
                vec![
                    "--blobHost".into(),
                    "127.0.0.1".into(),
                    "--blobPort".into(),
                    port.to_string(),
                    "--location".into(),
                    data_str.clone(),
                    "--skipApiVersionCheck".into(),
                    "--silent".into(),
                ],
                format!(
                    "azblob://coffer/{name}?account={AZURITE_ACCOUNT}&endpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
                ),
                vec![("AZURE_STORAGE_ACCOUNT_KEY".into(), AZURITE_KEY.into())],
            ),
            Kind::Gcs => (
                require(&tools.join("venv/bin/gcp-storage-emulator")),
                vec![
                    "start".into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                    "--default-bucket".into(),
                    "coffer".into(),
                    "--quiet".into(),
                ],
                format!("gcs://coffer/{name}?endpoint=http://127.0.0.1:{port}&anonymous=true"),
                Vec::new(),
            ),
            Kind::Sftp => {
                let keys = tools.join("sshd");
                let config = dir.path().join("sshd_config");
                std::fs::write(
                    &config,
                    format!(
                        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
                         AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
                         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                         StrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
                        require(&keys.join("host_key")).display(),
                        require(&keys.join("authorized_keys")).display(),
                    ),
                )
                .expect("sshd config");
                // sshd insists on its privilege-separation directory.
                let _ = std::fs::create_dir_all("/run/sshd");
                let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
                (
                    require(Path::new("/usr/sbin/sshd")),
                    vec!["-D".into(), "-e".into(), "-f".into(), config.to_string_lossy().to_string()],
                    format!("sftp://{user}@127.0.0.1:{port}{data_str}/{name}"),
                    vec![(
                        "COFFER_SFTP_KEY_FILE".into(),
                        require(&keys.join("client_key")).to_string_lossy().to_string(),
                    )],
                )
            }
            Kind::WebDav => (
                PathBuf::from("rclone"),
                vec![
                    "serve".into(),
                    "webdav".into(),
                    data_str.clone(),
                    "--addr".into(),
                    format!("127.0.0.1:{port}"),
                    "--user".into(),
                    "coffer".into(),
                    "--pass".into(),
                    "webdav-test-password".into(),
                    "--config".into(),
                    "/dev/null".into(),
                ],
                format!("webdav+http://127.0.0.1:{port}/{name}"),
                vec![
                    ("COFFER_WEBDAV_USERNAME".into(), "coffer".into()),
                    ("COFFER_WEBDAV_PASSWORD".into(), "webdav-test-password".into()),
                ],
            ),
        };
        args.extend(extra.iter().map(|s| s.to_string()));
        Server {
            kind,
            location,
            credentials,
            port,
            program,
            args,
            child: None,
            dir,
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let log =
            std::fs::File::create(self.dir.path().join("server.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}: {}", self.log()));
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        Err(format!("not listening after 60 s: {}", self.log()))
    }

    /// What the server printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Creates the bucket or container the location names.
    fn prepare(&self) {
        match self.kind {
            Kind::S3 => {
                let status = http(self.port, "PUT", "/coffer", &[]);
                assert_eq!(status, 200, "creating the S3 bucket");
            }
            Kind::AzBlob => {
                let status = azure_create_container(self.port, "coffer");
                assert_eq!(status, 201, "creating the Azure container");
            }
            _ => {}
        }
    }

    /// Kills the server at once (SIGKILL), as a crash or power loss would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server with SIGTERM and waits for it, as a service manager
    /// would. (Azurite keeps its metadata in a store it saves every few
    /// seconds, so a SIGKILL loses recent containers and blobs: that is the
    /// emulator's durability, not the protocol's.)
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        // The old process may hold the port a moment after it died.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Err(e) = self.launch() {
            panic!("{:?} server did not restart: {e}", self.kind);
        }
    }

    /// The credentials as environment variables for a command.
    pub fn apply_env(&self, cmd: &mut Command) {
        for (k, v) in &self.credentials {
            cmd.env(k, v);
        }
    }

    /// A location on the same server that has never been used.
    pub fn fresh_location(&self) -> String {
        let old = self.location.clone();
        let name = random_name();
        // Every location above ends its path with the random name, then an
        // optional query.
        let (path, query) = match old.split_once('?') {
            Some((p, q)) => (p.to_string(), format!("?{q}")),
            None => (old.clone(), String::new()),
        };
        let base = path.rsplit_once('/').map_or(path.as_str(), |(b, _)| b);
        format!("{base}/{name}{query}")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One plain HTTP/1.1 request without a body; returns the status code.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, String)]) -> u16 {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(_) => return 0,
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if stream.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn azure_sign(text: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_KEY)
        .expect("the emulator key is base64");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length works");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// An account SAS token for Azurite's blob service granting only
/// `permissions` (for example "rl": read and list).
pub fn azure_sas(permissions: &str) -> String {
    let version = "2020-08-04";
    let expiry = "2099-01-01T00:00:00Z";
    let to_sign =
        format!("{AZURITE_ACCOUNT}\n{permissions}\nb\nsco\n\n{expiry}\n\nhttps,http\n{version}\n");
    let sig = azure_sign(&to_sign)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("sv={version}&ss=b&srt=sco&sp={permissions}&se={expiry}&spr=https,http&sig={sig}")
}

/// Creates a container on Azurite with a SharedKey-signed request (the
/// emulator checks signatures like Azure does).
fn azure_create_container(port: u16, container: &str) -> u16 {
    let date = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    );
    let signature = azure_sign(&string_to_sign);
    http(
        port,
        "PUT",
        &format!("/{AZURITE_ACCOUNT}/{container}?restype=container"),
        &[
            ("x-ms-date", date),
            ("x-ms-version", version.to_string()),
            (
                "Authorization",
                format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
            ),
        ],
    )
}

/// An SMTP server (aiosmtpd from PyPI) on 127.0.0.1 that requires STARTTLS
/// with a certificate from the test CA, and keeps every message it accepts
/// as a file in a Maildir. Killed and removed on drop.
pub struct SmtpServer {
    pub port: u16,
    child: Child,
    /// The PEM file of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    pub dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let tools = tools_dir();
        let python = require(&tools.join("venv/bin/python"));
        let cert = require(&tools.join("smtp/server.pem"));
        let key = require(&tools.join("smtp/server.key"));
        let ca_file = require(&tools.join("smtp/ca.pem"));
        let mut last = String::new();
        for _ in 0..4 {
            let dir = tempfile::Builder::new()
                .prefix("coffer-smtp-")
                .tempdir_in("/var/tmp")
                .expect("a temporary directory for the SMTP server");
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("server.log")).expect("smtp log");
            let log2 = log.try_clone().expect("smtp log");
            let child = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.path().join("maildir"))
                .arg("--tlscert")
                .arg(&cert)
                .arg("--tlskey")
                .arg(&key)
                .stdout(log)
                .stderr(log2)
                .spawn()
                .expect("aiosmtpd starts");
            let mut server = SmtpServer {
                port,
                child,
                ca_file: ca_file.clone(),
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last =
                std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
            let _ = server.child.kill();
        }
        panic!("the SMTP server did not start: {last}");
    }

    /// The messages received so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("maildir/new");
        let mut out: Vec<String> = std::fs::read_dir(&new)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request an [`HttpReceiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A small HTTP/1.1 server on 127.0.0.1 that records every request and
/// answers each with the next status of a script (then 200), for webhook
/// tests: a real socket and a real HTTP exchange.
pub struct HttpReceiver {
    pub port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HttpReceiver {
    /// Starts a receiver; `statuses` are answered in order, then 200.
    pub fn start(statuses: &[u16]) -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the receiver");
        let port = listener.local_addr().expect("its address").port();
        listener.set_nonblocking(true).expect("non-blocking accept");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        let mut script: std::collections::VecDeque<u16> = statuses.iter().copied().collect();
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let status = script.pop_front().unwrap_or(200);
                        if let Some(req) = serve_one(stream, status) {
                            if let Ok(mut v) = r.lock() {
                                v.push(req);
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        HttpReceiver {
            port,
            received,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn serve_one(mut stream: TcpStream, status: u16) -> Option<Received> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(reply.as_bytes());
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

/// A real PostgreSQL cluster from Debian's binaries (`postgresql` package),
/// created with `initdb` in its own directory and listening on 127.0.0.1 on
/// its own port, with trust authentication for its superuser `postgres`.
/// PostgreSQL refuses to run as root, so under root the cluster belongs to
/// `nobody` and its programs run through `setpriv`. Stopped and removed on
/// drop.
pub struct Postgres {
    pub port: u16,
    /// Directory of `initdb`, `pg_ctl`, `psql`, `pg_dump` …
    pub bin_dir: PathBuf,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The newest installed PostgreSQL's program directory.
pub fn postgres_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .expect("PostgreSQL is missing: run scripts/install-test-servers.sh (scripts/test.sh does)")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Postgres {
    /// A program of the cluster, run as the cluster's owner.
    pub fn as_owner(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        if is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub fn start() -> Postgres {
        let bin_dir = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("coffer-pg-")
            .tempdir_in("/var/tmp")
            .expect("a temporary directory for PostgreSQL");
        let mut pg = Postgres {
            port: 0,
            bin_dir,
            dir,
            child: None,
        };
        if is_root() {
            let ok = Command::new("chown")
                .arg("65534:65534")
                .arg(pg.dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "cannot give the cluster directory to nobody");
        }
        let data = pg.dir.path().join("data");
        let out = pg
            .as_owner("initdb")
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut last = String::new();
        for _ in 0..4 {
            pg.port = free_port();
            match pg.launch() {
                Ok(()) => return pg,
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn launch(&mut self) -> Result<(), String> {
        let data = self.dir.path().join("data");
        let log =
            std::fs::File::create(self.dir.path().join("server.log")).map_err(|e| e.to_string())?;
        let mut child = self
            .as_owner("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args([
                "-c",
                "fsync=off",
                "-c",
                "max_wal_senders=4",
                "-c",
                "wal_level=replica",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log()));
            }
            let ready = Command::new(self.bin_dir.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("not ready within 30 s: {}", self.log()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A libpq connection string for the superuser (no database).
    pub fn connection(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres", self.port)
    }

    /// Runs SQL through psql in `database`; returns its unaligned output.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin_dir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!("{} dbname={database}", self.connection()))
            .args(["-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server at once (like a lost machine).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A fast shutdown lets the server's own processes end with it.
        if let Some(c) = &mut self.child {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }
}

/// A process that writes to a SQLite database as fast as it can, as a live
/// application would: each transaction appends a row and raises a counter
/// in another table, so a copy that is not one transaction's view has a
/// counter that disagrees with its rows. Returns once the tables exist;
/// the caller kills it.
pub fn start_sqlite_writer(db: &Path) -> Child {
    let script = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, payload BLOB)")
c.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER)")
if c.execute("SELECT count(*) FROM counter").fetchone()[0] == 0:
    c.execute("INSERT INTO counter VALUES (0)")
print("ready", flush=True)
while True:
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO rows (payload) VALUES (randomblob(500))")
    c.execute("UPDATE counter SET n = n + 1")
    c.execute("COMMIT")
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(line.trim(), "ready", "the SQLite writer did not start");
    child
}
