"""A payload changed after it was written is found, never returned as checked data.

Every writer stores its payload's checksum, computed by the copy. Here one
process writes an ndarray, a DataFrame and a raw object; a byte of each
payload is then flipped in the file, as stray memory corruption would; and
other processes find each one: ``fsck`` reports it, a dump refuses it, and a
verified read (``get(..., verify=True)``) raises instead of returning it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from brain import Brain
from brain._brain import object_key

SHM_ONLY = "flips a byte in the object's file on the tmpfs"

WRITE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pandas as pd
    from brain import Brain
    b = Brain(url=sys.argv[1])
    b["array"] = np.arange(3_000_000, dtype=np.float64)
    b["frame"] = pd.DataFrame({"x": np.arange(200_000), "y": np.linspace(0, 1, 200_000)})
    b["raw"] = bytes(range(256)) * 4000
    for name in ("array", "frame", "raw"):
        b.get(name, verify=True)  # sound as written
    """
)

CHECK = textwrap.dedent(
    """
    import json, sys
    from brain import Brain
    from brain.exceptions import BrainCorruptError, BrainError
    b = Brain(url=sys.argv[1])
    out = {"verified": {}, "plain": {}}
    for name in ("array", "frame", "raw"):
        try:
            b.get(name, verify=True)
            out["verified"][name] = "returned"
        except BrainCorruptError as err:
            out["verified"][name] = str(err)
        b.view(name)  # an unverified read still maps it
        out["plain"][name] = "read"
    fsck = b.store.fsck()
    out["fsck"] = [reason for _, reason in fsck["corrupt"]]
    try:
        b.dump(sys.argv[2])
        out["dump"] = "dumped"
    except BrainError as err:
        out["dump"] = f"{type(err).__name__}: {err}"
    print(json.dumps(out))
    """
)


def object_file(store: Path, namespace: str, name: str) -> Path:
    for directory in (store / "ns").iterdir():
        if (directory / ".namespace").read_text() == namespace:
            return directory / object_key(namespace, name)
    raise AssertionError(f"no namespace {namespace!r} in {store}")


def flip_payload_byte(path: Path) -> None:
    """Flips one byte in the middle of the payload (the header is left alone)."""
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[16:20], "little")
    at = header_len + (len(data) - header_len) // 2
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(bytes([data[at] ^ 0x20]))
    os.chmod(path, 0o400)


@pytest.mark.shm_only(SHM_ONLY)
def test_a_flipped_byte_is_found_by_fsck_dump_and_a_verified_read(store_url: str, store_path: Path, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", WRITE, store_url], check=True, timeout=120)
    for name in ("array", "frame", "raw"):
        flip_payload_byte(object_file(store_path, "default", name))
    done = subprocess.run(
        [sys.executable, "-c", CHECK, store_url, str(tmp_path / "dump")],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    out = json.loads(done.stdout)
    for name in ("array", "frame", "raw"):
        assert "does not match the checksum" in out["verified"][name], out["verified"][name]
        assert name in out["verified"][name]
    assert len(out["fsck"]) == 3, out["fsck"]
    assert all("checksum mismatch" in reason for reason in out["fsck"]), out["fsck"]
    assert "does not match the checksum" in out["dump"], out["dump"]
    assert not (tmp_path / "dump").exists()


@pytest.mark.shm_only(SHM_ONLY)
def test_a_damaged_part_of_a_changed_frame_is_reported_as_the_frames(brain: Brain, store_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from brain.exceptions import BrainCorruptError

    brain["f"] = pd.DataFrame({"x": np.arange(200_000.0)})
    brain.append("f", pd.DataFrame({"x": np.arange(200_000.0)}))
    # The manifest is small (an entry of the store's table): the object
    # files of the namespace are the frame's parts.
    namespace_dir = object_file(store_path, "default", "f").parent
    parts = [p for p in namespace_dir.iterdir() if not p.name.startswith(".")]
    assert len(parts) == 2, parts
    flip_payload_byte(parts[0])
    with pytest.raises(BrainCorruptError) as info:
        brain.get("f", verify=True)
    message = str(info.value)
    assert '"f"' in message and "does not match the checksum" in message, message
    assert "\0" not in message and "brain-part" not in message, message
    assert "del brain[name]" in message, message


@pytest.mark.shm_only(SHM_ONLY)
def test_objects_left_alone_verify(brain: Brain) -> None:
    import numpy as np

    arr = np.arange(5_000_000, dtype=np.int64)
    brain["big"] = arr
    brain["small"] = b"hello"
    assert (brain.get("big", verify=True) == arr).all()
    assert brain.store.fsck()["corrupt"] == []


def test_a_writable_buffer_written_meanwhile_stores_what_was_copied(brain: Brain) -> None:
    """Another thread writing a numpy array while brain copies it (the GIL
    released) stores some mix of its values, whose checksum is stored with
    it: a verified read accepts what was stored, nothing crashes."""
    import threading

    import numpy as np

    arr = np.zeros(8_000_000, dtype=np.uint8)
    stop = threading.Event()

    def scribble() -> None:
        i = 0
        while not stop.is_set():
            arr[i % len(arr) :: 4096] = i & 0xFF
            i += 1

    t = threading.Thread(target=scribble)
    t.start()
    try:
        for _ in range(20):
            brain["racy"] = arr
            got = brain.get("racy", verify=True)
            assert got.shape == arr.shape
    finally:
        stop.set()
        t.join()
