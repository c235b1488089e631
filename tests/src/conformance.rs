//! The conformance suite: what every backend of [`ObjectStore`] must do, the
//! same way. Each check takes a fresh store from the caller (an unlimited
//! one, or one with a capacity) and runs the whole API on it through
//! `&dyn ObjectStore`, as the layers above brain-core see it.
//!
//! A backend passes when [`run_all`] does; the end-to-end tests run it on
//! every backend this build has.

use std::io::Write;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use brain_core::{
    stored_size, Codec, Dtype, DtypeField, Error, NameKind, Namespace, NdArrayMeta, ObjectStore,
    ObjectStoreExt, Payload, SharedBytes, WatchEvent, MAX_DESCRIPTION_LEN, MAX_NAME_LEN,
};

const PAGE: u64 = 4096;

/// Opens a fresh, empty store: with no limit (`None`) or with a capacity in bytes.
pub type Opener<'a> = &'a dyn Fn(Option<u64>) -> Result<Arc<dyn ObjectStore>>;

/// One check: its name, what it runs, and the capacity its store needs.
type Check = (
    &'static str,
    fn(&dyn ObjectStore) -> Result<()>,
    Option<u64>,
);

/// Every check, each on a fresh store from `open`.
///
/// # Errors
/// The first check that fails, naming it.
pub fn run_all(open: Opener<'_>) -> Result<()> {
    let checks: [Check; 10] = [
        ("objects", objects, None),
        ("kept descriptions", kept_descriptions, None),
        ("typed calls", typed_calls, None),
        ("capacity", capacity, Some(2 * PAGE)),
        ("writers", writers, None),
        ("namespaces", namespaces, None),
        ("watch", watch, None),
        ("wait_for", wait_for, None),
        ("locks", locks, None),
        ("frames changed in place", frames_in_place, None),
    ];
    for (name, check, capacity) in checks {
        let store = open(capacity)?;
        check(&*store)
            .map_err(|e| anyhow!("conformance check {name:?} on {}: {e:#}", store.location()))?;
    }
    Ok(())
}

fn small_batch() -> Result<(Arc<Schema>, RecordBatch)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.25)])),
            Arc::new(StringArray::from(vec![Some("a"), Some("bb"), None])),
        ],
    )?;
    Ok((schema, batch))
}

fn expect_invalid_name(result: brain_core::Result<impl Sized>, kind: NameKind) -> Result<()> {
    match result {
        Err(Error::InvalidName { kind: found, .. }) if found == kind => Ok(()),
        Err(other) => Err(anyhow!("expected an invalid {kind}, got {other}")),
        Ok(_) => Err(anyhow!("an invalid {kind} was accepted")),
    }
}

