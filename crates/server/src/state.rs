//! What the service knows: its configuration, its state database and the
//! service secret, with the registry of vaults and items kept there. Every
//! part of the service works on a [`State`]: the job table and its runners,
//! the scheduler, the API. It names none of them, so they can all sit above
//! it; the [`crate::service::Service`] that owns the running parts is built
//! on top.
//!
//! Vaults are opened afresh for every job and request that needs one: the
//! key may have been rotated since, and a generated key's slot opens in
//! milliseconds. Secrets are unsealed only for that moment.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use coffer_engine::location::{Credentials, CREDENTIAL_NAMES};
use coffer_engine::vault::JournalLocations;
use coffer_engine::{Storage, Vault, VaultKey};
use coffer_sources::{CommandSpec, DiskSpec, Hook, ItemDef, PostgresSpec};

pub use coffer_api_types::item::Item;
pub use coffer_api_types::vault::{Maintenance, VaultInfo};

use crate::alerts::Cause;
use crate::auth;
use crate::config::ServiceConfig;
use crate::db::{now, Db};
use crate::error::{Error, Result};
use crate::secret::ServiceSecret;

/// The service's configuration, database and secret.
pub struct State {
    pub config: ServiceConfig,
    pub db: Db,
    pub(crate) secret: ServiceSecret,
    /// How often each vault's policies changed in this process: the
    /// scheduler keeps a vault's journal state cached and re-reads it when
    /// this moves.
    policy_changes: Mutex<HashMap<String, u64>>,
    /// The jobs on agents, offered and running.
    pub agent_hub: crate::agent_hub::AgentHub,
    /// Vaults kept open for agents' uploads.
    pub agent_vaults: crate::agent_hub::OpenVaults,
    /// Bandwidth limits on agents' uploads.
    pub bandwidth: crate::bandwidth::Throttle,
    /// SHA-256 of the TLS certificate served, for registration tokens.
    pub tls_fingerprint: Option<String>,
}

/// A registered vault with its sealed key and sealed credentials.
type VaultRow = (VaultInfo, Vec<u8>, Vec<u8>);

/// Names for vaults and items appear in URLs, logs and the vault's journal.
pub fn validate_name(field: &str, name: &str) -> Result<()> {
    coffer_engine::policy::validate_name(name)
        .map_err(|m| Error::invalid(field, m.replace("policy name", "name")))
}

impl State {
    /// Opens the data directory: the state database and the service secret.
    pub fn open(config: ServiceConfig) -> Result<State> {
        crate::db::make_private_dir(&config.data_dir)?;
        let tls_fingerprint = match &config.tls_cert {
            Some(cert) => Some(crate::tls::fingerprint(cert)?),
            None => None,
        };
        if config.restore_roots.is_none() {
            crate::db::make_private_dir(&config.default_restore_root())?;
        }
        let secret = ServiceSecret::load_or_create(&config.data_dir)?;
        let db = Db::open(&config.db_path())?;
        let bandwidth = crate::bandwidth::Throttle::load(&db)?;
        Ok(State {
            config,
            db,
            secret,
            policy_changes: Mutex::new(HashMap::new()),
            agent_hub: Default::default(),
            agent_vaults: Default::default(),
            bandwidth,
            tls_fingerprint,
        })
    }

    /// Says that a vault's policies, assignments or protection changed.
    pub fn policies_changed(&self, vault: &str) {
        let mut changes = self
            .policy_changes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *changes.entry(vault.to_string()).or_default() += 1;
    }

    /// How often the vault's policies changed in this process.
    pub fn policy_generation(&self, vault: &str) -> u64 {
        let changes = self
            .policy_changes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        changes.get(vault).copied().unwrap_or(0)
    }

