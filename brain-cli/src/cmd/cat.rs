//! `brain cat NAME`: the payload, byte for byte, on standard output.

use crate::console::Console;
use anyhow::Context;
use brain_core::frames;
use brain_core::ObjectStore;

/// Writes the payload of `namespace/name` to standard output.
///
/// The bytes go out in one `write_all` straight from the object's view (for
/// a large object, the shared mapping itself): no copy is made, and the
/// console's buffer is bypassed for anything larger than it. A frame stored
/// in parts is written as one Arrow IPC file.
pub fn run(
    console: &mut Console,
    store: &dyn ObjectStore,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    let view = store
        .get(namespace, name)
        .with_context(|| format!("cannot read {name:?} in namespace {namespace:?}"))?
        .ok_or_else(|| brain_core::Error::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    if view.meta().codec == brain_core::Codec::FrameParts {
        // A frame in parts has no one payload: it goes out as the Arrow IPC
        // file of the whole table, which any Arrow reader opens.
        let table = frames::table_from_view(store, view)
            .with_context(|| format!("cannot read frame {name:?} in namespace {namespace:?}"))?;
        let (schema, batches) = table.record_batches(None)?;
        // One batch: an IPC file allows one dictionary per field, and parts
        // appended to each other bring their own.
        let one = arrow_select::concat::concat_batches(&schema, &batches)
            .with_context(|| format!("cannot join the parts of frame {name:?}"))?;
        let bytes = brain_core::format::arrow::encode(&schema, &[one])
            .with_context(|| format!("cannot encode frame {name:?} as Arrow IPC"))?;
        return console
            .out(|out| out.write_all(&bytes))
            .with_context(|| format!("cannot write {name:?} to standard output"));
    }
    console
        .out(|out| out.write_all(view.bytes()))
        .with_context(|| format!("cannot write {name:?} to standard output"))
}
