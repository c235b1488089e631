//! `brain put NAME FILE|-`: store a file or standard input under a name.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{bail, Context};
use arrow_buffer::Buffer;
use brain_core::format::ndarray::{self, NdArrayMeta};
use brain_core::format::parts::PartsLayout;
use brain_core::format::pickle;
use brain_core::{
    kept_description, ndarray_parts, pickle_parts, pickle_payload, Codec, ObjectMeta, ObjectStore,
    ObjectWriter, Payload,
};

use crate::console::Console;

/// The size of the buffer the input is read through.
const CHUNK: usize = 1 << 20;

/// Streams `source` (a file, or standard input for `-`) into a new object.
///
/// A regular file's length is reserved up front, so a full store fails
/// before any byte is copied; the input is not held in memory whole,
/// but for an Arrow file (decoded before it is stored) and a pickle.
pub fn run(
    console: &mut Console,
    store: &dyn ObjectStore,
    namespace: &str,
    name: &str,
    source: &Path,
    codec: Codec,
    description: &str,
) -> anyhow::Result<()> {
    let mut file;
    let (label, reader, len): (String, &mut dyn Read, Option<u64>) = if source.as_os_str() == "-" {
        let (stdin, len) = console.stdin();
        ("standard input".into(), stdin, len)
    } else {
        let label = source.display().to_string();
        file = File::open(source).with_context(|| {
            format!("cannot open {label}; give a file you can read, or - for standard input")
        })?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot read {label}"))?;
        if meta.is_dir() {
            bail!("cannot read {label}: it is a directory; give a file, or - for standard input");
        }
        let len = meta.is_file().then_some(meta.len());
        (label, &mut file, len)
    };
    let context = || format!("cannot store {name:?} in namespace {namespace:?}");
    // No description given keeps the replaced object's, as a set from
    // Python does (brain-plasma's rule).
    let kept = kept_description(store, namespace, name, description).with_context(context)?;
    let description = kept.as_deref().unwrap_or(description);
    let destination = Destination {
        store,
        namespace,
        name,
        description,
    };
    if codec == Codec::NdArray {
        return put_array(&destination, reader, &label).with_context(context);
    }
    if codec == Codec::Pickle5 {
        return put_pickle(&destination, reader, &label).with_context(context);
    }
    if codec.is_arrow() {
        return put_arrow(&destination, reader, len, &label, codec).with_context(context);
    }
    let mut writer = store
        .writer(namespace, name, codec, description, len)
        .with_context(context)?;
    copy(reader, &mut writer, codec == Codec::Text, &label).with_context(context)?;
    writer.commit().with_context(context)?;
    Ok(())
}

/// Stores an Arrow IPC file, read whole and decoded first (every batch's
/// buffers checked, as `brain info` checks them): readers that do not
/// check (pyarrow) would otherwise take damaged offsets for data.
fn put_arrow(
    destination: &Destination<'_>,
    reader: &mut dyn Read,
    len: Option<u64>,
    label: &str,
    codec: Codec,
) -> anyhow::Result<()> {
    // A regular file's length: no doubling of the buffer as it fills.
    let mut bytes = Vec::with_capacity(len.map_or(0, |len| len as usize));
    reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {label}"))?;
    check_arrow_file(&bytes, label, codec)?;
    let file = Buffer::from_vec(bytes);
    if let Err(err) = brain_core::format::arrow::decode(&file) {
        bail!(
            "{label} is an Arrow IPC file that does not decode ({err}): it is damaged or was cut short; write it again, or store the bytes with --codec raw"
        );
    }
    destination.write_whole(codec, &file)
}

