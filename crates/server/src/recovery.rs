//! Cloud recovery: the service's configuration as a recovery point, and a
//! whole deployment brought back from a location and its key.
//!
//! Every set backup ends with a point holding `service.json`: the set's
//! vault (where it is and which key opens it, never a key or a storage
//! secret) and nothing of other vaults, that vault's items and sets, the
//! users who may log in to it (administrators and holders of a role on it)
//! with those roles, notification targets (without their secrets), and the
//! set point's record: which item went into which point, and how. Password
//! and token hashes are sealed under a key derived from the vault's master
//! keys, so whoever may read the point through the service reads the rest
//! of it but not them; `coffer recover`, holding the vault key, opens them.
//! Recovery on a fresh machine reads that record, writes the configuration
//! into the data directory (an empty one, or one that has other vaults but
//! not this one), and puts every item back through its kind. A drill does
//! the same into a scratch area and measures it.

pub use coffer_api_types::set::SetRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use coffer_api_types::set::{ItemStatus, SetPointInfo};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use coffer_engine::location::Credentials;
use coffer_engine::restore::RestoreProgress;
use coffer_engine::{Point, Storage, Vault, VaultKey};

use crate::db::now;
use crate::error::{Error, Result};
use crate::sets::{InfraSet, SET_POINT_TAG, SET_TAG};
use crate::state::{item_def, Item, State, SCHEDULER_ENABLED_SETTING};

/// The configuration's file in its point.
pub const CONFIG_FILE: &str = "service.json";
/// The newest configuration format this release reads and writes.
pub const EXPORT_FORMAT: u32 = 3;
/// The purpose the password and token hashes are sealed for.
const SECRETS_PURPOSE: &str = "service secrets";

use crate::recovery_format::SealedSecrets;
pub use crate::recovery_format::*;

