//! Frames that change in place: a table stored as parts, so that adding or
//! replacing columns, dropping columns and appending rows write only what
//! changed, and the unchanged columns' memory is shared by every version.
//!
//! A frame in parts is two kinds of ordinary objects, on any backend:
//! - **parts**: Arrow IPC files, each holding some columns for some rows,
//!   stored under reserved names in the frame's namespace
//!   (`\0brain-part\0<frame name>\0<id>`, see [`is_frame_part`]); a part is
//!   written once and never changed;
//! - **the manifest**, stored under the frame's own name with
//!   [`Codec::FrameParts`]: the frame's schema (with its metadata, such as
//!   pandas'), its row count, and for each column the parts (and field in
//!   each part) that hold its rows, in order ([`FrameManifest`]).
//!
//! A change writes its new part, then replaces the manifest: that one
//! atomic replace publishes the new version, so readers see the old frame
//! or the new one and watchers get one event. Parts that the new manifest
//! no longer references are deleted after it is published; a reader that
//! read the old manifest and finds one of its parts gone reads the
//! manifest again ([`read_table`]). Views already read stay valid on every
//! backend that keeps deleted objects' memory alive while it is mapped.
//! Because parts are ordinary objects, dump, restore, sync, namespace
//! removal, capacity and usage treat them like any other object. Listings
//! meant for people skip them ([`is_frame_part`]); [`sweep_parts`] finds
//! parts that no manifest references (left by a writer that died, or by a
//! replace of the frame with something else) and manifests whose parts are
//! missing.
//!
//! Changes must be serialised by the caller holding the frame's name lock
//! ([`ObjectStore::lock`]); [`change_frame`] does not take it, so that it
//! composes with a caller (an `update`) already holding it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::api::error::{Error, Result};
use crate::api::store::{ObjectStore, Payload, WatchEvent, WatchEvents, Watcher};
use crate::api::tables::{column_indices, decode_record_batches};
use crate::api::view::{ObjectMeta, ObjectView};
use crate::format::kept::{Fingerprint, Kept, KEY_MOST};
use crate::format::{arrow, Codec};
use crate::sys::names::owner_tag;

pub use crate::format::part_names::{is_frame_part, part_name, part_owner, PART_PREFIX};

const MANIFEST_MAGIC: &[u8; 8] = b"BRAINFRM";
const MANIFEST_VERSION: u32 = 1;
/// Readers give up after this many manifests changed under them while
/// they fetched the parts (each retry means another writer published).
const READ_ATTEMPTS: usize = 64;

/// What a field's metadata says of its type, beyond its Arrow type: an
/// extension type's name and parameters (pandas' Period and Interval,
/// pyarrow's own), polars' Enum categories. Rows whose columns say
/// otherwise would be read as the frame's type, their values changed.
fn type_metadata(field: &Field) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = field
        .metadata()
        .iter()
        .filter(|(key, _)| {
            key.starts_with("ARROW:extension:") || key.starts_with("_PL_ENUM_VALUES")
        })
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    out.sort_unstable();
    out
}

/// A new part id: unique to this process (owner tag), call and moment.
fn new_part_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}.{n}.{nanos:x}", owner_tag())
}

/// Where one column's rows are, in order: a field of a part. Stored as
/// the array `[part, field, rows]`: a frame appended to many times has a
/// chunk per column per append, and every read parses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(usize, usize, u64)", into = "(usize, usize, u64)")]
pub struct ColumnChunk {
    /// Index into [`FrameManifest::parts`].
    pub part: usize,
    /// The field's index in that part's schema.
    pub field: usize,
    /// The rows it holds (all the part's rows).
    pub rows: u64,
}

/// A frame in parts: what its manifest object holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameManifest {
    /// The codec the frame was written with (pandas, polars or Arrow), for
    /// readers that give back the writer's kind of frame.
    pub codec: Codec,
    /// The frame's schema, with its metadata.
    pub schema: SchemaRef,
    /// Its rows.
    pub rows: u64,
    /// The ids of its parts ([`part_name`] makes their object names).
    pub parts: Vec<String>,
    /// For each field of `schema`, its chunks in row order.
    pub columns: Vec<Vec<ColumnChunk>>,
    /// Part 0 is the whole frame as it is, schema and its metadata
    /// included (a frame written whole, or compacted): a reader may read
    /// it as any stored table.
    pub whole: bool,
}

impl From<(usize, usize, u64)> for ColumnChunk {
    fn from((part, field, rows): (usize, usize, u64)) -> Self {
        ColumnChunk { part, field, rows }
    }
}

impl From<ColumnChunk> for (usize, usize, u64) {
    fn from(chunk: ColumnChunk) -> Self {
        (chunk.part, chunk.field, chunk.rows)
    }
}

#[derive(Serialize, Deserialize)]
struct ManifestJson {
    codec: u16,
    rows: u64,
    #[serde(default)]
    whole: bool,
    parts: Vec<String>,
    columns: Vec<Vec<ColumnChunk>>,
}

