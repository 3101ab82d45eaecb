//! The vault journal: the vault's changeable state (policies, assignments,
//! holds, on-demand expiries, soft deletes, protection, immutability) as
//! an append-only series of sealed records.
//!
//! Objects at a location are written once and never changed, and object
//! stores offer no portable compare-and-swap, so state is not one object that
//! writers replace: each change is a new record `journal/<time>-<random>`
//! and the state is the fold of all records in name order. Writers never
//! conflict; two changes made at the same moment both land, in the order of
//! their names. Records live in the vault, encrypted, so a cloud recovery
//! brings policies and point states back with the data.
//!
//! Rules such as immutability are checked when a change is made (see
//! `Vault::change`), not when records are folded: the fold replays history.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::{open_object, seal_object, MasterKeys};
use crate::error::Result;
use crate::ids::ObjectId;
use crate::policy::{Policy, DEFAULT_POLICY};
use crate::retention::Protection;

pub const JOURNAL_MAGIC: &[u8; 8] = b"COFFERJR";
/// Format 3: one associated data for every record.
const JOURNAL_AAD_V3: &[u8] = b"coffer journal v3";
/// Format 4: this, then the record's object name.
const JOURNAL_AAD_V4: &[u8] = b"coffer journal v4 ";
/// Soft-deleted points stay recoverable this long unless configured.
pub const DEFAULT_SOFT_DELETE_DAYS: u32 = 14;

/// The vault's immutability setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub enum Immutability {
    #[default]
    Disabled,
    /// Deleting unexpired points and shortening retention are refused; can
    /// be turned off again.
    Enabled,
    /// As enabled, and can never be turned off.
    Locked,
}

impl Immutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Immutability::Disabled => "disabled",
            Immutability::Enabled => "enabled",
            Immutability::Locked => "locked",
        }
    }
}

/// One change to the vault's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Creates or replaces a policy.
    PolicySet(Policy),
    PolicyDeleted {
        name: String,
    },
    /// The item follows this policy from now on.
    Assigned {
        item: String,
        policy: String,
    },
    /// An on-demand point: kept until `until` (Unix seconds) whatever the
    /// policy says. Written before the point's manifest, whose id is known
    /// in advance (the hash of its bytes).
    OnDemand {
        point: ObjectId,
        until: i64,
    },
    Hold {
        point: ObjectId,
    },
    Release {
        point: ObjectId,
    },
    /// Points moved to the soft-deleted state at `at` (Unix seconds).
    SoftDeleted {
        points: Vec<ObjectId>,
        at: i64,
        reason: String,
    },
    Undeleted {
        points: Vec<ObjectId>,
    },
    /// Manifests deleted for good after their soft-delete period.
    Purged {
        points: Vec<ObjectId>,
    },
    Protection {
        item: String,
        state: Protection,
    },
    Immutability(Immutability),
    SoftDeleteDays(u32),
    /// Garbage collection took these packs out of the index at `at`; they
    /// are deleted after the grace period once no backup that started
    /// before `at` is still running.
    Condemned {
        packs: Vec<ObjectId>,
        at: i64,
    },
    PacksDeleted {
        packs: Vec<ObjectId>,
    },
    /// Condemned packs that turned out to be needed, back in the index.
    Reprieved {
        packs: Vec<ObjectId>,
    },
    /// A replica location: a full copy of the vault kept elsewhere.
    ReplicaAdded {
        location: String,
        mode: ReplicaMode,
    },
    ReplicaRemoved {
        location: String,
    },
    /// A replication run finished: everything committed to the vault
    /// before `as_of` (Unix seconds) is on the replica, verified.
    ReplicaSynced {
        location: String,
        as_of: i64,
    },
    /// A fast local location that keeps the last `days` days of points
    /// as well (instant restore); reads prefer it.
    TierSet {
        location: String,
        days: u32,
    },
    TierRemoved,
    /// The vault moved from format `from` to 4; `records` names the
    /// format 3 records (sealed without their names) that existed then and
    /// are read on. Any other record sealed that way came in later.
    Upgraded {
        from: u16,
        records: Vec<String>,
    },
    /// A write-only credential revoked (format 5): `points` are the points
    /// it had written then; any other point it wrote came after.
    WriterRevoked {
        slot: [u8; 8],
        points: Vec<ObjectId>,
    },
}

