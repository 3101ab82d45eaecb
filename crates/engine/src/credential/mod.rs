//! Write-only credentials (format 5), the part every layer below the
//! vault needs: [`secret`] is what a host holds and the keys derived from
//! it, [`slot`] is how the vault remembers a credential, [`session`] is how
//! a writer seals objects that only key holders open, and [`objects`] is
//! how those objects are framed. What uses them (adding credentials,
//! backing up with one, reading what writers stored) is in
//! `crate::writer` and `crate::vault`. docs/SECURITY.md has the threat
//! model, docs/FORMAT.md §3a, §4a and §5a the bytes.

pub mod objects;
pub mod secret;
pub mod session;
pub mod slot;

pub use secret::{WriterCredential, WriterSecret};
pub use session::{
    session_key, session_object_keys, vault_keypair, SessionHeader, VaultPrivateKey, WriterSession,
};
pub use slot::{WriterSlot, WRITER_FORMAT};
