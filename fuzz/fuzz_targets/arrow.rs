//! An Arrow IPC payload (arrow, pandas and polars codecs) as brain opens
//! it: decoded in place from a buffer aligned as payloads in the store are.

#![no_main]

use brain_core::format::arrow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let buffer = brain_fuzz::payload_buffer(data);
    let Ok((schema, batches)) = arrow::decode(&buffer) else {
        return;
    };
    // What `brain info` shows of a table.
    for field in schema.fields() {
        drop(field.data_type().to_string());
    }
    for batch in &batches {
        assert_eq!(batch.schema(), schema);
        for column in batch.columns() {
            assert_eq!(column.len(), batch.num_rows());
            // Columns point into the payload: they must be valid Arrow
            // arrays, or reading them goes out of bounds.
            column
                .to_data()
                .validate_full()
                .expect("decoded arrays are valid");
        }
    }
});
