//! Frames changed in place (brain_core::frames), on a real store in a
//! temporary directory.

use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use brain_core::frames::{self, is_frame_part, FrameChange};
use brain_core::{Codec, Error, ObjectStore, Store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::Builder::new()
        .prefix("brain-core-frames")
        .tempdir_in("/dev/shm")
        .unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

fn table(ids: &[i64], names: &[&str]) -> (Arc<Schema>, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap();
    (schema, batch)
}

fn column(batches: &[RecordBatch], index: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column(index);
            (0..array.len())
                .map(|i| arrow_cast_string(array.as_ref(), i))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn arrow_cast_string(array: &dyn Array, i: usize) -> String {
    if let Some(a) = array.as_any().downcast_ref::<Int64Array>() {
        return a.value(i).to_string();
    }
    if let Some(a) = array.as_any().downcast_ref::<Float64Array>() {
        return a.value(i).to_string();
    }
    let a = array.as_any().downcast_ref::<StringArray>().unwrap();
    a.value(i).to_owned()
}

fn parts(store: &Store, ns: &str) -> Vec<String> {
    let mut names = store.names(ns).unwrap();
    names.retain(|n| is_frame_part(n));
    names
}

#[test]
fn assign_append_drop_and_compact_change_only_what_they_name() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let (schema, batch) = table(&[1, 2, 3], &["a", "b", "c"]);
    ns.set_record_batches("t", &schema, &[batch])?;
    let before = ns.get_record_batches("t")?.unwrap();

    // A new column: the frame becomes a manifest over two parts.
    let price = Arc::new(Schema::new(vec![Field::new(
        "price",
        DataType::Float64,
        false,
    )]));
    let prices = RecordBatch::try_new(
        price.clone(),
        vec![Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5]))],
    )?;
    ns.assign_columns("t", &price, &[prices])?;
    assert_eq!(ns.metadata("t")?.unwrap().codec, Codec::FrameParts);
    assert_eq!(parts(&store, "default").len(), 2);
    let (schema_after, batches) = ns.get_record_batches("t")?.unwrap();
    let names: Vec<&str> = schema_after
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "name", "price"]);
    assert_eq!(column(&batches, 2), ["1.5", "2.5", "3.5"]);
    // The version read before is unchanged.
    assert_eq!(before.1[0].num_columns(), 2);

    // Rows appended: a third part, the old ones shared.
    let (more_schema, more) = table(&[4, 5], &["d", "e"]);
    let err = ns
        .append_rows("t", &more_schema, std::slice::from_ref(&more))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the frame's columns and types in order"),
        "{err}"
    );
    ns.drop_columns("t", &["price"])?;
    assert_eq!(parts(&store, "default").len(), 1, "the price part is freed");
    ns.append_rows("t", &more_schema, &[more])?;
    assert_eq!(parts(&store, "default").len(), 2);
    let (_, batches) = ns.get_record_batches("t")?.unwrap();
    assert_eq!(column(&batches, 0), ["1", "2", "3", "4", "5"]);
    assert_eq!(column(&batches, 1), ["a", "b", "c", "d", "e"]);
    let (_, only) = ns.get_record_batches_with_columns("t", &["name"])?.unwrap();
    assert_eq!(column(&only, 0), ["a", "b", "c", "d", "e"]);
    let err = ns
        .get_record_batches_with_columns("t", &["nope"])
        .unwrap_err();
    assert!(matches!(err, Error::ColumnNotFound { .. }), "{err}");

    // Compaction: one part, one batch, same rows.
    assert!(ns.compact("t")?.is_some());
    assert_eq!(parts(&store, "default").len(), 1);
    let (_, batches) = ns.get_record_batches("t")?.unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(column(&batches, 0), ["1", "2", "3", "4", "5"]);
    // Compacted already: nothing to do, nothing written.
    let compacted = parts(&store, "default");
    assert!(ns.compact("t")?.is_none());
    assert_eq!(parts(&store, "default"), compacted);
    // No such name: said, as a change of it says.
    let err = ns.compact("nothing here").unwrap_err();
    assert!(matches!(err, brain_core::Error::NotFound { .. }), "{err}");

    // Listings for people skip parts; deleting the frame frees them.
    assert_eq!(ns.names()?, ["t"]);
    assert!(ns.delete("t")?);
    assert!(parts(&store, "default").is_empty());
    Ok(())
}

