//! A recovery point's manifest plaintext: decoding never panics and
//! whatever decodes encodes back to itself.
#![no_main]

use coffer_engine::point::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = postcard::from_bytes::<Manifest>(data) {
        let bytes = postcard::to_stdvec(&manifest).expect("a manifest encodes");
        let again: Manifest = postcard::from_bytes(&bytes).expect("and decodes again");
        assert_eq!(again, manifest);
    }
});
