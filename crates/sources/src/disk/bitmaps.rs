//! Persistent dirty bitmaps: which blocks of an image changed since a point.
//!
//! Each item keeps its own bitmaps in the image, named
//! `coffer-<16 hex of BLAKE3(item name)>-<secs>.<nanos>`: the time is the
//! instant the bitmap started recording, which is the time of the point
//! taken at that instant. A backup counts changes from the item's previous
//! point only when a bitmap's time is that point's time (see
//! `coffer_engine::backup::Changed`).
//!
//! Rotation, in this order, so that a failed or killed backup never loses a
//! change:
//! 1. In one transaction (one instant, the instant of the new point): add
//!    the new bitmap (recording from now) and disable the old ones (their
//!    content is then exactly the changes from their time to now).
//! 2. Back up, reading the blocks the old bitmaps mark.
//! 3. Only after the point is committed, remove the old bitmaps.
//!
//! Killed anywhere before 3, the image holds the old bitmaps and the new
//! one: their union covers every change since the old time, and the next
//! backup merges them. A backup that fails merges the new bitmap back into
//! the oldest, re-enabled, and removes the new one, so the next backup
//! counts from the previous point again. An image not closed cleanly
//! (QEMU marks its bitmaps in use and loads them as inconsistent), a
//! missing bitmap or one whose time is not the previous point's is not
//! used: every allocated block is read and compared instead.

use serde_json::{json, Value};

use coffer_engine::tree::Timestamp;

use super::qmp::{action, Qmp};
use crate::Result;

/// A bitmap's granularity: one bit per block of the disk point.
pub const GRANULARITY: u32 = coffer_engine::disk_map::BLOCK_SIZE;

/// The prefix of every bitmap of `item`.
pub fn prefix(item: &str) -> String {
    let hash = blake3::hash(item.as_bytes()).to_hex();
    format!("coffer-{}-", &hash[..16])
}

/// The name of `item`'s bitmap that starts recording at `time`.
pub fn name(item: &str, time: Timestamp) -> String {
    format!("{}{}.{:09}", prefix(item), time.secs, time.nanos)
}

fn time_of(suffix: &str) -> Option<Timestamp> {
    let (secs, nanos) = suffix.split_once('.')?;
    let nanos: u32 = nanos.parse().ok().filter(|n| *n < 1_000_000_000)?;
    Some(Timestamp {
        secs: secs.parse().ok()?,
        nanos,
    })
}

/// One of the item's bitmaps on a node.
#[derive(Debug, Clone)]
pub struct Found {
    pub name: String,
    /// None when the name's time does not parse: such a bitmap is not used.
    pub since: Option<Timestamp>,
    pub inconsistent: bool,
    pub recording: bool,
}

/// The item's bitmaps on block node `node`.
pub fn ours(qmp: &mut Qmp, node: &str, item: &str) -> Result<Vec<Found>> {
    let nodes = qmp.execute("query-named-block-nodes", json!({ "flat": true }))?;
    let prefix = prefix(item);
    let mut found = Vec::new();
    for n in nodes.as_array().into_iter().flatten() {
        if n.get("node-name").and_then(Value::as_str) != Some(node) {
            continue;
        }
        for b in n
            .get("dirty-bitmaps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = b.get("name").and_then(Value::as_str) else {
                continue;
            };
            let Some(suffix) = name.strip_prefix(&prefix) else {
                continue;
            };
            found.push(Found {
                name: name.to_string(),
                since: time_of(suffix),
                inconsistent: b.get("inconsistent").and_then(Value::as_bool) == Some(true),
                recording: b.get("recording").and_then(Value::as_bool) != Some(false),
            });
        }
    }
    found.sort_by_key(|f| f.since);
    Ok(found)
}

/// Actions that add a persistent bitmap recording from the transaction's
/// instant.
pub fn add(node: &str, name: &str) -> Value {
    action(
        "block-dirty-bitmap-add",
        json!({ "node": node, "name": name, "persistent": true, "granularity": GRANULARITY }),
    )
}

pub fn disable(node: &str, name: &str) -> Value {
    action(
        "block-dirty-bitmap-disable",
        json!({ "node": node, "name": name }),
    )
}

pub fn enable(node: &str, name: &str) -> Value {
    action(
        "block-dirty-bitmap-enable",
        json!({ "node": node, "name": name }),
    )
}

pub fn remove(node: &str, name: &str) -> Value {
    action(
        "block-dirty-bitmap-remove",
        json!({ "node": node, "name": name }),
    )
}

pub fn merge(node: &str, into: &str, from: &[String]) -> Value {
    action(
        "block-dirty-bitmap-merge",
        json!({ "node": node, "target": into, "bitmaps": from }),
    )
}

/// A bitmap for this session only (not stored in the image), disabled,
/// holding the union of `from`: what an export of several bitmaps needs.
pub fn union(qmp: &mut Qmp, node: &str, name: &str, from: &[String]) -> Result<()> {
    qmp.transaction(vec![
        action(
            "block-dirty-bitmap-add",
            json!({ "node": node, "name": name, "persistent": false, "disabled": true, "granularity": GRANULARITY }),
        ),
        merge(node, name, from),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_time_and_item() {
        let t = Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        };
        let n = name("vm one", t);
        assert!(n.starts_with(&prefix("vm one")));
        assert!(!n.starts_with(&prefix("vm two")));
        assert_eq!(time_of(n.strip_prefix(&prefix("vm one")).unwrap()), Some(t));
        assert_eq!(time_of("12.1234567890"), None);
        assert_eq!(time_of("x.5"), None);
    }
}
