"""Progress of dump and restore: a callback underneath, a bar on a terminal,
nothing where no one watches."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from brain import Brain
from brain._types import ProgressReport


def fill(brain: Brain, objects: int, size: int) -> int:
    """Writes `objects` incompressible objects of `size` bytes; returns the payload bytes."""
    rng = np.random.default_rng(7)
    for i in range(objects):
        brain[f"object {i:05}"] = rng.integers(0, 255, size, dtype=np.uint8).tobytes()
    return objects * size


class Recorder:
    """A progress callback that keeps every report and when it came."""

    def __init__(self) -> None:
        self.reports: list[ProgressReport] = []
        self.times: list[float] = []

    def __call__(self, report: ProgressReport) -> None:
        self.reports.append(dict(report))  # type: ignore[arg-type]
        self.times.append(time.monotonic())

    def phases(self) -> list[str]:
        seen: list[str] = []
        for report in self.reports:
            if not seen or seen[-1] != report["phase"]:
                seen.append(report["phase"])
        return seen

    def last(self, phase: str) -> ProgressReport:
        return [r for r in self.reports if r["phase"] == phase][-1]


def test_a_callback_sees_each_phase_through_to_its_end(brain: Brain, tmp_path: Path, new_store) -> None:
    payload = fill(brain, 12, 1 << 20)
    dumped = Recorder()
    report = brain.dump(tmp_path / "dump", level=1, progress=dumped)
    assert dumped.phases() == ["dumping"]
    end = dumped.last("dumping")
    assert end["bytes_done"] == end["bytes_total"] == payload == report["payload_bytes"]
    assert end["objects_done"] == end["objects_total"] == 12
    done = [r["bytes_done"] for r in dumped.reports]
    assert done == sorted(done), "progress went backwards"

    restored = Recorder()
    Brain(url=new_store()).restore(tmp_path / "dump", progress=restored)
    assert restored.phases() == ["verifying", "restoring"]
    for phase in ("verifying", "restoring"):
        end = restored.last(phase)
        assert end["bytes_done"] == end["bytes_total"] == payload, (phase, end)
        assert end["objects_done"] == end["objects_total"] == 12, (phase, end)


def test_a_callback_is_called_at_most_about_ten_times_a_second(brain: Brain, tmp_path: Path, new_store) -> None:
    # Thousands of objects: each one is a report underneath.
    fill(brain, 3_000, 64)
    for operation in ("dump", "restore"):
        recorder = Recorder()
        started = time.monotonic()
        if operation == "dump":
            brain.dump(tmp_path / "dump", progress=recorder)
        else:
            Brain(url=new_store()).restore(tmp_path / "dump", progress=recorder)
        elapsed = time.monotonic() - started
        phases = len(recorder.phases())
        # Ten a second, plus the first and last report of each phase.
        assert 2 <= len(recorder.reports) <= elapsed * 10 + 2 * phases + 1, (operation, len(recorder.reports), elapsed)
        same_phase_gaps = [
            later - earlier
            for (earlier, later, a, b) in zip(recorder.times, recorder.times[1:], recorder.reports, recorder.reports[1:])
            if a["phase"] == b["phase"] and b["objects_done"] < b["objects_total"]
        ]
        assert all(gap >= 0.09 for gap in same_phase_gaps), (operation, min(same_phase_gaps))


def test_nothing_is_shown_where_no_one_watches(brain: Brain, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    fill(brain, 3, 1 << 16)
    brain.dump(tmp_path / "dump")
    brain.restore(tmp_path / "dump", on_conflict="overwrite")
    brain.dump(tmp_path / "dump", progress=False)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_that_is_cleared_at_the_end(
    brain: Brain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_store
) -> None:
    fill(brain, 4, 1 << 20)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    brain.dump(tmp_path / "dump", level=1)
    Brain(url=new_store()).restore(tmp_path / "dump")
    drawn = terminal.getvalue()
    lines = [part for part in drawn.split("\r") if part.strip()]
    assert any(line.startswith("  dumping [") for line in lines), drawn
    assert any(line.startswith("verifying [") for line in lines), drawn
    assert any(line.startswith("restoring [") for line in lines), drawn
    assert any("4.0 MiB/4.0 MiB" in line and "(4/4 objects)" in line for line in lines), drawn
    assert "\n" not in drawn, "the bar is one line"
    assert drawn.endswith("\r") and drawn.rsplit("\r", 2)[-2].strip() == "", "the last line is cleared"

    # progress=True draws even where standard error is not a terminal.
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    brain.dump(tmp_path / "dump")
    assert "dumping [" not in plain.getvalue()
    brain.dump(tmp_path / "dump", progress=True)
    assert "dumping [" in plain.getvalue()


def test_an_exception_in_the_callback_is_raised_once_the_work_is_done(brain: Brain, tmp_path: Path) -> None:
    fill(brain, 5, 1 << 20)
    calls = []

    def fails(report: ProgressReport) -> None:
        calls.append(report)
        raise RuntimeError("the display broke")

    with pytest.raises(RuntimeError, match="the display broke"):
        brain.dump(tmp_path / "dump", level=1, progress=fails)
    assert len(calls) == 1, "not called again after it raised"
    # The dump itself went through.
    assert len(Brain.list_dump(tmp_path / "dump")["objects"]) == 5


def test_progress_takes_a_flag_or_a_callable(brain: Brain, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"brain\.dump\(\.\.\., progress=\.\.\.\): progress must be"):
        brain.dump(tmp_path / "dump", progress="yes")  # type: ignore[arg-type]
