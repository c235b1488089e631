//! An entry of a dump's index (its JSON value, under its key), as a reader
//! decodes and checks it.

#![no_main]

use brain_persist::fuzzing::decode_entry;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The key an index stores the entry under, built from the entry's own
    // names: a fuzzer would rarely make the two match.
    let names = serde_json::from_slice::<Value>(data).ok().and_then(|v| {
        Some((
            v.get("namespace")?.as_str()?.to_owned(),
            v.get("name")?.as_str()?.to_owned(),
        ))
    });
    let (namespace, name) = names.unwrap_or_default();
    let key = brain_fuzz::index_key(&namespace, &name);
    if decode_entry(&key, data).is_ok() {
        let mut other = key;
        other.push(b'x');
        assert!(
            decode_entry(&other, data).is_err(),
            "an entry under another key"
        );
    }
});
