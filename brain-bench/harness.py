"""What the Python benchmarks share to leave nothing behind, even when they
are killed (by hand, by a timeout, or by the kernel when memory runs out):

- ``die_with_parent``: a ``preexec_fn`` for the servers and helper
  processes a benchmark starts (from its main thread), so they end with
  the benchmark instead of holding their memory and ports on;
- ``scratch_dir``: a scratch directory whose name carries the benchmark's
  pid and PID namespace; directories of earlier runs of this namespace
  whose process is gone (and any tmpfs mounted under them) are removed
  first;
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
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# Looked up here, in the benchmark's process: a child between fork and
# exec should not load libraries.
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None
_BENCHMARK_PID = os.getpid()


def die_with_parent() -> None:
    """In a child the benchmark forked: asks the kernel to send it SIGTERM
    when the benchmark dies, and ends it at once if that already happened.
    Linux only; elsewhere it does nothing."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != _BENCHMARK_PID:
        os._exit(1)


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _mounts_under(path: Path) -> list[Path]:
    """Mount points below `path` (as the kernel names them: symbolic links
    resolved), deepest first."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = os.path.realpath(path).rstrip("/") + "/"
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
    """A new directory ``<parent>/<prefix><pid>~<namespace>-<random>``, after
    removing those of earlier runs in this PID namespace whose process is
    gone (another namespace's pids cannot be seen from here: its
    directories stay)."""
    namespace = _pid_namespace()
    pattern = re.compile(re.escape(prefix) + r"(\d+)~([0-9a-f]+)-")
    for entry in Path(parent).glob(prefix + "*"):
        found = pattern.match(entry.name)
        if (
            found
            and namespace != 0
            and int(found.group(2), 16) == namespace
            and not entry.is_symlink()
            and entry.is_dir()
            and not Path(f"/proc/{found.group(1)}").exists()
        ):
            remove_scratch(entry)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}~{namespace:x}-", dir=parent))
