//! ndarray metadata: the JSON in part 0 of an ndarray payload, dtypes of
//! every kind (structured, nested, titled, sub-arrays) included.

#![no_main]

use brain_core::NdArrayMeta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = NdArrayMeta::from_json(data) else {
        return;
    };
    let itemsize = meta.dtype.itemsize();
    drop(meta.dtype.to_string());
    match meta.data_len() {
        Some(len) => {
            assert!(itemsize.is_some());
            assert_eq!(meta.check_data_len(len), Ok(()));
            assert!(meta.check_data_len(len.wrapping_add(1)).is_err());
        }
        None => assert!(meta.check_data_len(data.len() as u64).is_err()),
    }
    assert_eq!(NdArrayMeta::from_json(&meta.to_json()), Ok(meta));
});
