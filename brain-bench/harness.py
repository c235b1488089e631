"""What the Python benchmarks share to leave nothing behind, even when they
are killed (by hand, by a timeout, or by the kernel when memory runs out):

- ``die_with_parent``: a ``preexec_fn`` for the servers and helper
  processes a benchmark starts, so they end with the benchmark instead of
  holding their memory and ports on;
- ``scratch_dir``: a scratch directory whose name carries the benchmark's
  pid; directories of benchmarks that are gone (and any tmpfs mounted
  under them) are removed first;
- ``remove_scratch``: removes one, unmounting what is mounted under it.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Asks the kernel to send SIGTERM to this (child) process when the
    process that started it dies. Linux only; elsewhere it does nothing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest first."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(path).rstrip("/") + "/"
    # /proc/self/mounts escapes spaces and the like as octal (\040).
    points = [
        Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[1]))
        for line in lines
        if len(line.split()) > 1
    ]
    return sorted((p for p in points if str(p).startswith(prefix)), key=lambda p: -len(str(p)))


def remove_scratch(path: Path) -> None:
    """Unmounts anything mounted under `path`, then removes it."""
    for point in _mounts_under(path):
        if subprocess.run(["umount", str(point)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def scratch_dir(prefix: str, parent: str = "/dev/shm") -> Path:
    """A new directory ``<parent>/<prefix><pid>-<random>``, after removing
    those of earlier runs whose process is gone."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    for entry in Path(parent).glob(prefix + "*"):
        found = pattern.match(entry.name)
        if found and entry.is_dir() and not Path(f"/proc/{found.group(1)}").exists():
            remove_scratch(entry)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
