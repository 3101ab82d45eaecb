//! What a write-only credential's slot and text are parsed from before
//! anything authenticates them (a slot at the storage, a credential a user
//! pastes): parsing never panics, and a slot that parses keeps its name
//! within the rules.
#![no_main]

use coffer_engine::credential::{WriterCredential, WriterSlot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(slot) = WriterSlot::parse("0000000000000000", data) {
        assert!(coffer_engine::credential::slot::check_name(&slot.name).is_ok());
        assert_eq!(slot.to_bytes(), data);
    }
    let _ = WriterCredential::parse(&String::from_utf8_lossy(data));
});
