//! Arrow IPC: record batches stored as an Arrow IPC *file* (footer included),
//! read back without copying through [`FileDecoder`] over the view's buffer.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::writer::FileWriter;
use arrow_ipc::{root_as_footer, root_as_message, Block, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, Schema, SchemaRef};

use crate::format::kept::{ContentId, Fingerprint, Kept, KEY_MOST};

/// Encodes `batches` (all of `schema`) as an Arrow IPC file.
///
/// # Errors
/// When a batch does not match the schema, or Arrow cannot encode a type.
pub fn encode(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let capacity = batches
        .iter()
        .map(|b| b.get_array_memory_size())
        .sum::<usize>()
        + 4096;
    let mut out = Vec::with_capacity(capacity);
    write(&mut out, schema, batches)?;
    Ok(out)
}

/// Writes `batches` (all of `schema`) to `out` as an Arrow IPC file, each
/// message as it is encoded.
///
/// # Errors
/// As [`encode`], and `out`'s errors (as [`ArrowError::IoError`]).
pub fn write(
    out: impl std::io::Write,
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<(), ArrowError> {
    // Arrow's writer encodes a batch's arrays under the schema's types
    // without comparing them: a mismatch would be read back as other data.
    for (i, batch) in batches.iter().enumerate() {
        matches_schema(schema, batch, i)?;
    }
    let mut writer = FileWriter::try_new(out, schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()
}

/// Whether batch number `index` holds, column by column, the types
/// `schema` declares (nested field names aside), and no nulls where it
/// declares none.
fn matches_schema(schema: &Schema, batch: &RecordBatch, index: usize) -> Result<(), ArrowError> {
    let mismatch = |what: String| {
        ArrowError::SchemaError(format!(
            "record batch {index} does not match the schema it is written with: {what}; build the batches with that schema (RecordBatch::try_new checks them) or pass the batches' own schema"
        ))
    };
    if batch.num_columns() != schema.fields().len() {
        return Err(mismatch(format!(
            "it has {} columns, the schema {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.data_type().equals_datatype(column.data_type()) {
            return Err(mismatch(format!(
                "column {:?} holds {}, the schema says {}",
                field.name(),
                column.data_type(),
                field.data_type()
            )));
        }
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(mismatch(format!(
                "column {:?} holds nulls, the schema says it has none",
                field.name()
            )));
        }
    }
    Ok(())
}

/// Decodes an Arrow IPC file held in `buffer`. Arrays point into `buffer`'s
/// memory (no copy) when it is 8-byte aligned, as payloads in the store are.
///
/// # Errors
/// When the bytes are not a valid Arrow IPC file, including files Arrow's
/// decoder panics on (the panic is caught, and its message printed by the
/// panic hook; a build with `panic = "abort"` aborts instead).
pub fn decode(buffer: &Buffer) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    decode_columns(buffer, |_| Ok(None))
}

/// As [`decode`], decoding only the columns `project` picks from the
/// file's schema (indices into its fields, in the order wanted; `None` for
/// all). The other columns are skipped, not decoded: the cost follows the
/// columns picked, not the table's width. `project` may refuse with an
/// error of its own.
///
/// # Errors
/// As [`decode`], and `project`'s; an index outside the schema is an error.
pub fn decode_columns<E: From<ArrowError>>(
    buffer: &Buffer,
    project: impl FnOnce(&Schema) -> Result<Option<Vec<usize>>, E>,
) -> Result<(SchemaRef, Vec<RecordBatch>), E> {
    decode_columns_of(buffer, None, None, project)
}

/// As [`decode_columns`], remembering what it parsed and checked: the
/// footer (schema, blocks) is kept by its [`Fingerprint`] (`footer`, when
/// the caller has computed it: it must be [`footer_fingerprint`] of this
/// same `buffer`, or another file's footer is used), so a second
/// read of a file with the same footer hashes it instead of parsing it;
/// and a payload whose writer's checksum is `content`
/// (`ObjectView::content_id`), whose blocks all passed their checks once
/// with this footer, has its blocks only bounds-checked after that. arrow-ipc
/// still parses each record batch's message on every read.
///
/// # Errors
/// As [`decode_columns`].
pub fn decode_columns_of<E: From<ArrowError>>(
    buffer: &Buffer,
    content: Option<ContentId>,
    footer: Option<Fingerprint>,
    project: impl FnOnce(&Schema) -> Result<Option<Vec<usize>>, E>,
) -> Result<(SchemaRef, Vec<RecordBatch>), E> {
    // arrow-ipc and arrow-data panic on some malformed files instead of
    // returning an error (a typed buffer whose length is not a whole number
    // of values, found by fuzzing): a damaged or hostile object must not
    // take the reading process down. Nothing decoded outlives a panic.
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        decode_unchecked(buffer, content, footer, project)
    }))
    .unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic");
        Err(ArrowError::IpcError(format!(
            "malformed Arrow IPC data: the decoder failed with {why:?}"
        ))
        .into())
    })
}

