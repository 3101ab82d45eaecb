//! Who may do what.
//!
//! Users log in with a password (Argon2id hash) and get a session for the
//! console, or use API tokens for the CLI and scripts. Tokens and sessions
//! are random 256-bit strings shown once; only their BLAKE3 hashes are
//! stored, so the database cannot be used to log in.
//!
//! Roles are assigned per vault (or for every vault, `*`). An administrator
//! manages users and service-wide settings and holds every role. The
//! [`Action`] table below is the whole policy: every endpoint names the
//! action it performs and [`Principal::require`] decides.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
pub use coffer_api_types::access::Token;
pub use coffer_api_types::access::User;
use rand::RngCore;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::db::{now, Db};
use crate::error::{Error, Result};

/// A role on a vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including access control and immutability.
    Owner,
    /// Everything but access control and immutability.
    Contributor,
    /// Back up and restore; no deletes, no policy or item changes.
    BackupOperator,
    /// View only.
    Reader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Contributor => "contributor",
            Role::BackupOperator => "backup_operator",
            Role::Reader => "reader",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [
            Role::Owner,
            Role::Contributor,
            Role::BackupOperator,
            Role::Reader,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }

    /// Whether this role allows `action`. No vault role allows
    /// [`Action::ServerAccess`]: what runs on the server, or which of its
    /// paths are read and written, is an administrator's decision, since
    /// the service runs it with its own rights (often root) on a machine
    /// that holds every vault's secrets.
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        if action == ServerAccess {
            return false;
        }
        match self {
            Role::Owner => true,
            Role::Contributor => !matches!(action, AccessControl | Immutability),
            Role::BackupOperator => matches!(action, View | Backup | Restore | CancelJob),
            Role::Reader => matches!(action, View),
        }
    }
}

/// What a request does to a vault and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the vault, its items, points, jobs and alerts.
    View,
    /// Start a backup.
    Backup,
    /// Restore from a point.
    Restore,
    /// Cancel a running job.
    CancelJob,
    /// Add or change items.
    ManageItems,
    /// Create, change, assign or delete policies.
    ManagePolicies,
    /// Delete points or items with their data, run prune.
    DeleteData,
    /// Rotate the key, change the location's credentials, resolve alerts.
    ManageVault,
    /// Assign roles on the vault.
    AccessControl,
    /// Enable or lock immutability.
    Immutability,
    /// Define what the service runs or touches on its own machine: create
    /// items, change their paths, commands, scripts or PostgreSQL settings,
    /// create vaults (a location may be a server path), test locations,
    /// restore outside the configured restore roots. Administrators only.
    ServerAccess,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub name: String,
    pub is_admin: bool,
    /// Roles by vault name; `*` applies to every vault.
    pub roles: Vec<(String, Role)>,
}

impl Principal {
    /// The strongest role that covers `vault`.
    pub fn role_on(&self, vault: &str) -> Option<Role> {
        if self.is_admin {
            return Some(Role::Owner);
        }
        self.roles
            .iter()
            .filter(|(v, _)| v == vault || v == "*")
            .map(|(_, r)| *r)
            .min_by_key(|r| *r as u8)
    }

    /// Refuses unless the caller's role on `vault` allows `action`. A vault
    /// the caller has no role on looks the same as one that does not exist.
    pub fn require(&self, vault: &str, action: Action) -> Result<()> {
        match self.role_on(vault) {
            Some(_) if self.is_admin => Ok(()),
            Some(role) if role.allows(action) => Ok(()),
            Some(_) if action == Action::ServerAccess => Err(Error::Forbidden(
                "only an administrator may do this: it runs a program or names a path on the service's machine".into(),
            )),
            Some(role) => Err(Error::Forbidden(format!(
                "your role on vault {vault} ({}) does not allow this",
                role.as_str()
            ))),
            None => Err(Error::NotFound(format!("vault {vault}"))),
        }
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin {
            Ok(())
        } else {
            Err(Error::Forbidden("only an administrator may do this".into()))
        }
    }

    /// Refuses unless the caller is an administrator, for what names paths
    /// or programs on the service's machine outside any one vault (new
    /// vaults, location tests).
    pub fn require_server_access(&self) -> Result<()> {
        if self.is_admin {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only an administrator may do this: it names a path or a host the service's machine reaches".into(),
            ))
        }
    }

    /// Whether the caller may see `vault` at all.
    pub fn sees(&self, vault: &str) -> bool {
        self.role_on(vault).is_some()
    }
}

