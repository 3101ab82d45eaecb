//! Write-only credentials (format 5): hosts that add recovery points to a
//! vault they can neither read nor destroy.
//!
//! [`secret`] is what the host holds and the keys derived from it,
//! [`slot`] is how the vault remembers a credential, and [`session`] is
//! how a writer seals objects that only key holders open. docs/SECURITY.md
//! has the threat model, docs/FORMAT.md §3a and §4a the bytes.

pub mod credentials;
pub mod secret;
pub mod session;
pub mod slot;

pub use credentials::WriterEntry;
pub use secret::{WriterCredential, WriterSecret, CREDENTIAL_PREFIX};
pub use session::{
    session_key, session_object_keys, vault_keypair, SessionHeader, VaultPrivateKey, WriterSession,
};
pub use slot::{WriterSlot, WRITER_FORMAT};
