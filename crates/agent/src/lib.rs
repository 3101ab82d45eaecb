//! The Coffer agent: a host that backs its own items up into a vault of a
//! Coffer service, with no storage credentials and no key to the vault.
//!
//! `coffer agent register` trades a one-time registration token for the
//! agent's identity ([`identity`]): a secret it presents on every call
//! and a write-only credential of the vault, kept mode 0600 in its state
//! directory. The service is reached over TLS pinned to the certificate
//! fingerprint the token names ([`client`]), so a host trusts exactly that
//! service. `coffer agent run` then asks the service for work and runs it
//! ([`run`]): a backup goes through the engine's write-only destination,
//! whose storage is the service's append-only store ([`store`]).

#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod identity;
pub mod report;
pub mod restore;
pub mod run;
pub mod store;

pub use error::{Error, Result};
pub use identity::Identity;
