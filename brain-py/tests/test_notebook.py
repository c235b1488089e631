"""examples/brain_in_jupyter.ipynb runs in a Jupyter kernel, cell by cell, as a
user would run it, and shows what it promises: the table, the progress, the
errors in Python's terms."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

nbclient = pytest.importorskip("nbclient", reason="nbclient is in brain-py/requirements-dev.txt: run make setup")
nbformat = pytest.importorskip("nbformat", reason="nbformat is in brain-py/requirements-dev.txt: run make setup")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "brain_in_jupyter.ipynb"


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The notebook after a run in a kernel whose default store is a new one, removed afterwards."""
    store = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="brain-pytest-notebook-"))
    try:
        monkeypatch.setenv("BRAIN_PATH", str(store))  # the kernel inherits it
        monkeypatch.delenv("BRAIN_URL", raising=False)
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
        yield notebook
    finally:
        shutil.rmtree(store, ignore_errors=True)


def outputs(cell: Any) -> list[Any]:
    return list(cell.get("outputs", []))


def test_the_notebook_runs_and_shows_a_table_and_progress(executed: Any) -> None:
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    errors = [out for cell in code for out in outputs(cell) if out.output_type == "error"]
    assert not errors, errors

    table_cell = next(cell for cell in code if cell.source.rstrip().endswith("\nbrain"))
    (result,) = [out for out in outputs(table_cell) if out.output_type == "execute_result"]
    page = result.data["text/html"]
    assert "<table>" in page and "<code>sales</code>" in page and "one million sales" in page, page
    assert "note &lt;b&gt;not bold&lt;/b&gt;" in page and "<b>not bold" not in page, page
    assert result.data["text/plain"].startswith("Brain: namespace 'notebook example'"), result.data["text/plain"]

    dump_cell = next(cell for cell in code if "brain.dump(" in cell.source)
    shown = [out for out in outputs(dump_cell) if out.output_type in ("display_data", "update_display_data")]
    assert shown, "no progress was displayed during the dump"
    assert any("<progress" in out.data.get("text/html", "") for out in shown)
    assert any("dumping [" in out.data.get("text/plain", "") for out in shown)
    printed = "".join(out.get("text", "") for out in outputs(dump_cell) if out.output_type == "stream")
    assert printed.startswith("3 objects,"), printed

    restore_cell = next(cell for cell in code if "brain.restore(backup, on_conflict" in cell.source)
    kinds = {out.data.get("text/plain", "").split("[")[0].strip() for out in outputs(restore_cell) if "data" in out}
    assert {"verifying", "restoring"} <= kinds, kinds

    error_cell = next(cell for cell in code if "except Exception" in cell.source)
    printed = "".join(out.get("text", "") for out in outputs(error_cell))
    assert printed.startswith("BrainDumpConflictError - ") and 'on_conflict="skip"' in printed, printed
