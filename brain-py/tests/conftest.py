"""Fixtures: every test gets its own store, removed afterwards, on each backend.

A test that opens a store (through ``brain``, ``store_url``, ``new_store``,
``default_store`` or ``store_path``) runs twice: ``[shm]`` on a fresh
directory under /dev/shm, and ``[memory]`` on a fresh, uniquely named
``memory://`` store in this process. A test about shared memory itself
(other processes, files on disk, recycling, the tmpfs) is marked
``@pytest.mark.shm_only("why")`` and skipped on the memory backend with
that reason.

No test may touch the user's default store: for the whole session
``BRAIN_PATH`` points at a throwaway store and ``BRAIN_URL`` is unset, so
even ``Brain()`` without a path or URL (and every spawned child process,
which inherits the environment) lands there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _helpers import BACKENDS, new_store_url, remove_store
from brain import Brain


def _shm_only_reason(item: pytest.Item, marker: pytest.Mark) -> str:
    reason = marker.args[0] if marker.args else marker.kwargs.get("reason")
    if not isinstance(reason, str) or not reason:
        raise pytest.UsageError(f"{item.nodeid}: shm_only needs a reason, as in @pytest.mark.shm_only(\"why\")")
    return reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("shm_only")
        if marker is None:
            continue
        reason = _shm_only_reason(item, marker)
        callspec = getattr(item, "callspec", None)
        if callspec is None or "backend" not in callspec.params:
            raise pytest.UsageError(
                f"{item.nodeid} is marked shm_only but opens no store through a fixture "
                "(backend, brain, store_url, new_store, default_store, store_path): it runs once, on no backend in particular"
            )
        if callspec.params["backend"] == "memory":
            item.add_marker(pytest.mark.skip(reason=f"shm only: {reason}"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_default_store() -> Iterator[str]:
    """Points BRAIN_PATH at a temporary store, and unsets BRAIN_URL, for the whole session."""
    url = new_store_url("shm", "session")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("BRAIN_PATH", url.removeprefix("shm://"))
            mp.delenv("BRAIN_URL", raising=False)
            yield url
    finally:
        remove_store(url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The kind of store this run of the test uses: "shm" or "memory"."""
    return request.param


@pytest.fixture
def new_store(backend: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty stores of this test's backend: each call returns a new URL.

    Every store made is removed after the test, pass or fail.
    """
    made: list[str] = []

    def make() -> str:
        url = new_store_url(backend)
        made.append(url)
        return url

    try:
        yield make
    finally:
        for url in made:
            remove_store(url)


@pytest.fixture
def store_url(new_store: Callable[[], str]) -> str:
    """The URL of this test's own empty store: ``shm:///dev/shm/...`` or ``memory://...``."""
    return new_store()


@pytest.fixture
def store_path(store_url: str, backend: str) -> Path:
    """The directory of this test's shared-memory store, for tests marked shm_only."""
    if backend != "shm":
        pytest.fail("store_path is a directory, which a memory store has not: use store_url, or mark the test shm_only")
    return Path(store_url.removeprefix("shm://"))


@pytest.fixture
def brain(store_url: str) -> Iterator[Brain]:
    """A Brain on this test's own store."""
    b = Brain(url=store_url)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def default_store(store_url: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Makes this test's store the default one (``Brain()`` opens it); returns its URL.

    Through BRAIN_PATH for a shared-memory store, BRAIN_URL for a memory one.
    """
    if backend == "shm":
        monkeypatch.setenv("BRAIN_PATH", store_url.removeprefix("shm://"))
    else:
        monkeypatch.setenv("BRAIN_URL", store_url)
    return store_url


class RedisServer:
    """A ``redis-server`` of this test session: a free loopback port (never 6379), a temporary directory."""

    def __init__(self) -> None:
        import shutil
        import socket
        import subprocess
        import tempfile
        import time

        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed: `make setup` installs it (apt-get install redis-server)")
        self.dir = tempfile.mkdtemp(prefix="brain-pytest-redis-")
        for _ in range(5):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            if self.port == 6379:
                continue
            if self._launch():
                return
            self.stop()
        pytest.fail("redis-server did not start on a free loopback port")

    def _launch(self) -> bool:
        """Starts the server on ``self.port``; True once it answers PING."""
        import socket
        import subprocess
        import time

        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                time.sleep(0.02)
        return False

    def kill(self) -> None:
        """Kills the server (SIGKILL), keeping its port and directory for a restart."""
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        """Starts the server again on the same port, empty."""
        import time

        deadline = time.monotonic() + 10
        while not self._launch():
            self.proc.kill()
            self.proc.wait()
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start again on port {self.port}")
            time.sleep(0.1)

    def url(self, prefix: str) -> str:
        return f"redis://127.0.0.1:{self.port}/?prefix={prefix}"

    def stop(self) -> None:
        import shutil

        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the tests that use Redis; stopped at the end, pass or fail."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A Redis store of this test's own: the session's server under a fresh key prefix."""
    import uuid

    return redis_server.url(f"pytest-{uuid.uuid4().hex}")


@pytest.fixture
def redis_cache() -> Iterator[Callable[[], str]]:
    """Makes host cache directories (one per simulated host) under /dev/shm, removed afterwards."""
    import shutil
    import tempfile

    made: list[str] = []

    def make() -> str:
        made.append(tempfile.mkdtemp(dir="/dev/shm", prefix="brain-pytest-host-"))
        return made[-1] + "/cache"

    try:
        yield make
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