impl FrameManifest {
    /// The manifest's bytes: magic, version, the length of a JSON document
    /// (codec, rows, parts, columns), the document, then the schema as an
    /// Arrow IPC file without batches.
    ///
    /// # Errors
    /// [`Error::Arrow`] when Arrow cannot encode the schema.
    pub fn encode(&self, namespace: &str, name: &str) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(&ManifestJson {
            codec: self.codec.tag(),
            rows: self.rows,
            whole: self.whole,
            parts: self.parts.clone(),
            columns: self.columns.clone(),
        })
        .expect("a manifest serialises");
        let schema = arrow::encode(&self.schema, &[]).map_err(Error::arrow(namespace, name))?;
        let mut out = Vec::with_capacity(16 + json.len() + schema.len());
        out.extend_from_slice(MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&u32::try_from(json.len()).expect("small").to_le_bytes());
        out.extend_from_slice(&json);
        // The schema's IPC file starts 8-byte aligned, as arrow-ipc wants.
        out.resize(out.len().next_multiple_of(8), 0);
        out.extend_from_slice(&schema);
        Ok(out)
    }

    /// Reads a manifest object, checking every reference in it.
    ///
    /// # Errors
    /// [`Error::CodecMismatch`] when `view` is not a manifest;
    /// [`Error::Codec`] when its bytes are not a consistent manifest.
    pub fn decode(view: &ObjectView) -> Result<FrameManifest> {
        Self::decode_shared(view).map(|(manifest, _)| Arc::unwrap_or_clone(manifest))
    }

    /// As [`FrameManifest::decode`], shared: a manifest read before (the
    /// same bytes, by their [`Fingerprint`]) is hashed, not parsed and
    /// checked again. Also returns that fingerprint (None for a manifest too
    /// long to keep), which names the frame's schema and parts.
    ///
    /// # Errors
    /// As [`FrameManifest::decode`].
    pub fn decode_shared(view: &ObjectView) -> Result<(Arc<FrameManifest>, Option<Fingerprint>)> {
        let bytes = view.bytes();
        let print = (view.meta().codec == Codec::FrameParts && bytes.len() <= KEY_MOST)
            .then(|| Fingerprint::of(bytes));
        if let Some(manifest) = print.and_then(|print| MANIFESTS.get(&print)) {
            return Ok((manifest, print));
        }
        let manifest = Arc::new(Self::decode_bytes(view)?);
        if let Some(print) = print {
            MANIFESTS.insert(print, manifest.clone());
        }
        Ok((manifest, print))
    }

    fn decode_bytes(view: &ObjectView) -> Result<FrameManifest> {
        let meta = view.meta();
        if meta.codec != Codec::FrameParts {
            return Err(Error::CodecMismatch {
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                expected: Codec::FrameParts,
                found: meta.codec,
            });
        }
        let bad = |detail: String| Error::Codec {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            codec: Codec::FrameParts,
            action: "decode",
            detail,
        };
        let bytes = view.bytes();
        let (doc, schema_at) = manifest_document(bytes).map_err(bad)?;
        let schema = MANIFEST_SCHEMAS
            .get_or_decode(&bytes[schema_at..], || {
                arrow::decode(&view.buffer().slice(schema_at)).map(|(schema, _)| schema)
            })
            .map_err(|e| bad(e.to_string()))?;
        let codec = Codec::from_tag(doc.codec);
        if !codec.is_arrow() {
            return Err(bad(format!("written as {codec}, which is not a table")));
        }
        if doc.columns.len() != schema.fields().len() {
            return Err(bad(format!(
                "{} column lists for {} fields",
                doc.columns.len(),
                schema.fields().len()
            )));
        }
        for (field, chunks) in schema.fields().iter().zip(&doc.columns) {
            let mut rows = 0u64;
            for chunk in chunks {
                if chunk.part >= doc.parts.len() {
                    return Err(bad(format!(
                        "column {:?} names part {} of {}",
                        field.name(),
                        chunk.part,
                        doc.parts.len()
                    )));
                }
                rows = rows.saturating_add(chunk.rows);
            }
            if rows != doc.rows {
                return Err(bad(format!(
                    "column {:?} has {rows} rows, the frame {}",
                    field.name(),
                    doc.rows
                )));
            }
        }
        let identity = doc.parts.len() == 1
            && doc.columns.iter().enumerate().all(|(field, chunks)| {
                chunks.len() == 1 && chunks[0].part == 0 && chunks[0].field == field
            });
        if doc.whole && !identity {
            return Err(bad(
                "it says part 0 is the whole frame, and its columns say otherwise".into(),
            ));
        }
        Ok(FrameManifest {
            codec,
            schema,
            rows: doc.rows,
            parts: doc.parts,
            columns: doc.columns,
            whole: doc.whole,
        })
    }

    /// The ids of the parts some column references.
    fn referenced(&self) -> BTreeSet<&str> {
        let mut referenced: BTreeSet<&str> = self
            .columns
            .iter()
            .flatten()
            .map(|chunk| self.parts[chunk.part].as_str())
            .collect();
        // A whole frame's part 0 is referenced by the frame itself, with
        // or without columns.
        if self.whole {
            referenced.extend(self.parts.first().map(String::as_str));
        }
        referenced
    }

    /// Drops the parts no column references, renumbering the chunks.
    fn without_unreferenced_parts(mut self) -> FrameManifest {
        let mut used = vec![false; self.parts.len()];
        for chunk in self.columns.iter().flatten() {
            used[chunk.part] = true;
        }
        // A whole frame is its part 0, which also holds its rows when it
        // has no columns to reference it.
        if self.whole {
            if let Some(first) = used.first_mut() {
                *first = true;
            }
        }
        let mut renumber = vec![usize::MAX; self.parts.len()];
        let mut kept = Vec::new();
        for (i, id) in std::mem::take(&mut self.parts).into_iter().enumerate() {
            if used[i] {
                renumber[i] = kept.len();
                kept.push(id);
            }
        }
        for chunk in self.columns.iter_mut().flatten() {
            chunk.part = renumber[chunk.part];
        }
        self.parts = kept;
        self
    }
}

/// The schemas of manifests read before, by their bytes: every read of a
/// frame decodes its manifest, and checking and decoding the schema's file
/// (pandas' metadata with it) cost more than the rest of a read of a frame
/// in one part.
static MANIFEST_SCHEMAS: Kept<Vec<u8>, SchemaRef> = Kept::new(256);

/// Manifests read before, checked, by their bytes' fingerprint.
static MANIFESTS: Kept<Fingerprint, Arc<FrameManifest>> = Kept::new(256);

/// Where a manifest's schema starts, after its document (see
/// [`FrameManifest::encode`]); `bytes` are at least 16 long.
fn schema_offset(bytes: &[u8]) -> usize {
    let json_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    (16 + json_len).next_multiple_of(8)
}