/// The [`Fingerprint`] of the footer of the Arrow IPC file in `buffer`
/// (what decides its schema), or None when the footer is too long to keep.
///
/// # Errors
/// When the file is too short for its footer.
pub fn footer_fingerprint(buffer: &Buffer) -> Result<Option<Fingerprint>, ArrowError> {
    let bytes = footer_bytes(buffer)?;
    Ok((bytes.len() <= KEY_MOST).then(|| Fingerprint::of(bytes)))
}

fn decode_unchecked<E: From<ArrowError>>(
    buffer: &Buffer,
    content: Option<ContentId>,
    footer: Option<Fingerprint>,
    project: impl FnOnce(&Schema) -> Result<Option<Vec<usize>>, E>,
) -> Result<(SchemaRef, Vec<RecordBatch>), E> {
    let print = match footer {
        Some(print) => Some(print),
        None => footer_fingerprint(buffer)?,
    };
    let kept = print.and_then(|print| FOOTERS.get(&print));
    let footer = match kept {
        Some(footer) => footer,
        None => {
            let footer = decoded_footer(footer_bytes(buffer)?)?;
            if let Some(print) = print {
                FOOTERS.insert(print, footer.clone());
            }
            footer
        }
    };
    let checked = print.is_some()
        && content.is_some_and(|id| CHECKED.get(&id).is_some_and(|with| Some(with) == print));
    let mut decoder = FileDecoder::new(footer.schema.clone(), footer.version);
    let schema = match project(&footer.schema)? {
        Some(indices) => {
            let projected = Arc::new(footer.schema.project(&indices)?);
            decoder = decoder.with_projection(indices);
            projected
        }
        None => footer.schema.clone(),
    };
    let data = |block: &Block| {
        if checked {
            block_range(buffer, block)
        } else {
            block_data(buffer, block)
        }
    };
    for block in &footer.dictionaries {
        decoder.read_dictionary(block, &data(block)?)?;
    }
    let mut batches = Vec::with_capacity(footer.batches.len());
    for block in &footer.batches {
        if let Some(batch) = decoder.read_record_batch(block, &data(block)?)? {
            batches.push(batch);
        }
    }
    // Every block passed its checks and was decoded: a later read of the
    // same payload with the same footer may skip them.
    if let (false, Some(id), Some(print)) = (checked, content, print) {
        CHECKED.insert(id, print);
    }
    Ok((schema, batches))
}

/// What an Arrow IPC file's footer says: its schema, format version and
/// the blocks of its dictionaries and record batches.
#[derive(Debug)]
struct DecodedFooter {
    schema: SchemaRef,
    version: MetadataVersion,
    dictionaries: Vec<Block>,
    batches: Vec<Block>,
}

/// A footer's bytes, parsed and checked.
fn decoded_footer(bytes: &[u8]) -> Result<Arc<DecodedFooter>, ArrowError> {
    let footer = root_as_footer(bytes)
        .map_err(|e| ArrowError::IpcError(format!("unreadable footer: {e}")))?;
    Ok(Arc::new(DecodedFooter {
        schema: footer_schema(&footer)?,
        version: footer.version(),
        dictionaries: footer.dictionaries().iter().flatten().copied().collect(),
        batches: footer.recordBatches().iter().flatten().copied().collect(),
    }))
}

/// The footer's bytes, at the end of the file, checked to lie inside it.
fn footer_bytes(buffer: &Buffer) -> Result<&[u8], ArrowError> {
    let len = buffer.len();
    if len < 10 {
        return Err(ArrowError::IpcError(format!(
            "an Arrow IPC file has at least 10 bytes, this payload has {len}"
        )));
    }
    let trailer: [u8; 10] = buffer[len - 10..].try_into().expect("10 bytes");
    let footer_len = read_footer_length(trailer)?;
    if footer_len + 10 > len {
        return Err(ArrowError::IpcError(format!(
            "footer of {footer_len} bytes does not fit in {len} bytes"
        )));
    }
    Ok(&buffer[len - 10 - footer_len..len - 10])
}