/// Hashes a password with Argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("cannot hash the password: {e}")))
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Passwords shorter than this are refused.
pub const MIN_PASSWORD_LEN: usize = 12;

pub fn validate_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "1 to 64 characters: letters, digits, '.', '_', '-', '@'",
        ))
    }
}

pub fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid(
            "password",
            format!("at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

/// A random secret with a prefix saying what it is (`cft_` token, `cfs_`
/// session, `cfp_` generated password).
pub fn random_secret(prefix: &str) -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

fn secret_hash(secret: &str) -> Vec<u8> {
    blake3::hash(secret.as_bytes()).as_bytes().to_vec()
}

pub fn create_user(db: &Db, name: &str, password: &str, is_admin: bool) -> Result<User> {
    validate_user_name(name)?;
    validate_password(password)?;
    let hash = hash_password(password)?;
    let created = now();
    let conn = db.conn();
    let inserted = conn.execute(
        "INSERT INTO users (name, password_hash, is_admin, created) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO NOTHING",
        params![name, hash, is_admin, created],
    )?;
    if inserted == 0 {
        return Err(Error::Conflict(format!("a user named {name} exists")));
    }
    Ok(User {
        id: conn.last_insert_rowid(),
        name: name.to_string(),
        is_admin,
        created,
    })
}

pub fn list_users(db: &Db) -> Result<Vec<User>> {
    let conn = db.conn();
    let mut stmt = conn.prepare("SELECT id, name, is_admin, created FROM users ORDER BY name")?;
    let users = stmt
        .query_map([], |r| {
            Ok(User {
                id: r.get(0)?,
                name: r.get(1)?,
                is_admin: r.get(2)?,
                created: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(users)
}

pub fn user_by_name(db: &Db, name: &str) -> Result<User> {
    db.conn()
        .query_row(
            "SELECT id, name, is_admin, created FROM users WHERE name = ?1",
            [name],
            |r| {
                Ok(User {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    is_admin: r.get(2)?,
                    created: r.get(3)?,
                })
            },
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("user {name}")))
}

pub fn delete_user(db: &Db, name: &str) -> Result<()> {
    let conn = db.conn();
    let admins: i64 = conn.query_row(
        "SELECT count(*) FROM users WHERE is_admin AND name != ?1",
        [name],
        |r| r.get(0),
    )?;
    let is_admin: Option<bool> = conn
        .query_row("SELECT is_admin FROM users WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    match is_admin {
        None => Err(Error::NotFound(format!("user {name}"))),
        Some(true) if admins == 0 => Err(Error::Conflict(
            "this is the last administrator: make another user an administrator first".into(),
        )),
        Some(_) => {
            conn.execute("DELETE FROM users WHERE name = ?1", [name])?;
            Ok(())
        }
    }
}

pub fn set_password(db: &Db, name: &str, password: &str) -> Result<()> {
    validate_password(password)?;
    let hash = hash_password(password)?;
    let conn = db.conn();
    let changed = conn.execute(
        "UPDATE users SET password_hash = ?1 WHERE name = ?2",
        params![hash, name],
    )?;
    if changed == 0 {
        return Err(Error::NotFound(format!("user {name}")));
    }
    // A new password ends every session and API token of the old one: if
    // the password leaked, so may have what was made with it.
    conn.execute(
        "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
        [name],
    )?;
    conn.execute(
        "DELETE FROM tokens WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
        [name],
    )?;
    Ok(())
}

/// Whether `password` is the current password of `name`.
pub fn is_current_password(db: &Db, name: &str, password: &str) -> Result<bool> {
    let hash: Option<Option<String>> = db
        .conn()
        .query_row(
            "SELECT password_hash FROM users WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    let hash = hash.flatten().unwrap_or_else(|| decoy_hash().to_string());
    Ok(password_matches(&hash, password))
}

/// Removes the role assignments of a vault that is being removed, so that
/// a later vault of the same name starts with none.
pub fn remove_vault_roles(db: &Db, vault: &str) -> Result<()> {
    db.conn()
        .execute("DELETE FROM role_assignments WHERE vault = ?1", [vault])?;
    Ok(())
}

/// Whether any user exists (first start creates the administrator).
pub fn has_users(db: &Db) -> Result<bool> {
    let n: i64 = db
        .conn()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
    Ok(n > 0)
}

/// The outcome of a password check.
pub enum Login {
    Ok(User),
    /// Wrong name or password (the two are not told apart).
    Failed,
    /// Too many recent failures for this name.
    Locked {
        retry_after_secs: u64,
    },
}

/// How failed logins are limited.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures of one name from one address within the window after
    /// which that pair is refused until the oldest leaves the window.
    pub max_failures: u32,
    pub window_secs: u64,
}

impl LoginLimits {
    /// Failures from one address, over every name, after which the
    /// address is refused for the rest of the window.
    fn per_address(self) -> i64 {
        i64::from(self.max_failures) * 4
    }
}

/// A hash checked when the name is unknown, so that an unknown name costs
/// the same Argon2id work as a known one and cannot be told apart by time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_secret("decoy_")).unwrap_or_default())
}

/// Checks a name and password from `address`. Failures are counted per
/// name and address, and per address: an attacker elsewhere can use up
/// only their own attempts, never lock the real user (the administrator
/// above all) out of an address they have not failed from; an address
/// that tries many names is refused for the window.
pub fn check_password(
    db: &Db,
    name: &str,
    password: &str,
    address: &str,
    limits: LoginLimits,
) -> Result<Login> {
    let window = limits.window_secs as i64;
    let since = now() - window;
    let locked_until = |(count, oldest): (i64, Option<i64>), max: i64| {
        (count >= max).then(|| {
            let retry = oldest.map_or(window, |t| t + window - now());
            Login::Locked {
                retry_after_secs: retry.max(1) as u64,
            }
        })
    };
    let pair: (i64, Option<i64>) = db.conn().query_row(
        "SELECT count(*), min(time) FROM login_failures WHERE name = ?1 AND address = ?2 AND time > ?3",
        params![name, address, since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let from_address: (i64, Option<i64>) = db.conn().query_row(
        "SELECT count(*), min(time) FROM login_failures WHERE address = ?1 AND time > ?2",
        params![address, since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some(locked) = locked_until(pair, i64::from(limits.max_failures))
        .or_else(|| locked_until(from_address, limits.per_address()))
    {
        return Ok(locked);
    }
    let found: Option<(i64, String, Option<String>, bool, i64)> = db
        .conn()
        .query_row(
            "SELECT id, name, password_hash, is_admin, created FROM users WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    // The hash is checked outside the lock: Argon2id takes tens of ms. A
    // name without a password is checked against the decoy too.
    let hash = found
        .as_ref()
        .and_then(|f| f.2.clone())
        .unwrap_or_else(|| decoy_hash().to_string());
    let matches = password_matches(&hash, password);
    let user =
        found
            .filter(|f| matches && f.2.is_some())
            .map(|(id, name, _, is_admin, created)| User {
                id,
                name,
                is_admin,
                created,
            });
    match user {
        Some(u) => {
            db.conn().execute(
                "DELETE FROM login_failures WHERE name = ?1 AND address = ?2",
                params![name, address],
            )?;
            Ok(Login::Ok(u))
        }
        None => {
            let conn = db.conn();
            conn.execute(
                "INSERT INTO login_failures (name, time, address) VALUES (?1, ?2, ?3)",
                params![name, now(), address],
            )?;
            conn.execute(
                "DELETE FROM login_failures WHERE time < ?1",
                [now() - 86_400],
            )?;
            Ok(Login::Failed)
        }
    }
}

/// Failed logins of any name within the last `window_secs`.
pub fn recent_failures(db: &Db, window_secs: u64) -> Result<u32> {
    let n: i64 = db.conn().query_row(
        "SELECT count(*) FROM login_failures WHERE time > ?1",
        [now() - window_secs as i64],
        |r| r.get(0),
    )?;
    Ok(n as u32)
}

/// Starts a console session; returns its secret (the cookie value).
pub fn create_session(db: &Db, user_id: i64, hours: u64) -> Result<String> {
    let secret = random_secret("cfs_");
    let t = now();
    let conn = db.conn();
    conn.execute(
        "INSERT INTO sessions (hash, user_id, created, expires) VALUES (?1, ?2, ?3, ?4)",
        params![secret_hash(&secret), user_id, t, t + hours as i64 * 3600],
    )?;
    conn.execute("DELETE FROM sessions WHERE expires < ?1", [t])?;
    Ok(secret)
}

pub fn end_session(db: &Db, secret: &str) -> Result<()> {
    db.conn().execute(
        "DELETE FROM sessions WHERE hash = ?1",
        [secret_hash(secret)],
    )?;
    Ok(())
}

/// Creates a token for `user_id`; the secret is returned once.
pub fn create_token(
    db: &Db,
    user_id: i64,
    name: &str,
    expires: Option<i64>,
) -> Result<(Token, String)> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(Error::invalid("name", "1 to 100 characters"));
    }
    let secret = random_secret("cft_");
    let created = now();
    let conn = db.conn();
    conn.execute(
        "INSERT INTO tokens (user_id, name, hash, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user_id, name, secret_hash(&secret), created, expires],
    )?;
    let id = conn.last_insert_rowid();
    let user: String = conn.query_row("SELECT name FROM users WHERE id = ?1", [user_id], |r| {
        r.get(0)
    })?;
    Ok((
        Token {
            id,
            user,
            name: name.to_string(),
            created,
            expires,
            last_used: None,
        },
        secret,
    ))
}

pub fn list_tokens(db: &Db, user_id: Option<i64>) -> Result<Vec<Token>> {
    let conn = db.conn();
    let mut stmt = conn.prepare(
        "SELECT t.id, u.name, t.name, t.created, t.expires, t.last_used
         FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR t.user_id = ?1 ORDER BY t.id",
    )?;
    let tokens = stmt
        .query_map([user_id], |r| {
            Ok(Token {
                id: r.get(0)?,
                user: r.get(1)?,
                name: r.get(2)?,
                created: r.get(3)?,
                expires: r.get(4)?,
                last_used: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(tokens)
}

/// Deletes a token; `owner` limits it to that user's tokens.
pub fn delete_token(db: &Db, id: i64, owner: Option<i64>) -> Result<()> {
    let n = db.conn().execute(
        "DELETE FROM tokens WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)",
        params![id, owner],
    )?;
    if n == 0 {
        return Err(Error::NotFound(format!("token {id}")));
    }
    Ok(())
}

/// The principal behind a bearer token or session secret, if it is valid.
pub fn authenticate(db: &Db, secret: &str) -> Result<Option<Principal>> {
    let hash = secret_hash(secret);
    let t = now();
    let conn = db.conn();
    let user_id: Option<i64> = if secret.starts_with("cfs_") {
        conn.query_row(
            "SELECT user_id FROM sessions WHERE hash = ?1 AND expires > ?2",
            params![hash, t],
            |r| r.get(0),
        )
        .optional()?
    } else {
        let found: Option<i64> = conn
            .query_row(
                "SELECT user_id FROM tokens WHERE hash = ?1 AND (expires IS NULL OR expires > ?2)",
                params![hash, t],
                |r| r.get(0),
            )
            .optional()?;
        if found.is_some() {
            conn.execute(
                "UPDATE tokens SET last_used = ?1 WHERE hash = ?2",
                params![t, hash],
            )?;
        }
        found
    };
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let (name, is_admin): (String, bool) = conn.query_row(
        "SELECT name, is_admin FROM users WHERE id = ?1",
        [user_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt = conn.prepare("SELECT vault, role FROM role_assignments WHERE user_id = ?1")?;
    let roles = stmt
        .query_map([user_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter_map(|(v, r)| Role::parse(&r).map(|r| (v, r)))
        .collect();
    Ok(Some(Principal {
        user_id,
        name,
        is_admin,
        roles,
    }))
}

/// A role assignment as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleAssignment {
    pub id: i64,
    pub user: String,
    /// A vault name, or `*` for every vault.
    pub vault: String,
    pub role: Role,
}

pub fn assign_role(db: &Db, user: &str, vault: &str, role: Role) -> Result<RoleAssignment> {
    let u = user_by_name(db, user)?;
    let conn = db.conn();
    conn.execute(
        "INSERT INTO role_assignments (user_id, vault, role) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, vault) DO UPDATE SET role = excluded.role",
        params![u.id, vault, role.as_str()],
    )?;
    let id: i64 = conn.query_row(
        "SELECT id FROM role_assignments WHERE user_id = ?1 AND vault = ?2",
        params![u.id, vault],
        |r| r.get(0),
    )?;
    Ok(RoleAssignment {
        id,
        user: u.name,
        vault: vault.to_string(),
        role,
    })
}

pub fn list_role_assignments(db: &Db, vault: Option<&str>) -> Result<Vec<RoleAssignment>> {
    let conn = db.conn();
    let mut stmt = conn.prepare(
        "SELECT a.id, u.name, a.vault, a.role FROM role_assignments a JOIN users u ON u.id = a.user_id
         WHERE ?1 IS NULL OR a.vault = ?1 ORDER BY a.vault, u.name",
    )?;
    let list = stmt
        .query_map([vault], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter_map(|(id, user, vault, role)| {
            Role::parse(&role).map(|role| RoleAssignment {
                id,
                user,
                vault,
                role,
            })
        })
        .collect();
    Ok(list)
}

/// The assignment with this id (to check the caller's rights on its vault).
pub fn role_assignment(db: &Db, id: i64) -> Result<RoleAssignment> {
    list_role_assignments(db, None)?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| Error::NotFound(format!("role assignment {id}")))
}

pub fn remove_role_assignment(db: &Db, id: i64) -> Result<()> {
    let n = db
        .conn()
        .execute("DELETE FROM role_assignments WHERE id = ?1", [id])?;
    if n == 0 {
        return Err(Error::NotFound(format!("role assignment {id}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_allows_exactly_its_actions() {
        use Action::*;
        let all = [
            View,
            Backup,
            Restore,
            CancelJob,
            ManageItems,
            ManagePolicies,
            DeleteData,
            ManageVault,
            AccessControl,
            Immutability,
            ServerAccess,
        ];
        let allowed = |r: Role| all.iter().filter(|a| r.allows(**a)).count();
        assert_eq!(allowed(Role::Owner), all.len() - 1);
        assert!(!Role::Owner.allows(ServerAccess));
        assert_eq!(allowed(Role::Contributor), all.len() - 3);
        assert!(!Role::Contributor.allows(AccessControl));
        assert!(!Role::Contributor.allows(Immutability));
        assert!(Role::BackupOperator.allows(Backup) && Role::BackupOperator.allows(Restore));
        assert!(!Role::BackupOperator.allows(DeleteData));
        assert!(!Role::BackupOperator.allows(ManagePolicies));
        assert_eq!(allowed(Role::Reader), 1);
    }

    #[test]
    fn tokens_and_sessions_authenticate_and_are_stored_hashed() {
        let db = Db::in_memory().unwrap();
        let u = create_user(&db, "ann", "a long password", false).unwrap();
        let (_, secret) = create_token(&db, u.id, "ci", None).unwrap();
        let p = authenticate(&db, &secret).unwrap().unwrap();
        assert_eq!(p.name, "ann");
        assert!(authenticate(&db, "cft_nothing").unwrap().is_none());
        let stored: Vec<u8> = db
            .conn()
            .query_row("SELECT hash FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, secret.as_bytes());
        let s = create_session(&db, u.id, 1).unwrap();
        assert!(authenticate(&db, &s).unwrap().is_some());
        end_session(&db, &s).unwrap();
        assert!(authenticate(&db, &s).unwrap().is_none());
        assert_eq!(p.role_on("v"), None);
        assign_role(&db, "ann", "*", Role::Reader).unwrap();
        assign_role(&db, "ann", "v", Role::Contributor).unwrap();
        let p = authenticate(&db, &secret).unwrap().unwrap();
        assert_eq!(p.role_on("v"), Some(Role::Contributor));
        assert_eq!(p.role_on("w"), Some(Role::Reader));
    }

    #[test]
    fn failed_logins_lock_the_name_for_the_window() {
        let db = Db::in_memory().unwrap();
        create_user(&db, "bob", "a long password", false).unwrap();
        let limits = LoginLimits {
            max_failures: 3,
            window_secs: 60,
        };
        for _ in 0..3 {
            assert!(matches!(
                check_password(&db, "bob", "wrong", "10.0.0.9", limits).unwrap(),
                Login::Failed
            ));
        }
        assert!(matches!(
            check_password(&db, "bob", "a long password", "10.0.0.9", limits).unwrap(),
            Login::Locked { .. }
        ));
        // The attacker's failures do not lock bob out of his own address.
        assert!(matches!(
            check_password(&db, "bob", "a long password", "10.0.0.1", limits).unwrap(),
            Login::Ok(_)
        ));
        assert_eq!(recent_failures(&db, 60).unwrap(), 3);
        // An address trying many names is refused for every name.
        for n in 0..9 {
            check_password(&db, &format!("guess{n}"), "x", "10.0.0.9", limits).unwrap();
        }
        assert!(matches!(
            check_password(&db, "carol", "x", "10.0.0.9", limits).unwrap(),
            Login::Locked { .. }
        ));
        db.conn().execute("DELETE FROM login_failures", []).unwrap();
        assert!(matches!(
            check_password(&db, "bob", "a long password", "10.0.0.9", limits).unwrap(),
            Login::Ok(_)
        ));
    }
}
