//! One pass over a crate's `src/`: per file its module path, its length
//! without test items, its functions, and the crate-internal paths it names.
//!
//! Test items (`#[cfg(test)]`, `#[test]`, and files that begin with
//! `#![cfg(test)]`) are skipped whole: their lines do
//! not count, their functions are not measured and their imports are not
//! edges, because a test module reaching across the crate is not a design
//! dependency.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::{self, Visit};

use crate::LayoutError;

/// One crate's measured sources.
#[derive(Debug)]
pub struct CrateLayout {
    pub files: Vec<SourceFile>,
    /// Names the crate root re-exports, mapped to the top-level module that
    /// defines them (`pub use error::Error` maps `Error` to `error`).
    pub root_exports: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The module this file is, from the crate root (`[]` for the root).
    pub module: Vec<String>,
    /// Lines in the file less those of test items.
    pub code_lines: usize,
    pub functions: Vec<Function>,
    /// Every crate-internal path the file names, resolved from the crate
    /// root (`super::x` in `a::b` becomes `a::x`).
    pub references: Vec<Vec<String>>,
}

#[derive(Debug)]
pub struct Function {
    pub name: String,
    pub line: usize,
    pub lines: usize,
}

/// Parses every `.rs` file under `crate_dir/src`.
pub fn scan_crate(crate_dir: &Path) -> Result<CrateLayout, LayoutError> {
    let src = crate_dir.join("src");
    let mut paths = Vec::new();
    collect_rust_files(&src, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    let mut root_exports = BTreeMap::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| LayoutError::Read {
            path: path.clone(),
            source,
        })?;
        let syntax = syn::parse_file(&text).map_err(|source| LayoutError::Parse {
            path: path.clone(),
            source,
        })?;
        let module = module_path(&src, &path);
        if module.is_empty() {
            collect_root_exports(&syntax, &mut root_exports);
        }
        let mut visitor = FileVisitor {
            module: module.clone(),
            test_lines: 0,
            functions: Vec::new(),
            references: Vec::new(),
        };
        // A file that says `#![cfg(test)]` (a test module kept in a file
        // of its own) is test code whole.
        if is_test_only(&syntax.attrs) {
            visitor.test_lines = text.lines().count();
        } else {
            visitor.visit_file(&syntax);
        }
        files.push(SourceFile {
            path,
            module,
            code_lines: text.lines().count().saturating_sub(visitor.test_lines),
            functions: visitor.functions,
            references: visitor.references,
        });
    }
    Ok(CrateLayout {
        files,
        root_exports,
    })
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LayoutError> {
    let read_error = |source| LayoutError::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_dir() {
            collect_rust_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `src/lib.rs` → `[]`, `src/a.rs` and `src/a/mod.rs` → `[a]`,
/// `src/a/b.rs` → `[a, b]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn collect_root_exports(syntax: &syn::File, out: &mut BTreeMap<String, String>) {
    for item in &syntax.items {
        if let syn::Item::Use(item_use) = item {
            for path in flatten_use(&item_use.tree) {
                let start = usize::from(path.first().map(String::as_str) == Some("crate"));
                if let (Some(module), Some(name)) = (path.get(start), path.last()) {
                    if path.len() > start + 1 {
                        out.insert(name.clone(), module.clone());
                    }
                }
            }
        }
    }
}

/// Every path a `use` tree names, one per leaf (`a::{b, c::d}` gives
/// `a::b` and `a::c::d`; a glob gives the path up to it).
fn flatten_use(tree: &syn::UseTree) -> Vec<Vec<String>> {
    fn walk(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                walk(&path.tree, prefix, out);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let mut full = prefix.clone();
                full.push(name.ident.to_string());
                out.push(full);
            }
            syn::UseTree::Rename(rename) => {
                let mut full = prefix.clone();
                full.push(rename.ident.to_string());
                out.push(full);
            }
            syn::UseTree::Glob(_) => out.push(prefix.clone()),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    walk(tree, prefix, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        if path.is_ident("test") {
            return true;
        }
        if !path.is_ident("cfg") {
            return false;
        }
        let mut test = false;
        // Only a bare `cfg(test)` marks test code; `cfg(not(test))` does not.
        let _ = attr.parse_nested_meta(|meta| {
            test |= meta.path.is_ident("test");
            Ok(())
        });
        test
    })
}

struct FileVisitor {
    module: Vec<String>,
    test_lines: usize,
    functions: Vec<Function>,
    references: Vec<Vec<String>>,
}

impl FileVisitor {
    fn skip_if_test(&mut self, attrs: &[syn::Attribute], span: proc_macro2::Span) -> bool {
        if is_test_only(attrs) {
            self.test_lines += span.end().line + 1 - span.start().line;
            return true;
        }
        false
    }

    fn measure(&mut self, name: &syn::Ident, fn_token: &syn::token::Fn, block: &syn::Block) {
        let start = fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        self.functions.push(Function {
            name: name.to_string(),
            line: start,
            lines: end + 1 - start,
        });
    }

    /// Resolves `crate::`, `super::` and `self::` paths against this file's
    /// module; other paths (external crates, locals, child modules named
    /// relatively) are not edges between top-level modules.
    fn reference(&mut self, segments: Vec<String>) {
        let mut base = self.module.clone();
        let mut rest = segments.as_slice();
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
            }
            Some("self") => rest = &rest[1..],
            _ => return,
        }
        base.extend(rest.iter().cloned());
        self.references.push(base);
    }
}

impl<'ast> Visit<'ast> for FileVisitor {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => &[],
        };
        if self.skip_if_test(attrs, item.span()) {
            return;
        }
        if let syn::Item::Use(item_use) = item {
            for path in flatten_use(&item_use.tree) {
                self.reference(path);
            }
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.measure(&item.sig.ident, &item.sig.fn_token, &item.block);
        visit::visit_item_fn(self, item);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if let syn::ImplItem::Fn(f) = item {
            if self.skip_if_test(&f.attrs, item.span()) {
                return;
            }
        }
        visit::visit_impl_item(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.measure(&item.sig.ident, &item.sig.fn_token, &item.block);
        visit::visit_impl_item_fn(self, item);
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if let Some(block) = &item.default {
            self.measure(&item.sig.ident, &item.sig.fn_token, block);
        }
        visit::visit_trait_item_fn(self, item);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.reference(segments);
        visit::visit_path(self, path);
    }
}