/// The footers of files read before, parsed, by their bytes' fingerprint
/// (the same on every read of an object): turning a footer's schema into a
/// `Schema` costs about 120 µs for 165 fields with pandas' metadata, and
/// checking the footer tens more, against a microsecond to hash it.
static FOOTERS: Kept<Fingerprint, Arc<DecodedFooter>> = Kept::new(256);

/// Payloads whose blocks passed every check, by their writer's checksum,
/// with the fingerprint of the footer they passed them with.
static CHECKED: Kept<ContentId, Fingerprint> = Kept::new(1024);

fn footer_schema(footer: &arrow_ipc::Footer<'_>) -> Result<SchemaRef, ArrowError> {
    let schema = footer
        .schema()
        .ok_or_else(|| ArrowError::IpcError("footer has no schema".into()))?;
    Ok(Arc::new(try_fb_to_schema(schema)?))
}

/// An IPC message's bytes: its continuation marker (from Arrow 0.15 on),
/// its length, then the flatbuffer.
const CONTINUATION_MARKER: [u8; 4] = [0xff; 4];

/// The bytes of `block` (its message, then its body), checked to lie in
/// `buffer`.
fn block_range(buffer: &Buffer, block: &Block) -> Result<Buffer, ArrowError> {
    let invalid = |what: String| Err(ArrowError::IpcError(what));
    let len = buffer.len();
    let (Ok(offset), Ok(meta_len), Ok(body_len)) = (
        usize::try_from(block.offset()),
        usize::try_from(block.metaDataLength()),
        usize::try_from(block.bodyLength()),
    ) else {
        return invalid(format!(
            "block at {} of {}+{} bytes has a negative offset or length",
            block.offset(),
            block.metaDataLength(),
            block.bodyLength()
        ));
    };
    let block_len = meta_len.checked_add(body_len);
    if block_len
        .and_then(|n| n.checked_add(offset))
        .is_none_or(|end| end > len)
    {
        return invalid(format!(
            "block at {offset} of {meta_len}+{body_len} bytes runs past the end ({len})"
        ));
    }
    Ok(buffer.slice_with_length(offset, meta_len + body_len))
}

