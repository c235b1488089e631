"""The wheel as a user gets it: ``pip install`` into a fresh virtualenv with no
Rust toolchain on the PATH, then the README's quick start and the ``brain``
command there.

The wheel is ``make wheel``'s (target/wheels) when it is newer than every
source it is built from; otherwise this test builds a debug wheel of its own
with maturin (seconds, from the debug build ``make setup`` made), so it never
tests a stale wheel and never waits minutes for a release build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from brain import _brain

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
WHEELS = REPO / "target" / "wheels"
# What the wheel is built from: the crates the extension links and the package.
SOURCES = [
    REPO / "Cargo.toml",
    REPO / "Cargo.lock",
    REPO / "brain-core",
    REPO / "brain-mock",
    REPO / "brain",
    REPO / "brain-persist",
    REPO / "brain-cli",
    REPO / "brain-py" / "Cargo.toml",
    REPO / "brain-py" / "pyproject.toml",
    REPO / "brain-py" / "src",
    REPO / "brain-py" / "python",
]
# Third-party packages the quick start imports, at the versions this suite runs.
QUICK_START_NEEDS = ["numpy", "pandas", "pyarrow"]


def newest_source() -> float:
    """The latest modification time among the wheel's sources."""
    newest = 0.0
    for source in SOURCES:
        paths = [source] if source.is_file() else source.rglob("*")
        for path in paths:
            parts = set(path.parts)
            if "target" in parts or "__pycache__" in parts or path.suffix == ".so" or not path.is_file():
                continue
            newest = max(newest, path.stat().st_mtime)
    return newest


def fresh_release_wheel() -> Path | None:
    """``make wheel``'s wheel of this version, if it is newer than every source."""
    candidates = sorted(WHEELS.glob(f"brain-{_brain.__version__}-*abi3*.whl"), key=lambda p: p.stat().st_mtime)
    if candidates and candidates[-1].stat().st_mtime > newest_source():
        return candidates[-1]
    return None


def build_debug_wheel(out: Path) -> Path:
    maturin = Path(sys.executable).with_name("maturin")
    subprocess.run(
        [str(maturin), "build", "--out", str(out)],
        cwd=REPO / "brain-py",
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    (wheel,) = out.glob("brain-*.whl")
    return wheel


def python_quick_start() -> str:
    """The first ```python block of the README's "Python quick start" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python quick start\n", 1)[1]
    match = re.search(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, "the README's Python quick start has no ```python block"
    return match.group(1)


@dataclass
class Install:
    """A fresh virtualenv with the wheel installed, and the environment to run it in."""

    venv: Path
    wheel: Path
    env: dict[str, str]
    store: Path
    work: Path
    missing: str | None
    """Why numpy, pandas and pyarrow could not be installed (no index reachable), or None."""

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(args), cwd=self.work, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done


def has_rust(directory: str) -> bool:
    return any((Path(directory) / tool).exists() for tool in ("cargo", "rustc", "rustup"))


def user_environment(venv: Path, store: Path) -> dict[str, str]:
    """This process's environment as a user's shell in the new virtualenv would have it:
    no Rust toolchain, not the development virtualenv, a store of this test's own."""
    development = (REPO / ".venv" / "bin").resolve()
    kept = [
        d for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not has_rust(d) and Path(d).resolve() != development
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "BRAIN_URL", "BRAIN_PERSIST", "CARGO_HOME", "RUSTUP_HOME"}
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *kept])
    env["VIRTUAL_ENV"] = str(venv)
    env["BRAIN_PATH"] = str(store)
    return env


