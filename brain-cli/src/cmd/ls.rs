//! `brain ls [NAMESPACE|--all]`: the objects of one namespace, or of all.

use anyhow::Context;
use brain_core::{ObjectMeta, ObjectStore};

use super::{codec_name, print_json, ObjectJson};
use crate::console::Console;
use crate::format::{self, Table};

/// Lists the namespace in `which` (with whether it was named explicitly), or
/// every namespace when `which` is `None`. A namespace named explicitly that
/// does not exist is an error; the implicit `default` one lists as empty.
pub fn run(
    console: &mut Console,
    store: &dyn ObjectStore,
    which: Option<(String, bool)>,
    json: bool,
) -> anyhow::Result<()> {
    let objects = match &which {
        None => {
            let mut all = Vec::new();
            for namespace in store.namespaces().context("cannot list the namespaces")? {
                all.extend(list(console, store, &namespace)?);
            }
            all
        }
        Some((namespace, explicit)) => {
            let objects = list(console, store, namespace)?;
            if objects.is_empty()
                && *explicit
                && !store
                    .namespaces()
                    .context("cannot list the namespaces")?
                    .contains(namespace)
            {
                return Err(brain_core::Error::NamespaceNotFound {
                    namespace: namespace.clone(),
                }
                .into());
            }
            objects
        }
    };
    if json {
        let out: Vec<ObjectJson> = objects.iter().map(ObjectJson::from).collect();
        return print_json(console, &out);
    }
    let all = which.is_none();
    let mut columns = Vec::new();
    if all {
        columns.push(("NAMESPACE", false));
    }
    columns.extend([
        ("NAME", false),
        ("CODEC", false),
        ("SIZE", true),
        ("CREATED", false),
        ("DESCRIPTION", false),
    ]);
    let mut table = Table::new(&columns);
    for meta in &objects {
        let mut row = Vec::new();
        if all {
            row.push(format::name(&meta.namespace));
        }
        row.extend([
            format::name(&meta.name),
            codec_name(meta.codec),
            format::size(meta.size),
            format::time(meta.created),
            description(&meta.description),
        ]);
        table.row(row);
    }
    console.out(|out| {
        table.write(out)?;
        out.flush()
    })
}

fn list(
    console: &Console,
    store: &dyn ObjectStore,
    namespace: &str,
) -> anyhow::Result<Vec<ObjectMeta>> {
    let mut metas = store
        .list(namespace)
        .with_context(|| format!("cannot list namespace {namespace:?}"))?;
    // Objects that cannot be read are not listed: say so, not hide them.
    let damaged = store
        .damaged(namespace)
        .with_context(|| format!("cannot list namespace {namespace:?}"))?;
    if !damaged.is_empty() {
        console.note(&format!(
            "brain: {} in namespace {namespace:?} cannot be read and {} not listed (first: {}: {}); `brain fsck` reports {}",
            match damaged.len() {
                1 => "1 object".to_owned(),
                n => format!("{n} objects"),
            },
            if damaged.len() == 1 { "is" } else { "are" },
            damaged[0].location,
            damaged[0].reason,
            if damaged.len() == 1 { "it" } else { "them" },
        ));
    }
    metas.retain(|meta| !brain_core::frames::is_frame_part(&meta.name));
    // A frame in parts is shown as the frame it is: its writer's codec and
    // its parts' size, not its manifest's.
    Ok(metas
        .into_iter()
        .map(|meta| brain_core::frames::table_meta(store, meta).0)
        .collect())
}

/// A description for a table cell: empty stays empty.
pub fn description(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format::name(text)
    }
}
