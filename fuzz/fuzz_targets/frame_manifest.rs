//! A frame's manifest (codec frame-parts) as a reader meets it: stored under
//! the frame's name beside real parts (`brain_fuzz::frame_store`), read with
//! its parts and decoded whole and by column.

#![no_main]

use brain_core::frames::{self, FrameManifest, StoredTable};
use brain_core::{Codec, ObjectStore, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = brain_fuzz::frame_store();
    let payload = Payload::bytes(data).with_codec(Codec::FrameParts);
    if store.put("default", "f", &payload).is_err() {
        return;
    }
    let view = store
        .get("default", "f")
        .expect("a read")
        .expect("the manifest");
    if let Ok(manifest) = FrameManifest::decode(&view) {
        // What a manifest that decodes promises its readers.
        assert_eq!(manifest.columns.len(), manifest.schema.fields().len());
        for chunks in &manifest.columns {
            assert!(chunks.iter().all(|c| c.part < manifest.parts.len()));
            assert_eq!(chunks.iter().map(|c| c.rows).sum::<u64>(), manifest.rows);
        }
        let again = manifest.encode("default", "f").expect("it encodes");
        let stored = Payload::bytes(&again).with_codec(Codec::FrameParts);
        store.put("default", "g", &stored).expect("a write");
        let view = store
            .get("default", "g")
            .expect("a read")
            .expect("the copy");
        assert_eq!(
            FrameManifest::decode(&view).expect("it decodes again"),
            manifest
        );
    }
    let Ok(Some(StoredTable::Parts(frame))) = frames::read_table(store, "default", "f") else {
        return;
    };
    let table = StoredTable::Parts(frame);
    for columns in [None, Some(&["id"][..]), Some(&["extra", "tag"][..])] {
        let Ok((schema, batches)) = table.record_batches(columns) else {
            continue;
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if !schema.fields().is_empty() {
            assert_eq!(rows as u64, table_rows(&table));
        }
        for batch in &batches {
            for column in batch.columns() {
                column.to_data().validate_full().expect("valid arrays");
            }
        }
    }
});

fn table_rows(table: &StoredTable) -> u64 {
    match table {
        StoredTable::Parts(frame) => frame.manifest().rows,
        StoredTable::Whole(_) => 0,
    }
}
