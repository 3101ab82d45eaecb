//! This machine as the engine names it in what it writes: points, locks
//! and key slots record the host they were made on. It lives apart so
//! that the modules recording it need not import each other.

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
