//! Where a restore requested through the service may write.
//!
//! The service writes as its own user (often root), so a restore target is
//! a path on its machine chosen by whoever asks. Administrators may choose
//! any absolute path. Every other role restores either under one of the
//! configured restore roots (`restore_roots`, by default
//! `<data dir>/restores`), or back over the original place of a directory
//! item, and then only inside the paths an administrator gave that item;
//! database and command items go back through the item's own settings,
//! which only administrators define.
//!
//! A target is judged by its text (absolute, no `..`) and by the real path
//! of its deepest part that exists, so a symlink planted inside a root
//! cannot carry the restore out of it. The engine then keeps every entry
//! under the target (see `coffer_engine::confine`).

use std::path::{Component, Path, PathBuf};

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::state::Item;
use coffer_api_types::RestoreParams;

/// Checks a restore request against the rules above. `item` is the item of
/// the point, found in the restore's own vault (None when the service no
/// longer has it). May narrow `params.includes` to the item's paths.
pub fn check_restore_target(
    p: &Principal,
    roots: &[PathBuf],
    item: Option<&Item>,
    params: &mut RestoreParams,
) -> Result<()> {
    if params.target.is_empty() {
        // In place through the item's kind: the item's own settings decide.
        return Ok(());
    }
    let target = normal_absolute(&params.target)?;
    if p.is_admin {
        return Ok(());
    }
    if target == Path::new("/") {
        return in_place_within_item(item, params);
    }
    if roots.iter().any(|root| is_within_root(&target, root)) {
        return Ok(());
    }
    let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    Err(Error::Forbidden(format!(
        "{} is outside the restore roots ({}): restore under one of them, or ask an administrator",
        target.display(),
        if shown.is_empty() {
            "none are configured".to_string()
        } else {
            shown.join(", ")
        }
    )))
}

/// Checks a restore onto a registered agent's host. Its file system is not
/// this machine's, so nothing there can be judged by its real path:
/// administrators may restore anywhere on any host; other roles only back
/// over the original place (`/`) of a directory item on the item's own
/// host, inside the item's paths.
pub fn check_host_restore(
    p: &Principal,
    item: Option<&Item>,
    host: &str,
    params: &mut RestoreParams,
) -> Result<()> {
    let target = normal_absolute(&params.target)?;
    if p.is_admin {
        return Ok(());
    }
    let own_host = item.and_then(|i| i.agent.as_deref()) == Some(host);
    if own_host && target == Path::new("/") {
        return in_place_within_item(item, params);
    }
    Err(Error::Forbidden(format!(
        "restoring onto {host} anywhere but the item's original place on its own host needs an administrator"
    )))
}

/// A database or command item put back in its own place on `host`: an
/// administrator's choice anywhere; others only on the item's own host.
pub fn check_host_in_place(p: &Principal, item: Option<&Item>, host: &str) -> Result<()> {
    if p.is_admin || item.and_then(|i| i.agent.as_deref()) == Some(host) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "putting this item back on {host}, which is not its own host, needs an administrator"
    )))
}

/// An absolute path with no `.`, `..` or empty components.
fn normal_absolute(text: &str) -> Result<PathBuf> {
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err(Error::invalid("target", "an absolute directory path"));
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::invalid(
                    "target",
                    "a path without `.` or `..` components",
                ))
            }
        }
    }
    Ok(out)
}

/// Whether `target` lies in `root` once the symlinks of its existing part
/// are resolved.
fn is_within_root(target: &Path, root: &Path) -> bool {
    let Ok(root) = root.canonicalize() else {
        return false;
    };
    let mut existing = target.to_path_buf();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(real) => break real,
            Err(_) => match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => return false,
            },
        }
    };
    let mut full = resolved;
    full.extend(rest.iter().rev());
    full.starts_with(&root)
}

