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
const JOURNAL_AAD: &[u8] = b"coffer journal v3";
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
    pub fn encode(&self, keys: &MasterKeys) -> Vec<u8> {
        seal_object(keys, JOURNAL_MAGIC, JOURNAL_AAD, self)
    }

    /// Opens the record stored as `object` (`journal/<time ns>-<random>`).
    /// Its sealed time must be the second its name says: the associated
    /// data is the same for every record, so a record copied by the
    /// storage owner under a later name opens, and only this check keeps
    /// it (a soft delete replayed after an undelete, say) out of the fold.
    pub fn decode(keys: &MasterKeys, object: &str, bytes: &[u8]) -> Result<Record> {
        // Postcard fails on an event variant it does not know: the record
        // may come from a newer coffer.
        let record: Record = open_object(
            keys,
            JOURNAL_MAGIC,
            JOURNAL_AAD,
            object,
            "journal record (from a newer coffer?)",
            bytes,
        )?;
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
