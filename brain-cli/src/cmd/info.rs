//! `brain info NAME`: an object's metadata, and what its codec says about it.

use anyhow::Context;
use brain_core::{Codec, ObjectStore, ObjectStoreExt};
use serde::Serialize;

use super::{codec_name, print_json, ObjectJson};
use crate::console::Console;
use crate::format;

/// What `info --json` prints: the metadata, and the codec's details when they decode.
#[derive(Debug, Serialize)]
struct InfoJson {
    #[serde(flatten)]
    object: ObjectJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    ndarray: Option<NdArrayJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arrow: Option<ArrowJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decode_error: Option<String>,
    /// The parts of a frame stored in parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<usize>,
}

#[derive(Debug, Serialize)]
struct NdArrayJson {
    dtype: String,
    shape: Vec<u64>,
    fortran_order: bool,
}

#[derive(Debug, Serialize)]
struct ArrowJson {
    rows: u64,
    batches: u64,
    columns: Vec<ColumnJson>,
}

#[derive(Debug, Serialize)]
struct ColumnJson {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
}

/// Prints the metadata of `namespace/name`.
pub fn run(
    console: &mut Console,
    store: &dyn ObjectStore,
    namespace: &str,
    name: &str,
    json: bool,
) -> anyhow::Result<()> {
    let context = || format!("cannot read {name:?} in namespace {namespace:?}");
    let meta = store
        .metadata(namespace, name)
        .with_context(context)?
        .ok_or_else(|| brain_core::Error::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    // A frame in parts is shown as the frame it is, with its part count.
    let (meta, parts) = brain_core::frames::table_meta(store, meta);
    let mut info = InfoJson {
        parts: (parts > 0).then_some(parts),
        object: ObjectJson::from(&meta),
        ndarray: None,
        arrow: None,
        decode_error: None,
    };
    // The codec's details; an object replaced or deleted meanwhile just has none.
    let details = match meta.codec {
        Codec::NdArray => store.get_ndarray(namespace, name).map(|view| {
            info.ndarray = view.map(|v| NdArrayJson {
                dtype: v.meta.dtype.to_string(),
                shape: v.meta.shape,
                fortran_order: v.meta.fortran_order,
            });
        }),
        codec if codec.is_arrow() => store.get_record_batches(namespace, name).map(|read| {
            info.arrow = read.map(|(schema, batches)| ArrowJson {
                rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
                batches: batches.len() as u64,
                columns: schema
                    .fields()
                    .iter()
                    .map(|f| ColumnJson {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                        nullable: f.is_nullable(),
                    })
                    .collect(),
            });
        }),
        _ => Ok(()),
    };
    if let Err(err) = details {
        info.decode_error = Some(err.to_string());
    }
    if json {
        return print_json(console, &info);
    }
    let mut lines: Vec<(&str, String)> = vec![
        ("namespace", format::name(&meta.namespace)),
        ("name", format::name(&meta.name)),
        ("codec", codec_name(meta.codec)),
        ("size", format::size_exact(meta.size)),
        ("stored size", format::size_exact(meta.stored_size)),
        ("created", format::time_precise(meta.created)),
        ("description", super::ls::description(&meta.description)),
    ];
    if let Some(parts) = info.parts {
        let plural = if parts == 1 { "" } else { "s" };
        lines.push(("stored as", format!("a frame in {parts} part{plural}")));
    }
    if let Some(array) = &info.ndarray {
        lines.push(("dtype", array.dtype.clone()));
        let dims: Vec<String> = array.shape.iter().map(u64::to_string).collect();
        // As Python writes a tuple: (), (5,), (2, 3).
        let comma = if dims.len() == 1 { "," } else { "" };
        lines.push(("shape", format!("({}{comma})", dims.join(", "))));
        let order = if array.fortran_order {
            "Fortran (column-major)"
        } else {
            "C (row-major)"
        };
        lines.push(("order", order.into()));
    }
    if let Some(arrow) = &info.arrow {
        lines.push(("rows", arrow.rows.to_string()));
        lines.push(("batches", arrow.batches.to_string()));
        for (i, column) in arrow.columns.iter().enumerate() {
            let nullable = if column.nullable { ", nullable" } else { "" };
            lines.push((
                if i == 0 { "columns" } else { "" },
                format!(
                    "{}: {}{nullable}",
                    format::name(&column.name),
                    column.data_type
                ),
            ));
        }
    }
    if let Some(err) = &info.decode_error {
        lines.push(("decode error", err.clone()));
    }
    console.out(|out| {
        for (label, value) in &lines {
            writeln!(out, "{}", format!("{label:<12} {value}").trim_end())?;
        }
        Ok(())
    })
}
