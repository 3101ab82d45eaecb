//! `command`: any command's standard output streamed into the vault (for
//! example `etcdctl snapshot save /dev/stdout`, `mysqldump`), restored by
//! piping the stream into a restore command. The command's exit status
//! decides: output that ends with a failure is never committed.

use crate::{from_vault, PointStreams};
use std::path::Path;

use coffer_engine::backup::{BackupOptions, BackupReport, Progress};
use coffer_engine::point::Consistency;
use coffer_engine::restore::RestoreProgress;
use coffer_engine::{Point, Vault};

pub use coffer_api_types::item::CommandSpec;

use crate::process::{run_fed, shell};
use crate::{
    capture_output, invalid, open_dir, stream_to_dir, BackupDestination, Destination, Error,
    ItemDef, Protector, Result,
};

pub struct Command;

fn spec(item: &ItemDef) -> Result<&CommandSpec> {
    item.command.as_ref().ok_or_else(|| {
        invalid(
            "command",
            "a command item needs its settings: at least backup",
        )
    })
}

impl Protector for Command {
    fn validate(&self, item: &ItemDef) -> Result<()> {
        let spec = spec(item)?;
        if spec.backup.trim().is_empty() {
            return Err(invalid("command.backup", "the backup command is empty"));
        }
        if spec.restore.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(invalid(
                "command.restore",
                "the restore command is empty: leave it out to restore the output as a file",
            ));
        }
        let name = &spec.file_name;
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(invalid(
                "command.file_name",
                format!("{name:?} cannot name a file: use a plain file name"),
            ));
        }
        Ok(())
    }

    fn own_consistency(&self, item: &ItemDef) -> Consistency {
        match spec(item) {
            Ok(s) if s.application_consistent => Consistency::ApplicationConsistent,
            _ => Consistency::CrashConsistent,
        }
    }

    fn capture(
        &self,
        vault: &dyn BackupDestination,
        item: &ItemDef,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<BackupReport> {
        let spec = spec(item)?;
        let mut cmd = shell(&spec.backup);
        cmd.env("COFFER_ITEM", &item.name);
        capture_output(
            vault,
            cmd,
            "the backup command",
            spec.file_name.clone(),
            opts,
            progress,
        )
    }

    fn restore(
        &self,
        point: &PointStreams<'_>,
        item: &ItemDef,
        to: &Destination,
        _: &RestoreProgress,
    ) -> Result<String> {
        let spec = spec(item)?;
        let name = point.single_stream()?;
        match (&spec.restore, &to.target) {
            (_, Some(target)) => {
                let dir = open_dir(target)?;
                let size = stream_to_dir(point, &name, &dir, to.overwrite)?;
                Ok(format!(
                    "{size} bytes of output written to {}",
                    target.join(&name).display()
                ))
            }
            (Some(restore), None) => {
                let mut cmd = shell(restore);
                cmd.env("COFFER_ITEM", &item.name)
                    .env("COFFER_POINT", point.id());
                let mut size = 0;
                run_fed(cmd, "the restore command", |w| {
                    size = point
                        .read(&name, w)
                        .map_err(|e| format!("reading the point failed: {e}"))?;
                    Ok(())
                })
                .map_err(Error::Restore)?;
                Ok(format!("{size} bytes piped into the restore command"))
            }
            (None, None) => Err(Error::Restore(
                "this command item has no restore command: give a target to get its output as a file"
                    .into(),
            )),
        }
    }

    fn verify(&self, vault: &Vault, _: &ItemDef, point: &Point, scratch: &Path) -> Result<String> {
        let size = from_vault(vault, point, |point| {
            let name = point.single_stream()?;
            stream_to_dir(point, &name, &open_dir(scratch)?, false)
        })?;
        Ok(format!(
            "{size} bytes of output restored, every chunk verified"
        ))
    }
}