/// A manifest's document and where its schema starts, its magic and
/// version checked; or what is wrong.
fn manifest_document(bytes: &[u8]) -> std::result::Result<(ManifestJson, usize), String> {
    if bytes.len() < 16 || &bytes[..8] != MANIFEST_MAGIC {
        return Err("not a frame manifest (no magic)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != MANIFEST_VERSION {
        return Err(format!(
            "manifest version {version}, this build reads {MANIFEST_VERSION}; upgrade brain"
        ));
    }
    let json_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let schema_at = schema_offset(bytes);
    if schema_at > bytes.len() {
        return Err(format!(
            "its document of {json_len} bytes does not fit in {} bytes",
            bytes.len()
        ));
    }
    let doc = serde_json::from_slice(&bytes[16..16 + json_len])
        .map_err(|e| format!("unreadable document: {e}"))?;
    Ok((doc, schema_at))
}

/// The codec a frame in parts was written with (pandas, polars or Arrow),
/// read from its manifest's bytes without decoding its schema, for
/// listings that show a frame as its writer stored it; `None` when the
/// bytes are not a manifest this build reads.
pub fn manifest_codec(bytes: &[u8]) -> Option<Codec> {
    let (doc, _) = manifest_document(bytes).ok()?;
    Some(Codec::from_tag(doc.codec)).filter(|codec| codec.is_arrow())
}

/// A stored table as read: one object, or a manifest and the parts it
/// referenced when it was read (held, so they stay valid).
#[derive(Debug, Clone)]
pub enum StoredTable {
    /// A table stored whole (Arrow, pandas or polars codec).
    Whole(ObjectView),
    /// A frame in parts.
    Parts(StoredFrame),
}

/// A frame in parts as read: its manifest and a view of each part.
#[derive(Debug, Clone)]
pub struct StoredFrame {
    manifest_view: ObjectView,
    manifest: Arc<FrameManifest>,
    fingerprint: Option<Fingerprint>,
    parts: Vec<ObjectView>,
}

impl StoredFrame {
    /// The manifest object (its metadata is the frame's).
    pub fn view(&self) -> &ObjectView {
        &self.manifest_view
    }

    /// The frame's schema as the manifest holds it: an Arrow IPC file
    /// without batches (readers parse it once and keep it by these bytes).
    pub fn schema_ipc(&self) -> &[u8] {
        let bytes = self.manifest_view.bytes();
        // Within the bytes: decoding the manifest checked it.
        bytes.get(schema_offset(bytes)..).unwrap_or_default()
    }

    /// Its parts, in the manifest's order.
    pub fn parts(&self) -> &[ObjectView] {
        &self.parts
    }

    /// The manifest.
    pub fn manifest(&self) -> &FrameManifest {
        &self.manifest
    }

    /// The [`Fingerprint`] of the manifest's bytes, which decide the frame's
    /// schema and parts (None for a manifest too long to keep decoded).
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    /// Checks every part (and the manifest) against the checksum its
    /// writer stored ([`ObjectView::verify`]); `location` is the store's.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the frame, and which of its parts does not
    /// match (a part's own name is internal: users know the frame's).
    pub fn verify(&self, location: &crate::api::error::Location) -> Result<()> {
        let frame = self.manifest_view.meta();
        let at = location.join(&frame.namespace).join(&frame.name);
        self.manifest_view.verify(at.clone())?;
        for (i, part) in self.parts.iter().enumerate() {
            part.verify(at.clone()).map_err(|err| match err {
                Error::Corrupt { .. } => Error::corrupt(
                    at.clone(),
                    format!(
                        "part {} of the {} of frame {:?} in namespace {:?} does not match the checksum its writer stored: its memory was changed after it was written",
                        i + 1,
                        self.parts.len(),
                        frame.name,
                        frame.namespace
                    ),
                ),
                other => other,
            })?;
        }
        Ok(())
    }

    /// The bytes the frame's parts hold.
    pub fn parts_size(&self) -> u64 {
        self.parts.iter().map(|part| part.meta().size).sum()
    }

    /// Decodes the fields `project` picks (indices into the manifest's
    /// schema, in the order wanted; `None` for all) as record batches that
    /// point into the parts. Each part is decoded once, with only the
    /// fields needed; batches are cut where any picked column's chunks end.
    ///
    /// # Errors
    /// `project`'s; [`Error::Arrow`] when a part is malformed;
    /// [`Error::Codec`] when a part does not hold what the manifest says.
    pub fn decode_columns<E: From<Error>>(
        &self,
        project: impl FnOnce(&Schema) -> std::result::Result<Option<Vec<usize>>, E>,
    ) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), E> {
        let schema = &self.manifest.schema;
        let picked: Vec<usize> = match project(schema)? {
            Some(indices) => indices,
            None => (0..schema.fields().len()).collect(),
        };
        let meta = self.manifest_view.meta();
        let bad = |detail: String| Error::Codec {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            codec: Codec::FrameParts,
            action: "decode",
            detail,
        };
        if let Some(&outside) = picked.iter().find(|&&i| i >= schema.fields().len()) {
            return Err(bad(format!("no field {outside}")).into());
        }
        // Which fields of each part are wanted.
        let mut wanted: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); self.parts.len()];
        for &column in &picked {
            for chunk in &self.manifest.columns[column] {
                wanted[chunk.part].insert(chunk.field);
            }
        }
        let mut decoded: Vec<HashMap<usize, Vec<ArrayRef>>> = Vec::with_capacity(self.parts.len());
        for (part, fields) in self.parts.iter().zip(&wanted) {
            if fields.is_empty() {
                decoded.push(HashMap::new());
                continue;
            }
            let indices: Vec<usize> = fields.iter().copied().collect();
            let field_count = std::cell::Cell::new(0usize);
            let project_part = |part_schema: &Schema| {
                field_count.set(part_schema.fields().len());
                if indices.iter().any(|&i| i >= part_schema.fields().len()) {
                    return Err(arrow_schema::ArrowError::SchemaError(format!(
                        "the part has {} fields, the manifest names field {}",
                        part_schema.fields().len(),
                        indices.last().copied().unwrap_or(0)
                    )));
                }
                Ok(Some(indices.clone()))
            };
            let (_, batches) =
                arrow::decode_columns_of(part.buffer(), part.content_id(), None, project_part)
                    .map_err(|source| Error::Arrow {
                        namespace: meta.namespace.clone(),
                        name: part.meta().name.clone(),
                        source,
                    })?;
            let mut arrays: HashMap<usize, Vec<ArrayRef>> = HashMap::new();
            for batch in &batches {
                for (position, &field) in indices.iter().enumerate() {
                    arrays
                        .entry(field)
                        .or_default()
                        .push(batch.column(position).clone());
                }
            }
            decoded.push(arrays);
        }
        let mut fields = Vec::with_capacity(picked.len());
        let mut columns: Vec<Vec<ArrayRef>> = Vec::with_capacity(picked.len());
        for &column in &picked {
            let field = schema.field(column);
            let mut arrays = Vec::new();
            let mut rows = 0u64;
            for chunk in &self.manifest.columns[column] {
                let part_arrays = decoded[chunk.part]
                    .get(&chunk.field)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let part_rows: usize = part_arrays.iter().map(|a| a.len()).sum();
                if part_rows as u64 != chunk.rows {
                    return Err(bad(format!(
                        "part {} holds {part_rows} rows of column {:?}, the manifest says {}",
                        self.manifest.parts[chunk.part],
                        field.name(),
                        chunk.rows
                    ))
                    .into());
                }
                for array in part_arrays {
                    if array.data_type() != field.data_type() {
                        return Err(bad(format!(
                            "column {:?} is {} in part {}, {} in the manifest",
                            field.name(),
                            array.data_type(),
                            self.manifest.parts[chunk.part],
                            field.data_type()
                        ))
                        .into());
                    }
                    if !array.is_empty() {
                        arrays.push(array.clone());
                    }
                }
                rows += chunk.rows;
            }
            debug_assert_eq!(rows, self.manifest.rows);
            // A column with nulls in one part and none in another is nullable.
            fields.push(Arc::new(field.as_ref().clone().with_nullable(true)));
            columns.push(arrays);
        }
        let projected = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let batches =
            aligned_batches(&projected, columns, self.manifest.rows).map_err(|source| {
                Error::Arrow {
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                    source,
                }
            })?;
        Ok((projected, batches))
    }
}