/// A revoked write-only credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// When (Unix seconds).
    pub at: i64,
    /// The points it had written by then.
    pub points: HashSet<ObjectId>,
}

/// How records are sealed, by vault format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSeal {
    /// Format 3: the same associated data for all.
    Shared,
    /// Format 4: bound to the record's object name, so a copy under any
    /// other name does not open.
    Named,
}

impl RecordSeal {
    pub fn of_version(version: u16) -> Self {
        if version >= 4 {
            RecordSeal::Named
        } else {
            RecordSeal::Shared
        }
    }

    pub(crate) fn aad(self, object: &str) -> Vec<u8> {
        match self {
            RecordSeal::Shared => JOURNAL_AAD_V3.to_vec(),
            RecordSeal::Named => [JOURNAL_AAD_V4, object.as_bytes()].concat(),
        }
    }
}

/// How a replica is kept up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaMode {
    /// Every object is written to the replica before a recovery point is
    /// committed (zone-redundant).
    Sync,
    /// A replication job copies what is missing (geo-redundant); the time
    /// since its last run is the recovery point objective.
    Async,
}

impl ReplicaMode {
    pub fn name(self) -> &'static str {
        match self {
            ReplicaMode::Sync => "sync",
            ReplicaMode::Async => "async",
        }
    }
}

/// A replica as the journal describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub mode: ReplicaMode,
    /// When it was added (Unix seconds).
    pub added: i64,
    /// The `as_of` of its last completed replication run.
    pub synced_as_of: Option<i64>,
}

/// A journal record: an event with when and where it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unix seconds.
    pub time: i64,
    pub host: String,
    pub event: Event,
}

/// A soft-deleted point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftDelete {
    pub at: i64,
    pub reason: String,
}

/// The fold of the journal.
#[derive(Debug, Clone)]
pub struct VaultState {
    pub policies: BTreeMap<String, Policy>,
    pub assignments: BTreeMap<String, String>,
    pub protection: BTreeMap<String, Protection>,
    pub on_demand: HashMap<ObjectId, i64>,
    pub holds: HashSet<ObjectId>,
    pub soft_deleted: HashMap<ObjectId, SoftDelete>,
    pub purged: HashSet<ObjectId>,
    pub immutability: Immutability,
    pub soft_delete_days: u32,
    /// Condemned packs and when they were condemned.
    pub condemned: BTreeMap<ObjectId, i64>,
    /// Replica locations.
    pub replicas: BTreeMap<String, Replica>,
    /// The local tier and how many days of points it keeps.
    pub local_tier: Option<(String, u32)>,
    /// Revoked write-only credentials by slot id: when, and the points
    /// each had written by then.
    pub revoked: BTreeMap<String, Revocation>,
    /// Records that could not be read (damaged or from a newer coffer).
    pub unreadable: Vec<String>,
    /// Records folded.
    pub records: usize,
}

impl Default for VaultState {
    fn default() -> Self {
        let default = Policy::default_policy();
        VaultState {
            policies: BTreeMap::from([(default.name.clone(), default)]),
            assignments: BTreeMap::new(),
            protection: BTreeMap::new(),
            on_demand: HashMap::new(),
            holds: HashSet::new(),
            soft_deleted: HashMap::new(),
            purged: HashSet::new(),
            immutability: Immutability::Disabled,
            soft_delete_days: DEFAULT_SOFT_DELETE_DAYS,
            condemned: BTreeMap::new(),
            replicas: BTreeMap::new(),
            local_tier: None,
            revoked: BTreeMap::new(),
            unreadable: Vec::new(),
            records: 0,
        }
    }
}

