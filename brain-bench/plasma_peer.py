"""Apache Plasma as a peer of brain-bench/peers.py, in a virtualenv of its own.

Plasma left pyarrow in version 12, so it runs with pyarrow 11 (and the
numpy < 2 it was built for) in .venv-plasma, as this helper: peers.py
starts it with that virtualenv's Python, beside a ``plasma_store`` it
started, and sends it one JSON command per line on stdin; the helper times
each operation itself (``client.put`` / ``client.get``, the calls a
brain-plasma user made) and answers with the seconds on stdout.

Commands: ``{"load": {"kind": "array"|"frame"|"text", ...}}`` builds the
workload's value (the same seeded data as workloads.py), ``{"put": key}``,
``{"get": key}``, ``{"drop": key}``, ``{"names": true}``, ``{"quit": true}``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.plasma as plasma

warnings.simplefilter("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def object_id(key: str, generation: int) -> plasma.ObjectID:
    return plasma.ObjectID(hashlib.sha1(f"{key}/{generation}".encode()).digest()[:20])


def main() -> int:
    client = plasma.connect(sys.argv[1])
    ids: dict[str, plasma.ObjectID] = {}
    generation = 0
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
            key = cmd["put"]
            old = ids.pop(key, None)
            if old is not None:
                client.delete([old])  # a name's old object goes, as brain-plasma's set did
            generation += 1
            oid = object_id(key, generation)
            t = time.perf_counter()
            client.put(value, oid)
            out["s"] = time.perf_counter() - t
            ids[key] = oid
        elif "get" in cmd:
            oid = ids[cmd["get"]]
            t = time.perf_counter()
            got = client.get(oid)
            out["s"] = time.perf_counter() - t
            del got
        elif "drop" in cmd:
            old = ids.pop(cmd["drop"], None)
            if old is not None:
                client.delete([old])
        elif "names" in cmd:
            t = time.perf_counter()
            listed = client.list()
            out["s"] = time.perf_counter() - t
            del listed
        elif "quit" in cmd:
            break
        print(json.dumps(out), flush=True)
    client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
