//! One module per command, and what they share: object metadata as JSON and
//! writing JSON to standard output.

pub mod capacity;
pub mod cat;
pub mod fsck;
pub mod gc;
pub mod info;
pub mod ls;
pub mod ns;
pub mod persist;
pub mod put;
pub mod rm;
pub mod stats;
pub mod watch;

use anyhow::Context;
use serde::Serialize;

use crate::console::Console;
use crate::format;

/// An object's metadata as `ls --json` and `info --json` print it.
#[derive(Debug, Serialize)]
pub struct ObjectJson {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The codec's short name.
    pub codec: String,
    /// The payload's length in bytes.
    pub size: u64,
    /// Bytes the object takes in the store.
    pub stored_size: u64,
    /// When it was written, RFC 3339 in UTC.
    pub created: String,
    /// When it was written, in nanoseconds since the Unix epoch.
    pub created_unix_ns: u128,
    /// Its description ("" for none).
    pub description: String,
}

impl From<&brain_core::ObjectMeta> for ObjectJson {
    fn from(meta: &brain_core::ObjectMeta) -> Self {
        ObjectJson {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            codec: codec_name(meta.codec),
            size: meta.size,
            stored_size: meta.stored_size,
            created: format::time_precise(meta.created),
            created_unix_ns: format::unix_nanos(meta.created),
            description: meta.description.clone(),
        }
    }
}

/// The codec's short name; an unknown tag shows its number.
pub fn codec_name(codec: brain_core::Codec) -> String {
    match codec {
        brain_core::Codec::Unknown(tag) => format!("unknown({tag})"),
        known => known.name().to_owned(),
    }
}

/// Adds `context` to a store's error, unless the store said it cannot do
/// this at all: that message names the store and the operation already.
pub fn in_context<T>(
    result: brain_core::Result<T>,
    context: impl FnOnce() -> String,
) -> anyhow::Result<T> {
    match result {
        Err(err @ brain_core::Error::Unsupported { .. }) => Err(err.into()),
        other => other.with_context(context),
    }
}

/// Writes `value` as pretty JSON and a newline to standard output.
pub fn print_json(console: &mut Console, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("cannot encode JSON")?;
    console.out(|out| writeln!(out, "{text}"))
}

/// Every namespace's frame parts that no frame references, and frames
/// whose parts are missing; with `remove`, the unreferenced parts are deleted.
pub(crate) fn sweep_frame_parts(
    store: &dyn brain_core::ObjectStore,
    remove: bool,
) -> anyhow::Result<Vec<(String, brain_core::frames::PartsSweep)>> {
    use anyhow::Context;
    brain_core::frames::sweep_all_parts(store, remove)
        .with_context(|| format!("cannot check the frames of {}", store.location()))
}
