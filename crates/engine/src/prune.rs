//! Prune, first part: the recovery points. Plan, then act.
//!
//! `plan` decides every point: kept (and by which rule, until when), moved
//! to the soft-deleted state (expired), left soft-deleted (with its purge
//! time), or purged (its soft-delete period is over). `execute` journals the
//! soft deletes and deletes purged manifests. Nothing here deletes data:
//! soft-deleted points keep every chunk alive, and space comes back only
//! through garbage collection of packs.

use crate::changes::{facts, retention_groups};
use crate::error::{Error, Result};
use crate::gc::{GcOptions, GcOutcome, GcPlan};
use crate::ids::ObjectId;
use crate::journal::{Event, VaultState};
use crate::point::point_path;
use crate::retention::{evaluate, PointFacts, Rule};
use crate::tree::Timestamp;
use crate::vault::Vault;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointAction {
    Keep,
    /// Expired now: moves to the soft-deleted state.
    SoftDelete,
    /// Already soft-deleted; purged at `purge_at`.
    StaySoftDeleted {
        purge_at: i64,
    },
    /// Soft-deleted long enough: the manifest goes for good.
    Purge,
}

#[derive(Debug, Clone)]
pub struct PointPlan {
    pub id: ObjectId,
    pub item: String,
    pub time: Timestamp,
    pub action: PointAction,
    pub rule: Rule,
    pub until: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub now: i64,
    /// Oldest first.
    pub points: Vec<PointPlan>,
}

impl Plan {
    pub fn count(&self, action: fn(&PointAction) -> bool) -> usize {
        self.points.iter().filter(|p| action(&p.action)).count()
    }
}

/// Decides every point of the vault at time `now`.
pub fn plan(vault: &Vault, state: &VaultState, now: i64) -> Result<Plan> {
    let points = vault.points()?;
    let purge_after = state.soft_delete_days as i64 * 86_400;
    let mut out = Vec::with_capacity(points.len());
    for (item, writer) in retention_groups(state, &points) {
        let mine: Vec<_> = points
            .iter()
            .filter(|p| p.manifest.item == item && p.writer == writer)
            .collect();
        let live: Vec<PointFacts> = mine
            .iter()
            .filter(|p| !state.soft_deleted.contains_key(&p.id) && !state.purged.contains(&p.id))
            .map(|p| facts(state, p))
            .collect();
        let verdicts = evaluate(
            &live,
            state.policy_of(&item),
            state.protection_of(&item),
            now,
        )
        .map_err(|e| Error::Invalid(format!("item {item:?}: {e}")))?;
        for p in mine {
            let (action, rule, until) = match (state.soft_deleted.get(&p.id), verdicts.get(&p.id)) {
                // Journalled as purged, but the manifest survived a crash.
                _ if state.purged.contains(&p.id) => (PointAction::Purge, Rule::NoRule, None),
                (Some(sd), _) => {
                    let purge_at = sd.at + purge_after;
                    let action = if purge_at <= now {
                        PointAction::Purge
                    } else {
                        PointAction::StaySoftDeleted { purge_at }
                    };
                    (action, Rule::NoRule, Some(purge_at))
                }
                (None, Some(v)) if v.keep => (PointAction::Keep, v.rule, v.until),
                (None, Some(v)) => (PointAction::SoftDelete, v.rule, v.until),
                (None, None) => continue,
            };
            out.push(PointPlan {
                id: p.id,
                item: item.clone(),
                time: p.manifest.time,
                action,
                rule,
                until,
            });
        }
    }
    out.sort_by_key(|p| (p.time, p.id));
    Ok(Plan { now, points: out })
}

/// What `execute` did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub soft_deleted: usize,
    pub purged: usize,
}

/// Carries out a plan's point actions. Refuses while any journal record is
/// unreadable: a lost hold or expiry must never turn into a deletion.
pub fn execute(vault: &Vault, state: &VaultState, plan: &Plan) -> Result<Outcome> {
    vault.require_journal()?;
    if let Some(first) = state.unreadable.first() {
        return Err(Error::Invalid(format!(
            "prune refused: {} journal record(s) cannot be read, so holds and expiries are uncertain (first: {first}); run `coffer check`",
            state.unreadable.len()
        )));
    }
    let expired: Vec<ObjectId> = plan
        .points
        .iter()
        .filter(|p| p.action == PointAction::SoftDelete)
        .map(|p| p.id)
        .collect();
    let purge: Vec<ObjectId> = plan
        .points
        .iter()
        .filter(|p| p.action == PointAction::Purge)
        .map(|p| p.id)
        .collect();
    let newly_purged: Vec<ObjectId> = purge
        .iter()
        .copied()
        .filter(|id| !state.purged.contains(id))
        .collect();
    if !expired.is_empty() {
        vault.record(Event::SoftDeleted {
            points: expired.clone(),
            at: plan.now,
            reason: "expired by retention".into(),
        })?;
    }
    if !purge.is_empty() {
        // The journal says "purged" first: a crash in between leaves
        // records of manifests that still exist, which the next prune
        // deletes, never a point that lost its state.
        if !newly_purged.is_empty() {
            vault.record(Event::Purged {
                points: newly_purged,
            })?;
        }
        for id in &purge {
            vault.storage().delete(&point_path(id))?;
        }
    }
    Ok(Outcome {
        soft_deleted: expired.len(),
        purged: purge.len(),
    })
}