/// The bytes of `block` (its message, then its body), checked before
/// arrow-ipc reads them: it slices them without checking, and panics on a
/// block too short for a message or a buffer that lies outside the body.
fn block_data(buffer: &Buffer, block: &Block) -> Result<Buffer, ArrowError> {
    let invalid = |what: String| Err(ArrowError::IpcError(what));
    let data = block_range(buffer, block)?;
    let (offset, meta_len) = (block.offset(), block.metaDataLength() as usize);
    let body_len = block.bodyLength() as usize;
    let start = if data.starts_with(&CONTINUATION_MARKER) {
        8
    } else {
        4
    };
    if meta_len < start {
        return invalid(format!(
            "block at {offset} has {meta_len} bytes of metadata, too few for a message"
        ));
    }
    // Parsed as arrow-ipc parses it, from there to the end of the block.
    let message = root_as_message(&data[start..])
        .map_err(|e| ArrowError::IpcError(format!("unreadable message at {offset}: {e}")))?;
    let batch = match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch(),
        MessageHeader::DictionaryBatch => message
            .header_as_dictionary_batch()
            .and_then(|dictionary| dictionary.data()),
        // arrow-ipc refuses the other kinds itself.
        _ => None,
    };
    for buf in batch
        .and_then(|batch| batch.buffers())
        .into_iter()
        .flatten()
    {
        let end = usize::try_from(buf.offset())
            .ok()
            .zip(usize::try_from(buf.length()).ok())
            .and_then(|(at, n)| at.checked_add(n));
        if end.is_none_or(|end| end > body_len) {
            return invalid(format!(
                "a buffer at {}+{} lies outside its block's body of {body_len} bytes",
                buf.offset(),
                buf.length()
            ));
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray};
    use arrow_schema::{DataType, Field};

    #[test]
    fn decode_points_into_the_source_buffer() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap();
        // A stored payload is 64-byte aligned; a Vec<u8> is only promised 1
        // (miri gives exactly that), and an unaligned column would be copied.
        let encoded = encode(&schema, std::slice::from_ref(&batch)).unwrap();
        let mut aligned = arrow_buffer::MutableBuffer::new(encoded.len());
        aligned.extend_from_slice(&encoded);
        let bytes = Buffer::from(aligned);
        let (decoded_schema, batches) = decode(&bytes).unwrap();
        assert_eq!(decoded_schema, schema);
        assert_eq!(batches, vec![batch]);
        let values = batches[0].column(0).to_data().buffers()[0].as_ptr() as usize;
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        assert!(
            range.contains(&values),
            "column was copied out of the payload"
        );
    }

    fn aligned(bytes: &[u8]) -> Buffer {
        let mut aligned = arrow_buffer::MutableBuffer::new(bytes.len());
        aligned.extend_from_slice(bytes);
        Buffer::from(aligned)
    }

    fn table(values: Vec<f64>) -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(values))])
                .unwrap();
        (schema, batch)
    }

    fn none(_: &Schema) -> Result<Option<Vec<usize>>, ArrowError> {
        Ok(None)
    }

    #[test]
    fn a_kept_footer_serves_another_file_with_the_same_footer() {
        let (schema, batch) = table(vec![1.0, 2.0, 3.0]);
        let encoded = encode(&schema, std::slice::from_ref(&batch)).unwrap();
        let (first, second) = (aligned(&encoded), aligned(&encoded));
        let id = ContentId::new(encoded.len() as u64, 0x5eed_0001, true);
        let (_, from_first) = decode_columns_of(&first, Some(id), None, none).unwrap();
        let (kept_schema, from_second) = decode_columns_of(&second, Some(id), None, none).unwrap();
        assert_eq!(kept_schema, schema);
        assert_eq!(from_first, vec![batch.clone()]);
        assert_eq!(from_second, vec![batch]);
        // The columns point into the buffer read, not the one the footer came from.
        let values = from_second[0].column(0).to_data().buffers()[0].as_ptr() as usize;
        let range = second.as_ptr() as usize..second.as_ptr() as usize + second.len();
        assert!(range.contains(&values), "read from the wrong buffer");
    }

    #[test]
    fn a_changed_footer_is_read_from_its_own_bytes() {
        // Two payloads claim one writer's checksum; one's footer was changed
        // since (a field renamed): each is read by its own footer.
        let (schema, batch) = table(vec![1.0, 2.0]);
        let encoded = encode(&schema, std::slice::from_ref(&batch)).unwrap();
        let mut renamed = encoded.clone();
        let footer_at = encoded.len() - 10 - footer_bytes(&aligned(&encoded)).unwrap().len();
        let at = footer_at
            + renamed[footer_at..]
                .windows(2)
                .position(|w| w == b"x\0")
                .expect("the field's name in the footer");
        renamed[at] = b'y';
        let id = ContentId::new(encoded.len() as u64, 0x5eed_0002, true);
        let (changed, _) = decode_columns_of(&aligned(&renamed), Some(id), None, none).unwrap();
        let (intact, _) = decode_columns_of(&aligned(&encoded), Some(id), None, none).unwrap();
        assert_eq!(changed.field(0).name(), "y");
        assert_eq!(intact.field(0).name(), "x");
    }

    #[test]
    fn a_checksum_claimed_by_other_bytes_is_an_error_not_a_panic() {
        // A header can claim the checksum of a payload whose blocks passed
        // their checks: with the same footer, its blocks are only
        // bounds-checked, and arrow-ipc refuses the messages.
        let (schema, batch) = table((0..1000).map(f64::from).collect());
        let encoded = encode(&schema, std::slice::from_ref(&batch)).unwrap();
        let id = ContentId::new(encoded.len() as u64, 0x5eed_0003, true);
        decode_columns_of(&aligned(&encoded), Some(id), None, none).unwrap();
        let footer_at = encoded.len() - 10 - footer_bytes(&aligned(&encoded)).unwrap().len();
        let mut garbage = encoded.clone();
        garbage[8..footer_at].fill(0xa5);
        assert!(decode_columns_of(&aligned(&garbage), Some(id), None, none).is_err());
    }

    #[test]
    fn a_buffer_outside_its_block_is_an_error_not_a_panic() {
        // Found by the `arrow` fuzz target: a record batch whose buffer
        // lies past the end of its block's body made arrow-ipc panic.
        let input = include_bytes!("fuzz_inputs/arrow_buffer_outside_body");
        let err = decode(&Buffer::from(&input[..])).unwrap_err();
        assert!(err.to_string().contains("outside its block"), "{err}");
    }

    #[test]
    fn a_view_buffer_of_part_of_a_value_is_an_error_not_a_panic() {
        // Found by the `arrow` fuzz target: a string-view column whose views
        // buffer is not a whole number of 16-byte views made arrow-data
        // panic while validating it.
        let input = include_bytes!("fuzz_inputs/arrow_partial_view");
        let err = decode(&Buffer::from(&input[..])).unwrap_err();
        assert!(
            err.to_string().contains("malformed Arrow IPC data"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"0123456789", &[0xff; 64]] {
            assert!(decode(&Buffer::from(bytes)).is_err());
        }
    }
}
