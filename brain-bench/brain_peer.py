"""Another build of brain as a peer of brain-bench/peers.py: the A/B.

``peers.py --baseline DIR`` starts this helper with ``PYTHONPATH=DIR`` (a
directory holding another build's ``brain`` package, e.g. the previous
commit's, built in a worktree), so both builds are measured in the same
rounds, interleaved. It speaks plasma_peer.py's protocol: one JSON command
per line on stdin, the seconds each operation took on stdout.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brain import Brain  # noqa: E402


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="brain-peer-", dir="/dev/shm"))
    try:
        b = Brain(path=str(root / "store"))
        value: Any = None
        for line in sys.stdin:
            cmd = json.loads(line)
            out: dict[str, Any] = {}
            if "load" in cmd:
                spec = cmd["load"]
                value = None
                if spec["kind"] == "array":
                    from workloads import make_array

                    value = make_array(spec["nbytes"])
                elif spec["kind"] == "frame":
                    from workloads import make_frame

                    value = make_frame(spec["rows"])
                else:
                    value = spec["text"]
            elif "put" in cmd:
                t = time.perf_counter()
                b[cmd["put"]] = value
                out["s"] = time.perf_counter() - t
            elif "get" in cmd:
                kind = cmd.get("kind")
                t = time.perf_counter()
                got = b.get(cmd["get"], as_arrow=True) if kind == "arrow" else b[cmd["get"]]
                out["s"] = time.perf_counter() - t
                del got
            elif "drop" in cmd:
                b.forget(cmd["drop"])
            elif "names" in cmd:
                t = time.perf_counter()
                b.names()
                out["s"] = time.perf_counter() - t
            elif "quit" in cmd:
                break
            print(json.dumps(out), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