    /// The queued or running job of an item, if any.
    pub fn active_job_of_item(&self, item: &str) -> Result<Option<i64>> {
        Ok(self
            .db
            .conn()
            .query_row(
                "SELECT id FROM jobs WHERE item = ?1 AND state IN ('Queued', 'Running') ORDER BY id LIMIT 1",
                [item],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether scheduled jobs run: the setting the API changes, else the
    /// configuration.
    pub fn scheduler_enabled(&self) -> Result<bool> {
        Ok(
            match self.db.setting(SCHEDULER_ENABLED_SETTING)?.as_deref() {
                Some("false") => false,
                Some("true") => true,
                _ => self.config.scheduler,
            },
        )
    }

    pub fn set_scheduler_enabled(&self, on: bool) -> Result<()> {
        self.db
            .set_setting(SCHEDULER_ENABLED_SETTING, if on { "true" } else { "false" })
    }

    /// Creates the first administrator when there is no user. The password
    /// is `COFFER_ADMIN_PASSWORD` when set, else generated and returned so
    /// that it can be shown once.
    pub fn bootstrap_admin(&self) -> Result<Option<(String, Option<String>)>> {
        if auth::has_users(&self.db)? {
            return Ok(None);
        }
        let name = std::env::var("COFFER_ADMIN_USER").unwrap_or_else(|_| "admin".into());
        let (password, generated) = match std::env::var("COFFER_ADMIN_PASSWORD") {
            Ok(p) => (Zeroizing::new(p), false),
            Err(_) => (Zeroizing::new(auth::random_secret("cfp_")), true),
        };
        auth::create_user(&self.db, &name, &password, true)?;
        Ok(Some((name, generated.then(|| password.to_string()))))
    }

    /// Seals a secret the service keeps (see `secret`).
    pub(crate) fn seal_secret(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        self.secret.seal(purpose, plaintext)
    }

    pub(crate) fn open_secret(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.secret.open(purpose, sealed)
    }

    /// Records the vault's size at its location, for the metrics: one
    /// listing after each backup or prune.
    pub fn measure_vault(&self, vault: &Vault, name: &str) {
        match vault.storage().list("") {
            Ok(objects) => {
                let size: u64 = objects.iter().map(|o| o.size).sum();
                if let Err(e) = self
                    .db
                    .set_setting(&format!("vault_size:{name}"), &size.to_string())
                {
                    tracing::warn!(vault = name, "cannot record the vault's size: {e}");
                }
            }
            Err(e) => tracing::warn!(vault = name, "cannot measure the vault's size: {e}"),
        }
    }

    /// Compares the vault with what the service saw of it last and
    /// remembers what it holds now (see `sightings`): what is gone without
    /// Coffer having removed it raises an alert and is returned.
    pub fn witness_vault(&self, vault: &Vault, name: &str) -> Vec<String> {
        match crate::sightings::compare_and_remember(&self.db, name, vault) {
            Ok(missing) => {
                if let Some(first) = missing.first() {
                    let detail = format!(
                        "{} object(s) seen before are gone from the storage location, for example: {first}",
                        missing.len()
                    );
                    if let Err(e) =
                        self.raise_alert(Cause::DataCorruption, Some(name), None, &detail, None)
                    {
                        tracing::warn!(vault = name, "cannot raise the alert: {e}");
                    }
                }
                missing
            }
            Err(e) => {
                tracing::warn!(
                    vault = name,
                    "cannot compare the vault with what was seen of it: {e}"
                );
                Vec::new()
            }
        }
    }

    pub(crate) fn seal_key(&self, vault: &str, key_text: &str) -> Vec<u8> {
        self.secret
            .seal(&format!("vault-key:{vault}"), key_text.as_bytes())
    }

    pub(crate) fn seal_credentials(
        &self,
        vault: &str,
        creds: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>> {
        let json =
            Zeroizing::new(serde_json::to_vec(creds).map_err(|e| Error::Internal(e.to_string()))?);
        Ok(self
            .secret
            .seal(&format!("vault-credentials:{vault}"), &json))
    }

    pub(crate) fn check_credential_names(creds: &BTreeMap<String, String>) -> Result<()> {
        for name in creds.keys() {
            if !CREDENTIAL_NAMES.contains(&name.as_str()) {
                return Err(Error::invalid(
                    "credentials",
                    format!(
                        "unknown credential {name:?}; known names: {}",
                        CREDENTIAL_NAMES.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Registers a vault: creates it at `location` (`create`) or attaches an
    /// existing one, checking that `key` opens it. Without a key, `create`
    /// generates one, returned here to be shown once.
    pub fn add_vault(
        &self,
        name: &str,
        location: &str,
        credentials: BTreeMap<String, String>,
        key: Option<&str>,
        create: bool,
    ) -> Result<(VaultInfo, Option<Zeroizing<String>>)> {
        validate_name("name", name)?;
        if location.trim().is_empty() {
            return Err(Error::invalid("location", "required"));
        }
        Self::check_credential_names(&credentials)?;
        if self.vault_row(name)?.is_some() {
            return Err(Error::Conflict(format!("a vault named {name} exists")));
        }
        let creds = to_credentials(&credentials);
        let storage = Storage::open_with(location, &creds).map_err(|e| match e {
            coffer_engine::Error::BadLocation { reason, .. } => Error::invalid("location", reason),
            e => Error::Engine(e),
        })?;
        let key_given = key;
        let (key, generated) = match key {
            Some(text) => (
                VaultKey::from_text(text).map_err(|e| Error::invalid("key", e.to_string()))?,
                None,
            ),
            None if create => {
                let (key, text) = VaultKey::generate();
                (key, Some(text))
            }
            None => {
                return Err(Error::invalid(
                    "key",
                    "the key of the existing vault is required to attach it",
                ))
            }
        };
        let key_text = match (&generated, key_given) {
            (Some(t), _) => Zeroizing::new(t.to_string()),
            (None, Some(t)) => Zeroizing::new(t.trim().to_string()),
            (None, None) => return Err(Error::invalid("key", "required")),
        };
        let vault_id = if create {
            let header = Vault::init(&storage, &key, key.slot_kdf()).map_err(|e| match e {
                coffer_engine::Error::VaultExists { .. } => Error::invalid(
                    "location",
                    "a vault already exists there: attach it with create=false and its key",
                ),
                e => Error::Engine(e),
            })?;
            header.vault_id_hex()
        } else {
            let vault = Vault::open(storage, &key, None).map_err(|e| match e {
                coffer_engine::Error::WrongKey { .. } => {
                    Error::invalid("key", "this key does not open the vault at the location")
                }
                coffer_engine::Error::NoVault { .. } => {
                    Error::invalid("location", "no vault there: create one with create=true")
                }
                e => Error::Engine(e),
            })?;
            vault.header().vault_id_hex()
        };
        let info = VaultInfo {
            name: name.to_string(),
            location: location.to_string(),
            vault_id,
            key_fingerprint: key.fingerprint(),
            credential_names: credentials.keys().cloned().collect(),
            created: now(),
            maintenance: Maintenance {
                check_percent: coffer_api_types::vault::DEFAULT_CHECK_PERCENT,
                time_zone: "UTC".into(),
                ..Default::default()
            },
            usage_bytes: None,
        };
        self.db.conn().execute(
            "INSERT INTO vaults (name, location, vault_id, sealed_key, sealed_credentials, key_fingerprint, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                info.name,
                info.location,
                info.vault_id,
                self.seal_key(name, &key_text),
                self.seal_credentials(name, &credentials)?,
                info.key_fingerprint,
                info.created
            ],
        )?;
        Ok((info, generated))
    }

    fn vault_row(&self, name: &str) -> Result<Option<VaultRow>> {
        let row = self
            .db
            .conn()
            .query_row(
                "SELECT name, location, vault_id, key_fingerprint, created, sealed_key, sealed_credentials,
                 prune_schedule, check_schedule, check_percent, schedule_time_zone
                 FROM vaults WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        VaultInfo {
                            name: r.get(0)?,
                            location: r.get(1)?,
                            vault_id: r.get(2)?,
                            key_fingerprint: r.get(3)?,
                            created: r.get(4)?,
                            credential_names: Vec::new(),
                            maintenance: Maintenance {
                                prune_schedule: r.get(7)?,
                                check_schedule: r.get(8)?,
                                check_percent: r.get(9)?,
                                time_zone: r.get(10)?,
                            },
                            usage_bytes: None,
                        },
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, Vec<u8>>(6)?,
                    ))
                },
            )
            .optional()?;
        match row {
            Some((mut info, key, creds)) => {
                info.credential_names =
                    self.unseal_credentials(name, &creds)?.into_keys().collect();
                info.usage_bytes = self
                    .db
                    .setting(&format!("vault_size:{name}"))?
                    .and_then(|v| v.parse().ok());
                Ok(Some((info, key, creds)))
            }
            None => Ok(None),
        }
    }

    fn unseal_credentials(&self, vault: &str, sealed: &[u8]) -> Result<BTreeMap<String, String>> {
        let json = self
            .secret
            .open(&format!("vault-credentials:{vault}"), sealed)?;
        serde_json::from_slice(&json)
            .map_err(|e| Error::Internal(format!("stored credentials of {vault}: {e}")))
    }

    pub fn vault_info(&self, name: &str) -> Result<VaultInfo> {
        self.vault_row(name)?
            .map(|(info, _, _)| info)
            .ok_or_else(|| Error::NotFound(format!("vault {name}")))
    }

    pub fn list_vaults(&self) -> Result<Vec<VaultInfo>> {
        let names: Vec<String> = {
            let conn = self.db.conn();
            let mut stmt = conn.prepare("SELECT name FROM vaults ORDER BY name")?;
            let names = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            names
        };
        names.iter().map(|n| self.vault_info(n)).collect()
    }

    /// Opens a registered vault with the key and credentials the service
    /// holds for it.
    pub fn open_vault(&self, name: &str) -> Result<Vault> {
        let (info, sealed_key, sealed_creds) = self
            .vault_row(name)?
            .ok_or_else(|| Error::NotFound(format!("vault {name}")))?;
        if sealed_key.is_empty() {
            return Err(Error::Conflict(format!(
                "vault {name} has no key since it was recovered: give it with PUT /vaults/{name}/key (and its credentials, if it needs any)"
            )));
        }
        let key_text = self
            .secret
            .open(&format!("vault-key:{name}"), &sealed_key)?;
        let key = VaultKey::from_text(&String::from_utf8_lossy(&key_text))?;
        let creds = to_credentials(&self.unseal_credentials(name, &sealed_creds)?);
        let storage = Storage::open_with(&info.location, &creds)?;
        let journal_locations = JournalLocations::Configured(self.journal_locations(name)?);
        Ok(Vault::open_with(
            storage,
            &key,
            Some(&self.config.cache_dir()),
            journal_locations,
        )?)
    }

    /// Replaces the stored credentials of a vault (after a password change
    /// at the storage service, say). They are tried before being kept.
    pub fn set_credentials(&self, name: &str, credentials: BTreeMap<String, String>) -> Result<()> {
        Self::check_credential_names(&credentials)?;
        let info = self.vault_info(name)?;
        let storage = Storage::open_with(&info.location, &to_credentials(&credentials))?;
        Vault::read_header(&storage)?;
        self.db.conn().execute(
            "UPDATE vaults SET sealed_credentials = ?1 WHERE name = ?2",
            params![self.seal_credentials(name, &credentials)?, name],
        )?;
        Ok(())
    }

    /// Rotates the vault's key: a new key slot for `new_key` (generated
    /// when absent and returned once), the old slot removed, and the
    /// service's copy replaced. Raises the security alert.
    pub fn rotate_key(
        &self,
        name: &str,
        new_key: Option<&str>,
        by: &str,
    ) -> Result<(VaultInfo, Option<Zeroizing<String>>)> {
        let mut vault = self.open_vault(name)?;
        let (key, generated) = match new_key {
            Some(t) => (
                VaultKey::from_text(t).map_err(|e| Error::invalid("key", e.to_string()))?,
                None,
            ),
            None => {
                let (k, t) = VaultKey::generate();
                (k, Some(t))
            }
        };
        vault.rotate_key(&key, key.slot_kdf())?;
        let key_text = match (&generated, new_key) {
            (Some(t), _) => Zeroizing::new(t.to_string()),
            (None, Some(t)) => Zeroizing::new(t.trim().to_string()),
            (None, None) => return Err(Error::invalid("key", "required")),
        };
        self.db.conn().execute(
            "UPDATE vaults SET sealed_key = ?1, key_fingerprint = ?2 WHERE name = ?3",
            params![self.seal_key(name, &key_text), key.fingerprint(), name],
        )?;
        self.raise_alert(
            Cause::KeyRotated,
            Some(name),
            None,
            &format!(
                "{by} rotated the key of vault {name}; new key fingerprint {}",
                key.fingerprint()
            ),
            None,
        )?;
        Ok((self.vault_info(name)?, generated))
    }

    /// Takes a new copy of the key after a rotation done elsewhere; it must
    /// open the vault.
    pub fn set_key(&self, name: &str, key_text: &str) -> Result<VaultInfo> {
        let info = self.vault_info(name)?;
        let (_, _, sealed_creds) = self
            .vault_row(name)?
            .ok_or_else(|| Error::NotFound(format!("vault {name}")))?;
        let key =
            VaultKey::from_text(key_text).map_err(|e| Error::invalid("key", e.to_string()))?;
        let creds = to_credentials(&self.unseal_credentials(name, &sealed_creds)?);
        let storage = Storage::open_with(&info.location, &creds)?;
        Vault::open(storage, &key, None).map_err(|e| match e {
            coffer_engine::Error::WrongKey { .. } => {
                Error::invalid("key", "this key does not open the vault")
            }
            e => Error::Engine(e),
        })?;
        self.db.conn().execute(
            "UPDATE vaults SET sealed_key = ?1, key_fingerprint = ?2 WHERE name = ?3",
            params![
                self.seal_key(name, key_text.trim()),
                key.fingerprint(),
                name
            ],
        )?;
        self.vault_info(name)
    }

    /// Sets when the vault's prune and check run on their own.
    pub fn set_maintenance(&self, name: &str, m: &Maintenance) -> Result<VaultInfo> {
        self.vault_info(name)?;
        for (field, text) in [
            ("prune_schedule", &m.prune_schedule),
            ("check_schedule", &m.check_schedule),
        ] {
            if let Some(t) = text {
                coffer_engine::policy::Schedule::parse(t, m.time_zone.clone())
                    .map_err(|e| Error::invalid(field, e))?
                    .next_run(now())
                    .map_err(|e| Error::invalid("time_zone", e))?;
            }
        }
        if !(m.check_percent > 0.0 && m.check_percent <= 100.0) {
            return Err(Error::invalid("check_percent", "above 0 and at most 100"));
        }
        self.db.conn().execute(
            "UPDATE vaults SET prune_schedule = ?1, check_schedule = ?2, check_percent = ?3, schedule_time_zone = ?4,
             prune_slot = CASE WHEN prune_schedule IS ?1 THEN prune_slot ELSE NULL END,
             check_slot = CASE WHEN check_schedule IS ?2 THEN check_slot ELSE NULL END
             WHERE name = ?5",
            params![m.prune_schedule, m.check_schedule, m.check_percent, m.time_zone, name],
        )?;
        self.vault_info(name)
    }

    /// Forgets a vault (its data stays at the location). Refused while
    /// items use it.
    pub fn remove_vault(&self, name: &str) -> Result<()> {
        self.vault_info(name)?;
        let items: i64 = self.db.conn().query_row(
            "SELECT count(*) FROM items WHERE vault = ?1",
            [name],
            |r| r.get(0),
        )?;
        if items > 0 {
            return Err(Error::Conflict(format!(
                "{items} item(s) use vault {name}: remove them first"
            )));
        }
        self.db
            .conn()
            .execute("DELETE FROM vaults WHERE name = ?1", [name])?;
        // Access to a vault ends with it: a later vault of this name
        // starts with no one's roles.
        auth::remove_vault_roles(&self.db, name)?;
        crate::sightings::forget(&self.db, name)?;
        self.db
            .conn()
            .execute("DELETE FROM vault_locations WHERE vault = ?1", [name])?;
        Ok(())
    }

    /// Adds a protected item.
    pub fn add_item(&self, item: &Item) -> Result<Item> {
        validate_name("name", &item.name)?;
        self.vault_info(&item.vault)
            .map_err(|_| Error::invalid("vault", format!("no vault named {}", item.vault)))?;
        validate_item(item)?;
        if item.name.starts_with(SERVICE_ITEM_PREFIX) {
            return Err(Error::invalid(
                "name",
                format!("names starting with {SERVICE_ITEM_PREFIX} are kept for the service's own backups"),
            ));
        }
        if self.set(&item.name).is_ok() {
            return Err(Error::Conflict(format!(
                "an infrastructure set is named {}: items and sets share names",
                item.name
            )));
        }
        let created = now();
        let inserted = self.db.conn().execute(
            "INSERT INTO items (name, vault, kind, paths, excludes, enabled, retry_attempts, retry_delay_secs, created, spec, agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (name) DO NOTHING",
            params![
                item.name,
                item.vault,
                item.kind,
                json(&item.paths),
                json(&item.excludes),
                item.enabled,
                item.retry_attempts,
                item.retry_delay_secs as i64,
                created,
                spec_json(item),
                item.agent
            ],
        )?;
        if inserted == 0 {
            return Err(Error::Conflict(format!(
                "an item named {} exists",
                item.name
            )));
        }
        self.item(&item.name)
    }

    pub fn item(&self, name: &str) -> Result<Item> {
        self.items(Some(name))?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("item {name}")))
    }

    /// The item of this name if it belongs to `vault`: a point's manifest
    /// names its item, and another vault's item of the same name must
    /// never act on it.
    pub fn item_in_vault(&self, vault: &str, name: &str) -> Result<Option<Item>> {
        Ok(self.items(Some(name))?.pop().filter(|i| i.vault == vault))
    }

    /// Every item, or the one named.
    pub fn items(&self, name: Option<&str>) -> Result<Vec<Item>> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare(
            "SELECT name, vault, kind, paths, excludes, enabled, retry_attempts, retry_delay_secs, created, spec, agent
             FROM items WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
        )?;
        let items = stmt
            .query_map([name], |r| {
                let paths: String = r.get(3)?;
                let excludes: String = r.get(4)?;
                let spec: ItemSpec =
                    serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default();
                Ok(Item {
                    postgresql: spec.postgresql,
                    command: spec.command,
                    disk: spec.disk,
                    pre: spec.pre,
                    post: spec.post,
                    agent: r.get(10)?,
                    name: r.get(0)?,
                    vault: r.get(1)?,
                    kind: r.get(2)?,
                    paths: serde_json::from_str(&paths).unwrap_or_default(),
                    excludes: serde_json::from_str(&excludes).unwrap_or_default(),
                    enabled: r.get(5)?,
                    retry_attempts: r.get(6)?,
                    retry_delay_secs: r.get::<_, i64>(7)? as u64,
                    created: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(items)
    }

    /// Changes an item's paths, excludes, enabled flag or retry settings.
    pub fn update_item(&self, item: &Item) -> Result<Item> {
        validate_item(item)?;
        let n = self.db.conn().execute(
            "UPDATE items SET paths = ?1, excludes = ?2, enabled = ?3, retry_attempts = ?4, retry_delay_secs = ?5,
             spec = ?6 WHERE name = ?7",
            params![
                json(&item.paths),
                json(&item.excludes),
                item.enabled,
                item.retry_attempts,
                item.retry_delay_secs as i64,
                spec_json(item),
                item.name
            ],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("item {}", item.name)));
        }
        self.item(&item.name)
    }

    /// Stops managing an item. Its recovery points stay in the vault.
    pub fn remove_item(&self, name: &str) -> Result<()> {
        if self.active_job_of_item(name)?.is_some() {
            return Err(Error::Conflict(format!(
                "a job of item {name} is queued or running: cancel it first"
            )));
        }
        let n = self
            .db
            .conn()
            .execute("DELETE FROM items WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(Error::NotFound(format!("item {name}")));
        }
        Ok(())
    }

    /// The address agents are told to reach the service at.
    pub fn public_url(&self) -> String {
        match &self.config.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.config.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", self.config.listen)
            }
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// The setting that turns the scheduler off or on at run time.
pub(crate) const SCHEDULER_ENABLED_SETTING: &str = "scheduler_enabled";

/// Items whose names start with this hold the service's own configuration,
/// one per infrastructure set (`coffer-service.SET`).
pub const SERVICE_ITEM_PREFIX: &str = "coffer-service.";

/// The kind-specific settings of an item, stored as one JSON column.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ItemSpec {
    #[serde(default)]
    postgresql: Option<PostgresSpec>,
    #[serde(default)]
    command: Option<CommandSpec>,
    #[serde(default)]
    disk: Option<DiskSpec>,
    #[serde(default)]
    pre: Option<Hook>,
    #[serde(default)]
    post: Option<Hook>,
}

pub(crate) fn spec_json(item: &Item) -> String {
    json(&ItemSpec {
        postgresql: item.postgresql.clone(),
        command: item.command.clone(),
        disk: item.disk.clone(),
        pre: item.pre.clone(),
        post: item.post.clone(),
    })
}

/// What the sources crate needs to back an item up and restore it.
pub fn item_def(item: &Item) -> Result<ItemDef> {
    coffer_sources::ItemDef::of_item(item).map_err(|e| match e {
        coffer_sources::Error::Invalid { field, message } => Error::invalid(field, message),
        other => Error::invalid("kind", other.to_string()),
    })
}

fn validate_item(item: &Item) -> Result<()> {
    item_def(item)?.validate().map_err(|e| match e {
        coffer_sources::Error::Invalid { field, message } => Error::invalid(field, message),
        other => Error::invalid("kind", other.to_string()),
    })?;
    if item.retry_attempts > 10 {
        return Err(Error::invalid("retry_attempts", "at most 10"));
    }
    Ok(())
}

pub(crate) fn to_credentials(map: &BTreeMap<String, String>) -> Credentials {
    map.iter()
        .fold(Credentials::new(), |c, (k, v)| c.with(k, v))
}
