//! Write-only credentials in use: a key holder adding and listing them
//! ([`credentials`]), and a host backing up with one ([`target`], with
//! what it keeps between backups in [`cache`]). The credential itself and
//! the sealing are in `crate::credential`.

pub mod cache;
pub mod credentials;
pub mod target;

pub use credentials::WriterEntry;
pub use target::WriteOnlyVault;
