//! The import graph between a crate's top-level modules and its cycles.
//!
//! A reference `a::b::Name` from a file in module `x::y` is an edge `x → a`.
//! A reference through the crate root (`crate::Name`) follows the root's
//! re-export to the defining module; names the root defines itself are not
//! edges, because the root declares every module and is above them all.
//! Cycles are the strongly connected components (Tarjan) of two or more
//! modules.

use std::collections::{BTreeMap, BTreeSet};

use crate::CrateLayout;

/// Every set of top-level modules that import each other in a circle, each
/// sorted, with the edges that close it (`a → b` as `("a", "b")`).
pub fn module_cycles(layout: &CrateLayout) -> Vec<Vec<String>> {
    let edges = module_edges(layout);
    strongly_connected(&edges)
        .into_iter()
        .filter(|component| component.len() > 1)
        .collect()
}

/// The edges between top-level modules, for reporting which imports close
/// a cycle.
pub fn module_edges(layout: &CrateLayout) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<&str> = layout
        .files
        .iter()
        .filter_map(|file| file.module.first().map(String::as_str))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &layout.files {
        let Some(from) = file.module.first() else {
            continue;
        };
        edges.entry(from.clone()).or_default();
        for reference in &file.references {
            let Some(first) = reference.first() else {
                continue;
            };
            let target = if modules.contains(first.as_str()) {
                Some(first.clone())
            } else {
                layout.root_exports.get(first).cloned()
            };
            if let Some(to) = target.filter(|to| to != from) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

fn strongly_connected(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, node: &'a str) {
            let next = self.index.len();
            self.index.insert(node, next);
            self.low.insert(node, next);
            self.stack.push(node);
            self.on_stack.insert(node);
            for target in self.edges.get(node).into_iter().flatten() {
                let target = target.as_str();
                if !self.index.contains_key(target) {
                    self.visit(target);
                    let low = self.low[node].min(self.low[target]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(target) {
                    let low = self.low[node].min(self.index[target]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                component.sort();
                self.components.push(component);
            }
        }
    }
    let mut tarjan = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in edges.keys() {
        if !tarjan.index.contains_key(node.as_str()) {
            tarjan.visit(node);
        }
    }
    tarjan.components
}