/// A whole prune: the points' plan, the packs' plan, and what was done.
pub struct Report {
    pub points: Plan,
    pub packs: GcPlan,
    pub done: Option<(Outcome, GcOutcome)>,
}

/// Plans (and unless `dry_run`, carries out) retention and garbage
/// collection. A real run holds the prune marker, so a second prune
/// refuses; backups go on beside it.
pub fn run(vault: &Vault, opts: &GcOptions, dry_run: bool, now: i64) -> Result<Report> {
    vault.require_journal()?;
    let _marker = if dry_run {
        None
    } else {
        Some(crate::locks::hold_prune(vault)?)
    };
    let state = vault.state()?;
    let points = plan(vault, &state, now)?;
    // The packs are judged as they will be once the purges are done.
    let mut after = state.clone();
    for p in points
        .points
        .iter()
        .filter(|p| p.action == PointAction::Purge)
    {
        after.purged.insert(p.id);
    }
    if dry_run {
        let packs = crate::gc::plan(vault, &after, opts)?;
        return Ok(Report {
            points,
            packs,
            done: None,
        });
    }
    let outcome = execute(vault, &state, &points)?;
    let state = vault.state()?;
    let packs = crate::gc::plan(vault, &state, opts)?;
    let gc_outcome = crate::gc::execute(vault, &packs)?;
    Ok(Report {
        points,
        packs,
        done: Some((outcome, gc_outcome)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{backup, BackupOptions, Progress};
    use crate::changes;
    use crate::journal::Immutability;
    use crate::policy::{Policy, Retention};
    use crate::testutil::new_vault;

    const DAY: i64 = 86_400;
    /// 2026-01-01T22:00:00Z
    const T0: i64 = 1_767_304_800;

    fn back_up_at(
        vault: &Vault,
        src: &std::path::Path,
        secs: i64,
        expire_at: Option<i64>,
    ) -> ObjectId {
        std::fs::write(src.join("f"), secs.to_string()).unwrap();
        let opts = BackupOptions {
            item: Some("item".into()),
            time: Some(Timestamp { secs, nanos: 0 }),
            expire_at,
            ..BackupOptions::default()
        };
        backup(vault, &[src.to_path_buf()], &opts, &Progress::default())
            .unwrap()
            .point
    }

    fn action_of(plan: &Plan, id: &ObjectId) -> PointAction {
        plan.points.iter().find(|p| &p.id == id).unwrap().action
    }

    #[test]
    fn expired_points_are_soft_deleted_undeletable_then_purged() {
        let dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let (vault, _) = new_vault(dir.path(), false);
        let ids: Vec<ObjectId> = (0..40)
            .map(|d| back_up_at(&vault, src.path(), T0 + d * DAY, None))
            .collect();
        let on_demand = back_up_at(&vault, src.path(), T0 + 2 * DAY + 60, Some(T0 + 100 * DAY));
        let now = T0 + 40 * DAY;
        let state = vault.state().unwrap();
        let p = plan(&vault, &state, now).unwrap();
        // DefaultPolicy keeps daily points 30 days: day 10's point expires
        // at this very second, and so do the ten before it.
        for (d, id) in ids.iter().enumerate() {
            let want = if d <= 10 {
                PointAction::SoftDelete
            } else {
                PointAction::Keep
            };
            assert_eq!(action_of(&p, id), want, "day {d}");
        }
        assert_eq!(action_of(&p, &on_demand), PointAction::Keep);
        assert_eq!(execute(&vault, &state, &p).unwrap().soft_deleted, 11);

        // A soft-deleted point comes back, on hold, and stays.
        changes::undelete(&vault, &[ids[3]]).unwrap();
        let state = vault.state().unwrap();
        assert!(state.holds.contains(&ids[3]));
        let p = plan(&vault, &state, now + DAY).unwrap();
        assert_eq!(action_of(&p, &ids[3]), PointAction::Keep);
        assert!(matches!(
            action_of(&p, &ids[0]),
            PointAction::StaySoftDeleted { .. }
        ));

        // After 14 days the rest are purged: their manifests are gone.
        let later = now + 15 * DAY;
        let p = plan(&vault, &state, later).unwrap();
        assert_eq!(action_of(&p, &ids[0]), PointAction::Purge);
        let out = execute(&vault, &state, &p).unwrap();
        assert_eq!(out.purged, 10);
        let left: Vec<ObjectId> = vault.points().unwrap().iter().map(|p| p.id).collect();
        assert!(!left.contains(&ids[0]) && left.contains(&ids[3]) && left.contains(&on_demand));
    }

    #[test]
    fn a_credentials_points_do_not_crowd_out_the_key_holders_or_another_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let (vault, _) = new_vault(dir.path(), false);
        let mut keep2 = crate::policy::Policy::default_policy();
        keep2.name = "Keep2".into();
        keep2.retention = crate::policy::Retention {
            keep_last: Some(2),
            ..crate::policy::Retention::default()
        };
        changes::set_policy(&vault, keep2).unwrap();
        changes::assign(&vault, "Keep2", "item").unwrap();
        let own: Vec<ObjectId> = (0..3)
            .map(|d| back_up_at(&vault, src.path(), T0 + d * DAY, None))
            .collect();
        let location = dir.path().to_str().unwrap().to_string();
        let writer = |name: &str| {
            let (_, credential) = vault.add_writer(name).unwrap();
            let cache = tempfile::tempdir().unwrap();
            let location = location.clone();
            let src = src.path().to_path_buf();
            move |secs: i64| {
                let w = crate::writer::WriteOnlyVault::open(
                    crate::storage::Storage::open(&location).unwrap(),
                    credential.clone(),
                    Some(cache.path()),
                )
                .unwrap();
                let opts = BackupOptions {
                    item: Some("item".into()),
                    time: Some(Timestamp { secs, nanos: 0 }),
                    ..BackupOptions::default()
                };
                backup(&w, std::slice::from_ref(&src), &opts, &Progress::default())
                    .unwrap()
                    .point
            }
        };
        let honest_host = writer("host");
        let honest: Vec<ObjectId> = (0..2).map(|d| honest_host(T0 + d * DAY + 60)).collect();
        // A thief with another credential claims ten newer points.
        let thief_host = writer("thief");
        let thief: Vec<ObjectId> = (0..10).map(|d| thief_host(T0 + (5 + d) * DAY)).collect();

        let state = vault.state().unwrap();
        let p = plan(&vault, &state, T0 + 20 * DAY).unwrap();
        assert_eq!(action_of(&p, &own[0]), PointAction::SoftDelete);
        for id in own[1..].iter().chain(&honest).chain(&thief[8..]) {
            assert_eq!(action_of(&p, id), PointAction::Keep);
        }
        for id in &thief[..8] {
            assert_eq!(action_of(&p, id), PointAction::SoftDelete);
        }
    }

    #[test]
    fn immutability_refuses_early_deletes_and_shorter_retention_and_locks_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let (vault, _) = new_vault(dir.path(), false);
        let now = crate::vault::now_secs();
        let a = back_up_at(&vault, src.path(), now - 2 * DAY, None);
        let _b = back_up_at(&vault, src.path(), now - DAY, None);
        changes::set_immutability(&vault, Immutability::Enabled).unwrap();
        let point_a = vault.read_point(&a).unwrap();
        let e = changes::delete_points(&vault, std::slice::from_ref(&point_a), "test").unwrap_err();
        assert!(e.to_string().contains("has not expired"), "{e}");
        let mut shorter = Policy::default_policy();
        shorter.retention = Retention {
            daily_days: Some(7),
            ..Retention::default()
        };
        let e = changes::set_policy(&vault, shorter.clone()).unwrap_err();
        assert!(e.to_string().contains("30 to 7"), "{e}");
        // Longer retention stays allowed.
        let mut longer = Policy::default_policy();
        longer.retention.daily_days = Some(60);
        changes::set_policy(&vault, longer).unwrap();
        // Enabled can be turned off; then deleting works.
        changes::set_immutability(&vault, Immutability::Disabled).unwrap();
        changes::delete_points(&vault, &[point_a], "test").unwrap();
        assert!(vault.state().unwrap().soft_deleted.contains_key(&a));
        changes::set_immutability(&vault, Immutability::Locked).unwrap();
        let e = changes::set_immutability(&vault, Immutability::Disabled).unwrap_err();
        assert!(e.to_string().contains("stays locked"), "{e}");
        assert_eq!(vault.state().unwrap().immutability, Immutability::Locked);
        assert!(changes::set_policy(&vault, shorter).is_err());
    }

    #[test]
    fn older_formats_need_an_upgrade_for_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut vault, key) = new_vault(dir.path(), true);
        let e = changes::hold(&vault, &ObjectId([1; 32])).unwrap_err();
        assert!(e.to_string().contains("coffer vault upgrade"), "{e}");
        // A second key, whose slot the upgrade cannot rewrap.
        let (other, _) = crate::keys::VaultKey::generate();
        vault
            .add_key(&other, crate::keys::GENERATED_KEY_KDF)
            .unwrap();
        assert_eq!(vault.upgrade().unwrap(), 1);
        // Both keys still open the upgraded vault.
        for k in [&key, &other] {
            let storage = crate::storage::Storage::open(dir.path().to_str().unwrap()).unwrap();
            let reopened = Vault::open(storage, k, None).unwrap();
            assert_eq!(reopened.header().version, crate::keys::FORMAT_VERSION);
        }
        changes::hold(&vault, &ObjectId([1; 32])).unwrap();
        assert!(vault.state().unwrap().holds.contains(&ObjectId([1; 32])));
        assert!(vault.writes_dictionaries());
    }
}