/// Objects: put, get, metadata, contains, delete, list, names, namespaces,
/// replace, held views, removal, usage, name rules.
pub fn objects(store: &dyn ObjectStore) -> Result<()> {
    ensure!(
        store.namespaces()?.is_empty(),
        "a fresh store has namespaces"
    );
    ensure!(store.usage()?.used == 0);
    ensure!(store.names("conf")?.is_empty());
    ensure!(store.list("conf")?.is_empty());
    ensure!(store.get("conf", "a")?.is_none());
    ensure!(store.metadata("conf", "a")?.is_none());
    ensure!(!store.contains("conf", "a")?);
    ensure!(!store.delete("conf", "a")?);
    match store.remove_namespace("conf") {
        Err(Error::NamespaceNotFound { namespace }) if namespace == "conf" => {}
        other => return Err(anyhow!("removing a missing namespace: {other:?}")),
    }
    ensure!(
        !store.location().to_string().is_empty(),
        "a store says where it is"
    );

    // Names are validated with the same limits and errors.
    expect_invalid_name(store.put("conf", "", &Payload::bytes(b"x")), NameKind::Name)?;
    expect_invalid_name(
        store.put("", "a", &Payload::bytes(b"x")),
        NameKind::Namespace,
    )?;
    let long = "n".repeat(MAX_NAME_LEN + 1);
    match store.put("conf", &long, &Payload::bytes(b"x")) {
        Err(Error::InvalidName { len, max, .. })
            if len == MAX_NAME_LEN + 1 && max == MAX_NAME_LEN => {}
        other => return Err(anyhow!("an over-long name: {other:?}")),
    }
    let description = "d".repeat(MAX_DESCRIPTION_LEN + 1);
    expect_invalid_name(
        store.put(
            "conf",
            "a",
            &Payload::bytes(b"x").with_description(&description),
        ),
        NameKind::Description,
    )?;
    expect_invalid_name(store.get("conf", ""), NameKind::Name)?;
    expect_invalid_name(store.metadata("", "a"), NameKind::Namespace)?;
    expect_invalid_name(store.contains("conf", ""), NameKind::Name)?;
    expect_invalid_name(store.delete("", "a"), NameKind::Namespace)?;
    expect_invalid_name(store.list(""), NameKind::Namespace)?;
    expect_invalid_name(store.names(""), NameKind::Namespace)?;
    expect_invalid_name(store.remove_namespace(""), NameKind::Namespace)?;
    expect_invalid_name(store.create_namespace(""), NameKind::Namespace)?;
    // Refused names leave nothing behind.
    ensure!(store.namespaces()?.is_empty());
    ensure!(store.usage()?.used == 0);

    // Put returns the metadata a later read sees, accounted in whole pages.
    let meta = store.put(
        "conf",
        "b",
        &Payload::bytes(b"hello")
            .with_codec(Codec::Text)
            .with_description("a greeting"),
    )?;
    ensure!((meta.namespace.as_str(), meta.name.as_str()) == ("conf", "b"));
    ensure!(meta.codec == Codec::Text && meta.size == 5);
    ensure!(meta.description == "a greeting");
    ensure!(meta.stored_size == stored_size("conf", "b", "a greeting", 5));
    ensure!(store.metadata("conf", "b")? == Some(meta.clone()));
    let view = store
        .get("conf", "b")?
        .ok_or_else(|| anyhow!("put above"))?;
    ensure!(&*view == b"hello");
    ensure!(view.meta() == &meta);
    ensure!(
        view.as_ptr().align_offset(64) == 0,
        "payloads are 64-byte aligned"
    );
    ensure!(store.contains("conf", "b")?);
    ensure!(store.usage()?.used == meta.stored_size);

    // Names and namespaces are listed sorted, whatever the characters.
    let odd = ["a/b", "..", "\u{1F9E0}", "c", "a", "with\0nul", "tab\there"];
    for name in odd {
        store.put("conf", name, &Payload::bytes(name.as_bytes()))?;
    }
    store.put("other", "z", &Payload::bytes(b""))?;
    store.put("\u{1F9E0}", "z", &Payload::bytes(b"brain"))?;
    let mut expected: Vec<&str> = odd.to_vec();
    expected.push("b");
    expected.sort();
    ensure!(
        store.names("conf")? == expected,
        "{:?}",
        store.names("conf")?
    );
    let listed = store.list("conf")?;
    ensure!(listed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>() == expected);
    ensure!(listed.iter().all(|m| m.namespace == "conf"));
    ensure!(store.namespaces()? == ["conf", "other", "\u{1F9E0}"]);
    ensure!(
        &*store
            .get("conf", "a/b")?
            .ok_or_else(|| anyhow!("put above"))?
            == b"a/b"
    );
    ensure!(store
        .get("other", "z")?
        .ok_or_else(|| anyhow!("put above"))?
        .is_empty());

    // Usage is the sum of the stored sizes, and so are the namespace stats.
    let mut total = 0;
    for ns in store.namespaces()? {
        total += store.list(&ns)?.iter().map(|m| m.stored_size).sum::<u64>();
    }
    ensure!(store.usage()?.used == total);
    let stats = store.namespace_stats()?;
    ensure!(stats.iter().map(|s| s.bytes).sum::<u64>() == total);
    ensure!(stats.iter().map(|s| s.objects).sum::<u64>() == expected.len() as u64 + 2);

    // Replace is atomic, and views of the old object keep their bytes;
    // small, multi-page and large objects alike.
    for size in [10usize, 5_000, 300_000, 3 << 20] {
        let old: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        store.put("conf", "big", &Payload::bytes(&old))?;
        let before = store
            .get("conf", "big")?
            .ok_or_else(|| anyhow!("put above"))?;
        let new = vec![7u8; size / 2 + 1];
        let replaced = store.put("conf", "big", &Payload::bytes(&new))?;
        ensure!(
            &*store
                .get("conf", "big")?
                .ok_or_else(|| anyhow!("put above"))?
                == &new[..]
        );
        ensure!(
            *before == old[..],
            "size {size}: a view changed after a replace"
        );
        ensure!(store.metadata("conf", "big")? == Some(replaced));
        ensure!(store.delete("conf", "big")?);
        ensure!(
            *before == old[..],
            "size {size}: a view changed after a delete"
        );
        ensure!(store.get("conf", "big")?.is_none());
    }
    ensure!(
        store.usage()?.used == total,
        "replaced and deleted objects are given back"
    );

    // A payload given as segments is stored as their concatenation.
    let parts: [&[u8]; 3] = [b"seg", b"", b"ments"];
    store.put("conf", "parts", &Payload::segments(Codec::Raw, &parts))?;
    ensure!(
        &*store
            .get("conf", "parts")?
            .ok_or_else(|| anyhow!("put above"))?
            == b"segments"
    );

    // Delete frees the bytes; an emptied namespace stays until removed.
    let before = store.usage()?.used;
    let gone = store
        .metadata("other", "z")?
        .ok_or_else(|| anyhow!("put above"))?;
    ensure!(store.delete("other", "z")?);
    ensure!(!store.delete("other", "z")?);
    ensure!(!store.contains("other", "z")?);
    ensure!(store.usage()?.used == before - gone.stored_size);
    ensure!(store.names("other")?.is_empty());
    ensure!(store.namespaces()?.contains(&"other".to_owned()));
    ensure!(store.remove_namespace("other")? == 0);

    // remove_namespace takes every object with it and frees their bytes.
    let count = store.names("conf")?.len() as u64;
    let freed: u64 = store.list("conf")?.iter().map(|m| m.stored_size).sum();
    let before = store.usage()?.used;
    ensure!(store.remove_namespace("conf")? == count);
    ensure!(store.usage()?.used == before - freed);
    ensure!(store.get("conf", "b")?.is_none());
    ensure!(store.names("conf")?.is_empty());
    ensure!(store.namespaces()? == ["\u{1F9E0}"]);
    ensure!(&*view == b"hello", "views outlive their namespace");
    Ok(())
}

