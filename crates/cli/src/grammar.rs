//! One grammar, two modes: a command that only one mode has is refused in
//! the other with the way to run it, not with clap's bare "unrecognized
//! subcommand".

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Command;

/// The words of `args` that name subcommands in `own`, up to the one clap
/// refused.
fn command_path(own: &Command, args: &[OsString], refused: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut at = own;
    for word in args.iter().skip(1).map(|a| a.to_string_lossy()) {
        if word.starts_with('-') {
            continue;
        }
        if word == refused {
            path.push(word.into_owned());
            break;
        }
        if let Some(sub) = at.find_subcommand(word.as_ref()) {
            path.push(word.into_owned());
            at = sub;
        }
    }
    path
}

fn has_path(mut at: &Command, path: &[String]) -> bool {
    for word in path {
        match at.find_subcommand(word) {
            Some(sub) => at = sub,
            None => return false,
        }
    }
    !path.is_empty()
}

/// When clap refused a subcommand that `other` (the other mode's grammar)
/// has, the line that says which mode has it.
pub(crate) fn other_mode(
    err: &clap::Error,
    own: &Command,
    other: &Command,
    other_is_remote: bool,
) -> Option<String> {
    if err.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let refused = match err.get(ContextKind::InvalidSubcommand) {
        Some(ContextValue::String(word)) => word.clone(),
        _ => return None,
    };
    let args: Vec<OsString> = std::env::args_os().collect();
    let path = command_path(own, &args, &refused);
    if !has_path(other, &path) {
        return None;
    }
    let name = path.join(" ");
    Some(if other_is_remote {
        format!("`coffer {name}` manages a running service: give --server URL (or set COFFER_SERVER) and an API token in COFFER_TOKEN")
    } else {
        format!("`coffer {name}` works on a vault location, not through a service: run it without --server (and with COFFER_SERVER unset), naming the location with --vault LOC")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_command_of_the_other_mode_is_found_by_its_path() {
        let local = crate::cli::Cli::command();
        let remote = crate::remote::RemoteCli::command();
        let args: Vec<OsString> = ["coffer", "--json", "alert", "list"]
            .iter()
            .map(OsString::from)
            .collect();
        let path = command_path(&local, &args, "alert");
        assert_eq!(path, ["alert"]);
        assert!(has_path(&remote, &path));
        assert!(!has_path(&local, &path));

        let args: Vec<OsString> = ["coffer", "points", "hold", "--vault", "v", "abc"]
            .iter()
            .map(OsString::from)
            .collect();
        let path = command_path(&remote, &args, "hold");
        assert_eq!(path, ["points", "hold"]);
        assert!(has_path(&local, &path));
        assert!(!has_path(&remote, &path));
    }
}