/// Record batches of `schema` from each column's arrays (same total rows,
/// cut in different places): a batch ends wherever any column's array
/// ends, and each batch's arrays are zero-copy slices.
fn aligned_batches(
    schema: &SchemaRef,
    columns: Vec<Vec<ArrayRef>>,
    rows: u64,
) -> std::result::Result<Vec<RecordBatch>, arrow_schema::ArrowError> {
    let rows = usize::try_from(rows).unwrap_or(usize::MAX);
    if columns.is_empty() {
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        return Ok(vec![RecordBatch::try_new_with_options(
            schema.clone(),
            Vec::new(),
            &options,
        )?]);
    }
    // (array index, offset into it) for each column.
    let mut at = vec![(0usize, 0usize); columns.len()];
    let mut batches = Vec::new();
    let mut done = 0usize;
    while done < rows {
        let len = columns
            .iter()
            .zip(&at)
            .map(|(arrays, &(i, offset))| arrays[i].len() - offset)
            .min()
            .expect("a column");
        let slices: Vec<ArrayRef> = columns
            .iter()
            .zip(&at)
            .map(|(arrays, &(i, offset))| {
                let array = &arrays[i];
                if offset == 0 && len == array.len() {
                    array.clone()
                } else {
                    array.slice(offset, len)
                }
            })
            .collect();
        batches.push(RecordBatch::try_new(schema.clone(), slices)?);
        for (arrays, position) in columns.iter().zip(at.iter_mut()) {
            position.1 += len;
            if position.1 == arrays[position.0].len() {
                *position = (position.0 + 1, 0);
            }
        }
        done += len;
    }
    Ok(batches)
}

/// Reads the table stored under `name`: the object itself for a table
/// stored whole, or a frame's manifest and its parts. A part deleted by a
/// writer that published meanwhile makes it read the manifest again.
///
/// # Errors
/// [`Error::CodecMismatch`] when the object is not a table;
/// [`Error::Corrupt`] when a manifest's part is missing though the
/// manifest did not change; the store's errors.
pub fn read_table<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
) -> Result<Option<StoredTable>> {
    let Some(view) = store.get(namespace, name)? else {
        return Ok(None);
    };
    table_from_view(store, view).map(Some)
}

/// As [`read_table`], starting from `view`, the object already read.
///
/// # Errors
/// As [`read_table`].
pub fn table_from_view<S: ObjectStore + ?Sized>(
    store: &S,
    mut view: ObjectView,
) -> Result<StoredTable> {
    for _ in 0..READ_ATTEMPTS {
        match view.meta().codec {
            Codec::FrameParts => {}
            codec if codec.is_arrow() => return Ok(StoredTable::Whole(view)),
            found => {
                let meta = view.meta();
                return Err(Error::CodecMismatch {
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                    expected: Codec::ArrowIpc,
                    found,
                });
            }
        }
        let (manifest, fingerprint) = FrameManifest::decode_shared(&view)?;
        let (namespace, name) = (view.meta().namespace.clone(), view.meta().name.clone());
        let mut parts = Vec::with_capacity(manifest.parts.len());
        let mut lost_part = false;
        for id in &manifest.parts {
            match store.get(&namespace, &part_name(&name, id))? {
                Some(part) => parts.push(part),
                None => {
                    lost_part = true;
                    break;
                }
            }
        }
        if !lost_part {
            return Ok(StoredTable::Parts(StoredFrame {
                manifest_view: view,
                manifest,
                fingerprint,
                parts,
            }));
        }
        // A writer replaced the frame and deleted the part after this
        // manifest was read: read the newer one. The same manifest still
        // there means the part is lost.
        let Some(again) = store.get_current(&namespace, &name)? else {
            return Err(Error::NotFound { namespace, name });
        };
        if again.bytes() == view.bytes() && again.meta().codec == view.meta().codec {
            // Not the part's own name: it is internal, people know the frame's.
            return Err(Error::corrupt(
                store.location().join(&namespace).join(&name),
                format!(
                    "frame {name:?} in namespace {namespace:?} has lost one of the parts it is \
                     stored in, so it cannot be read whole"
                ),
            ));
        }
        view = again;
    }
    Err(Error::Busy {
        operation: "read a frame that other writers kept changing",
        location: store.location(),
        waited: Duration::ZERO,
    })
}

impl StoredTable {
    /// The object read (the manifest, for a frame in parts).
    pub fn view(&self) -> &ObjectView {
        match self {
            StoredTable::Whole(view) => view,
            StoredTable::Parts(frame) => frame.view(),
        }
    }

    /// The codec the table was written with.
    pub fn codec(&self) -> Codec {
        match self {
            StoredTable::Whole(view) => view.meta().codec,
            StoredTable::Parts(frame) => frame.manifest.codec,
        }
    }

    /// Decodes the table, or only `columns` (see [`decode_record_batches`]).
    ///
    /// # Errors
    /// As [`decode_record_batches`].
    pub fn record_batches(
        &self,
        columns: Option<&[&str]>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        match self {
            StoredTable::Whole(view) => decode_record_batches(view, columns),
            StoredTable::Parts(frame) => frame.decode_columns(|schema| {
                let Some(columns) = columns else {
                    return Ok(None);
                };
                let (indices, missing) = column_indices(schema, columns);
                if missing.is_empty() {
                    return Ok(Some(indices));
                }
                let meta = frame.view().meta();
                Err(Error::ColumnNotFound {
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                    missing,
                    columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
                })
            }),
        }
    }
}

/// A change to a stored frame ([`change_frame`]).
#[derive(Debug, Clone, Copy)]
pub enum FrameChange<'a> {
    /// The frame becomes the table in part `id` (written already with
    /// [`write_part`]), replacing whatever the name held.
    Replace {
        /// The part's id.
        part: &'a str,
    },
    /// The columns of part `id` replace the frame's columns of the same
    /// names, in place, or are added after the last one. The part has the
    /// frame's row count.
    Assign {
        /// The part's id.
        part: &'a str,
    },
    /// The rows of part `id` are added after the frame's. The part has the
    /// frame's columns, in order, with the same types: the same Arrow
    /// types, and the same extension type and parameters (a pandas Period's
    /// frequency) and polars Enum categories where a column has them.
    Append {
        /// The part's id.
        part: &'a str,
    },
    /// These columns are dropped.
    Drop {
        /// The columns' names.
        columns: &'a [&'a str],
    },
}