/// An empty description keeps the description of the object it replaces
/// (`put_shared_keeping_description`, brain-plasma's rule), for a small
/// payload and one past Redis's inline limit, and the usage counts the
/// description kept.
pub fn kept_descriptions(store: &dyn ObjectStore) -> Result<()> {
    let large = vec![7u8; 600 * 1024];
    // Redis: a small payload goes up as an argument of the publish, a
    // medium one as a staged pointer, a large one as chunks.
    let medium: Vec<u8> = (0..64 * 1024 + 3).map(|i| (i % 247) as u8).collect();
    for (name, payload) in [
        ("small", &b"tiny"[..]),
        ("medium", &medium[..]),
        ("large", &large[..]),
    ] {
        let put = |description: &str| {
            store.put_shared_keeping_description(
                "conf",
                name,
                Codec::Raw,
                description,
                &[SharedBytes::from(payload)],
            )
        };
        ensure!(put("")?.description.is_empty(), "a new name keeps nothing");
        ensure!(put("first")?.description == "first");
        let meta = put("")?;
        ensure!(
            meta.description == "first",
            "{name}: an empty description keeps the old one, got {:?}",
            meta.description
        );
        ensure!(meta.stored_size == stored_size("conf", name, "first", payload.len() as u64));
        ensure!(store.metadata("conf", name)? == Some(meta));
        ensure!(
            &*store
                .get("conf", name)?
                .ok_or_else(|| anyhow!("put above"))?
                == payload
        );
        ensure!(put("second")?.description == "second");
        // put_shared stores the description it is given, empty or not.
        let meta = store.put_shared("conf", name, Codec::Raw, "", &[SharedBytes::from(payload)])?;
        ensure!(meta.description.is_empty());
        ensure!(put("")?.description.is_empty());
    }
    // One name through small, large, medium and small again: nothing of
    // one version's layout (Redis: an inline payload, chunks, a staged
    // pointer) is left in the next.
    for (round, payload) in [
        &b"tiny"[..],
        &large[..],
        &medium[..],
        &b"again"[..],
        &medium[..40 * 1024],
        &large[..],
        &large[..600],
    ]
    .into_iter()
    .enumerate()
    {
        let meta = store.put_shared_keeping_description(
            "conf",
            "changing",
            Codec::Raw,
            if round == 0 { "kept" } else { "" },
            &[SharedBytes::from(payload)],
        )?;
        ensure!(meta.description == "kept" && meta.size == payload.len() as u64);
        let view = store
            .get("conf", "changing")?
            .ok_or_else(|| anyhow!("put above"))?;
        ensure!(
            &*view == payload,
            "round {round}: read back what was written"
        );
        ensure!(view.meta() == &meta);
    }
    let stored: u64 = store.list("conf")?.iter().map(|m| m.stored_size).sum();
    ensure!(
        store.usage()?.used == stored,
        "usage {} counts what the objects take, {stored}",
        store.usage()?.used
    );
    Ok(())
}