impl VaultState {
    /// Folds one record (a replica's `added` is the record's time).
    pub fn apply_record(&mut self, record: &Record) {
        self.apply(&record.event);
        if let Event::ReplicaAdded { location, .. } = &record.event {
            if let Some(r) = self.replicas.get_mut(location) {
                r.added = record.time;
            }
        }
        if let Event::WriterRevoked { slot, .. } = &record.event {
            if let Some(r) = self.revoked.get_mut(&hex::encode(slot)) {
                r.at = r.at.min(record.time);
            }
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ReplicaAdded { location, mode } => {
                self.replicas.insert(
                    location.clone(),
                    Replica {
                        mode: *mode,
                        added: 0,
                        synced_as_of: None,
                    },
                );
            }
            Event::ReplicaRemoved { location } => {
                self.replicas.remove(location);
            }
            Event::TierSet { location, days } => {
                self.local_tier = Some((location.clone(), *days));
            }
            Event::TierRemoved => self.local_tier = None,
            Event::Upgraded { .. } => {}
            Event::WriterRevoked { slot, points } => {
                // The first revocation counts: a later one cannot pardon
                // the points written in between.
                self.revoked
                    .entry(hex::encode(slot))
                    .or_insert_with(|| Revocation {
                        at: i64::MAX,
                        points: points.iter().copied().collect(),
                    });
            }
            Event::ReplicaSynced { location, as_of } => {
                if let Some(r) = self.replicas.get_mut(location) {
                    r.synced_as_of = Some(r.synced_as_of.map_or(*as_of, |t| t.max(*as_of)));
                }
            }
            Event::PolicySet(p) => {
                self.policies.insert(p.name.clone(), p.clone());
            }
            Event::PolicyDeleted { name } => {
                if name != DEFAULT_POLICY {
                    self.policies.remove(name);
                }
            }
            Event::Assigned { item, policy } => {
                self.assignments.insert(item.clone(), policy.clone());
            }
            Event::OnDemand { point, until } => {
                self.on_demand.insert(*point, *until);
            }
            Event::Hold { point } => {
                self.holds.insert(*point);
            }
            Event::Release { point } => {
                self.holds.remove(point);
            }
            Event::SoftDeleted { points, at, reason } => {
                for p in points {
                    self.soft_deleted.insert(
                        *p,
                        SoftDelete {
                            at: *at,
                            reason: reason.clone(),
                        },
                    );
                }
            }
            Event::Undeleted { points } => {
                for p in points {
                    self.soft_deleted.remove(p);
                }
            }
            Event::Purged { points } => {
                for p in points {
                    self.soft_deleted.remove(p);
                    self.purged.insert(*p);
                }
            }
            Event::Protection { item, state } => {
                self.protection.insert(item.clone(), *state);
            }
            Event::Immutability(state) => {
                // Locked is final, whatever a record says later.
                if self.immutability != Immutability::Locked {
                    self.immutability = *state;
                }
            }
            Event::SoftDeleteDays(days) => self.soft_delete_days = *days,
            Event::Condemned { packs, at } => {
                for p in packs {
                    self.condemned.entry(*p).or_insert(*at);
                }
            }
            Event::PacksDeleted { packs } | Event::Reprieved { packs } => {
                for p in packs {
                    self.condemned.remove(p);
                }
            }
        }
    }

    /// The policy an item follows: its assignment, else `DefaultPolicy`.
    /// An assignment to a policy deleted since falls back to the default
    /// rather than leaving the item without retention.
    pub fn policy_of(&self, item: &str) -> &Policy {
        self.assignments
            .get(item)
            .and_then(|p| self.policies.get(p))
            .or_else(|| self.policies.get(DEFAULT_POLICY))
            .unwrap_or_else(|| default_policy_ref())
    }

