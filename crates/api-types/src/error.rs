//! What went wrong, in the one vocabulary every entry point answers with.
//!
//! Each error of the engine and of the service names its [`ErrorCode`]; the
//! code alone decides the API's status and `code` field, the command line's
//! exit code, the hint shown to the person who can act on it, and whether
//! trying again unchanged can help. So the local command line, the REST
//! answer and the remote command line cannot drift apart: there is no
//! other table.
//!
//! Hints are worded for their reader ([`Audience`]): someone at the command
//! line fixes a flag or an environment variable, a client of the service
//! fixes a request. Most codes read the same for both.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Exit codes of `coffer`, documented in the README.
pub mod exit {
    /// Everything worked.
    pub const SUCCESS: u8 = 0;
    /// A general error (storage failure, bad input that reached the engine, …).
    pub const ERROR: u8 = 1;
    /// Wrong usage, as clap reports it.
    pub const USAGE: u8 = 2;
    /// The operation finished but some files could not be backed up or restored.
    pub const PARTIAL: u8 = 3;
    /// The key does not open the vault.
    pub const WRONG_KEY: u8 = 4;
    /// Damaged or missing vault objects were found.
    pub const DAMAGED: u8 = 5;
    /// The vault, or the recovery point asked for, does not exist.
    pub const NOT_FOUND: u8 = 6;
}

/// Why a storage operation failed, in the terms an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFailure {
    /// The bucket, container, share or directory does not exist.
    PathNotFound,
    /// No connection: wrong address, server down, network or firewall.
    Unreachable,
    /// The credentials were refused.
    AuthenticationFailed,
    /// The server could not prove who it is (an SSH host key that is not
    /// in known_hosts, or one that changed).
    UntrustedServer,
    /// The credentials are valid but may not do this.
    PermissionDenied,
    /// The disk, quota or account is full.
    OutOfCapacity,
    /// Anything else (the message says what).
    Other,
}

impl StorageFailure {
    pub const ALL: [StorageFailure; 7] = [
        StorageFailure::PathNotFound,
        StorageFailure::Unreachable,
        StorageFailure::AuthenticationFailed,
        StorageFailure::UntrustedServer,
        StorageFailure::PermissionDenied,
        StorageFailure::OutOfCapacity,
        StorageFailure::Other,
    ];

    /// The steps that fix it.
    pub fn remedy(self) -> &'static str {
        match self {
            StorageFailure::PathNotFound => {
                "create the bucket, container or directory (Coffer creates prefixes inside it, not the bucket itself), or correct the location"
            }
            StorageFailure::Unreachable => {
                "check the host name, port and endpoint in the location, that the storage server is running, and that the network and firewall let this machine reach it; then retry"
            }
            StorageFailure::AuthenticationFailed => {
                "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, GOOGLE_APPLICATION_CREDENTIALS, COFFER_SFTP_KEY_FILE, COFFER_WEBDAV_USERNAME/PASSWORD): they may be wrong, expired or for another account"
            }
            StorageFailure::UntrustedServer => {
                "check the server's host key fingerprint with its administrator, then add it to known_hosts (`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`); if the key changed unexpectedly, someone may be intercepting the connection. Add ?known-hosts=accept-new to trust a new server on first use"
            }
            StorageFailure::PermissionDenied => {
                "grant these credentials read, write, list and delete on the location (for example an S3 policy with s3:GetObject, s3:PutObject, s3:ListBucket, s3:DeleteObject, or write permission on the directory)"
            }
            StorageFailure::OutOfCapacity => {
                "free space on the location or raise its quota, then retry: nothing already stored is lost, and the next backup reuses what was uploaded"
            }
            StorageFailure::Other => {
                "retry; if it persists, run `coffer location test LOC` for a diagnosis"
            }
        }
    }
}

impl fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageFailure::PathNotFound => "path not found",
            StorageFailure::Unreachable => "unreachable",
            StorageFailure::AuthenticationFailed => "authentication failed",
            StorageFailure::UntrustedServer => {
                "authentication failed: the server's host key is not trusted"
            }
            StorageFailure::PermissionDenied => "permission denied",
            StorageFailure::OutOfCapacity => "out of capacity",
            StorageFailure::Other => "storage error",
        })
    }
}

/// Who reads a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Someone running `coffer` on a vault location.
    CommandLine,
    /// A client of the service's API (the console, the remote command line).
    Service,
}

