"""What the pointer's round trip costs a cold get from Redis, with no client
library in the way.

    python brain-bench/pointer_round_trip.py [--rounds N]

On a raw socket to a redis-server of its own (free loopback port, no
persistence), times a `GET` of a 1 MiB − 4 KiB chunk alone; an `HGETALL`
of a pointer of twelve fields and then that `GET` (what a cold get sends);
and one Lua script that reads the pointer and returns it with the chunk
(the one way to have the server follow the pointer). Rounds interleaved,
medians printed in µs.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from redis_bench import Server, interleave  # noqa: E402

POINTER = {
    "v": "0123456789abcdef0123456789abcdef",
    "len": "1048576",
    "n": "2",
    "cs": "0123456789abcdef",
    "x": "1044480",
    "c": "1",
    "desc": "",
    "t": "1",
    "ss": "1052672",
    "ns": "default",
    "name": "x",
    "seq": "5",
}
BOTH = "local p = redis.call('HGETALL', KEYS[1]) local c = redis.call('GET', KEYS[2]) return {p, c}"


def command(*args: str | bytes | int) -> bytes:
    """One command in RESP."""
    out = b"*%d\r\n" % len(args)
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    server = Server()
    try:
        peer = redis.Redis(port=server.port)
        peer.set("c{t}", os.urandom((1 << 20) - 4096))
        peer.hset("p{t}", mapping=POINTER)
        sha = peer.script_load(BOTH)
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = memoryview(bytearray(4 << 20))
        requests = {
            "GET": command("GET", "c{t}"),
            "HGETALL": command("HGETALL", "p{t}"),
            "script": command("EVALSHA", sha, 2, "p{t}", "c{t}"),
        }

        def reply_length(request: bytes) -> int:
            # Each reply's length, once: the whole reply has come when
            # nothing more arrives for a while.
            sock.sendall(request)
            time.sleep(0.2)
            total = sock.recv_into(buffer)
            sock.setblocking(False)
            try:
                while n := sock.recv_into(buffer[total:]):
                    total += n
            except BlockingIOError:
                pass
            sock.setblocking(True)
            return total

        lengths = {name: reply_length(request) for name, request in requests.items()}

        def sends(*names: str) -> Callable[[], None]:
            def run() -> None:
                for name in names:
                    sock.sendall(requests[name])
                    got, want = 0, lengths[name]
                    while got < want:
                        got += sock.recv_into(buffer[got:], want - got)

            return run

        times = interleave(
            {
                "GET alone": sends("GET"),
                "HGETALL, then GET": sends("HGETALL", "GET"),
                "one script returning both": sends("script"),
            },
            args.rounds,
        )
        for name, seconds in times.items():
            print(f"{name}: {seconds * 1e6:.0f} µs")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
