//! `brain cat NAME`: the payload, byte for byte, on standard output.

use crate::console::Console;
use anyhow::Context;
use brain_core::ObjectStore;

/// Writes the payload of `namespace/name` to standard output.
///
/// The bytes go out in one `write_all` straight from the object's view (for
/// a large object, the shared mapping itself): no copy is made, and the
/// console's buffer is bypassed for anything larger than it.
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
    console
        .out(|out| out.write_all(view.bytes()))
        .with_context(|| format!("cannot write {name:?} to standard output"))
}