/// Stores `payload` (an Arrow IPC file) as a new part of frame `name`,
/// returning its id. Nothing references it until [`change_frame`] does.
///
/// # Errors
/// As [`ObjectStore::put`].
pub fn write_part<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    payload: &Payload<'_>,
) -> Result<String> {
    let id = new_part_id();
    store.put(
        namespace,
        &part_name(name, &id),
        &(*payload).with_codec(Codec::ArrowIpc),
    )?;
    Ok(id)
}

/// A writer of a new part of frame `name`, for a payload streamed in: the
/// part's id and the writer ([`ObjectStore::writer`]).
///
/// # Errors
/// As [`ObjectStore::writer`].
pub fn part_writer<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    len: Option<u64>,
) -> Result<(String, crate::api::store::ObjectWriter)> {
    let id = new_part_id();
    let writer = store.writer(namespace, &part_name(name, &id), Codec::ArrowIpc, "", len)?;
    Ok((id, writer))
}

/// The schema and rows of a part.
fn part_shape<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    id: &str,
) -> Result<(SchemaRef, u64)> {
    let part = part_name(name, id);
    let view = store
        .get(namespace, &part)?
        .ok_or_else(|| Error::NotFound {
            namespace: namespace.to_owned(),
            name: part.clone(),
        })?;
    let (schema, batches) = decode_record_batches(&view, None)?;
    Ok((schema, batches.iter().map(|b| b.num_rows() as u64).sum()))
}

fn mismatch(namespace: &str, name: &str, detail: String) -> Error {
    Error::Codec {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        codec: Codec::FrameParts,
        action: "encode",
        detail,
    }
}

/// Applies `change` to frame `name` and publishes the result as the
/// name's new version (one atomic replace), then deletes the parts only
/// the old version referenced. A frame stored whole is first copied into a
/// part of its own (once; later changes write only what changes).
/// `codec` is the writer's codec for a [`FrameChange::Replace`] (pandas,
/// polars or Arrow); `metadata`, when given, becomes the schema's
/// metadata (pandas' column list changes with the columns); `description`
/// `None` keeps the old one.
///
/// The caller holds the name's lock ([`ObjectStore::lock`]): two changes
/// at once would each publish without the other's.
///
/// # Errors
/// [`Error::NotFound`] for an assign or drop of a name that does not
/// exist; [`Error::CodecMismatch`] when the name holds something other
/// than a table; [`Error::ColumnNotFound`] for a column to drop that does
/// not exist; [`Error::Codec`] for a part whose rows or columns do not fit
/// the frame; the store's errors. On an error the frame is unchanged; the
/// part given stays for the caller to delete ([`discard_part`]).
pub fn change_frame<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    change: FrameChange<'_>,
    codec: Codec,
    metadata: Option<HashMap<String, String>>,
    description: Option<&str>,
) -> Result<ObjectMeta> {
    let current = match store.get_current(namespace, name) {
        // A replace needs nothing of a damaged object under the name (a
        // manifest's parts are left to the sweep).
        Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. })
            if matches!(change, FrameChange::Replace { .. }) =>
        {
            None
        }
        other => other?,
    };
    let old = match &current {
        Some(view) if view.meta().codec == Codec::FrameParts => match FrameManifest::decode(view) {
            Ok(manifest) => Some(manifest),
            // Replacing an unreadable manifest needs nothing of it; its
            // parts are left to the sweep.
            Err(_) if matches!(change, FrameChange::Replace { .. }) => None,
            Err(err) => return Err(err),
        },
        _ => None,
    };
    let mut converted = None;
    let base: Option<FrameManifest> = match (&change, &current, &old) {
        (FrameChange::Replace { .. }, _, _) => None,
        (_, Some(_), Some(manifest)) => Some(manifest.clone()),
        (_, Some(view), None) if view.meta().codec.is_arrow() => {
            // A table stored whole becomes the frame's first part.
            let id = write_part(store, namespace, name, &Payload::bytes(view.bytes()))?;
            converted = Some(id.clone());
            let (schema, rows) = part_shape(store, namespace, name, &id)?;
            Some(whole_part_manifest(view.meta().codec, schema, rows, id))
        }
        (_, Some(view), None) => {
            return Err(Error::CodecMismatch {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                expected: Codec::ArrowIpc,
                found: view.meta().codec,
            })
        }
        (FrameChange::Append { .. }, None, _) => None,
        (_, None, _) => {
            return Err(Error::NotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        }
    };
    let result = applied(store, namespace, name, change, codec, base).and_then(|mut manifest| {
        if let Some(metadata) = metadata {
            manifest.whole = false;
            manifest.schema = Arc::new(Schema::new_with_metadata(
                manifest.schema.fields().clone(),
                metadata,
            ));
        }
        let manifest = manifest.without_unreferenced_parts();
        let bytes = manifest.encode(namespace, name)?;
        let kept;
        let description = match description {
            Some(description) => description,
            None => {
                kept = current
                    .as_ref()
                    .map(|v| v.meta().description.clone())
                    .unwrap_or_default();
                &kept
            }
        };
        let meta = store.put(
            namespace,
            name,
            &Payload::bytes(&bytes)
                .with_codec(Codec::FrameParts)
                .with_description(description),
        )?;
        Ok((manifest, meta))
    });
    let (manifest, meta) = match result {
        Ok(done) => done,
        Err(err) => {
            if let Some(id) = converted {
                discard_part(store, namespace, name, &id);
            }
            return Err(err);
        }
    };
    // The old version's parts that the new one does not share are no
    // longer referenced: give their memory back. So is a frame stored
    // whole and copied into a part for this change, when the change left
    // none of its columns (a drop of all of them).
    let kept = manifest.referenced();
    if let Some(old) = &old {
        for id in old.referenced() {
            if !kept.contains(id) {
                retire_part(store, namespace, name, id);
            }
        }
    }
    if let Some(id) = converted.filter(|id| !kept.contains(id.as_str())) {
        retire_part(store, namespace, name, &id);
    }
    Ok(meta)
}

/// Deletes part `id` of frame `name` after a change that seemed to fail,
/// unless the name's current manifest references it (the publication
/// happened though its caller saw an error: an interrupt, or a reply lost
/// on the way back). Failure is ignored: a part left behind is
/// unreferenced, and [`sweep_parts`] removes it.
pub fn discard_part<S: ObjectStore + ?Sized>(store: &S, namespace: &str, name: &str, id: &str) {
    if let Ok(Some(view)) = store.get_current(namespace, name) {
        if view.meta().codec == Codec::FrameParts {
            match FrameManifest::decode(&view) {
                Ok(manifest) if manifest.referenced().contains(id) => return,
                Ok(_) => {}
                // Unreadable: keep the part; the sweep decides.
                Err(_) => return,
            }
        }
    }
    let _ = store.delete(namespace, &part_name(name, id));
}