/// A table set over a frame changed in place takes its place, and the
/// frame's old parts are given back at once, not left for `gc`.
#[test]
fn a_table_set_over_a_frame_in_parts_gives_its_parts_back() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let (schema, batch) = table(&[1, 2, 3], &["a", "b", "c"]);
    ns.set_record_batches("t", &schema, std::slice::from_ref(&batch))?;
    let (more_schema, more) = table(&[4], &["d"]);
    ns.append_rows("t", &more_schema, &[more])?;
    ns.append_rows("t", &more_schema, &[table(&[5], &["e"]).1])?;
    assert_eq!(parts(&store, "default").len(), 3);
    let (new_schema, new) = table(&[9], &["z"]);
    ns.set_record_batches("t", &new_schema, &[new])?;
    assert_eq!(parts(&store, "default").len(), 1, "the old parts stayed");
    let (_, batches) = ns.get_record_batches("t")?.unwrap();
    assert_eq!(column(&batches, 0), ["9"]);
    assert_eq!(column(&batches, 1), ["z"]);
    let used = store.usage()?.used;
    assert_eq!(store.fsck(false)?.used_after, used);
    Ok(())
}

#[test]
fn columns_of_other_lengths_and_missing_names_are_refused() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let (schema, batch) = table(&[1, 2], &["a", "b"]);
    let err = ns
        .assign_columns("nothing", &schema, std::slice::from_ref(&batch))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    ns.set_record_batches("t", &schema, &[batch])?;
    let (other, three) = table(&[1, 2, 3], &["a", "b", "c"]);
    let err = ns.assign_columns("t", &other, &[three]).unwrap_err();
    assert!(err.to_string().contains("3 rows, the frame 2"), "{err}");
    let err = ns.drop_columns("t", &["nope"]).unwrap_err();
    assert!(matches!(err, Error::ColumnNotFound { .. }), "{err}");
    ns.set_text("words", "not a table")?;
    let err = ns.drop_columns("words", &["x"]).unwrap_err();
    assert!(matches!(err, Error::CodecMismatch { .. }), "{err}");
    // Nothing failed half-way: the frame is whole and no part is left.
    assert_eq!(ns.metadata("t")?.unwrap().codec, Codec::ArrowIpc);
    assert!(parts(&store, "default").is_empty());
    Ok(())
}

#[test]
fn unreferenced_parts_are_swept_and_missing_parts_reported() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let (schema, batch) = table(&[1, 2], &["a", "b"]);
    ns.append_rows("t", &schema, std::slice::from_ref(&batch))?;
    ns.append_rows("t", &schema, std::slice::from_ref(&batch))?;
    // A writer that died after writing a part and before publishing it.
    let bytes = brain_core::format::arrow::encode(&schema, &[batch])?;
    let orphan = frames::write_part(&store, "default", "t", &brain_core::Payload::bytes(&bytes))?;
    // A frame replaced by something else leaves its parts unreferenced.
    let (s2, b2) = table(&[9], &["z"]);
    ns.append_rows("u", &s2, &[b2])?;
    store.put("default", "u", &brain_core::Payload::bytes(b"plain"))?;

    let found = frames::sweep_parts(&store, "default", false)?;
    assert_eq!(found.unreferenced.len(), 2, "{found:?}");
    assert!(found.unreferenced.iter().any(|(n, _)| n.ends_with(&orphan)));
    assert!(found.broken.is_empty());
    assert_eq!(parts(&store, "default").len(), 4);

    // A frame locked by a writer is left alone.
    let held = store.lock("default", "t", None)?;
    let swept = frames::sweep_parts(&store, "default", true)?;
    assert_eq!(swept.busy, ["t"]);
    assert_eq!(parts(&store, "default").len(), 3);
    drop(held);
    let swept = frames::sweep_parts(&store, "default", true)?;
    assert_eq!(swept.unreferenced.len(), 1);
    assert_eq!(parts(&store, "default").len(), 2);
    let (_, batches) = ns.get_record_batches("t")?.unwrap();
    assert_eq!(column(&batches, 0), ["1", "2", "1", "2"]);

    // A part lost: reads say so, and the sweep reports the frame.
    let lost = parts(&store, "default").remove(0);
    store.delete("default", &lost)?;
    let err = ns.get_record_batches("t").unwrap_err();
    assert!(
        matches!(err, brain_core::Error::Corrupt { .. })
            && err.to_string().contains("has lost one of the parts")
            && !err
                .to_string()
                .contains(lost.rsplit('\0').next().expect("an id"))
            && !err.to_string().contains("brain-part"),
        "{err}"
    );
    let found = frames::sweep_parts(&store, "default", false)?;
    assert_eq!(found.broken.len(), 1, "{found:?}");
    Ok(())
}

