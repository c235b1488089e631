"""Progress of a dump or restore, shown where a person is watching.

The native module calls a callback with a :class:`~brain._types.ProgressReport`
(at most about ten times a second, and at the start and end of each phase).
``progress=`` chooses what receives it:

- ``None`` (the default): an updating display in a Jupyter notebook, a
  one-line bar when standard error is a terminal, nothing otherwise (a
  script's log, a gunicorn worker, a test);
- ``True``: the display in a notebook, else the bar on standard error even
  when it is not a terminal; ``False``: nothing;
- a callable: called with each report, for an application's own display.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ._types import ProgressReport

ProgressCallback = Callable[[ProgressReport], object]
Progress = bool | None | ProgressCallback

BAR_WIDTH = 30
_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def size(nbytes: float) -> str:
    """A byte count in binary units, as the ``brain`` command shows it: ``512 B``, ``1.5 GiB``."""
    if nbytes < 1024:
        return f"{int(nbytes)} B"
    value = nbytes / 1024
    unit = 0
    while value >= 1024 and unit + 1 < len(_UNITS):
        value /= 1024
        unit += 1
    return f"{value:.1f} {_UNITS[unit]}"


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (an IPython shell with a kernel)."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class _Phase:
    """The figures of the phase under way, and how to say them in a line."""

    def __init__(self, report: ProgressReport) -> None:
        self.name = report["phase"]
        self.started = time.monotonic()
        self.report = report

    def fraction(self) -> float:
        report = self.report
        if report["bytes_total"]:
            return min(1.0, report["bytes_done"] / report["bytes_total"])
        if report["objects_total"]:
            return min(1.0, report["objects_done"] / report["objects_total"])
        return 1.0

    def line(self) -> str:
        report = self.report
        elapsed = max(time.monotonic() - self.started, 1e-9)
        filled = int(self.fraction() * BAR_WIDTH)
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * (BAR_WIDTH - filled - 1)
        # A rate over less than half a second says little.
        rate = f"{size(report['bytes_done'] / elapsed)}/s " if elapsed >= 0.5 else ""
        return (
            f"{self.name:>9} [{bar[:BAR_WIDTH]}] {size(report['bytes_done'])}/{size(report['bytes_total'])} "
            f"{rate}({report['objects_done']}/{report['objects_total']} objects)"
        )


class TerminalBar:
    """A one-line bar redrawn with ``\\r`` on a stream, cleared when done (as the command's)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.phase: _Phase | None = None
        self.drawn = 0

    def __call__(self, report: ProgressReport) -> None:
        if self.phase is None or self.phase.name != report["phase"]:
            self.phase = _Phase(report)
        self.phase.report = report
        line = self.phase.line()
        self.stream.write("\r" + line.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(line)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


class _View:
    """What the notebook shows: an HTML progress bar, and the same line as text."""

    def __init__(self, phase: _Phase) -> None:
        self.text = phase.line()
        self.value = phase.fraction()
        self.name = phase.name

    def _repr_html_(self) -> str:
        return (
            f'<div><progress value="{self.value:.4f}" max="1" style="width:20em"></progress> '
            f"<code>{html.escape(self.text)}</code></div>"
        )

    def __repr__(self) -> str:
        return self.text


class NotebookDisplay:
    """One display in the notebook's output, updated in place."""

    def __init__(self) -> None:
        self.phase: _Phase | None = None
        self.handle: Any = None

    def __call__(self, report: ProgressReport) -> None:
        from IPython import display as ipython_display

        display: Callable[..., Any] = ipython_display.display
        if self.phase is None or self.phase.name != report["phase"]:
            self.phase = _Phase(report)
            self.handle = None  # each phase gets a line of its own
        self.phase.report = report
        view = _View(self.phase)
        if self.handle is None:
            self.handle = display(view, display_id=True)
        else:
            self.handle.update(view)

    def close(self) -> None:
        pass


@contextmanager
def reporter(progress: Progress, call: str) -> Iterator[ProgressCallback | None]:
    """The callback to give the native module for ``progress=``; a terminal bar is cleared on exit."""
    if progress is False:
        yield None
        return
    if progress is None or progress is True:
        shown: TerminalBar | NotebookDisplay | None
        if in_notebook():
            shown = NotebookDisplay()
        elif progress is True or (sys.stderr is not None and sys.stderr.isatty()):
            shown = TerminalBar(sys.stderr) if sys.stderr is not None else None
        else:
            shown = None
        try:
            yield shown
        finally:
            if shown is not None:
                shown.close()
        return
    if callable(progress):
        yield progress
        return
    raise TypeError(
        f"{call}: progress must be None (shown in a notebook or on a terminal), True, False, "
        f"or a callable that takes a dict of figures, not {type(progress).__name__}"
    )
