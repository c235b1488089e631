//! `brain rm NAME...`: delete objects.

use crate::console::Console;
use anyhow::Context;
use brain_core::ObjectStore;

/// Deletes each name in `namespace`. A missing name is an error (exit 3)
/// unless `force`; the other names are still deleted.
pub fn run(
    console: &mut Console,
    store: &dyn ObjectStore,
    namespace: &str,
    names: &[String],
    force: bool,
) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for name in names {
        let existed = brain_core::frames::delete_table(store, namespace, name)
            .with_context(|| format!("cannot delete {name:?} in namespace {namespace:?}"))?;
        if !existed && !force {
            missing.push(name);
        }
    }
    let Some((last, others)) = missing.split_last() else {
        return Ok(());
    };
    let not_found = |name: &str| brain_core::Error::NotFound {
        namespace: namespace.into(),
        name: name.into(),
    };
    // The advice once, with the last: the same for every name.
    for name in others {
        console.note(&format!(
            "brain: no object named {name:?} in namespace {namespace:?}"
        ));
    }
    Err(not_found(last).into())
}