/// Every kind of error Coffer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    // The request or the input.
    Invalid,
    Unauthenticated,
    Forbidden,
    TooManyRequests,
    NotFound,
    Conflict,
    // The vault.
    WrongKey,
    /// A write-only credential was given for what needs a vault key.
    WriteOnly,
    NoVault,
    VaultExists,
    UnsupportedVersion,
    NeedsUpgrade,
    Damaged,
    PointNotFound,
    AmbiguousPoint,
    Immutable,
    ImmutableLocked,
    TargetExists,
    BadLocation,
    Storage(StorageFailure),
    // What is protected, and this machine.
    SourceFailed,
    LocalIo,
    LocalDiskFull,
    Cancelled,
    /// A fault of the service itself.
    Internal,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub fn all() -> Vec<ErrorCode> {
        use ErrorCode::*;
        let mut all = vec![
            Invalid,
            Unauthenticated,
            Forbidden,
            TooManyRequests,
            NotFound,
            Conflict,
            WrongKey,
            WriteOnly,
            NoVault,
            VaultExists,
            UnsupportedVersion,
            NeedsUpgrade,
            Damaged,
            PointNotFound,
            AmbiguousPoint,
            Immutable,
            ImmutableLocked,
            TargetExists,
            BadLocation,
            SourceFailed,
            LocalIo,
            LocalDiskFull,
            Cancelled,
            Internal,
        ];
        all.extend(StorageFailure::ALL.map(Storage));
        all
    }

    /// The `code` field of the API's error answer. Coarser than the code
    /// itself: the API's codes were published before this type, and an
    /// error the API did not tell apart keeps answering `internal`.
    pub fn api_code(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Invalid => "invalid",
            Unauthenticated => "unauthenticated",
            Forbidden | WriteOnly => "forbidden",
            TooManyRequests => "too_many_requests",
            NotFound | PointNotFound => "not_found",
            Conflict | NeedsUpgrade => "conflict",
            Immutable | ImmutableLocked => "immutable",
            Storage(_) => "storage",
            WrongKey => "wrong_key",
            NoVault | VaultExists | UnsupportedVersion | Damaged | AmbiguousPoint
            | TargetExists | BadLocation | SourceFailed | LocalIo | LocalDiskFull | Cancelled
            | Internal => "internal",
        }
    }

    /// The code a client reads back from an error answer's `code` field:
    /// the most general code with that wire code, so its exit code and
    /// retry advice hold for every code that answers with it. An unknown
    /// wire code (a newer service) is [`ErrorCode::Internal`].
    pub fn from_api_code(wire: &str) -> ErrorCode {
        use ErrorCode::*;
        match wire {
            "invalid" => Invalid,
            "unauthenticated" => Unauthenticated,
            "forbidden" => Forbidden,
            "too_many_requests" => TooManyRequests,
            "not_found" => NotFound,
            "conflict" => Conflict,
            "immutable" => Immutable,
            "storage" => Storage(StorageFailure::Other),
            "wrong_key" => WrongKey,
            _ => Internal,
        }
    }

    /// The API's HTTP status.
    pub fn http_status(self) -> u16 {
        match self.api_code() {
            "invalid" => 400,
            "unauthenticated" => 401,
            "forbidden" => 403,
            "not_found" => 404,
            "conflict" | "immutable" => 409,
            "too_many_requests" => 429,
            // The vault's storage or key failed, not the service: a gateway's fault.
            "storage" | "wrong_key" => 502,
            _ => 500,
        }
    }

    /// The command line's exit code.
    pub fn exit_code(self) -> u8 {
        use ErrorCode::*;
        match self {
            WrongKey | WriteOnly => exit::WRONG_KEY,
            Damaged => exit::DAMAGED,
            NoVault | PointNotFound | AmbiguousPoint | NotFound => exit::NOT_FOUND,
            _ => exit::ERROR,
        }
    }

    /// Whether the same request, unchanged, can succeed later.
    pub fn retryable(self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            TooManyRequests
                | Storage(StorageFailure::Unreachable | StorageFailure::Other)
                | Cancelled
                | Internal
        )
    }

    /// What the reader can do about it.
    pub fn hint(self, audience: Audience) -> &'static str {
        use Audience::*;
        use ErrorCode::*;
        match (self, audience) {
            (Invalid, CommandLine) => {
                "correct the value the message names and run the command again (`--help` lists what each option takes)"
            }
            (Invalid, Service) => {
                "correct the request field the error names and send the request again"
            }
            (Unauthenticated, _) => {
                "send `Authorization: Bearer <token>` (COFFER_TOKEN for the command line) or log in at POST /api/v1/auth/login"
            }
            (Forbidden, _) => "ask an owner of the vault or an administrator for a role that allows it",
            (TooManyRequests, _) => "wait for the time the message names, then try again",
            (NotFound, _) => "check the name: the list of that kind of thing shows what exists",
            (Conflict, _) => {
                "the message names what is in the way: wait for the running job to finish, or choose another name"
            }
            (WrongKey, CommandLine) => {
                "check COFFER_KEY or --key-file: the key must be one that `key generate`, `key add` or `key rotate` made for this vault"
            }
            (WrongKey, Service) => {
                "the key the service holds does not open the vault: give it the current key (PUT /api/v1/vaults/{name}/key)"
            }
            (WriteOnly, _) => {
                "a write-only credential only adds backups (`coffer backup`): reading, restoring, checking and changing the vault need one of its vault keys"
            }
            (NoVault, _) => {
                "check the location, or create a vault there with `coffer vault init --location LOC`"
            }
            (VaultExists, _) => "use the existing vault, or pick an empty location",
            (UnsupportedVersion, _) => "install a newer coffer to use this vault",
            (NeedsUpgrade, _) => {
                "`coffer vault upgrade --vault LOC` moves the vault to the current format; make sure every machine writing to it runs this coffer first"
            }
            (Damaged, _) => "run `coffer check --read-data` to find every damaged object",
            (PointNotFound, CommandLine) => "list the points with `coffer points list`",
            (PointNotFound, Service) => "list the points with GET /api/v1/vaults/{name}/points",
            (AmbiguousPoint, _) => "give more characters of the point id",
            (Immutable, _) => {
                "immutability protects recovery points until their retention ends: wait for them to expire, or have an owner turn it off (`coffer vault set --immutability disabled`) unless it is locked"
            }
            (ImmutableLocked, _) => {
                "a locked vault stays immutable for good: points leave only when their retention ends, and retention can only be lengthened"
            }
            (TargetExists, CommandLine) => {
                "restore into an empty directory, or pass --overwrite to replace existing files"
            }
            (TargetExists, Service) => {
                "restore into an empty directory, or set overwrite in the request to replace existing files"
            }
            (BadLocation, CommandLine) => {
                "a location is a path or a URL: /srv/backups/v1, s3://bucket/prefix?endpoint=…&region=…, azblob://container/prefix?account=…, gcs://bucket/prefix, sftp://user@host:port/path, webdav://host/path; secrets go in the environment or --credentials FILE"
            }
            (BadLocation, Service) => {
                "a location is a path or a URL: /srv/backups/v1, s3://bucket/prefix?endpoint=…&region=…, azblob://container/prefix?account=…, gcs://bucket/prefix, sftp://user@host:port/path, webdav://host/path; secrets go in the vault's credentials, never in the location"
            }
            (Storage(failure), _) => failure.remedy(),
            (SourceFailed, _) => {
                "run the item's command by hand to see why it fails; nothing was committed"
            }
            (LocalIo, _) => {
                "check the path the message names: it must exist and be readable (and writable, for a restore) by the user coffer runs as"
            }
            (LocalDiskFull, _) => {
                "free space on the local disk the message names, then run again; nothing was committed"
            }
            (Cancelled, _) => "it was cancelled before it finished; nothing was committed: run it again",
            (Internal, _) => {
                "this is a fault of the service: try again, and if it persists, report it with the service's log"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_hint_for_every_reader() {
        for code in ErrorCode::all() {
            for audience in [Audience::CommandLine, Audience::Service] {
                let hint = code.hint(audience);
                assert!(
                    hint.len() > 20 && !hint.ends_with('.'),
                    "{code:?} for {audience:?}: {hint:?} is not a hint"
                );
            }
        }
    }

    #[test]
    fn statuses_and_exit_codes_follow_the_code() {
        for code in ErrorCode::all() {
            let status = code.http_status();
            assert!((400..600).contains(&status), "{code:?}: {status}");
            assert_ne!(code.exit_code(), exit::SUCCESS, "{code:?}");
            assert_ne!(code.exit_code(), exit::PARTIAL, "{code:?}");
        }
        assert_eq!(ErrorCode::WrongKey.exit_code(), exit::WRONG_KEY);
        assert_eq!(ErrorCode::WrongKey.http_status(), 502);
        assert_eq!(ErrorCode::PointNotFound.api_code(), "not_found");
        assert_eq!(ErrorCode::PointNotFound.http_status(), 404);
        assert_eq!(ErrorCode::PointNotFound.exit_code(), exit::NOT_FOUND);
        assert_eq!(ErrorCode::Damaged.exit_code(), exit::DAMAGED);
        assert!(ErrorCode::Storage(StorageFailure::Unreachable).retryable());
        assert!(!ErrorCode::WrongKey.retryable());
    }

    #[test]
    fn a_wire_code_reads_back_as_a_code_with_the_same_answer() {
        for code in ErrorCode::all() {
            let back = ErrorCode::from_api_code(code.api_code());
            assert_eq!(back.api_code(), code.api_code(), "{code:?}");
            assert_eq!(back.http_status(), code.http_status(), "{code:?}");
        }
        assert_eq!(
            ErrorCode::from_api_code("from_the_future"),
            ErrorCode::Internal
        );
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: invalid, unauthenticated, forbidden, not_found,
    /// conflict, immutable, too_many_requests, storage, wrong_key, internal.
    pub code: String,
    pub message: String,
    /// The request field that is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What to do about it.
    pub hint: String,
    /// Whether the same request, unchanged, can succeed later (the service
    /// was busy, the storage unreachable).
    pub retryable: bool,
}
