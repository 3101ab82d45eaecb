//! Restores of hand-made hostile points: whatever a point's trees say and
//! whatever the target holds (or has swapped in while the restore runs),
//! nothing is created or changed outside the target.

use std::path::Path;

use crate::crafted::Crafted;
use crate::restore::{restore, RestoreOptions, RestoreProgress, RestoreReport};
use crate::testutil::new_vault;
use crate::vault::{Point, Vault};
use crate::Error;

fn restore_into(
    vault: &Vault,
    point: &Point,
    target: &Path,
    overwrite: bool,
) -> crate::Result<RestoreReport> {
    restore(
        vault,
        point,
        &RestoreOptions {
            target: target.to_path_buf(),
            overwrite,
            ..Default::default()
        },
        &RestoreProgress::default(),
    )
}

/// Every path under `dir`, sorted, for "nothing changed here" checks.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            out.push(e.path().display().to_string());
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn names_that_leave_a_directory_are_refused_and_the_rest_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let (vault, _) = new_vault(&tmp.path().join("vault"), false);
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut c = Crafted::new(&vault);
    let escape = format!("{}/abs", outside.display());
    let nested = vec![
        c.file(b"..", b"parent"),
        c.file(b"ok", b"fine"),
        c.file(b"ok", b"second of the same name"),
    ];
    let root = vec![
        c.file(b"", b"empty name"),
        c.file(b".", b"dot"),
        c.file(escape.as_bytes(), b"absolute"),
        c.file(b"../outside/up", b"climbs"),
        c.file(b"nul\0byte", b"nul"),
        c.dir(b"d", nested),
        c.file(b"a-out-of-order", b"late"),
    ];
    let point = c.commit("hostile", &[b"/d"], &[], root).unwrap();
    let target = tmp.path().join("target");
    let report = restore_into(&vault, &point, &target, false).unwrap();

    assert_eq!(std::fs::read(target.join("d/ok")).unwrap(), b"fine");
    assert!(listing(&outside).is_empty(), "{:?}", listing(&outside));
    assert_eq!(listing(&target).len(), 2, "{:?}", listing(&target));
    let said: Vec<&String> = report.damaged.iter().map(|(_, why)| why).collect();
    assert_eq!(said.len(), 8, "{said:#?}");
    let id = &point.id.to_hex()[..12];
    assert!(said
        .iter()
        .all(|w| w.contains(id) && w.contains("malformed")));
    assert!(said.iter().any(|w| w.contains("second entry")));
    assert!(said.iter().any(|w| w.contains("out of order")));
    assert!(!report.is_complete());
}

#[test]
fn a_symlink_in_one_point_is_not_followed_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let (vault, _) = new_vault(&tmp.path().join("vault"), false);
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();

    let mut c = Crafted::new(&vault);
    let link = c.symlink(b"x", outside.to_str().unwrap().as_bytes());
    let first = c.commit("i", &[b"/x"], &[], vec![link]).unwrap();
    let mut c = Crafted::new(&vault);
    let evil = c.file(b"evil", b"planted");
    let dir = c.dir(b"x", vec![evil]);
    let second = c.commit("i", &[b"/x"], &[], vec![dir]).unwrap();

    let target = tmp.path().join("target");
    restore_into(&vault, &first, &target, false).unwrap();
    // Without overwrite the symlink is a conflict, not a way through.
    match restore_into(&vault, &second, &target, false) {
        Err(Error::TargetExists { example, .. }) => assert_eq!(example, target.join("x")),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(listing(&outside).is_empty());
    // With overwrite the symlink itself is replaced by the directory.
    let report = restore_into(&vault, &second, &target, true).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert!(target.join("x").symlink_metadata().unwrap().is_dir());
    assert_eq!(std::fs::read(target.join("x/evil")).unwrap(), b"planted");
    assert!(listing(&outside).is_empty());

    // One point holding the symlink and then a directory of the same name.
    let mut c = Crafted::new(&vault);
    let link = c.symlink(b"y", outside.to_str().unwrap().as_bytes());
    let evil = c.file(b"evil", b"planted");
    let dir = c.dir(b"y", vec![evil]);
    let both = c.commit("j", &[b"/y"], &[], vec![link, dir]).unwrap();
    let fresh = tmp.path().join("fresh");
    let report = restore_into(&vault, &both, &fresh, true).unwrap();
    assert!(report
        .damaged
        .iter()
        .any(|(_, w)| w.contains("second entry")));
    assert!(listing(&outside).is_empty());
}

#[test]
fn a_symlink_planted_in_the_target_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (vault, _) = new_vault(&tmp.path().join("vault"), false);
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("f"), b"precious").unwrap();
    let mut c = Crafted::new(&vault);
    let inner = c.file(b"f", b"restored");
    let file = c.file(b"g", b"restored");
    let dir = c.dir(b"src", vec![inner]);
    let point = c
        .commit("i", &[b"/src", b"/g"], &[], vec![file, dir])
        .unwrap();

    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("src")).unwrap();
    std::os::unix::fs::symlink(outside.join("f"), target.join("g")).unwrap();
    assert!(matches!(
        restore_into(&vault, &point, &target, false),
        Err(Error::TargetExists { count: 2, .. })
    ));
    let report = restore_into(&vault, &point, &target, true).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"precious");
    assert_eq!(listing(&outside).len(), 1);
    assert_eq!(std::fs::read(target.join("src/f")).unwrap(), b"restored");
    assert!(target.join("g").symlink_metadata().unwrap().is_file());
}

#[test]
fn a_symlink_swapped_in_during_the_restore_leads_nowhere() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let (vault, _) = new_vault(&tmp.path().join("vault"), false);
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut c = Crafted::new(&vault);
    let mut subdirs = Vec::new();
    for d in 0..40 {
        let files: Vec<_> = (0..50)
            .map(|f| c.file(format!("f{f:03}").as_bytes(), format!("{d}/{f}").as_bytes()))
            .collect();
        subdirs.push(c.dir(format!("d{d:03}").as_bytes(), files));
    }
    let top = c.dir(b"a", subdirs);
    let point = c.commit("i", &[b"/a"], &[], vec![top]).unwrap();

    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let stop = AtomicBool::new(false);
    let swaps = std::thread::scope(|s| {
        let racer = s.spawn(|| {
            // Over and over: move the directory away and put a symlink to
            // the outside in its place, then undo it.
            let (a, moved) = (target.join("a"), target.join("a.moved"));
            let mut swaps = 0;
            while !stop.load(Ordering::Relaxed) {
                if std::fs::rename(&a, &moved).is_ok() {
                    let _ = std::os::unix::fs::symlink(&outside, &a);
                    std::thread::yield_now();
                    let _ = std::fs::remove_file(&a);
                    let _ = std::fs::rename(&moved, &a);
                    swaps += 1;
                }
                std::thread::yield_now();
            }
            swaps
        });
        for _ in 0..5 {
            let _ = restore_into(&vault, &point, &target, true);
        }
        stop.store(true, Ordering::Relaxed);
        racer.join().unwrap()
    });
    assert!(swaps > 0, "the racer never swapped");
    assert!(listing(&outside).is_empty(), "{:?}", listing(&outside));
}
