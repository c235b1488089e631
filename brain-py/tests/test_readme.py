"""The repository README's Python examples run, in order, as written."""

from __future__ import annotations

import doctest
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
PYTHON_BLOCK = re.compile(r"^[ \t]*```[ \t]*python[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[str]:
    """The code of every ```python fenced block, in order."""
    return [block for block in PYTHON_BLOCK.findall(text)]


def test_python_blocks_are_found() -> None:
    text = "intro\n```python\na = 1\n```\n```bash\nls\n```\n```python title\nb = a + 1\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a + 1\n"]


def _run_block(code: str, index: int, namespace: dict) -> None:
    if re.search(r"^\s*>>> ", code, re.MULTILINE):
        # An interactive session: run it as a doctest, checking its outputs.
        test = doctest.DocTestParser().get_doctest(code, namespace, f"README block {index}", str(README), 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        result = runner.run(test, clear_globs=False)
        assert result.failed == 0, f"README python block {index} failed as a doctest (output above)"
    else:
        exec(compile(code, f"<README.md python block {index}>", "exec"), namespace)


def test_readme_python_examples_run(default_store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Brain() in the examples opens this test's store, of either backend.
    if not README.is_file():
        pytest.fail(f"{README} does not exist: the README must show brain's Python usage in ```python blocks")
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    if not blocks:
        pytest.fail(f"{README} has no ```python code blocks: its Python examples must be written (they are run here)")
    monkeypatch.chdir(tmp_path)  # files an example writes land in a temporary directory
    namespace: dict = {"__name__": "__readme__"}
    # polars sets its allocator's configuration (_RJEM_MALLOC_CONF) in
    # os.environ when first imported: imported here, before the snapshot, so
    # only what an example itself changes counts.
    import polars  # noqa: F401
    environment = dict(os.environ)
    for index, code in enumerate(blocks, start=1):
        _run_block(code, index, namespace)
        assert dict(os.environ) == environment, f"README python block {index} left the environment changed"