/// Deletes a part only the old version referenced, after a publication.
fn retire_part<S: ObjectStore + ?Sized>(store: &S, namespace: &str, name: &str, id: &str) {
    let _ = store.delete(namespace, &part_name(name, id));
}

fn whole_part_manifest(codec: Codec, schema: SchemaRef, rows: u64, id: String) -> FrameManifest {
    let columns = (0..schema.fields().len())
        .map(|field| {
            vec![ColumnChunk {
                part: 0,
                field,
                rows,
            }]
        })
        .collect();
    FrameManifest {
        codec,
        schema,
        rows,
        parts: vec![id],
        columns,
        whole: true,
    }
}

fn applied<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    change: FrameChange<'_>,
    codec: Codec,
    base: Option<FrameManifest>,
) -> Result<FrameManifest> {
    match (change, base) {
        (FrameChange::Replace { part }, _) | (FrameChange::Append { part }, None) => {
            if !codec.is_arrow() {
                return Err(mismatch(
                    namespace,
                    name,
                    format!("{codec} is not a table codec"),
                ));
            }
            let (schema, rows) = part_shape(store, namespace, name, part)?;
            Ok(whole_part_manifest(codec, schema, rows, part.to_owned()))
        }
        (FrameChange::Assign { part }, Some(mut frame)) => {
            let (schema, rows) = part_shape(store, namespace, name, part)?;
            if rows != frame.rows {
                return Err(mismatch(
                    namespace,
                    name,
                    format!("the new columns have {rows} rows, the frame {}", frame.rows),
                ));
            }
            let index = frame.parts.len();
            frame.parts.push(part.to_owned());
            let index_fields = pandas_index_fields(&frame.schema);
            let mut fields: Vec<Field> = frame
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            for (field_index, field) in schema.fields().iter().enumerate() {
                let chunks = vec![ColumnChunk {
                    part: index,
                    field: field_index,
                    rows,
                }];
                if index_fields.contains(field.name()) {
                    return Err(mismatch(
                        namespace,
                        name,
                        format!(
                            "{:?} is the name of the frame's index, not of a column; choose another name",
                            field.name()
                        ),
                    ));
                }
                match fields.iter().position(|f| f.name() == field.name()) {
                    Some(at) => {
                        fields[at] = field.as_ref().clone();
                        frame.columns[at] = chunks;
                    }
                    None => {
                        // Before pandas' index columns, which come last: a
                        // column's position among the fields is then its
                        // position in the frame, as pandas' readers expect.
                        let at = fields
                            .iter()
                            .position(|f| index_fields.contains(f.name()))
                            .unwrap_or(fields.len());
                        fields.insert(at, field.as_ref().clone());
                        frame.columns.insert(at, chunks);
                    }
                }
            }
            frame.schema = Arc::new(Schema::new_with_metadata(
                fields,
                frame.schema.metadata().clone(),
            ));
            frame.whole = false;
            Ok(frame)
        }
        (FrameChange::Append { part }, Some(mut frame)) => {
            let (schema, rows) = part_shape(store, namespace, name, part)?;
            let ours = frame.schema.fields();
            let same = ours.len() == schema.fields().len()
                && ours.iter().zip(schema.fields()).all(|(a, b)| {
                    a.name() == b.name()
                        && a.data_type() == b.data_type()
                        && type_metadata(a) == type_metadata(b)
                });
            if !same {
                let show = |s: &Schema| {
                    s.fields()
                        .iter()
                        .map(|f| {
                            let mut text = format!("{}: {}", f.name(), f.data_type());
                            for (key, value) in type_metadata(f) {
                                text.push_str(&format!(" {key}={value:?}"));
                            }
                            text
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(mismatch(
                    namespace,
                    name,
                    format!(
                        "rows to append must have the frame's columns and types in order: the frame has ({}), the rows ({}); rename or cast the rows to match (pandas: rows.astype(frame.dtypes), polars: rows.cast(frame.schema))",
                        show(&frame.schema),
                        show(&schema)
                    ),
                ));
            }
            // A column with nulls in the new rows is nullable from now on.
            let fields: Vec<Field> = ours
                .iter()
                .zip(schema.fields())
                .map(|(a, b)| {
                    a.as_ref()
                        .clone()
                        .with_nullable(a.is_nullable() || b.is_nullable())
                })
                .collect();
            frame.schema = Arc::new(Schema::new_with_metadata(
                fields,
                frame.schema.metadata().clone(),
            ));
            let index = frame.parts.len();
            frame.parts.push(part.to_owned());
            for (field, chunks) in frame.columns.iter_mut().enumerate() {
                chunks.push(ColumnChunk {
                    part: index,
                    field,
                    rows,
                });
            }
            frame.rows += rows;
            frame.whole = false;
            Ok(frame)
        }
        (FrameChange::Drop { columns }, Some(mut frame)) => {
            let names: Vec<String> = frame
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let missing: Vec<String> = columns
                .iter()
                .filter(|c| !names.iter().any(|n| n == *c))
                .map(|c| (*c).to_owned())
                .collect();
            if !missing.is_empty() {
                return Err(Error::ColumnNotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    missing,
                    columns: names,
                });
            }
            let keep: Vec<usize> = (0..names.len())
                .filter(|&i| !columns.contains(&names[i].as_str()))
                .collect();
            let fields: Vec<Field> = keep
                .iter()
                .map(|&i| frame.schema.field(i).clone())
                .collect();
            frame.columns = keep.iter().map(|&i| frame.columns[i].clone()).collect();
            frame.schema = Arc::new(Schema::new_with_metadata(
                fields,
                frame.schema.metadata().clone(),
            ));
            frame.whole = false;
            Ok(frame)
        }
        (_, None) => Err(Error::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
    }
}

/// The fields that hold a pandas frame's index (named in its schema's
/// pandas metadata): data columns come before them.
fn pandas_index_fields(schema: &Schema) -> BTreeSet<String> {
    schema
        .metadata()
        .get("pandas")
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|pandas| {
            let columns = pandas.get("index_columns")?.as_array()?.clone();
            Some(
                columns
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// Rewrites frame `name` as one part, each column one array, and
/// publishes it as the name's new version: a frame appended to many times
/// reads as few, long arrays again. It copies every column once. A frame
/// stored whole (not in parts, or in one part of one batch, as a frame
/// compacted before) is left as it is (`Ok(None)`). The caller holds the
/// name's lock.
///
/// # Errors
/// [`Error::NotFound`] when there is no such name; as [`change_frame`].
pub fn compact_frame<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
) -> Result<Option<ObjectMeta>> {
    // The lock is held: read what the last holder published, not a copy
    // that may lag behind it.
    let Some(view) = store.get_current(namespace, name)? else {
        return Err(Error::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    };
    let StoredTable::Parts(frame) = table_from_view(store, view)? else {
        return Ok(None);
    };
    let (schema, batches) = frame.decode_columns::<Error>(|_| Ok(None))?;
    if frame.manifest.whole && batches.len() <= 1 {
        return Ok(None);
    }
    // Each append's dictionaries (categories) become one, as a reader of
    // the appended batches sees them.
    let (schema, batches) = crate::format::dictionary::unify_dictionaries(&schema, &batches)
        .map_err(Error::arrow(namespace, name))?;
    let one = arrow_select::concat::concat_batches(&schema, &batches)
        .map_err(Error::arrow(namespace, name))?;
    let codec = frame.manifest.codec;
    drop(frame);
    let (id, mut writer) = part_writer(store, namespace, name, None)?;
    arrow::write(&mut writer, &schema, std::slice::from_ref(&one))
        .map_err(Error::arrow(namespace, name))?;
    writer.commit()?;
    let replace = FrameChange::Replace { part: &id };
    match change_frame(store, namespace, name, replace, codec, None, None) {
        Ok(meta) => Ok(Some(meta)),
        Err(err) => {
            discard_part(store, namespace, name, &id);
            Err(err)
        }
    }
}

/// Deletes `name`, and when it holds a frame in parts, the parts its
/// manifest references. True when the name existed. The parts are
/// deleted under the name's lock, taken without waiting: when another
/// holder has it (a change in flight may publish a version sharing them),
/// only the name goes, and [`sweep_parts`] takes the parts later.
///
/// # Errors
/// As [`ObjectStore::delete`].
pub fn delete_table<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
) -> Result<bool> {
    delete_table_with(store, namespace, name, false)
}

/// As [`delete_table`], for a caller that holds the name's lock already.
///
/// # Errors
/// As [`ObjectStore::delete`].
pub fn delete_table_locked<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
) -> Result<bool> {
    delete_table_with(store, namespace, name, true)
}

fn delete_table_with<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    locked: bool,
) -> Result<bool> {
    let is_frame = matches!(
        store.metadata(namespace, name),
        Ok(Some(meta)) if meta.codec == Codec::FrameParts
    );
    if !is_frame {
        return store.delete(namespace, name);
    }
    let _lock = if locked {
        None
    } else {
        match store.lock(namespace, name, Some(Duration::ZERO)) {
            Ok(lock) => Some(lock),
            Err(_) => return store.delete(namespace, name),
        }
    };
    // Under the lock: the version published last, whose parts go with it.
    let manifest = match store.get_current(namespace, name) {
        Ok(view) => view
            .filter(|view| view.meta().codec == Codec::FrameParts)
            .and_then(|view| FrameManifest::decode(&view).ok()),
        // A damaged manifest still goes; its parts are left to the sweep.
        Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. }) => None,
        Err(err) => return Err(err),
    };
    let existed = store.delete(namespace, name)?;
    for id in manifest.iter().flat_map(FrameManifest::referenced) {
        retire_part(store, namespace, name, id);
    }
    Ok(existed)
}

/// What [`sweep_parts`] found in a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartsSweep {
    /// Parts no manifest references (object names), with their sizes;
    /// removed when the sweep was asked to.
    pub unreferenced: Vec<(String, u64)>,
    /// Frames whose manifest references a part that does not exist, or
    /// cannot be read: `(frame name, what is wrong)`.
    pub broken: Vec<(String, String)>,
    /// Frames skipped because another process held their lock (a change in
    /// flight: its new part is not referenced yet).
    pub busy: Vec<String>,
}