/// The configuration a set point of `vault_name` needs: that vault, its
/// items and sets, the users who may log in to it, the notification
/// targets; secret-derived values sealed under `vault`'s key.
pub fn export(
    service: &State,
    vault: &Vault,
    vault_name: &str,
    set_point: Option<SetRecord>,
) -> Result<ServiceExport> {
    let vaults = service
        .list_vaults()?
        .into_iter()
        .filter(|v| v.name == vault_name)
        .map(|v| VaultExport {
            name: v.name,
            location: v.location,
            vault_id: v.vault_id,
            key_fingerprint: v.key_fingerprint,
            credential_names: v.credential_names,
            created: v.created,
            maintenance: v.maintenance,
        })
        .collect();
    let conn = service.db.conn();
    let mut passwords = BTreeMap::new();
    let users = conn
        .prepare(
            "SELECT name, password_hash, is_admin, created FROM users u
             WHERE is_admin OR EXISTS (SELECT 1 FROM role_assignments r WHERE r.user_id = u.id AND (r.vault = ?1 OR r.vault = '*'))
             ORDER BY name",
        )?
        .query_map([vault_name], |r| {
            Ok((
                UserExport {
                    name: r.get(0)?,
                    password_hash: None,
                    is_admin: r.get(2)?,
                    created: r.get(3)?,
                },
                r.get::<_, Option<String>>(1)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(|(user, hash)| {
            if let Some(h) = hash {
                passwords.insert(user.name.clone(), h);
            }
            user
        })
        .collect::<Vec<_>>();
    let roles = conn
        .prepare(
            "SELECT u.name, r.vault, r.role FROM role_assignments r JOIN users u ON u.id = r.user_id
             WHERE r.vault = ?1 OR r.vault = '*' ORDER BY u.name, r.vault",
        )?
        .query_map([vault_name], |r| {
            Ok(RoleExport {
                user: r.get(0)?,
                vault: r.get(1)?,
                role: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let tokens = conn
        .prepare(
            "SELECT u.name, t.name, t.hash, t.created, t.expires FROM tokens t JOIN users u ON u.id = t.user_id
             ORDER BY t.id",
        )?
        .query_map([], |r| {
            Ok(TokenExport {
                user: r.get(0)?,
                name: r.get(1)?,
                hash: hex::encode(r.get::<_, Vec<u8>>(2)?),
                created: r.get(3)?,
                expires: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|t| users.iter().any(|u| u.name == t.user))
        .collect();
    let notification_targets = conn
        .prepare(
            "SELECT name, destination, min_severity, events, enabled, created, sealed_secret IS NOT NULL
             FROM notification_targets ORDER BY name",
        )?
        .query_map([], |r| {
            Ok(TargetExport {
                name: r.get(0)?,
                destination: r.get(1)?,
                min_severity: r.get(2)?,
                events: r.get(3)?,
                enabled: r.get(4)?,
                created: r.get(5)?,
                had_secret: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(conn);
    let (agents, agent_hashes) = crate::recovery_fleet::export_agents(service, vault_name)?;
    let secrets = serde_json::to_vec(&SealedSecrets {
        passwords,
        tokens,
        agents: agent_hashes,
        tls: crate::recovery_fleet::own_tls_identity(service),
    })
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(ServiceExport {
        format: EXPORT_FORMAT,
        software: format!("coffer {}", env!("CARGO_PKG_VERSION")),
        exported_at: now(),
        set_point,
        vaults,
        items: service
            .items(None)?
            .into_iter()
            .filter(|i| i.vault == vault_name)
            .collect(),
        sets: service
            .sets(None)?
            .into_iter()
            .filter(|s| s.vault == vault_name)
            .collect(),
        users,
        roles,
        tokens: Vec::new(),
        notification_targets,
        scheduler_enabled: service.scheduler_enabled()?,
        sealed_secrets: Some(hex::encode(vault.seal_value(SECRETS_PURPOSE, &secrets))),
        agents,
        agent_bandwidth: Some(service.bandwidth.limits()),
        tls: None,
    })
}

/// Puts the sealed password and token hashes of a format 2 export back
/// where format 1 kept them in the clear.
fn unseal_secrets(vault: &Vault, export: &mut ServiceExport) -> Result<()> {
    let Some(sealed) = export.sealed_secrets.take() else {
        return Ok(());
    };
    let damaged = |e: String| Error::Internal(format!("the configuration's sealed secrets: {e}"));
    let bytes = hex::decode(sealed).map_err(|e| damaged(e.to_string()))?;
    let plain = vault.open_value(SECRETS_PURPOSE, &bytes)?;
    let secrets: SealedSecrets =
        serde_json::from_slice(&plain).map_err(|e| damaged(e.to_string()))?;
    for user in &mut export.users {
        user.password_hash = secrets.passwords.get(&user.name).cloned();
    }
    export.tokens = secrets.tokens;
    for agent in &mut export.agents {
        agent.hash = secrets.agents.get(&agent.name).cloned();
    }
    export.tls = secrets.tls;
    Ok(())
}

/// Reads the configuration stored in a point of a `coffer-service.SET` item.
pub fn read_export(vault: &Vault, point: &Point) -> Result<ServiceExport> {
    let mut bytes = Vec::new();
    coffer_engine::restore::read_file(vault, point, &Path::new("/").join(CONFIG_FILE), &mut bytes)?;
    #[derive(Deserialize)]
    struct Version {
        format: u32,
        #[serde(default)]
        software: String,
    }
    let version: Version = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Internal(format!(
            "the configuration in point {} is not readable: {e}",
            point.id.to_hex()
        ))
    })?;
    if version.format > EXPORT_FORMAT {
        return Err(Error::Config(format!(
            "the configuration in point {} was written by {} in format {}, newer than this coffer's {EXPORT_FORMAT}: recover with that release or a newer one",
            point.id.to_hex(),
            version.software,
            version.format
        )));
    }
    let mut export: ServiceExport = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Internal(format!(
            "the configuration in point {} is not readable: {e}",
            point.id.to_hex()
        ))
    })?;
    unseal_secrets(vault, &mut export)?;
    Ok(export)
}

fn tag_value<'a>(point: &'a Point, prefix: &str) -> Option<&'a str> {
    point
        .manifest
        .tags
        .iter()
        .find_map(|t| t.strip_prefix(prefix))
}

/// Every set point of a vault, newest first.
pub fn set_points(vault: &Vault) -> Result<Vec<SetPointInfo>> {
    let points = vault.points()?;
    let mut groups: BTreeMap<String, Vec<&Point>> = BTreeMap::new();
    for p in &points {
        if let Some(id) = tag_value(p, SET_POINT_TAG) {
            groups.entry(id.to_string()).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    for (id, members) in groups {
        let set = members
            .iter()
            .find_map(|p| tag_value(p, SET_TAG))
            .unwrap_or_default()
            .to_string();
        let time = members
            .iter()
            .map(|p| p.manifest.time.secs)
            .max()
            .unwrap_or(0);
        let service = members.iter().find(|p| {
            p.manifest
                .item
                .starts_with(crate::state::SERVICE_ITEM_PREFIX)
        });
        let present: BTreeMap<String, String> = members
            .iter()
            .map(|p| (p.id.to_hex(), p.manifest.item.clone()))
            .collect();
        let (mut items, mut why) = match service.map(|p| read_export(vault, p)) {
            Some(Ok(export)) => match export.set_point {
                Some(record) => (record.items, None),
                None => (
                    Vec::new(),
                    Some("the configuration has no set record".to_string()),
                ),
            },
            Some(Err(e)) => (
                Vec::new(),
                Some(format!("the configuration is unreadable: {e}")),
            ),
            None => (
                Vec::new(),
                Some("the service's configuration was not stored".to_string()),
            ),
        };
        for status in &mut items {
            match &status.point {
                Some(p) if !present.contains_key(p) => {
                    why.get_or_insert(format!("the point of item {} is gone", status.item));
                    status.status = "Missing".into();
                }
                None => {
                    why.get_or_insert(format!(
                        "item {} failed: {}",
                        status.item,
                        status.message.clone().unwrap_or_default()
                    ));
                }
                _ => {}
            }
        }
        out.push(SetPointInfo {
            set,
            id,
            time,
            items,
            service_point: service.map(|p| p.id.to_hex()),
            ready_for_cloud_recovery: why.is_none(),
            not_ready_because: why,
        });
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    Ok(out)
}

/// A set point by its id or a unique prefix of it.
pub fn find_set_point(vault: &Vault, spec: &str) -> Result<SetPointInfo> {
    let all = set_points(vault)?;
    let matching: Vec<SetPointInfo> = if spec == "latest" {
        all.into_iter().take(1).collect()
    } else {
        all.into_iter().filter(|p| p.id.starts_with(spec)).collect()
    };
    match matching.len() {
        0 => Err(Error::NotFound(format!("set point {spec}"))),
        1 => Ok(matching
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(spec.into()))?),
        n => Err(Error::invalid(
            "point",
            format!("{spec:?} matches {n} set points: give more characters"),
        )),
    }
}

/// What of an export goes into a service: everything into an empty one;
/// into one that has other vaults, only the recovered vault with its
/// items, sets and roles, and the users it has that the service lacks.
struct Scope<'a> {
    fresh: bool,
    vaults: Vec<&'a VaultExport>,
    items: Vec<&'a Item>,
    sets: Vec<&'a InfraSet>,
    roles: Vec<&'a RoleExport>,
}

fn scope<'a>(service: &State, export: &'a ServiceExport, vault_id: &str) -> Result<Scope<'a>> {
    let present = service.list_vaults()?;
    let fresh = present.is_empty() && service.items(None)?.is_empty();
    if fresh {
        return Ok(Scope {
            fresh,
            vaults: export.vaults.iter().collect(),
            items: export.items.iter().collect(),
            sets: export.sets.iter().collect(),
            roles: export.roles.iter().collect(),
        });
    }
    let vault = export
        .vaults
        .iter()
        .find(|v| v.vault_id == vault_id)
        .ok_or_else(|| {
            Error::Config(format!(
                "the configuration does not describe vault {vault_id}, whose set point it is in"
            ))
        })?;
    if let Some(v) = present.iter().find(|v| v.vault_id == vault_id) {
        return Err(Error::Conflict(format!(
            "this data directory has this vault's configuration already (vault {}): recover into an empty one (--data-dir), or name one --item",
            v.name
        )));
    }
    let items: Vec<&Item> = export
        .items
        .iter()
        .filter(|i| i.vault == vault.name)
        .collect();
    let sets: Vec<&InfraSet> = export
        .sets
        .iter()
        .filter(|s| s.vault == vault.name)
        .collect();
    let mut taken = Vec::new();
    if present.iter().any(|v| v.name == vault.name) {
        taken.push(format!("vault {}", vault.name));
    }
    for item in &items {
        if !service.items(Some(&item.name))?.is_empty() {
            taken.push(format!("item {}", item.name));
        }
    }
    for set in &sets {
        if !service.sets(Some(&set.name))?.is_empty() {
            taken.push(format!("set {}", set.name));
        }
    }
    if !taken.is_empty() {
        return Err(Error::Conflict(format!(
            "this data directory already uses the names {} for something else: recover into another one (--data-dir), or rename those first",
            taken.join(", ")
        )));
    }
    Ok(Scope {
        fresh,
        vaults: vec![vault],
        items,
        sets,
        // A role on every vault (`*`) comes with any of them.
        roles: export
            .roles
            .iter()
            .filter(|r| r.vault == vault.name || r.vault == "*")
            .collect(),
    })
}

/// Writes a recovered configuration into a service (see `Scope`).
/// `vault_id`'s vault gets `key_text` and `credentials`.
pub fn import(
    service: &State,
    export: &ServiceExport,
    vault_id: &str,
    key_text: &str,
    credentials: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let scope = scope(service, export, vault_id)?;
    let mut notes = Vec::new();
    let mut conn = service.db.conn();
    let tx = conn.transaction()?;
    let recovered = Recovered {
        key_text,
        credentials,
        vault_id,
    };
    recovered.insert_vaults(&tx, service, &scope, &mut notes)?;
    insert_items_and_sets(&tx, &scope)?;
    insert_users(&tx, export, &scope, &mut notes)?;
    insert_targets(&tx, export, &mut notes)?;
    let vaults: Vec<&str> = scope.vaults.iter().map(|v| v.name.as_str()).collect();
    let tls = export.tls.as_ref();
    crate::recovery_fleet::insert_agents(&tx, service, &export.agents, tls, &vaults, &mut notes)?;
    let bandwidth = scope
        .fresh
        .then(|| crate::recovery_fleet::insert_bandwidth(&tx, export, &mut notes));
    if scope.fresh {
        // The same setting `State::set_scheduler_enabled` writes (this
        // wrote another key before, which nothing read).
        let enabled = if export.scheduler_enabled {
            "true"
        } else {
            "false"
        };
        crate::db::put_setting(&tx, SCHEDULER_ENABLED_SETTING, enabled)?;
    }
    tx.commit()?;
    if let Some(limits) = bandwidth.transpose()?.flatten() {
        service.bandwidth.adopt(limits)?;
    }
    Ok(notes)
}

/// The vault a recovery opened, with what opened it.
struct Recovered<'a> {
    key_text: &'a str,
    credentials: &'a BTreeMap<String, String>,
    vault_id: &'a str,
}

impl Recovered<'_> {
    /// Registers the vaults in scope: the recovered one with its key and
    /// credentials, the others waiting for theirs.
    fn insert_vaults(
        &self,
        tx: &rusqlite::Transaction<'_>,
        service: &State,
        scope: &Scope<'_>,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let (vault_id, key_text, credentials) = (self.vault_id, self.key_text, self.credentials);
        for v in &scope.vaults {
            let (sealed_key, sealed_creds, fingerprint) = if v.vault_id == vault_id {
                let key = VaultKey::from_text(key_text)?;
                (
                    service.seal_key(&v.name, key_text.trim()),
                    service.seal_credentials(&v.name, credentials)?,
                    key.fingerprint(),
                )
            } else {
                notes.push(format!(
                    "vault {} at {} needs its key again (PUT /vaults/{}/key) and its credentials ({})",
                    v.name,
                    v.location,
                    v.name,
                    if v.credential_names.is_empty() {
                        "none".to_string()
                    } else {
                        v.credential_names.join(", ")
                    }
                ));
                (
                    Vec::new(),
                    service.seal_credentials(&v.name, &BTreeMap::new())?,
                    String::new(),
                )
            };
            tx.execute(
                "INSERT INTO vaults (name, location, vault_id, sealed_key, sealed_credentials, key_fingerprint, created,
                 prune_schedule, check_schedule, check_percent, schedule_time_zone)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    v.name,
                    v.location,
                    v.vault_id,
                    sealed_key,
                    sealed_creds,
                    fingerprint,
                    v.created,
                    v.maintenance.prune_schedule,
                    v.maintenance.check_schedule,
                    v.maintenance.check_percent,
                    v.maintenance.time_zone
                ],
            )?;
        }
        Ok(())
    }
}

fn insert_items_and_sets(tx: &rusqlite::Transaction<'_>, scope: &Scope<'_>) -> Result<()> {
    for it in &scope.items {
        tx.execute(
            "INSERT INTO items (name, vault, kind, paths, excludes, enabled, retry_attempts, retry_delay_secs, created, spec, agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                it.name,
                it.vault,
                it.kind,
                serde_json::to_string(&it.paths).unwrap_or_default(),
                serde_json::to_string(&it.excludes).unwrap_or_default(),
                it.enabled,
                it.retry_attempts,
                it.retry_delay_secs as i64,
                it.created,
                crate::state::spec_json(it),
                it.agent
            ],
        )?;
    }
    for s in &scope.sets {
        tx.execute(
            "INSERT INTO sets (name, vault, items, schedule, time_zone, retention_days, enabled, drill_schedule, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                s.name,
                s.vault,
                serde_json::to_string(&s.items).unwrap_or_default(),
                s.schedule,
                s.time_zone,
                s.retention_days,
                s.enabled,
                s.drill_schedule,
                s.created
            ],
        )?;
    }
    Ok(())
}

/// Users the service lacks, with their roles and tokens.
fn insert_users(
    tx: &rusqlite::Transaction<'_>,
    export: &ServiceExport,
    scope: &Scope<'_>,
    notes: &mut Vec<String>,
) -> Result<()> {
    // Users the service has already keep their password and tokens.
    let mut added = Vec::new();
    for u in &export.users {
        let inserted = tx.execute(
            "INSERT INTO users (name, password_hash, is_admin, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
            params![u.name, u.password_hash, u.is_admin, u.created],
        )?;
        if inserted == 1 {
            added.push(u.name.as_str());
        } else {
            notes.push(format!(
                "user {} exists in this service already: its password, tokens and administrator right stay as they are",
                u.name
            ));
        }
    }
    for r in &scope.roles {
        tx.execute(
            "INSERT INTO role_assignments (user_id, vault, role)
             SELECT id, ?2, ?3 FROM users WHERE name = ?1
             ON CONFLICT (user_id, vault) DO NOTHING",
            params![r.user, r.vault, r.role],
        )?;
    }
    for t in export
        .tokens
        .iter()
        .filter(|t| added.contains(&t.user.as_str()))
    {
        let hash = hex::decode(&t.hash)
            .map_err(|_| Error::Internal(format!("token {} has a damaged hash", t.name)))?;
        tx.execute(
            "INSERT INTO tokens (user_id, name, hash, created, expires)
             SELECT id, ?2, ?3, ?4, ?5 FROM users WHERE name = ?1",
            params![t.user, t.name, hash, t.created, t.expires],
        )?;
    }
    Ok(())
}

fn insert_targets(
    tx: &rusqlite::Transaction<'_>,
    export: &ServiceExport,
    notes: &mut Vec<String>,
) -> Result<()> {
    for t in &export.notification_targets {
        // Without its secret a target would send unsigned or fail to log
        // in: it stays off until it is added again with the secret.
        let enabled = t.enabled && !t.had_secret;
        let inserted = tx.execute(
            "INSERT INTO notification_targets (name, destination, sealed_secret, min_severity, events, enabled, created)
             VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
            params![t.name, t.destination, t.min_severity, t.events, enabled, t.created],
        )?;
        if inserted == 1 && t.had_secret {
            notes.push(format!(
                "notification target {} is off: its secret is not in backups; remove it and add it again with the secret",
                t.name
            ));
        }
    }
    Ok(())
}

/// Opens the vault at a location with a key, for recovery.
pub fn open_location(
    location: &str,
    credentials: &BTreeMap<String, String>,
    key_text: &str,
) -> Result<Vault> {
    let creds = credentials
        .iter()
        .fold(Credentials::new(), |c, (k, v)| c.with(k, v));
    let storage = Storage::open_with(location, &creds)?;
    let key = VaultKey::from_text(key_text)?;
    Ok(Vault::open(storage, &key, None)?)
}

/// Where and how a recovery puts things back.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// Only this item (and no configuration when the service has one).
    pub item: Option<String>,
    /// Files go under this directory instead of their original place.
    pub target: Option<PathBuf>,
    pub overwrite: bool,
    /// PostgreSQL items go into this server instead of their own.
    pub postgresql_connection: Option<String>,
}

/// What a recovery did, item by item.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverReport {
    pub set: String,
    pub set_point: String,
    pub configuration: Option<String>,
    pub notes: Vec<String>,
    pub items: Vec<ItemOutcome>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemOutcome {
    pub item: String,
    pub kind: String,
    pub ok: bool,
    pub message: String,
    pub seconds: f64,
}

impl RecoverReport {
    pub fn ok(&self) -> bool {
        self.items.iter().all(|i| i.ok)
    }
}

/// The configuration and the item definitions of a set point.
fn configuration(vault: &Vault, info: &SetPointInfo) -> Result<(ServiceExport, SetRecord)> {
    let service_point = info.service_point.as_deref().ok_or_else(|| {
        Error::Config(format!(
            "set point {} has no stored configuration, so its items cannot be recovered from it: choose another point",
            info.id
        ))
    })?;
    let point = vault.resolve_point(service_point, None)?;
    let export = read_export(vault, &point)?;
    let record = export
        .set_point
        .clone()
        .ok_or_else(|| Error::Config(format!("set point {} has no set record", info.id)))?;
    Ok((export, record))
}

fn select<'a>(record: &'a SetRecord, only: Option<&str>) -> Result<Vec<&'a ItemStatus>> {
    let chosen: Vec<&ItemStatus> = record
        .items
        .iter()
        .filter(|s| only.is_none_or(|o| o == s.item))
        .collect();
    if let (Some(o), true) = (only, chosen.is_empty()) {
        return Err(Error::invalid(
            "item",
            format!("set point {} has no item {o}", record.id),
        ));
    }
    Ok(chosen)
}

