//! A tree blob's plaintext, as a vault writer with the key could make it:
//! decoding never panics, whatever decodes encodes back to itself, and
//! every name the restore would use passes or fails the name check without
//! panicking.
#![no_main]

use coffer_engine::confine::check_name;
use coffer_engine::tree::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(tree) = Tree::decode(data) {
        for node in &tree.nodes {
            let _ = check_name(&node.name);
            let _ = tree.find(&node.name);
        }
        let again = Tree::decode(&tree.encode()).expect("a decoded tree re-encodes");
        assert_eq!(again, tree);
    }
});
