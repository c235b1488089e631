//! `brain cat NAME`: the payload, byte for byte, on standard output.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

use anyhow::Context;
use brain_core::{ObjectStore, Store};

/// Writes the payload of `namespace/name` to standard output.
///
/// The bytes go out in one `write_all` straight from the object's view (for
/// a large object, the shared mapping itself): no copy is made, and standard
/// output's own buffer is bypassed.
pub fn run(store: &Store, namespace: &str, name: &str) -> anyhow::Result<()> {
    let view = store
        .get(namespace, name)
        .with_context(|| format!("cannot read {name:?} in namespace {namespace:?}"))?
        .ok_or_else(|| brain_core::Error::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.flush().context("cannot write to standard output")?;
    let mut raw = File::from(
        out.as_fd()
            .try_clone_to_owned()
            .context("cannot duplicate standard output")?,
    );
    raw.write_all(view.bytes())
        .with_context(|| format!("cannot write {name:?} to standard output"))?;
    Ok(())
}
