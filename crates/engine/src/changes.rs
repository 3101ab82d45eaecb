//! Changes to a vault's state, each checked against the rules before it is
//! journalled: immutability (no deleting of unexpired points, no shortening
//! of retention, no way back from locked), and the invariants operators rely
//! on (the default policy always exists, a policy in use cannot be deleted).

use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::journal::{Event, Immutability, VaultState};
use crate::policy::{Policy, DEFAULT_POLICY};
use crate::retention::{evaluate, PointFacts, Protection};
use crate::vault::{now_secs, Point, Vault};

fn immutable(state: &VaultState, what: String) -> Error {
    Error::Immutable {
        setting: state.immutability.as_str().to_string(),
        what,
    }
}

/// Items known to the vault: those with points and those with settings.
pub fn items(state: &VaultState, points: &[Point]) -> Vec<String> {
    let mut items: Vec<String> = points
        .iter()
        .map(|p| p.manifest.item.clone())
        .chain(state.assignments.keys().cloned())
        .chain(state.protection.keys().cloned())
        .collect();
    items.sort();
    items.dedup();
    items
}

/// The groups retention judges apart: each item's points by who wrote
/// them (the key holders, or one write-only credential). A credential's
/// points, whatever times they claim, then never push another writer's
/// (or the key holders') points of the item out of a count or a bucket;
/// each group keeps its own latest point. The item's policy and
/// protection apply to every group of it.
pub fn retention_groups(state: &VaultState, points: &[Point]) -> Vec<(String, Option<String>)> {
    let mut groups: Vec<(String, Option<String>)> = points
        .iter()
        .map(|p| (p.manifest.item.clone(), p.writer.clone()))
        .chain(items(state, &[]).into_iter().map(|i| (i, None)))
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// What retention needs about a point, from the manifest and the journal.
pub fn facts(state: &VaultState, p: &Point) -> PointFacts {
    PointFacts {
        id: p.id,
        secs: p.manifest.time.secs,
        nanos: p.manifest.time.nanos,
        on_demand_until: state.on_demand.get(&p.id).copied(),
        hold: state.holds.contains(&p.id),
        has_errors: !p.manifest.errors.is_empty(),
    }
}

/// Creates or replaces a policy.
pub fn set_policy(vault: &Vault, policy: Policy) -> Result<()> {
    policy.validate().map_err(Error::Invalid)?;
    let state = vault.state()?;
    if state.immutability != Immutability::Disabled {
        if let Some(old) = state.policies.get(&policy.name) {
            if let Some(why) = policy.retention.shortening_from(&old.retention) {
                return Err(immutable(
                    &state,
                    format!("this would shorten retention: {why}"),
                ));
            }
        }
    }
    vault.record(Event::PolicySet(policy))
}

pub fn delete_policy(vault: &Vault, name: &str) -> Result<()> {
    let state = vault.state()?;
    if name == DEFAULT_POLICY {
        return Err(Error::Invalid(format!(
            "{DEFAULT_POLICY} cannot be deleted: unassigned items follow it (change it with `coffer policy set`)"
        )));
    }
    if !state.policies.contains_key(name) {
        return Err(Error::Invalid(format!("no policy named {name:?}")));
    }
    let users: Vec<&String> = state
        .assignments
        .iter()
        .filter(|(_, p)| p.as_str() == name)
        .map(|(i, _)| i)
        .collect();
    if !users.is_empty() {
        return Err(Error::Invalid(format!(
            "policy {name:?} is assigned to {} item(s) ({}): assign them another policy first",
            users.len(),
            users
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    vault.record(Event::PolicyDeleted {
        name: name.to_string(),
    })
}

pub fn assign(vault: &Vault, policy: &str, item: &str) -> Result<()> {
    let state = vault.state()?;
    let Some(new) = state.policies.get(policy) else {
        return Err(Error::Invalid(format!(
            "no policy named {policy:?} (see `coffer policy list`)"
        )));
    };
    if state.immutability != Immutability::Disabled {
        let old = state.policy_of(item);
        if let Some(why) = new.retention.shortening_from(&old.retention) {
            return Err(immutable(
                &state,
                format!(
                    "moving {item:?} from {:?} to {policy:?} would shorten retention: {why}",
                    old.name
                ),
            ));
        }
    }
    vault.record(Event::Assigned {
        item: item.to_string(),
        policy: policy.to_string(),
    })
}

pub fn hold(vault: &Vault, point: &ObjectId) -> Result<()> {
    vault.record(Event::Hold { point: *point })
}

pub fn release(vault: &Vault, point: &ObjectId) -> Result<()> {
    vault.record(Event::Release { point: *point })
}

/// Whether a live point is still unexpired (its retention would keep it).
fn unexpired(state: &VaultState, points: &[Point], target: &Point, now: i64) -> Result<bool> {
    let item = &target.manifest.item;
    let live: Vec<PointFacts> = points
        .iter()
        .filter(|p| {
            &p.manifest.item == item
                && p.writer == target.writer
                && !state.soft_deleted.contains_key(&p.id)
                && !state.purged.contains(&p.id)
        })
        .map(|p| facts(state, p))
        .collect();
    let verdicts = evaluate(&live, state.policy_of(item), state.protection_of(item), now)
        .map_err(Error::Invalid)?;
    Ok(verdicts.get(&target.id).is_some_and(|v| v.keep))
}

/// Soft-deletes points by hand. Under immutability only expired points may go.
pub fn delete_points(vault: &Vault, targets: &[Point], reason: &str) -> Result<()> {
    let state = vault.state()?;
    let all = vault.points()?;
    let now = now_secs();
    if state.immutability != Immutability::Disabled {
        for t in targets {
            if state.holds.contains(&t.id) || unexpired(&state, &all, t, now)? {
                return Err(immutable(
                    &state,
                    format!("point {} has not expired yet", &t.id.to_hex()[..12]),
                ));
            }
        }
    }
    for t in targets {
        if state.holds.contains(&t.id) {
            return Err(Error::Invalid(format!(
                "point {} is on hold: release it first (`coffer points release`)",
                &t.id.to_hex()[..12]
            )));
        }
    }
    let points: Vec<ObjectId> = targets
        .iter()
        .map(|p| p.id)
        .filter(|id| !state.soft_deleted.contains_key(id))
        .collect();
    if points.is_empty() {
        return Ok(());
    }
    vault.record(Event::SoftDeleted {
        points,
        at: now,
        reason: reason.to_string(),
    })
}

/// Brings soft-deleted points back and puts them on hold, so that the
/// retention that expired them does not do it again at the next prune;
/// releasing the hold hands them back to their policy.
pub fn undelete(vault: &Vault, points: &[ObjectId]) -> Result<()> {
    let state = vault.state()?;
    for p in points {
        if !state.soft_deleted.contains_key(p) {
            return Err(Error::Invalid(format!(
                "point {} is not soft-deleted",
                &p.to_hex()[..12]
            )));
        }
    }
    vault.record(Event::Undeleted {
        points: points.to_vec(),
    })?;
    for p in points {
        vault.record(Event::Hold { point: *p })?;
    }
    Ok(())
}

/// Stops protecting an item: "retain data" keeps every point forever,
/// "delete data" soft-deletes them all (refused under immutability while
/// any is unexpired).
pub fn stop_protection(vault: &Vault, item: &str, delete_data: bool) -> Result<()> {
    if !delete_data {
        return vault.record(Event::Protection {
            item: item.to_string(),
            state: Protection::StoppedRetain,
        });
    }
    let targets: Vec<Point> = vault
        .points()?
        .into_iter()
        .filter(|p| p.manifest.item == item)
        .collect();
    delete_points(vault, &targets, "protection stopped with delete data")?;
    vault.record(Event::Protection {
        item: item.to_string(),
        state: Protection::StoppedDelete,
    })
}

/// Resumes protection: the item's policy applies again.
pub fn resume_protection(vault: &Vault, item: &str) -> Result<()> {
    vault.record(Event::Protection {
        item: item.to_string(),
        state: Protection::Active,
    })
}

pub fn set_immutability(vault: &Vault, to: Immutability) -> Result<()> {
    let state = vault.state()?;
    if state.immutability == Immutability::Locked && to != Immutability::Locked {
        return Err(immutable(&state, "a locked vault stays locked".into()));
    }
    vault.record(Event::Immutability(to))
}

pub fn set_soft_delete_days(vault: &Vault, days: u32) -> Result<()> {
    if !(1..=180).contains(&days) {
        return Err(Error::Invalid(format!(
            "soft-delete days must be 1 to 180, not {days}"
        )));
    }
    let state = vault.state()?;
    if state.immutability != Immutability::Disabled && days < state.soft_delete_days {
        return Err(immutable(
            &state,
            format!(
                "shortening the soft-delete period from {} to {days} days is refused",
                state.soft_delete_days
            ),
        ));
    }
    vault.record(Event::SoftDeleteDays(days))
}
