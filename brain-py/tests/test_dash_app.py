"""The Dash deployment of examples/dash_app: gunicorn with 4 workers, driven in
headless Chromium, with frames from brain and, timed in the same run, from
Parquet as before brain. After every change each worker must answer with the
same data. Gunicorn, the browser, the stores and the files are removed even
when the test fails (examples/dash_app/drive.py)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "dash_app"))
import drive  # noqa: E402

ROWS = 100_000  # the app's default is 10 million; docs/BENCHMARKS.md has that run


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    if missing := drive.missing_tools():
        pytest.skip(
            f"the Dash browser test needs {', '.join(missing)}: `make setup` installs them "
            "(apt-get install chromium chromium-driver, which needs root or sudo)"
        )


# About a minute on a quiet machine; the limit leaves room for a busy one.
@pytest.mark.timeout(600)
def test_every_worker_serves_the_same_data_from_brain_and_from_parquet(tmp_path: Path) -> None:
    shot = tmp_path / "dash_app.png"
    runs = [drive.drive("brain", ROWS, repeats=2, screenshot=shot), drive.drive("parquet", ROWS, repeats=2)]
    for run in runs:
        # The first load, the first pick of B, each switch, each discount, the refresh.
        assert run.checks == 2 + 2 * 2 + 2 + 1, run
        for step, answers in run.times.items():
            for answer, times in answers.items():
                assert all(0 < ms < 60_000 for ms in times), (run.source, step, answer, times)
    brain, parquet = runs
    # The callbacks read brain's frame by name, not a file: faster than Parquet's whole read.
    step = "switch company (already loaded): read by name"
    assert statistics.median(brain.reads[step]) < statistics.median(parquet.reads[step]), (brain.reads, parquet.reads)
    print()
    print(drive.table(runs))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert shot.stat().st_size < 300_000


def test_a_store_opened_before_gunicorn_forks_serves_every_worker() -> None:
    # --preload imports the app, and opens its Brain, in the master, before the workers fork.
    run = drive.drive("brain", ROWS, repeats=0, preload=True)
    assert run.checks == 2