#[test]
fn a_reader_holding_a_version_keeps_it_while_writers_replace_it() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let (schema, batch) = table(&[1, 2], &["a", "b"]);
    ns.append_rows("t", &schema, std::slice::from_ref(&batch))?;
    let held = frames::read_table(&store, "default", "t")?.unwrap();
    for _ in 0..5 {
        ns.append_rows("t", &schema, std::slice::from_ref(&batch))?;
        ns.compact("t")?;
    }
    // The parts it references are deleted; its views still read.
    let (_, batches) = held.record_batches(None)?;
    assert_eq!(column(&batches, 0), ["1", "2"]);
    let change = FrameChange::Drop { columns: &["id"] };
    let _lock = store.lock("default", "t", None)?;
    frames::change_frame(&store, "default", "t", change, Codec::ArrowIpc, None, None)?;
    let (schema_now, batches) = ns.get_record_batches("t")?.unwrap();
    assert_eq!(schema_now.fields().len(), 1);
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 12);
    Ok(())
}

#[test]
fn a_part_the_published_version_references_is_never_discarded() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let (schema, batch) = table(&[1, 2], &["a", "b"]);
    ns.append_rows("t", &schema, std::slice::from_ref(&batch))?;
    let published = parts(&store, "default");
    let id = published[0].rsplit('\0').next().unwrap().to_owned();
    // As after a publication whose caller saw an error (an interrupt, a lost reply).
    frames::discard_part(&store, "default", "t", &id);
    assert_eq!(parts(&store, "default"), published);
    assert_eq!(ns.get_record_batches("t")?.unwrap().1[0].num_rows(), 2);
    Ok(())
}

#[test]
fn deleting_a_frame_another_writer_is_changing_leaves_its_parts_to_the_sweep() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let (schema, batch) = table(&[1, 2], &["a", "b"]);
    ns.append_rows("t", &schema, std::slice::from_ref(&batch))?;
    let held = store.lock("default", "t", None)?;
    assert!(ns.delete("t")?);
    assert_eq!(
        parts(&store, "default").len(),
        1,
        "a change in flight may share them"
    );
    drop(held);
    assert_eq!(
        frames::sweep_parts(&store, "default", true)?
            .unreferenced
            .len(),
        1
    );
    assert!(parts(&store, "default").is_empty());
    Ok(())
}

#[test]
fn new_columns_go_before_a_pandas_index() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let pandas = r#"{"index_columns": ["key"], "columns": []}"#;
    let schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("v", DataType::Int64, false),
            Field::new("key", DataType::Utf8, false),
        ],
        std::collections::HashMap::from([("pandas".to_owned(), pandas.to_owned())]),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["x", "y"])),
        ],
    )?;
    ns.set_record_batches("t", &schema, &[batch])?;
    let (extra, column) = table(&[5, 6], &["p", "q"]);
    ns.assign_columns("t", &extra, &[column])?;
    let (now, _) = ns.get_record_batches("t")?.unwrap();
    let names: Vec<&str> = now.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["v", "id", "name", "key"]);
    let key = Arc::new(Schema::new(vec![Field::new("key", DataType::Utf8, false)]));
    let keys = RecordBatch::try_new(
        key.clone(),
        vec![Arc::new(StringArray::from(vec!["a", "b"]))],
    )?;
    let err = ns.assign_columns("t", &key, &[keys]).unwrap_err();
    assert!(
        err.to_string().contains("is the name of the frame's index"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_compaction_without_room_is_refused_as_a_full_store_and_changes_nothing() -> TestResult {
    let (_dir, store) = store();
    let ns = store.namespace("default")?;
    let ids: Vec<i64> = (0..100_000).collect();
    let names = vec!["x"; 100_000];
    let (schema, batch) = table(&ids, &names);
    ns.set_record_batches("t", &schema, std::slice::from_ref(&batch))?;
    ns.append_rows("t", &schema, std::slice::from_ref(&batch))?;
    assert_eq!(parts(&store, "default").len(), 2);
    // Room for what is stored and a little more, not for a second copy.
    let used = store.usage()?.used;
    store.set_capacity(Some(used + used / 4))?;
    let err = ns.compact("t").unwrap_err();
    assert!(
        matches!(
            err,
            Error::StoreFull {
                filesystem_full: false,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(parts(&store, "default").len(), 2);
    assert_eq!(
        store.usage()?.used,
        used,
        "the refused part kept its reservation"
    );
    let (_, batches) = ns.get_record_batches("t")?.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 200_000);
    Ok(())
}
