//! Arrow record batches written by one process, read zero-copy by another.

use anyhow::{ensure, Context, Result};
use arrow_array::Array;
use brain_tests::sample_batches;

use crate::util::{run, TestStore};

#[test]
fn record_batches_from_another_process_are_read_zero_copy() -> Result<()> {
    let store = TestStore::new()?;
    let rows = 50_000;
    run([
        "write-arrow",
        store.arg(),
        "tables",
        "sales",
        &rows.to_string(),
    ])?
    .success()?;
    let ns = store.open()?.namespace("tables")?;
    let (schema, batches) = ns
        .get_record_batches("sales")?
        .context("written by the child")?;
    let (want_schema, want) = sample_batches(rows);
    ensure!(schema == want_schema, "schema differs: {schema:?}");
    ensure!(
        batches == want,
        "the batches read differ from the ones written"
    );
    // The columns point into the object's mapping: nothing was copied.
    let view = ns.get("sales")?.context("written by the child")?;
    ensure!(view.len() > 64 * 1024, "too small to be mapped");
    let mapped = view.as_ptr() as usize..view.as_ptr() as usize + view.len();
    for batch in &batches {
        for column in batch.columns() {
            for buffer in column.to_data().buffers() {
                ensure!(
                    mapped.contains(&(buffer.as_ptr() as usize)),
                    "a column buffer was copied out of the mapping"
                );
            }
        }
    }
    Ok(())
}