    pub fn protection_of(&self, item: &str) -> Protection {
        self.protection.get(item).copied().unwrap_or_default()
    }
}

fn default_policy_ref() -> &'static Policy {
    static DEFAULT: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(Policy::default_policy)
}

/// The second a record's name says it was written in.
fn name_seconds(object: &str) -> Option<i64> {
    let name = object.rsplit('/').next()?;
    let (nanos, random) = name.split_once('-')?;
    let valid = nanos.len() == 20
        && nanos.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| {
        nanos
            .parse::<i128>()
            .ok()
            .map(|n| (n / 1_000_000_000) as i64)
    })?
}

/// A fresh record name: the time in nanoseconds (zero-padded, so names
/// sort by time) and 8 random bytes (so two writers never collide).
pub fn record_path(time_nanos: i128) -> String {
    let mut random = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!("journal/{:020}-{}", time_nanos.max(0), hex::encode(random))
}

impl Record {
    /// Seals the record to be stored as `object`.
    pub fn encode(&self, keys: &MasterKeys, object: &str, seal: RecordSeal) -> Vec<u8> {
        seal_object(keys, JOURNAL_MAGIC, &seal.aad(object), self)
    }

    /// Opens the record stored as `object` (`journal/<time ns>-<random>`).
    /// Its sealed time must be the second its name says as well: under the
    /// shared seal of format 3 that is what keeps a record copied under a
    /// later name (a soft delete replayed after an undelete, say) out of
    /// the fold; under format 4 the name is sealed in and a copy does not
    /// open at all.
    pub fn decode(
        keys: &MasterKeys,
        object: &str,
        bytes: &[u8],
        seal: RecordSeal,
    ) -> Result<Record> {
        // Postcard fails on an event variant it does not know: the record
        // may come from a newer coffer.
        let record: Record = open_object(
            keys,
            JOURNAL_MAGIC,
            &seal.aad(object),
            object,
            "journal record (from a newer coffer?)",
            bytes,
        )
        .map_err(|e| {
            let shared = seal == RecordSeal::Named
                && open_object::<Record>(keys, JOURNAL_MAGIC, JOURNAL_AAD_V3, object, "", bytes)
                    .is_ok();
            if shared {
                crate::Error::corrupt(
                    object,
                    "this record is sealed as format 3 but was not in the journal when the vault moved to format 4: it was copied in at the storage location since (or the upgrade's own record is gone; then run `coffer vault upgrade` again), so it is left out and nothing is deleted until it is removed",
                )
            } else if seal == RecordSeal::Named && matches!(e, crate::Error::Corrupt { .. }) {
                crate::Error::corrupt(
                    object,
                    "this record does not open under its own name: it was altered, damaged, or copied or renamed at the storage location, so it is left out and nothing is deleted until it is removed",
                )
            } else {
                e
            }
        })?;
        Self::check_time(object, record)
    }

    /// Opens a format 3 record in a format 4 vault, which the upgrade
    /// listed as existing when it ran.
    pub fn decode_accepted_v3(keys: &MasterKeys, object: &str, bytes: &[u8]) -> Result<Record> {
        let record = open_object(
            keys,
            JOURNAL_MAGIC,
            JOURNAL_AAD_V3,
            object,
            "journal record (from a newer coffer?)",
            bytes,
        )?;
        Self::check_time(object, record)
    }

    fn check_time(object: &str, record: Record) -> Result<Record> {
        match name_seconds(object) {
            Some(named) if named == record.time => Ok(record),
            named => Err(crate::Error::corrupt(
                object,
                format!(
                    "this record was written at {} but its name says {}: it was copied or renamed at the storage location, so it is left out and nothing is deleted until it is removed",
                    record.time,
                    named.map_or("no time".to_string(), |t| t.to_string())
                ),
            )),
        }
    }
}
