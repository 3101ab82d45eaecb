//! The checker itself, on a small crate written for the test: a cycle, a
//! long function and a test module are found or skipped as they should be.

use coffer_layout_check::{module_cycles, scan_crate};

fn write(root: &std::path::Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[test]
fn finds_cycles_long_functions_and_skips_tests() {
    let dir = std::env::temp_dir().join(format!("coffer-layout-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write(
        &dir,
        "src/lib.rs",
        "mod a;\nmod b;\nmod c;\npub use c::Shared;\n",
    );
    // a → b by a path in code, b → c through the root's re-export of
    // `Shared`, c → a through `super` in a child module: one cycle of three.
    write(&dir, "src/a.rs", "pub fn f() { crate::b::g(); }\n");
    let long_body = "    let _x = 1;\n".repeat(20);
    write(&dir, "src/b.rs", &format!("pub fn g() {{\n{long_body}    let _ = crate::Shared;\n}}\n#[cfg(test)]\nmod tests {{\n    use crate::a::f;\n    fn h() {{ f() }}\n}}\n"));
    write(&dir, "src/c/mod.rs", "mod inner;\npub struct Shared;\n");
    write(
        &dir,
        "src/c/inner.rs",
        "use super::super::a::f;\npub fn i() { f() }\n",
    );

    let layout = scan_crate(&dir).expect("the fixture parses");
    let cycles = module_cycles(&layout);
    assert_eq!(
        cycles,
        vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]
    );

    let b = layout
        .files
        .iter()
        .find(|f| f.path.ends_with("src/b.rs"))
        .expect("b.rs");
    assert_eq!(b.module, vec!["b".to_string()]);
    // 23 lines of g; the 5-line test module is not counted and its `h` not measured.
    assert_eq!(b.code_lines, 23);
    assert_eq!(b.functions.len(), 1);
    assert_eq!(
        (b.functions[0].name.as_str(), b.functions[0].lines),
        ("g", 23)
    );
    let inner = layout
        .files
        .iter()
        .find(|f| f.path.ends_with("src/c/inner.rs"))
        .expect("inner");
    assert_eq!(inner.module, vec!["c".to_string(), "inner".to_string()]);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
