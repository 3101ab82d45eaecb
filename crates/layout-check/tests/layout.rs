//! The workspace's sources against the project's layout rules: no function
//! over 150 lines, no file over 1,000 lines (tests aside), and no two
//! top-level modules of a crate importing each other in a circle.
//!
//! `KNOWN` lists what still breaks a rule, each with the reason; the test
//! fails on anything new and on any entry that no longer needs to be there,
//! so the list only shrinks.

use std::path::{Path, PathBuf};

use coffer_layout_check::{module_cycles, module_edges, scan_crate};

const MAX_FUNCTION_LINES: usize = 150;
const MAX_FILE_LINES: usize = 1000;

/// Findings that are known and explained: (finding, reason).
const KNOWN: &[(&str, &str)] = &[];

fn workspace_crates() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&crates)
        .expect("the workspace's crates directory is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("src").is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn findings() -> Vec<String> {
    let mut found = Vec::new();
    for dir in workspace_crates() {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let layout = scan_crate(&dir).expect("every source file parses");
        for file in &layout.files {
            let shown = file
                .path
                .strip_prefix(&dir)
                .unwrap_or(&file.path)
                .display()
                .to_string();
            if file.code_lines > MAX_FILE_LINES {
                found.push(format!("file {name}/{shown}: {} lines", file.code_lines));
            }
            for function in &file.functions {
                if function.lines > MAX_FUNCTION_LINES {
                    found.push(format!(
                        "function {name}/{shown} {}: {} lines (from line {})",
                        function.name, function.lines, function.line
                    ));
                }
            }
        }
        let edges = module_edges(&layout);
        for cycle in module_cycles(&layout) {
            let closing: Vec<String> = cycle
                .iter()
                .flat_map(|from| {
                    edges[from]
                        .iter()
                        .filter(|to| cycle.contains(to))
                        .map(move |to| format!("{from}→{to}"))
                })
                .collect();
            found.push(format!("cycle {name}: {}", closing.join(" ")));
        }
    }
    found
}

/// The part of a finding that names it, without the measured size, so a
/// known long function that changes length stays the same finding.
fn key(finding: &str) -> &str {
    finding
        .rsplit_once(": ")
        .filter(|_| !finding.starts_with("cycle"))
        .map_or(finding, |(k, _)| k)
}

#[test]
fn sources_keep_to_the_layout_rules() {
    let found = findings();
    let unexplained: Vec<&String> = found
        .iter()
        .filter(|f| !KNOWN.iter().any(|(known, _)| key(known) == key(f)))
        .collect();
    let stale: Vec<&str> = KNOWN
        .iter()
        .map(|(known, _)| *known)
        .filter(|known| !found.iter().any(|f| key(f) == key(known)))
        .collect();
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "layout findings not explained in KNOWN:\n  {}\nKNOWN entries no longer found (remove them):\n  {}",
        unexplained.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
        stale.join("\n  ")
    );
}