/// Finds the parts in `namespace` that no frame's manifest references
/// (left by a writer that died between writing a part and publishing, or
/// by replacing a frame with something else), and the manifests whose
/// parts are missing. With `remove`, deletes the unreferenced parts of
/// every frame whose lock it can take at once (a frame locked by a live
/// writer may have a part that is about to be published).
///
/// # Errors
/// The store's errors while listing.
pub fn sweep_parts<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    remove: bool,
) -> Result<PartsSweep> {
    let metas = store.list(namespace)?;
    let mut parts_of: HashMap<&str, Vec<(&str, u64)>> = HashMap::new();
    let mut frames: BTreeSet<&str> = BTreeSet::new();
    for meta in &metas {
        if let Some(owner) = part_owner(&meta.name) {
            parts_of
                .entry(owner)
                .or_default()
                .push((&meta.name, meta.size));
        } else if meta.codec == Codec::FrameParts {
            frames.insert(&meta.name);
        }
    }
    let mut sweep = PartsSweep::default();
    let owners: BTreeSet<&str> = parts_of
        .keys()
        .copied()
        .chain(frames.iter().copied())
        .collect();
    for owner in owners {
        let _lock = if remove && parts_of.contains_key(owner) {
            match store.lock(namespace, owner, Some(Duration::ZERO)) {
                Ok(lock) => Some(lock),
                Err(Error::LockTimeout { .. }) => {
                    sweep.busy.push(owner.to_owned());
                    continue;
                }
                Err(err) => return Err(err),
            }
        } else {
            None
        };
        let mut manifest_bytes = None;
        let referenced: BTreeSet<String> = match store.get_current(namespace, owner) {
            Ok(Some(view)) if view.meta().codec == Codec::FrameParts => {
                match FrameManifest::decode(&view) {
                    Ok(manifest) => {
                        manifest_bytes = Some(view.bytes().to_vec());
                        manifest
                            .referenced()
                            .into_iter()
                            .map(|id| part_name(owner, id))
                            .collect()
                    }
                    Err(err) => {
                        // An unreadable manifest: keep its parts, report it.
                        sweep.broken.push((owner.to_owned(), err.to_string()));
                        continue;
                    }
                }
            }
            Ok(_) => BTreeSet::new(),
            Err(err) => {
                sweep.broken.push((owner.to_owned(), err.to_string()));
                continue;
            }
        };
        let present: BTreeSet<&str> = parts_of
            .get(owner)
            .map(|parts| parts.iter().map(|(name, _)| *name).collect())
            .unwrap_or_default();
        let missing: Vec<&String> = referenced
            .iter()
            .filter(|part| !present.contains(part.as_str()))
            .filter(|part| !matches!(store.contains(namespace, part), Ok(true)))
            .collect();
        if !missing.is_empty() {
            // A writer may have published meanwhile (and deleted these parts):
            // only a manifest still the same is missing them.
            let again = store.get_current(namespace, owner)?;
            if again.as_ref().map(|v| v.bytes()) != manifest_bytes.as_deref() {
                continue;
            }
            for part in missing {
                let id = part.rsplit('\0').next().unwrap_or_default();
                sweep
                    .broken
                    .push((owner.to_owned(), format!("its part {id:?} is missing")));
            }
        }
        for &(part, size) in parts_of.get(owner).into_iter().flatten() {
            if referenced.contains(part) {
                continue;
            }
            if remove {
                store.delete(namespace, part)?;
            }
            sweep.unreferenced.push((part.to_owned(), size));
        }
    }
    Ok(sweep)
}

