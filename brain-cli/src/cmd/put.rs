//! `brain put NAME FILE|-`: store a file or standard input under a name.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{bail, Context};
use brain_core::{kept_description, Codec, ObjectStore, ObjectWriter};

use crate::console::Console;

/// The size of the buffer the input is read through.
const CHUNK: usize = 1 << 20;

/// Streams `source` (a file, or standard input for `-`) into a new object.
///
/// A regular file's length is reserved up front, so a full store fails
/// before any byte is copied; the input is never held in memory whole.
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
    let mut writer = store
        .writer(namespace, name, codec, description, len)
        .with_context(context)?;
    let ends = copy(reader, &mut writer, codec == Codec::Text, &label).with_context(context)?;
    if codec.is_arrow() {
        check_arrow_file(&ends, &label, codec).with_context(context)?;
    }
    writer.commit().with_context(context)?;
    Ok(())
}

/// An Arrow IPC file's magic, which it starts (padded to 8 bytes) and ends with.
const ARROW_MAGIC: &[u8; 6] = b"ARROW1";

/// The first and last bytes of an input, as far as a check of its layout needs.
#[derive(Default)]
struct Ends {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Ends {
    fn saw(&mut self, bytes: &[u8]) {
        let wanted = 8usize.saturating_sub(self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..wanted]);
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(ARROW_MAGIC.len())..]);
        let extra = self.tail.len().saturating_sub(ARROW_MAGIC.len());
        self.tail.drain(..extra);
    }
}

/// Refuses input that is not an Arrow IPC file, which readers of the
/// Arrow codecs open (FORMAT.md): an Arrow IPC stream, say, would be
/// stored and then fail every read.
fn check_arrow_file(ends: &Ends, label: &str, codec: Codec) -> anyhow::Result<()> {
    if ends.head.starts_with(ARROW_MAGIC) && ends.head.len() == 8 && ends.tail == ARROW_MAGIC {
        return Ok(());
    }
    let stream = ends.head.starts_with(&[0xff; 4]);
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
/// reads is carried over to the next). Returns the input's first and last
/// bytes.
fn copy(
    reader: &mut dyn Read,
    writer: &mut ObjectWriter,
    text: bool,
    label: &str,
) -> anyhow::Result<Ends> {
    let mut ends = Ends::default();
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
        ends.saw(&buf[..ready]);
        buf.copy_within(ready..filled, 0);
        carried = filled - ready;
        offset += ready as u64;
    }
    if carried > 0 {
        bail!(
            "{label} is not UTF-8 text (it ends inside a character at offset {offset}); store it with --codec raw"
        );
    }
    Ok(ends)
}