/// The typed calls of `ObjectStoreExt`, every codec, through `&dyn ObjectStore`.
pub fn typed_calls(store: &dyn ObjectStore) -> Result<()> {
    store.put_text("typed", "text", "héllo")?;
    ensure!(store.get_text("typed", "text")?.as_deref() == Some("héllo"));
    ensure!(store.get_text("typed", "missing")?.is_none());

    let (schema, batch) = small_batch()?;
    let meta =
        store.put_record_batches("typed", "batch", &schema, &[batch.clone(), batch.clone()])?;
    ensure!(meta.codec == Codec::ArrowIpc);
    let (read_schema, batches) = store
        .get_record_batches("typed", "batch")?
        .ok_or_else(|| anyhow!("put above"))?;
    ensure!(read_schema == schema);
    ensure!(batches == vec![batch.clone(), batch.clone()]);

    // Only the columns asked for, in that order; a missing one is named.
    let (picked_schema, picked) = store
        .get_record_batches_with_columns("typed", "batch", &["label", "id"])?
        .ok_or_else(|| anyhow!("put above"))?;
    ensure!(picked_schema.fields().len() == 2);
    ensure!(picked_schema.field(0).name() == "label" && picked_schema.field(1).name() == "id");
    ensure!(picked.len() == 2);
    for read in &picked {
        ensure!(read.column(0) == batch.column(2) && read.column(1) == batch.column(0));
    }
    ensure!(store
        .get_record_batches_with_columns("typed", "missing", &["id"])?
        .is_none());
    match store.get_record_batches_with_columns("typed", "batch", &["id", "volume"]) {
        Err(Error::ColumnNotFound {
            missing, columns, ..
        }) => {
            ensure!(missing == ["volume"]);
            ensure!(columns == ["id", "price", "label"]);
        }
        other => return Err(anyhow!("reading a column that does not exist: {other:?}")),
    }
    let err = store
        .get_record_batches_with_columns("typed", "batch", &["volume"])
        .err()
        .ok_or_else(|| anyhow!("a missing column was read"))?;
    ensure!(
        err.to_string()
            .contains(r#"no column "volume"; its columns are "id", "price", "label""#),
        "{err}"
    );

    let nd = NdArrayMeta {
        dtype: "<f8".into(),
        shape: vec![2, 3],
        fortran_order: false,
    };
    let data: Vec<u8> = (0..6).flat_map(|i| f64::from(i).to_le_bytes()).collect();
    store.put_ndarray("typed", "array", &nd, &data)?;
    let array = store
        .get_ndarray("typed", "array")?
        .ok_or_else(|| anyhow!("put above"))?;
    ensure!(array.meta == nd);
    ensure!(array.data.as_slice() == &data[..]);

    // A structured dtype: two fields, one a sub-array, plus padding.
    let record = NdArrayMeta {
        dtype: Dtype::Record(vec![
            DtypeField {
                name: "x".into(),
                title: None,
                dtype: "<i4".into(),
                shape: vec![],
            },
            DtypeField {
                name: "".into(),
                title: None,
                dtype: "|V4".into(),
                shape: vec![],
            },
            DtypeField {
                name: "y".into(),
                title: None,
                dtype: "<f8".into(),
                shape: vec![2],
            },
        ]),
        shape: vec![3],
        fortran_order: false,
    };
    store.put_ndarray("typed", "record", &record, &[1u8; 3 * 24])?;
    let read = store
        .get_ndarray("typed", "record")?
        .ok_or_else(|| anyhow!("put above"))?;
    ensure!(read.meta == record && read.data.len() == 72);
    // Data that does not fit its metadata is refused, and nothing is stored.
    match store.put_ndarray("typed", "short", &nd, &data[..40]) {
        Err(Error::Codec { .. }) => {}
        other => return Err(anyhow!("a short array was stored: {other:?}")),
    }
    ensure!(!store.contains("typed", "short")?);

    let buffers: [&[u8]; 3] = [b"first buffer", b"", b"third"];
    store.put_pickle("typed", "pickle", b"\x80\x05pickle", &buffers)?;
    let pickle = store
        .get_pickle("typed", "pickle")?
        .ok_or_else(|| anyhow!("put above"))?;
    ensure!(pickle.pickle.as_slice() == b"\x80\x05pickle");
    ensure!(
        pickle
            .buffers
            .iter()
            .map(|b| b.as_slice())
            .collect::<Vec<_>>()
            == buffers
    );

    // The wrong typed read is a codec mismatch, not garbage.
    match store.get_text("typed", "array") {
        Err(Error::CodecMismatch {
            expected: Codec::Text,
            found: Codec::NdArray,
            ..
        }) => {}
        other => return Err(anyhow!("reading an array as text: {other:?}")),
    }
    ensure!(matches!(
        store.get_record_batches("typed", "text"),
        Err(Error::CodecMismatch { .. })
    ));
    ensure!(matches!(
        store.get_record_batches_with_columns("typed", "text", &["id"]),
        Err(Error::CodecMismatch { .. })
    ));
    ensure!(store.remove_namespace("typed")? == 5);
    Ok(())
}

/// Capacity semantics, on a store whose capacity is two pages.
pub fn capacity(store: &dyn ObjectStore) -> Result<()> {
    ensure!(store.usage()?.capacity == Some(2 * PAGE));
    store.put("cap", "a", &Payload::bytes(b"first"))?;
    store.put("cap", "b", &Payload::bytes(b"second"))?;
    ensure!(store.usage()?.used == 2 * PAGE);
    ensure!(store.usage()?.free == 0);

    match store.put("cap", "c", &Payload::bytes(b"third")) {
        Err(Error::StoreFull {
            needed,
            used,
            capacity,
            filesystem_full: false,
            ..
        }) if needed == PAGE && used == 2 * PAGE && capacity == 2 * PAGE => {}
        other => return Err(anyhow!("a put past the capacity: {other:?}")),
    }
    ensure!(!store.contains("cap", "c")?);

    // A replace needs room for the new object before the old one goes,
    // and the refusal says so.
    match store.put("cap", "a", &Payload::bytes(b"new")) {
        Err(err @ Error::StoreFull { replacing, .. }) if replacing == PAGE => {
            ensure!(err.to_string().contains("both copies"), "{err}");
        }
        other => return Err(anyhow!("a replace past the capacity: {other:?}")),
    }
    ensure!(&*store.get("cap", "a")?.ok_or_else(|| anyhow!("put above"))? == b"first");
    ensure!(store.names("cap")? == ["a", "b"]);
    ensure!(store.usage()?.used == 2 * PAGE);

    // An object bigger than the whole capacity never fits, streamed or not.
    ensure!(store.delete("cap", "b")?);
    match store.put("cap", "huge", &Payload::bytes(&vec![0; 3 * PAGE as usize])) {
        Err(Error::StoreFull { needed, .. }) if needed == 4 * PAGE => {}
        other => return Err(anyhow!("a put of 4 pages into 2: {other:?}")),
    }
    let mut writer = store.writer("cap", "streamed", Codec::Raw, "", None)?;
    let streamed = (0..4).try_for_each(|_| writer.write_payload(&[0u8; PAGE as usize]));
    ensure!(
        matches!(streamed, Err(Error::StoreFull { .. })),
        "{streamed:?}"
    );
    drop(writer);
    ensure!(
        store.usage()?.used == PAGE,
        "a refused streamed write gives its bytes back"
    );

    // With room again, the replace goes through and frees the old object.
    store.put("cap", "a", &Payload::bytes(b"new"))?;
    ensure!(&*store.get("cap", "a")?.ok_or_else(|| anyhow!("put above"))? == b"new");
    ensure!(store.usage()?.used == PAGE);

    // The capacity can be raised for everyone, and taken away.
    store.set_capacity(Some(8 * PAGE))?;
    ensure!(store.usage()?.capacity == Some(8 * PAGE));
    store.put("cap", "b", &Payload::bytes(&[1; 5000]))?;
    store.set_capacity(None)?;
    ensure!(store.usage()?.capacity.is_none());
    Ok(())
}

/// Streamed writers: known and unknown lengths, `io::Write`, commit,
/// abandon, replace.
pub fn writers(store: &dyn ObjectStore) -> Result<()> {
    // Unknown length, many pieces, through io::Write.
    let mut writer = store.writer("w", "streamed", Codec::Raw, "in pieces", None)?;
    let mut expected = Vec::new();
    for i in 0..100u32 {
        let piece = vec![(i % 251) as u8; 1000 + i as usize * 97];
        writer.write_all(&piece)?;
        expected.extend_from_slice(&piece);
    }
    ensure!(writer.payload_len() == expected.len() as u64);
    ensure!(
        !store.contains("w", "streamed")?,
        "nothing is visible before the commit"
    );
    let meta = writer.commit()?;
    ensure!(meta.size == expected.len() as u64 && meta.description == "in pieces");
    ensure!(
        &*store
            .get("w", "streamed")?
            .ok_or_else(|| anyhow!("committed"))?
            == &expected[..]
    );

    // Known length, a large object, replacing a name; a held view keeps the old bytes.
    let held = store
        .get("w", "streamed")?
        .ok_or_else(|| anyhow!("committed"))?;
    let big = vec![9u8; 5 << 20];
    let mut writer = store.writer("w", "streamed", Codec::Raw, "", Some(big.len() as u64))?;
    for chunk in big.chunks(1 << 20) {
        writer.write_payload(chunk)?;
    }
    writer.commit()?;
    ensure!(
        &*store
            .get("w", "streamed")?
            .ok_or_else(|| anyhow!("committed"))?
            == &big[..]
    );
    ensure!(&*held == &expected[..]);

    // Bytes filled in place, between appended ones, in pieces that start
    // and end inside the checksum's 1 MiB chunks: the same object, and a
    // checksum that verifies.
    let mixed: Vec<u8> = (0..(6u32 << 20) + 777).map(|i| (i % 251) as u8).collect();
    let cuts = [
        100,
        (1 << 20) + 17,
        (1 << 20) + 81,
        (4 << 20) - 100,
        (4 << 20) - 95,
    ];
    let mut writer = store.writer("w", "filled", Codec::Raw, "", Some(mixed.len() as u64))?;
    let mut from = 0;
    for (i, &to) in cuts.iter().chain([mixed.len()].iter()).enumerate() {
        let piece = &mixed[from..to];
        // The pieces filled in place hold whole chunks and the end.
        if i % 2 == 1 {
            let mut at = 0;
            writer.write_with(piece.len() as u64, |dst| {
                dst.copy_from_slice(&piece[at..at + dst.len()]);
                at += dst.len();
                Ok(())
            })?;
        } else {
            writer.write_payload(piece)?;
        }
        from = to;
    }
    writer.commit()?;
    let filled = store
        .get("w", "filled")?
        .ok_or_else(|| anyhow!("committed"))?;
    ensure!(*filled == mixed[..], "bytes filled in place differ");
    filled.verify(store.location())?;
    // With no length given: pieces filled while the object is small
    // (gathered in memory), then one that makes it large and grows it.
    let mut writer = store.writer("w", "grown", Codec::Raw, "", None)?;
    let pieces = [100, 60_000, (3 << 20) + 5, 1];
    let mut from = 0;
    for n in pieces {
        let piece = &mixed[from..from + n];
        let mut at = 0;
        writer.write_with(n as u64, |dst| {
            dst.copy_from_slice(&piece[at..at + dst.len()]);
            at += dst.len();
            Ok(())
        })?;
        from += n;
    }
    writer.commit()?;
    let grown = store
        .get("w", "grown")?
        .ok_or_else(|| anyhow!("committed"))?;
    ensure!(
        *grown == mixed[..from],
        "bytes filled as the object grew differ"
    );
    grown.verify(store.location())?;
    // A fill that fails leaves nothing behind.
    let mut failing = store.writer("w", "unfilled", Codec::Raw, "", Some(2 << 20))?;
    let failed = failing.write_with(2 << 20, &mut |_: &mut [u8]| {
        Err(brain_core::Error::Unsupported {
            location: store.location(),
            operation: "fill",
            reason: "a test of a failing fill",
        })
    });
    ensure!(failed.is_err(), "a failing fill was not reported");
    drop(failing);
    ensure!(!store.contains("w", "unfilled")?);

    // A writer dropped uncommitted leaves nothing, and gives its bytes back.
    let used = store.usage()?.used;
    let mut abandoned = store.writer("w", "abandoned", Codec::Raw, "", Some(1 << 20))?;
    abandoned.write_payload(&[1u8; 4096])?;
    drop(abandoned);
    ensure!(!store.contains("w", "abandoned")?);
    ensure!(
        store.usage()?.used == used,
        "an abandoned writer kept its reservation"
    );

    // An empty object.
    store
        .writer("w", "empty", Codec::Text, "", None)?
        .commit()?;
    ensure!(store
        .get("w", "empty")?
        .ok_or_else(|| anyhow!("committed"))?
        .is_empty());
    Ok(())
}

/// Namespaces: created before their first object, listed, idempotent; the
/// `Namespace` handle over any backend.
pub fn namespaces(store: &dyn ObjectStore) -> Result<()> {
    store.create_namespace("made early")?;
    store.create_namespace("made early")?;
    ensure!(store.namespaces()? == ["made early"]);
    ensure!(store.names("made early")?.is_empty());
    ensure!(store.remove_namespace("made early")? == 0);
    ensure!(store.namespaces()?.is_empty());
    Ok(())
}

/// The `Namespace` handle on a store given as an `Arc`: every call goes to
/// the store, in that namespace.
pub fn namespace_handle(store: Arc<dyn ObjectStore>) -> Result<()> {
    let ns = Namespace::new(store.clone(), "handle")?;
    ensure!(ns.name() == "handle");
    ns.create()?;
    ensure!(store.namespaces()? == ["handle"]);
    let mut watcher = ns.watch()?;
    ns.set("x", b"bytes")?;
    ns.set_text("t", "text")?;
    ns.put(
        "p",
        &Payload::bytes(b"payload").with_description("described"),
    )?;
    let mut writer = ns.writer("w", Codec::Raw, "", None)?;
    writer.write_payload(b"streamed")?;
    writer.commit()?;
    ensure!(ns.names()? == ["p", "t", "w", "x"]);
    ensure!(ns.list()?.len() == 4);
    ensure!(ns.get_text("t")?.as_deref() == Some("text"));
    ensure!(ns
        .metadata("p")?
        .is_some_and(|m| m.description == "described"));
    ensure!(ns.contains("w")? && !ns.contains("nothing")?);
    ensure!(store.get("handle", "x")?.is_some_and(|v| &*v == b"bytes"));
    ensure!(events(&mut watcher, 4)?.len() == 4);
    ensure!(&*ns.wait_for("w", Duration::from_secs(1))? == b"streamed");

    let (schema, batch) = small_batch()?;
    ns.set_record_batches("table", &schema, std::slice::from_ref(&batch))?;
    ensure!(ns
        .get_record_batches("table")?
        .is_some_and(|(_, b)| b == [batch]));
    let meta = NdArrayMeta {
        dtype: "<i2".into(),
        shape: vec![2],
        fortran_order: false,
    };
    ns.set_ndarray("array", &meta, &[1, 0, 2, 0])?;
    ensure!(ns.get_ndarray("array")?.is_some_and(|a| a.meta == meta));
    ns.set_pickle("pickle", b"stream", &[b"buffer"])?;
    ensure!(ns
        .get_pickle("pickle")?
        .is_some_and(|p| p.buffers.len() == 1 && p.pickle.as_slice() == b"stream"));
    ensure!(ns.delete("x")? && !ns.delete("x")?);
    ensure!(ns.remove()? == 6);
    ensure!(matches!(
        Namespace::new(store, ""),
        Err(Error::InvalidName { .. })
    ));
    Ok(())
}

/// Collects events from `watcher` until `n` are seen or 10 s pass.
fn events(watcher: &mut brain_core::Watcher, n: usize) -> Result<Vec<WatchEvent>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while seen.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match watcher.next_event(Some(left))? {
            Some(event) => seen.push(event),
            None => return Err(anyhow!("saw {} of {n} events: {seen:?}", seen.len())),
        }
    }
    Ok(seen)
}

