//! A small object's record, as a reader of the store's table decodes it.

#![no_main]

use brain_core::format::record::SmallRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| match SmallRecord::decode(data) {
    // What decodes encodes back to the same bytes: nothing is ignored.
    Ok(record) => assert_eq!(record.encode(), data),
    Err(err) => drop(err.to_string()),
});
