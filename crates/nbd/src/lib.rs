//! The Network Block Device protocol, as Coffer needs it.
//!
//! Disk images reach Coffer through NBD: `qemu-nbd` and QEMU's own NBD
//! server export a qcow2 image, a running VM's point-in-time view, and the
//! dirty bitmaps that say which blocks changed (`qemu:dirty-bitmap:NAME`
//! meta contexts). [`client`] speaks to them: fixed newstyle negotiation,
//! structured replies, block status, reads (pipelined), writes. The
//! published Rust crates either stop before structured replies and block
//! status or serve only, so the protocol is written here, small and
//! checked against real QEMU tools in the tests.
//!
//! Every byte a server sends is treated as hostile: lengths are bounded
//! before anything is allocated, replies must match a request in flight,
//! and extents must lie inside what was asked.

#![forbid(unsafe_code)]

pub mod client;
pub mod proto;

pub use client::{Address, Client, Extent, ReadRequest};

/// What can go wrong talking NBD.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed or was closed.
    #[error("NBD connection: {0}")]
    Io(#[source] std::io::Error),
    /// The peer broke the protocol.
    #[error("NBD protocol error: {0}")]
    Protocol(String),
    /// The server refused an option during negotiation.
    #[error("the NBD server refused {what}: {message}")]
    Refused { what: String, message: String },
    /// The server answered a command with an error.
    #[error("the NBD server failed a {command} at offset {offset}: {message}")]
    Command {
        command: &'static str,
        offset: u64,
        errno: u32,
        message: String,
    },
    /// The request does not fit the export.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn from_io(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return Error::Protocol("the peer closed the connection".into());
        }
        Error::Io(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