fn find_item<'a>(export: &'a ServiceExport, name: &str) -> Result<&'a Item> {
    export
        .items
        .iter()
        .find(|i| i.name == name)
        .ok_or_else(|| Error::Internal(format!("item {name} is not in the configuration")))
}

/// Runs `action` on each item's point, timing it and reporting it as it
/// ends; an item that failed at backup time has nothing to act on.
fn each_item(
    vault: &Vault,
    definitions: &dyn Fn(&str) -> Result<Item>,
    statuses: Vec<&ItemStatus>,
    mut on_item: impl FnMut(&ItemOutcome),
    action: impl Fn(&Point, &coffer_sources::ItemDef) -> coffer_sources::Result<String>,
) -> Vec<ItemOutcome> {
    let mut items = Vec::new();
    for status in statuses {
        let t = Instant::now();
        let outcome = (|| -> Result<String> {
            let point_id = status.point.as_deref().ok_or_else(|| {
                Error::Config(format!(
                    "the item failed at backup time, so this set point has nothing of it: {}",
                    status.message.clone().unwrap_or_default()
                ))
            })?;
            let point = vault.resolve_point(point_id, None)?;
            let def = item_def(&definitions(&status.item)?)?;
            action(&point, &def).map_err(|e| Error::Internal(e.to_string()))
        })();
        let done = ItemOutcome {
            item: status.item.clone(),
            kind: status.kind.clone(),
            ok: outcome.is_ok(),
            message: outcome.unwrap_or_else(|e| e.to_string()),
            seconds: t.elapsed().as_secs_f64(),
        };
        on_item(&done);
        items.push(done);
    }
    items
}

