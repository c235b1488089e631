//! `brain cat NAME`: the object on standard output, in a form other tools
//! read.

use crate::console::Console;
use anyhow::{bail, Context};
use brain_core::{decode_ndarray, decode_pickle, frames, Codec, ObjectStore};

/// Writes `namespace/name` to standard output.
///
/// What goes out is what a reader of that kind of object opens: an array
/// as a `.npy` file (`numpy.load`), a pickle-5 object as one plain pickle
/// with its out-of-band buffers in the stream (`pickle.load`), a frame
/// stored in parts as one Arrow IPC file; any other object, and any object
/// with `raw`, as its payload byte for byte. The large pieces go out in
/// `write_all`s straight from the object's view (for a large object, the
/// shared mapping itself): no copy is made, and the console's buffer is
/// bypassed for anything larger than it. With `verify`, every byte is
/// checked against the checksum its writer stored before any goes out.
pub fn run(
    console: &mut Console,
    store: &dyn ObjectStore,
    namespace: &str,
    name: &str,
    raw: bool,
    verify: bool,
) -> anyhow::Result<()> {
    let read = if verify {
        store.get_verified(namespace, name)
    } else {
        store.get(namespace, name)
    };
    let view = read
        .with_context(|| format!("cannot read {name:?} in namespace {namespace:?}"))?
        .ok_or_else(|| brain_core::Error::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let written = |result: anyhow::Result<()>| {
        result.with_context(|| format!("cannot write {name:?} to standard output"))
    };
    let codec = view.meta().codec;
    // The object as a command names it in advice: with its namespace, unless
    // that is the default one.
    let object = match namespace {
        "default" => name.to_owned(),
        _ => format!("-n {namespace} {name}"),
    };
    if console.stdout_is_terminal()
        && !(codec == Codec::Text || (codec == Codec::Raw && is_plain_text(view.bytes())))
    {
        bail!(
            "{name:?} in namespace {namespace:?} is not text ({} of {codec}): on a terminal it would garble the screen; redirect it (`brain cat {object} > FILE`, or into a pipe), or see what it is with `brain info {object}`",
            crate::format::size(view.meta().size)
        );
    }
    if raw {
        return written(console.out(|out| out.write_all(view.bytes())));
    }
    if codec == Codec::NdArray {
        let array = decode_ndarray(&view)?;
        let header = array.meta.npy_header();
        return written(console.out(|out| {
            out.write_all(&header)?;
            out.write_all(&array.data)
        }));
    }
    if codec == Codec::Pickle5 {
        let pickle = decode_pickle(&view)?;
        let buffers: Vec<&[u8]> = pickle.buffers.iter().map(|b| b.as_slice()).collect();
        let pieces =
            brain_core::format::pickle::in_band(&pickle.pickle, &buffers).map_err(|detail| {
                brain_core::Error::Codec {
                    namespace: namespace.into(),
                    name: name.into(),
                    codec,
                    action: "decode",
                    detail: format!(
                        "{detail}; `brain cat --raw {object} > FILE` writes its bytes as stored"
                    ),
                }
            })?;
        return written(console.out(|out| {
            for piece in &pieces {
                out.write_all(piece)?;
            }
            Ok(())
        }));
    }
    if codec == Codec::FrameParts {
        // A frame in parts has no one payload: it goes out as the Arrow IPC
        // file of the whole table, which any Arrow reader opens.
        let table = frames::table_from_view(store, view)
            .with_context(|| format!("cannot read frame {name:?} in namespace {namespace:?}"))?;
        if let (true, frames::StoredTable::Parts(frame)) = (verify, &table) {
            frame.verify(&store.location())?;
        }
        let (schema, batches) = table.record_batches(None)?;
        // One batch: an IPC file allows one dictionary per field, and parts
        // appended to each other bring their own.
        let one = arrow_select::concat::concat_batches(&schema, &batches)
            .with_context(|| format!("cannot join the parts of frame {name:?}"))?;
        let bytes = brain_core::format::arrow::encode(&schema, &[one])
            .with_context(|| format!("cannot encode frame {name:?} as Arrow IPC"))?;
        return written(console.out(|out| out.write_all(&bytes)));
    }
    written(console.out(|out| out.write_all(view.bytes())))
}

/// Whether `bytes` are UTF-8 text without control characters but tabs and
/// line ends (an escape sequence would reach the terminal too).
fn is_plain_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|text| {
        !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    })
}
