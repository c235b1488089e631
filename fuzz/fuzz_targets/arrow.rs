//! An Arrow IPC payload (arrow, pandas and polars codecs) as brain opens
//! it: decoded in place from a buffer aligned as payloads in the store are.

#![no_main]

use std::cell::Cell;
use std::sync::Once;

use brain_core::format::arrow;
use brain_core::format::kept::ContentId;
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

fn decode(buffer: &arrow_buffer::Buffer, content: Option<ContentId>) -> Decoded {
    DECODING.set(true);
    let decoded = arrow::decode_columns_of(buffer, content, None, |_| {
        Ok::<_, arrow_schema::ArrowError>(None)
    });
    DECODING.set(false);
    decoded.ok()
}

type Decoded = Option<(arrow_schema::SchemaRef, Vec<arrow_array::RecordBatch>)>;

fn check(decoded: Decoded) {
    let Some((schema, batches)) = decoded else {
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
}

fuzz_target!(|data: &[u8]| {
    let_decode_catch_arrow_panics();
    let buffer = brain_fuzz::payload_buffer(data);
    check(decode(&buffer, None));
    // The payload as its writer's checksum names it: once its blocks pass
    // their checks, a payload claiming the same checksum with the same
    // footer (its other bytes changed here) has them only bounds-checked.
    let claimed = ContentId::new(data.len() as u64, 0, true);
    let first = decode(&buffer, Some(claimed));
    let passed = first.is_some();
    check(first);
    if passed {
        let mut changed = data.to_vec();
        let end = data.len() / 2;
        for byte in changed.get_mut(8..end).unwrap_or_default() {
            *byte ^= 0x5a;
        }
        check(decode(&brain_fuzz::payload_buffer(&changed), Some(claimed)));
    }
});
