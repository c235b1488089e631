//! The store's control file, as a process opening the store checks it.

#![no_main]

use brain_core::format::control::{check_control_file, CONTROL_LEN, CONTROL_MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| match check_control_file(data) {
    Ok(_) => {
        assert_eq!(data.len(), CONTROL_LEN);
        assert_eq!(data[..8], CONTROL_MAGIC);
    }
    Err(err) => drop(err.to_string()),
});
