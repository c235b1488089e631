//! An Arrow IPC payload (arrow, pandas and polars codecs) as brain opens
//! it: decoded in place from a buffer aligned as payloads in the store are.

#![no_main]

use std::cell::Cell;
use std::sync::Once;

use brain_core::format::arrow;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// `decode` catches the panics of Arrow's own decoder on malformed files
/// and returns an error: those are let through to it. Any other panic (in
/// brain, or one that escapes `decode`) still stops the fuzzer.
fn let_decode_catch_arrow_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_arrow = info
                .location()
                .is_some_and(|at| at.file().contains("/arrow-"));
            if !(in_arrow && DECODING.get()) {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_decode_catch_arrow_panics();
    let buffer = brain_fuzz::payload_buffer(data);
    DECODING.set(true);
    let decoded = arrow::decode(&buffer);
    DECODING.set(false);
    let Ok((schema, batches)) = decoded else {
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