/// Stores an array from a `.npy` file (what `brain cat` writes), its data
/// streamed, or from the layout `brain cat --raw` writes, checked.
fn put_array(
    destination: &Destination<'_>,
    reader: &mut dyn Read,
    label: &str,
) -> anyhow::Result<()> {
    let mut head = vec![0u8; ndarray::NPY_PREFIX];
    let got = read_up_to(reader, &mut head, label)?;
    head.truncate(got);
    if !head.starts_with(b"\x93NUMPY") {
        let mut bytes = head;
        reader
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {label}"))?;
        let stored = Buffer::from_vec(bytes);
        if let Err(why) = ndarray_parts(&stored) {
            bail!(
                "{label} is neither a .npy file (it does not start with \\x93NUMPY) nor an array as `brain cat --raw` writes it ({why}); give a .npy file (numpy.save, `brain cat`)"
            );
        }
        return destination.write_whole(Codec::NdArray, &stored);
    }
    let not_npy =
        |why: String| anyhow::anyhow!("{label} is not a .npy file that brain holds: {why}");
    let header_len = ndarray::npy_header_len(&head).map_err(not_npy)?;
    if !(ndarray::NPY_PREFIX..=NPY_HEADER_MAX).contains(&header_len) {
        bail!("{label} is not a .npy file that brain holds: its header claims {header_len} bytes");
    }
    head.resize(header_len, 0);
    let got = read_up_to(reader, &mut head[ndarray::NPY_PREFIX..], label)?;
    head.truncate(ndarray::NPY_PREFIX + got);
    let (meta, _) = NdArrayMeta::from_npy_header(&head).map_err(not_npy)?;
    let data_len = meta
        .data_len()
        .filter(|&len| len <= NPY_DATA_MAX)
        .ok_or_else(|| not_npy(format!("shape {:?} is too large", meta.shape)))?;
    let json = meta.to_json();
    let layout = PartsLayout::new(&[json.len(), data_len as usize]);
    let mut writer = destination.writer(Codec::NdArray, layout.len())?;
    // The data is streamed after the table and the metadata.
    for segment in layout.segments(&[&json, &[]]) {
        writer.write_payload(segment)?;
    }
    let mut buf = vec![0u8; CHUNK];
    let mut left = data_len;
    loop {
        let want = buf
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX))
            .max(1);
        let n = read_up_to(reader, &mut buf[..want], label)?;
        if n == 0 {
            break;
        }
        if n as u64 > left {
            bail!(
                "{label} holds more data than its .npy header says ({data_len} bytes for dtype {} and shape {:?}); give the file numpy.save wrote",
                meta.dtype,
                meta.shape
            );
        }
        writer.write_payload(&buf[..n])?;
        left -= n as u64;
    }
    if left > 0 {
        bail!(
            "{label} ends {left} bytes short of the data its .npy header says ({data_len} bytes for dtype {} and shape {:?}); give the whole file",
            meta.dtype,
            meta.shape
        );
    }
    writer.commit()?;
    Ok(())
}

/// The most a `.npy` header may claim: far past any dtype's description,
/// short of reading a damaged file's claim of gigabytes into memory.
const NPY_HEADER_MAX: usize = 64 << 20;
/// The most data a `.npy` file's shape may claim (1 EiB): beyond any
/// store, and far from overflowing the layout's offsets.
const NPY_DATA_MAX: u64 = 1 << 60;

/// Stores a pickled object from one plain pickle (what `brain cat` writes)
/// or from the layout `brain cat --raw` writes; either is read whole and
/// checked first.
fn put_pickle(
    destination: &Destination<'_>,
    reader: &mut dyn Read,
    label: &str,
) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {label}"))?;
    let input = Buffer::from_vec(bytes);
    let as_stored = pickle_parts(&input).and_then(|found| {
        let buffers: Vec<&[u8]> = found.buffers.iter().map(|b| b.as_slice()).collect();
        pickle::in_band(&found.pickle, &buffers).map(drop)
    });
    if as_stored.is_ok() {
        return destination.write_whole(Codec::Pickle5, &input);
    }
    if let Err(why) = pickle::in_band(&input, &[]) {
        bail!(
            "{label} is neither a pickle nor a pickled object as `brain cat --raw` writes it ({why}); give what pickle.dump wrote (with no buffer_callback), or what `brain cat` wrote"
        );
    }
    pickle_payload(&input, &[], |payload| destination.put(payload))?;
    Ok(())
}

