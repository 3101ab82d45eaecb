//! A journal record's plaintext: decoding never panics, and folding any
//! sequence of records into the vault's state never panics either.
#![no_main]

use coffer_engine::journal::{Record, VaultState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut state = VaultState::default();
    let mut rest = data;
    while let Ok((record, tail)) = postcard::take_from_bytes::<Record>(rest) {
        state.apply_record(&record);
        let _ = state.policy_of("item");
        if tail.len() == rest.len() {
            break;
        }
        rest = tail;
    }
});