/// An item of an agent, which a recovery leaves in the vault.
fn left_on_agent(
    s: &ItemStatus,
    definitions: &dyn Fn(&str) -> Result<Item>,
    on_item: &mut impl FnMut(&ItemOutcome),
) -> ItemOutcome {
    let agent = definitions(&s.item)
        .ok()
        .and_then(|i| i.agent)
        .unwrap_or_default();
    let done = ItemOutcome {
        item: s.item.clone(),
        kind: s.kind.clone(),
        ok: true,
        message: format!("lives on agent {agent}: left in the vault, to be restored to that host once it is back in contact"),
        seconds: 0.0,
    };
    on_item(&done);
    done
}

/// Restores a set point: the configuration into `service` (when it has
/// none yet), then every item (or the one named) through its kind.
pub fn recover(
    service: &State,
    vault: &Vault,
    info: &SetPointInfo,
    key_text: &str,
    credentials: &BTreeMap<String, String>,
    opts: &RecoverOptions,
    on_item: impl FnMut(&ItemOutcome),
) -> Result<RecoverReport> {
    let started = Instant::now();
    let (export, record) = configuration(vault, info)?;
    let vault_id = vault.header().vault_id_hex();
    let configured = service
        .list_vaults()?
        .into_iter()
        .any(|v| v.vault_id == vault_id);
    let (configuration, notes) = if !configured {
        let notes = import(service, &export, &vault_id, key_text, credentials)?;
        (Some(info.service_point.clone().unwrap_or_default()), notes)
    } else if opts.item.is_some() {
        (
            None,
            vec![
                "the service has this vault's configuration already: only the item was restored"
                    .into(),
            ],
        )
    } else {
        return Err(Error::Conflict(
            "this data directory has this vault's configuration already: recover into an empty one (--data-dir), or name one --item"
                .into(),
        ));
    };
    let to = coffer_sources::Destination {
        target: opts.target.clone(),
        overwrite: opts.overwrite,
        postgresql_connection: opts.postgresql_connection.clone(),
    };
    let chosen = select(&record, opts.item.as_deref())?;
    let from_export = |name: &str| find_item(&export, name).cloned();
    // An agent's items belong on its host, not on this machine: they stay
    // in the vault until they are restored to the agent.
    let mut on_item = on_item;
    let (elsewhere, here): (Vec<&ItemStatus>, Vec<&ItemStatus>) = chosen
        .into_iter()
        .partition(|s| from_export(&s.item).is_ok_and(|i| i.agent.is_some()));
    let mut items: Vec<ItemOutcome> = elsewhere
        .into_iter()
        .map(|s| left_on_agent(s, &from_export, &mut on_item))
        .collect();
    items.extend(each_item(
        vault,
        &from_export,
        here,
        on_item,
        |point, def| coffer_sources::restore(vault, def, point, &to, &RestoreProgress::default()),
    ));
    Ok(RecoverReport {
        set: record.set,
        set_point: record.id,
        configuration,
        notes,
        items,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A recovery drill: every item of the set point restored into a scratch
/// area under `scratch_root` and checked there, the configuration read,
/// the time measured; nothing is left behind.
///
/// How each item is restored comes from `local_items` when given (the
/// running service's own items of this vault), else from the point's
/// configuration. A running service never takes item settings (tools,
/// commands) from what it reads back from storage: whoever can write the
/// vault would choose what the service runs.
pub fn drill(
    vault: &Vault,
    info: &SetPointInfo,
    scratch_root: Option<&Path>,
    local_items: Option<&[Item]>,
    on_item: impl FnMut(&ItemOutcome),
) -> Result<RecoverReport> {
    let started = Instant::now();
    let (export, record) = configuration(vault, info)?;
    let from_export = |name: &str| find_item(&export, name).cloned();
    let from_service = |name: &str| {
        local_items
            .into_iter()
            .flatten()
            .find(|i| i.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::Config(format!(
                    "item {name} is not configured in this vault any more, so the service does not drill it"
                ))
            })
    };
    let definitions: &dyn Fn(&str) -> Result<Item> = if local_items.is_some() {
        &from_service
    } else {
        &from_export
    };
    let items = each_item(
        vault,
        definitions,
        record.items.iter().collect(),
        on_item,
        |point, def| coffer_sources::verify(vault, def, point, scratch_root),
    );
    Ok(RecoverReport {
        set: record.set,
        set_point: record.id,
        configuration: info.service_point.clone(),
        notes: vec![format!(
            "configuration read: {} vaults, {} items, {} users",
            export.vaults.len(),
            export.items.len(),
            export.users.len()
        )],
        items,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_engine::backup::{backup_streams, BackupOptions, NamedStream, Progress};
    use coffer_engine::keys::GENERATED_KEY_KDF;

    #[test]
    fn a_configuration_from_a_newer_release_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().to_str().unwrap()).unwrap();
        let (key, _) = VaultKey::generate();
        Vault::init(&storage, &key, GENERATED_KEY_KDF).unwrap();
        let vault = Vault::open(storage, &key, None).unwrap();
        let body = br#"{"format": 4, "software": "coffer 9.0.0", "vaults": []}"#.to_vec();
        let report = backup_streams(
            &vault,
            vec![NamedStream {
                name: CONFIG_FILE.into(),
                reader: Box::new(std::io::Cursor::new(body)),
            }],
            &BackupOptions {
                item: Some("coffer-service.infra".into()),
                ..Default::default()
            },
            &Progress::default(),
        )
        .unwrap();
        let point = vault.read_point(&report.point).unwrap();
        let e = read_export(&vault, &point).unwrap_err().to_string();
        assert!(
            e.contains("coffer 9.0.0 in format 4") && e.contains("newer than this coffer's 3"),
            "{e}"
        );
    }

    fn state_in(dir: &Path) -> State {
        State::open(crate::config::ServiceConfig {
            data_dir: dir.join("data"),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_recovered_service_keeps_the_scheduler_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let old = state_in(&dir.path().join("old"));
        let location = dir.path().join("vault");
        let (info, key) = old
            .add_vault("v", location.to_str().unwrap(), BTreeMap::new(), None, true)
            .unwrap();
        old.set_scheduler_enabled(false).unwrap();
        let vault = old.open_vault("v").unwrap();
        let export = export(&old, &vault, "v", None).unwrap();
        assert!(!export.scheduler_enabled);

        let fresh = state_in(&dir.path().join("new"));
        assert!(fresh.scheduler_enabled().unwrap(), "the default is on");
        import(
            &fresh,
            &export,
            &info.vault_id,
            &key.unwrap(),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(!fresh.scheduler_enabled().unwrap());
    }
}