/// Stores `batches` as a new part of frame `name`; its id.
fn batches_part<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<String> {
    let bytes = arrow::encode(schema, batches).map_err(Error::arrow(namespace, name))?;
    write_part(store, namespace, name, &Payload::bytes(&bytes))
}

/// Under the name's lock, stores `batches` as a part and applies the
/// change `make` builds from its id; the part is deleted if that fails.
fn change_with_batches<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    schema: &Schema,
    batches: &[RecordBatch],
    make: impl for<'a> Fn(&'a str) -> FrameChange<'a>,
) -> Result<ObjectMeta> {
    let _lock = store.lock(namespace, name, None)?;
    let id = batches_part(store, namespace, name, schema, batches)?;
    let codec = match store.metadata(namespace, name)? {
        Some(meta) if meta.codec.is_arrow() => meta.codec,
        _ => Codec::ArrowIpc,
    };
    change_frame(store, namespace, name, make(&id), codec, None, None).inspect_err(|_| {
        discard_part(store, namespace, name, &id);
    })
}

/// Adds the columns of `batches` to the table `name`, or replaces its
/// columns of the same names, writing only those columns: the others'
/// memory is shared with the previous version. `batches` have the table's
/// row count. Takes the name's lock (a caller holding it already calls
/// [`change_frame`] instead: a second lock of the name waits for the first).
///
/// # Errors
/// As [`change_frame`].
pub fn assign_columns<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<ObjectMeta> {
    change_with_batches(store, namespace, name, schema, batches, |part| {
        FrameChange::Assign { part }
    })
}

/// Adds the rows of `batches` after the table's, writing only them; a name
/// that does not exist becomes a table of these rows. Takes the name's lock
/// (a caller holding it already calls [`change_frame`] instead).
///
/// # Errors
/// As [`change_frame`].
pub fn append_rows<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<ObjectMeta> {
    change_with_batches(store, namespace, name, schema, batches, |part| {
        FrameChange::Append { part }
    })
}

/// Drops `columns` from the table `name`, writing nothing but its new
/// manifest (a table stored whole is first copied into a part). Takes the
/// name's lock (a caller holding it already calls [`change_frame`] instead).
///
/// # Errors
/// As [`change_frame`].
pub fn drop_columns<S: ObjectStore + ?Sized>(
    store: &S,
    namespace: &str,
    name: &str,
    columns: &[&str],
) -> Result<ObjectMeta> {
    let _lock = store.lock(namespace, name, None)?;
    let codec = store
        .metadata(namespace, name)?
        .map_or(Codec::ArrowIpc, |meta| meta.codec);
    change_frame(
        store,
        namespace,
        name,
        FrameChange::Drop { columns },
        codec,
        None,
        None,
    )
}

/// A watcher that leaves out the events of frames' parts: a change to a
/// frame is then one event, its manifest's ([`skip_parts`]).
#[derive(Debug)]
struct WithoutParts(Watcher);

impl WatchEvents for WithoutParts {
    fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            match self.0.next_event(left)? {
                Some(event) if is_frame_part(event.name()) => {
                    if left.is_some_and(|l| l.is_zero()) {
                        return Ok(None);
                    }
                }
                other => return Ok(other),
            }
        }
    }
}

/// `watcher` without the events of frames' parts, as people and
/// applications want them: each change to a frame is one event.
pub fn skip_parts(watcher: Watcher) -> Watcher {
    Watcher::new(Box::new(WithoutParts(watcher)))
}

/// The metadata a person expects of `meta`'s object: for a frame in parts,
/// the codec it was written with, its parts' bytes as its size and, as its
/// stored size, the manifest's and the parts' together, with the number of
/// parts; any other object's metadata as it is (and 0 parts). A frame that
/// cannot be read (a part lost) is shown as stored.
pub fn table_meta<S: ObjectStore + ?Sized>(store: &S, meta: ObjectMeta) -> (ObjectMeta, usize) {
    if meta.codec != Codec::FrameParts {
        return (meta, 0);
    }
    // The manifest and its parts' metadata only: reading the parts
    // themselves would fetch whole frames from a Redis server to list them.
    let Ok(Some(view)) = store.get(&meta.namespace, &meta.name) else {
        return (meta, 0);
    };
    let Ok((manifest, _)) = FrameManifest::decode_shared(&view) else {
        return (meta, 0);
    };
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for id in &manifest.parts {
        match store.metadata(&meta.namespace, &part_name(&meta.name, id)) {
            Ok(Some(part)) => parts.push(part),
            _ => return (meta, 0),
        }
    }
    let shown = ObjectMeta {
        codec: manifest.codec,
        size: parts.iter().map(|p| p.size).sum(),
        stored_size: view.meta().stored_size + parts.iter().map(|p| p.stored_size).sum::<u64>(),
        ..view.meta().clone()
    };
    (shown, parts.len())
}

/// Removes the parts no manifest references, in every namespace that has
/// parts (a look at its names first), for a write the store refused as
/// full. Best effort: a namespace that cannot be swept is left as it is,
/// for `gc`.
pub(crate) fn sweep_parts_for_room<S: ObjectStore + ?Sized>(store: &S) {
    for namespace in store.namespaces().unwrap_or_default() {
        let has_parts = store
            .names(&namespace)
            .is_ok_and(|names| names.iter().any(|n| is_frame_part(n)));
        if has_parts {
            let _ = sweep_parts(store, &namespace, true);
        }
    }
}

/// [`sweep_parts`] in every namespace of the store, with each namespace's
/// name; a namespace removed meanwhile is left out.
///
/// # Errors
/// As [`sweep_parts`], and listing the namespaces.
pub fn sweep_all_parts<S: ObjectStore + ?Sized>(
    store: &S,
    remove: bool,
) -> Result<Vec<(String, PartsSweep)>> {
    let mut swept = Vec::new();
    for namespace in store.namespaces()? {
        match sweep_parts(store, &namespace, remove) {
            Ok(found) => swept.push((namespace, found)),
            Err(Error::NamespaceNotFound { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(swept)
}