@pytest.fixture(scope="module")
def install() -> Iterator[Install]:
    root = Path(tempfile.mkdtemp(prefix="brain-wheel-test-"))
    store = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="brain-pytest-wheel-"))
    try:
        wheel = fresh_release_wheel() or build_debug_wheel(root / "wheels")
        venv = root / "venv"
        base_python = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
        # The wheel alone, from the file: nothing to compile, nothing to fetch.
        subprocess.run([*pip, "--no-index", "--no-deps", str(wheel)], check=True, timeout=300)
        pinned = [f"{name}=={metadata.version(name)}" for name in QUICK_START_NEEDS]
        fetched = subprocess.run(
            [*pip, "--only-binary", ":all:", *pinned], capture_output=True, text=True, timeout=600
        )
        said = fetched.stderr.strip().splitlines() or [f"pip exited with {fetched.returncode}"]
        missing = None if fetched.returncode == 0 else said[-1]
        work = root / "work"
        work.mkdir()
        yield Install(venv, wheel, user_environment(venv, store), store, work, missing)
    finally:
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def test_the_environment_is_a_users(install: Install) -> None:
    for tool in ("cargo", "rustc", "rustup"):
        assert shutil.which(tool, path=install.env["PATH"]) is None, f"{tool} is on the test's PATH"
    assert shutil.which("brain", path=install.env["PATH"]) == str(install.venv / "bin" / "brain")
    where = install.run("python", "-c", "import brain; print(brain.__file__)").stdout.strip()
    assert Path(where).is_relative_to(install.venv), f"brain imported from {where}, not the new virtualenv"
    # One abi3 wheel for every CPython from 3.11.
    assert re.search(r"-cp311-abi3-", install.wheel.name), install.wheel.name


def test_the_command_alone(install: Install) -> None:
    version = install.run("brain", "--version").stdout.strip()
    assert version == f"brain {_brain.__version__}"
    done = subprocess.run(
        ["brain", "-n", "alone", "put", "greeting", "-", "--codec", "text"],
        input="hello", cwd=install.work, env=install.env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^greeting\s+text\s+5 B\s", install.run("brain", "ls", "alone").stdout, re.MULTILINE)
    assert install.run("brain", "-n", "alone", "cat", "greeting").stdout == "hello"
    stats = json.loads(install.run("brain", "stats", "--json").stdout)
    assert {"namespace": "alone", "names": 1, "objects": 1, "bytes": 4096} in stats["namespaces"], stats
    install.run("brain", "ns", "rm", "alone")


def test_quick_start_then_the_command(install: Install) -> None:
    if install.missing:
        pytest.skip(f"numpy, pandas and pyarrow, which the quick start imports, could not be installed: {install.missing}")
    quick_start = install.work / "quick_start.py"
    quick_start.write_text(python_quick_start(), encoding="utf-8")
    printed = install.run("python", str(quick_start)).stdout
    assert "['prices', 'sales']" in printed and "unit prices" in printed, printed

    listing = install.run("brain", "ls").stdout
    assert re.search(r"^prices\s+ndarray\s+7\.6 MiB\s+\S+\s+unit prices$", listing, re.MULTILINE), listing
    assert re.search(r"^sales\s+pandas\s", listing, re.MULTILINE), listing
    stats = install.run("brain", "stats").stdout
    assert f"store       {install.store}" in stats, stats
    assert re.search(r"^objects\s+2$", stats, re.MULTILINE), stats
    usage = json.loads(install.run("brain", "stats", "--json").stdout)
    assert usage["objects"] == 2 and usage["used"] > 8_000_000, usage


def test_the_command_fails_as_the_binary_does(install: Install) -> None:
    refused = install.run("brain", "cat", "missing", check=False)
    assert refused.returncode == 3 and refused.stderr.startswith('brain: no object named "missing"'), refused
    usage = install.run("brain", "frobnicate", check=False)
    assert usage.returncode == 2 and "\x1b[" not in usage.stderr, usage
    closed = install.run("sh", "-c", "exec brain ls >&-", check=False)
    assert closed.returncode == 1, closed
    assert closed.stderr == "brain: cannot write to standard output: it is closed\n", closed.stderr
    # Standard input closed: a put refuses it instead of storing nothing over the value.
    install.run("sh", "-c", "printf kept | brain put report -")
    closed = install.run("sh", "-c", "exec brain put report - <&-", check=False)
    assert closed.returncode == 1 and "cannot read standard input: it is closed" in closed.stderr, closed
    assert install.run("brain", "cat", "report").stdout == "kept"


def test_ctrl_c_stops_a_running_command(install: Install) -> None:
    with subprocess.Popen(
        ["brain", "watch"], cwd=install.work, env=install.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as watch:
        try:
            assert watch.stderr is not None
            assert watch.stderr.readline().startswith("watching namespace"), "brain watch did not start"
            started = time.monotonic()
            watch.send_signal(signal.SIGINT)
            assert watch.wait(timeout=10) == -signal.SIGINT
            assert time.monotonic() - started < 5
        finally:
            if watch.poll() is None:
                watch.kill()