/// A non-administrator's restore over the original place: only inside the
/// paths of the item the point belongs to, and only those paths when no
/// include was given (a point's tree may hold more than its item's paths).
fn in_place_within_item(item: Option<&Item>, params: &mut RestoreParams) -> Result<()> {
    let item = item.ok_or_else(|| {
        Error::Forbidden(
            "the point's item is not configured in this vault, so only an administrator may restore it over the original place".into(),
        )
    })?;
    if item.paths.is_empty() {
        return Err(Error::Forbidden(
            "this item has no paths to restore over: restore under a restore root".into(),
        ));
    }
    if params.includes.is_empty() {
        params.includes = item.paths.clone();
        return Ok(());
    }
    for include in &params.includes {
        let include = normal_absolute(include).map_err(|_| {
            Error::invalid(
                "includes",
                format!("{include:?} is not an absolute path without `..`"),
            )
        })?;
        if !item.paths.iter().any(|p| include.starts_with(p)) {
            return Err(Error::Forbidden(format!(
                "{} is not inside the paths of item {}: only an administrator may restore it over the original place",
                include.display(),
                item.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn operator() -> Principal {
        Principal {
            user_id: 2,
            name: "op".into(),
            is_admin: false,
            roles: vec![("v".into(), Role::BackupOperator)],
        }
    }

    fn params(target: &str, includes: &[&str]) -> RestoreParams {
        RestoreParams {
            point: "latest".into(),
            target: target.into(),
            includes: includes.iter().map(|s| s.to_string()).collect(),
            overwrite: true,
            host: None,
        }
    }

    fn item(paths: &[&str]) -> Item {
        Item {
            name: "it".into(),
            vault: "v".into(),
            kind: "directory".into(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            excludes: vec![],
            postgresql: None,
            command: None,
            disk: None,
            pre: None,
            post: None,
            agent: None,
            enabled: true,
            retry_attempts: 0,
            retry_delay_secs: 0,
            created: 0,
        }
    }

    #[test]
    fn an_operator_restores_only_under_a_root_or_inside_the_item() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("restores");
        std::fs::create_dir(&root).unwrap();
        let roots = vec![root.clone()];
        let op = operator();
        let it = item(&["/srv/app"]);

        let mut ok = params(root.join("new/deeper").to_str().unwrap(), &[]);
        check_restore_target(&op, &roots, Some(&it), &mut ok).unwrap();

        for outside in ["/etc", "/root/.ssh", "/"] {
            let mut p = params(outside, &["/etc/passwd"]);
            let e = check_restore_target(&op, &roots, Some(&it), &mut p).unwrap_err();
            assert!(matches!(e, Error::Forbidden(_)), "{outside}: {e}");
        }
        let mut dots = params(&format!("{}/../../etc", root.display()), &[]);
        let e = check_restore_target(&op, &roots, Some(&it), &mut dots).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");

        // A symlink inside the root that leads out of it.
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let mut link = params(root.join("escape/x").to_str().unwrap(), &[]);
        let e = check_restore_target(&op, &roots, Some(&it), &mut link).unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{e}");

        // Over the original place: the item's own paths only.
        let mut whole = params("/", &[]);
        check_restore_target(&op, &roots, Some(&it), &mut whole).unwrap();
        assert_eq!(whole.includes, vec!["/srv/app".to_string()]);
        let mut inside = params("/", &["/srv/app/conf"]);
        check_restore_target(&op, &roots, Some(&it), &mut inside).unwrap();
        let mut beyond = params("/", &["/srv/app/../../etc"]);
        assert!(check_restore_target(&op, &roots, Some(&it), &mut beyond).is_err());
        let mut none = params("/", &[]);
        assert!(check_restore_target(&op, &roots, None, &mut none).is_err());

        let admin = Principal {
            is_admin: true,
            ..operator()
        };
        let mut anywhere = params("/etc", &[]);
        check_restore_target(&admin, &roots, Some(&it), &mut anywhere).unwrap();
    }
}