/// Where `put` writes: the store, the object, and its description.
struct Destination<'a> {
    store: &'a dyn ObjectStore,
    namespace: &'a str,
    name: &'a str,
    description: &'a str,
}

impl Destination<'_> {
    /// A writer of the object, of `len` bytes under `codec`.
    fn writer(&self, codec: Codec, len: usize) -> brain_core::Result<ObjectWriter> {
        self.store.writer(
            self.namespace,
            self.name,
            codec,
            self.description,
            Some(len as u64),
        )
    }

    /// Writes `payload` as the object, with the destination's description.
    fn put(&self, payload: Payload<'_>) -> brain_core::Result<ObjectMeta> {
        self.store.put(
            self.namespace,
            self.name,
            &payload.with_description(self.description),
        )
    }

    /// Writes `bytes` whole as the object.
    fn write_whole(&self, codec: Codec, bytes: &[u8]) -> anyhow::Result<()> {
        self.put(Payload::bytes(bytes).with_codec(codec))?;
        Ok(())
    }
}

/// Reads into `buf` until it is full or the input ends; how many bytes it read.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8], label: &str) -> anyhow::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err).with_context(|| format!("cannot read {label}")),
        }
    }
    Ok(got)
}

/// An Arrow IPC file's magic, which it starts (padded to 8 bytes) and ends with.
const ARROW_MAGIC: &[u8; 6] = b"ARROW1";

/// Refuses input that is not an Arrow IPC file, which readers of the
/// Arrow codecs open (FORMAT.md): an Arrow IPC stream, say, would be
/// stored and then fail every read.
fn check_arrow_file(bytes: &[u8], label: &str, codec: Codec) -> anyhow::Result<()> {
    if bytes.len() >= 8 + ARROW_MAGIC.len()
        && bytes.starts_with(ARROW_MAGIC)
        && bytes.ends_with(ARROW_MAGIC)
    {
        return Ok(());
    }
    let stream = bytes.starts_with(&[0xff; 4]);
    bail!(
        "{label} is not an Arrow IPC file, which --codec {} stores (it {}); {}, or store the bytes with --codec raw",
        codec.name(),
        if stream {
            "is an Arrow IPC stream"
        } else {
            "does not start and end with ARROW1"
        },
        if stream {
            "write it as an IPC file instead (pyarrow.ipc.new_file, arrow-rs's FileWriter)"
        } else {
            "give an Arrow IPC file"
        }
    )
}

/// Copies `reader` into `writer` through one buffer. With `text`, checks
/// that the bytes are UTF-8 as they pass (a character split between two
/// reads is carried over to the next).
fn copy(
    reader: &mut dyn Read,
    writer: &mut ObjectWriter,
    text: bool,
    label: &str,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut carried = 0;
    let mut offset: u64 = 0;
    loop {
        let n = match reader.read(&mut buf[carried..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).with_context(|| format!("cannot read {label}")),
        };
        let filled = carried + n;
        let ready = if text {
            match std::str::from_utf8(&buf[..filled]) {
                Ok(_) => filled,
                Err(err) if err.error_len().is_none() => err.valid_up_to(),
                Err(err) => bail!(
                    "{label} is not UTF-8 text (invalid byte at offset {}); store it with --codec raw",
                    offset + err.valid_up_to() as u64
                ),
            }
        } else {
            filled
        };
        writer.write_payload(&buf[..ready])?;
        buf.copy_within(ready..filled, 0);
        carried = filled - ready;
        offset += ready as u64;
    }
    if carried > 0 {
        bail!(
            "{label} is not UTF-8 text (it ends inside a character at offset {offset}); store it with --codec raw"
        );
    }
    Ok(())
}