fn set(ns: &str, name: &str) -> WatchEvent {
    WatchEvent::Set {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn deleted(ns: &str, name: &str) -> WatchEvent {
    WatchEvent::Deleted {
        namespace: ns.into(),
        name: name.into(),
    }
}

/// Watch streams: one namespace (created by watching it), every namespace,
/// sets, deletes and namespace removals, a timeout with nothing to report.
pub fn watch(store: &dyn ObjectStore) -> Result<()> {
    let mut one = store.watch(Some("watched"))?;
    ensure!(
        store.namespaces()? == ["watched"],
        "watching creates the namespace"
    );
    let mut all = store.watch(None)?;
    ensure!(one.next_event(Some(Duration::from_millis(50)))?.is_none());

    // Each change is reported, in order, when the watcher keeps up.
    store.put_text("watched", "a", "1")?;
    ensure!(events(&mut one, 1)? == [set("watched", "a")]);
    store.put_text("elsewhere", "b", "2")?;
    store.put_text("watched", "c", "3")?;
    ensure!(
        events(&mut one, 1)? == [set("watched", "c")],
        "another namespace's set was reported"
    );
    ensure!(store.delete("watched", "a")?);
    ensure!(events(&mut one, 1)? == [deleted("watched", "a")]);
    // A watcher that falls behind may merge changes of one name into its
    // latest state (a set then a delete can come out as nothing), but
    // reports every name whose state changed.
    let mut seen = events(&mut all, 2)?;
    while let Some(event) = all.next_event(Some(Duration::from_millis(200)))? {
        seen.push(event);
    }
    ensure!(
        seen.contains(&set("elsewhere", "b")) && seen.contains(&set("watched", "c")),
        "{seen:?}"
    );
    let about_a = |e: &&WatchEvent| e.namespace() == "watched" && e.name() == "a";
    ensure!(
        seen.iter().filter(|e| !about_a(e)).count() == 2,
        "events that did not happen: {seen:?}"
    );

    // Removing a namespace reports each of its objects deleted.
    store.remove_namespace("watched")?;
    ensure!(events(&mut one, 1)? == [deleted("watched", "c")]);
    // A store-wide watch sees namespaces made after it started.
    store.put_text("later", "x", "4")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let event = all
            .next_event(Some(deadline.saturating_duration_since(Instant::now())))?
            .ok_or_else(|| anyhow!("no event for a namespace made after the watch"))?;
        if event == set("later", "x") {
            break;
        }
    }
    // A timeout longer than the clock can count waits without limit.
    let mut later = store.watch(Some("later"))?;
    store.put_text("later", "y", "5")?;
    ensure!(later.next_event(Some(Duration::MAX))? == Some(set("later", "y")));
    Ok(())
}

/// `wait_for`: a name set by another thread later, a name already there,
/// a timeout that says what it waited for.
pub fn wait_for(store: &dyn ObjectStore) -> Result<()> {
    store.put_text("wait", "there", "already")?;
    ensure!(&*store.wait_for("wait", "there", Duration::ZERO)? == b"already");

    let started = Instant::now();
    match store.wait_for("wait", "never", Duration::from_millis(100)) {
        Err(Error::Timeout {
            namespace,
            name,
            waited,
        }) => {
            ensure!((namespace.as_str(), name.as_str()) == ("wait", "never"));
            ensure!(waited == Duration::from_millis(100));
        }
        other => return Err(anyhow!("waiting for a missing name: {other:?}")),
    }
    ensure!(started.elapsed() >= Duration::from_millis(100));

    thread::scope(|scope| -> Result<()> {
        let writer = scope.spawn(|| -> Result<()> {
            thread::sleep(Duration::from_millis(150));
            store.put_text("wait", "later", "arrived")?;
            Ok(())
        });
        let view = store.wait_for("wait", "later", Duration::from_secs(10))?;
        ensure!(&*view == b"arrived");
        writer.join().map_err(|_| anyhow!("the writer panicked"))?
    })?;
    expect_invalid_name(store.wait_for("wait", "", Duration::ZERO), NameKind::Name)?;

    // A wait in a namespace that does not exist yet makes it, on every
    // store (the shared-memory one watches its directory).
    ensure!(store.wait_for("waited in", "x", Duration::ZERO).is_err());
    ensure!(store.namespaces()?.contains(&"waited in".to_string()));
    Ok(())
}

/// Locks: exclusive per name, released by dropping, a timeout that names
/// the lock, other names unaffected, a waiter woken by a release.
pub fn locks(store: &dyn ObjectStore) -> Result<()> {
    // A timeout longer than the clock can count waits without limit.
    drop(store.lock("locks", "counter", Some(Duration::MAX))?);
    let held = store.lock("locks", "counter", None)?;
    ensure!(!held.location().to_string().is_empty());
    match store.lock("locks", "counter", Some(Duration::from_millis(50))) {
        Err(Error::LockTimeout {
            namespace,
            name,
            waited,
            ..
        }) => {
            ensure!((namespace.as_str(), name.as_str()) == ("locks", "counter"));
            ensure!(waited >= Duration::from_millis(50));
        }
        other => return Err(anyhow!("a second locker: {other:?}")),
    }
    drop(store.lock("locks", "other", Some(Duration::ZERO))?);
    drop(store.lock("elsewhere", "counter", Some(Duration::ZERO))?);

    // A waiter gets the lock once the holder lets go; increments are not lost.
    store.put_text("locks", "n", "0")?;
    thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    for _ in 0..25 {
                        let _lock = store.lock("locks", "n", None)?;
                        let n: u32 = store.get_text("locks", "n")?.unwrap_or_default().parse()?;
                        store.put_text("locks", "n", &(n + 1).to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        drop(held);
        for worker in workers {
            worker.join().map_err(|_| anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    ensure!(store.get_text("locks", "n")?.as_deref() == Some("100"));
    drop(store.lock("locks", "counter", Some(Duration::ZERO))?);
    expect_invalid_name(store.lock("", "x", None), NameKind::Namespace)?;
    Ok(())
}

/// Frames changed in place work through the trait alone: assign, append,
/// drop and compact publish one version each, share unchanged parts, and
/// give back the parts no version references.
pub fn frames_in_place(store: &dyn ObjectStore) -> Result<()> {
    use brain_core::frames;
    let parts = |store: &dyn ObjectStore| -> Result<usize> {
        Ok(store
            .names("f")?
            .iter()
            .filter(|n| frames::is_frame_part(n))
            .count())
    };
    let (schema, batch) = small_batch()?;
    store.put_record_batches("f", "t", &schema, std::slice::from_ref(&batch))?;
    let mut watcher = frames::skip_parts(store.watch(Some("f"))?);
    let extra = Arc::new(Schema::new(vec![Field::new(
        "volume",
        DataType::Int64,
        false,
    )]));
    let volumes = RecordBatch::try_new(
        extra.clone(),
        vec![Arc::new(Int64Array::from(vec![7, 8, 9]))],
    )?;
    frames::assign_columns(store, "f", "t", &extra, &[volumes])?;
    // One event for the change, none for its parts.
    let seen = events(&mut watcher, 1)?;
    ensure!(seen == [set("f", "t")], "{seen:?}");
    ensure!(parts(store)? == 2, "the whole table and the new column");
    frames::append_rows(store, "f", "t", &schema, std::slice::from_ref(&batch))
        .map_or(Ok(()), |_| {
            Err(anyhow!("rows without the new column were appended"))
        })?;
    frames::drop_columns(store, "f", "t", &["volume"])?;
    ensure!(
        parts(store)? == 1,
        "the dropped column's part is given back"
    );
    frames::append_rows(store, "f", "t", &schema, std::slice::from_ref(&batch))?;
    let (_, batches) = store
        .get_record_batches_with_columns("f", "t", &["id"])?
        .ok_or_else(|| anyhow!("the frame is gone"))?;
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64");
            a.values().to_vec()
        })
        .collect();
    ensure!(ids == [1, 2, 3, 1, 2, 3], "{ids:?}");
    {
        let _lock = store.lock("f", "t", None)?;
        frames::compact_frame(store, "f", "t")?;
    }
    ensure!(parts(store)? == 1);
    ensure!(frames::delete_table(store, "f", "t")?);
    ensure!(parts(store)? == 0, "deleting the frame deletes its parts");
    Ok(())
}
