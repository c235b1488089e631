"""The ``brain`` command of a pip install: the Rust command line, run in this process.

It is the same code as the ``brain`` binary (``brain --help``, docs/CLI.md),
reached through the extension, so one wheel carries the package and the command.
"""

from __future__ import annotations

import signal
import sys

from . import _brain


def main() -> None:
    """Runs ``brain`` with this process's arguments and exits with its code."""
    if sys.stdout is None:
        # Descriptor 1 was closed when Python started (`brain ls >&-`), and a
        # file opened since may have taken its number: write nothing to it.
        if sys.stderr is not None:
            print("brain: cannot write to standard output: it is closed", file=sys.stderr)
        sys.exit(1)
    # The command runs in Rust until it returns: Python's Ctrl-C handler would
    # only set a flag no one checks, so `brain watch` and `brain sync` stop on
    # SIGINT as the binary does, by the default action.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Descriptor 0 closed when Python started (`brain put x - <&-`): a file
    # opened since may have its number, and reading it would store nothing
    # or a stranger's bytes. The command is told, and refuses to read it.
    sys.exit(_brain.cli_main(["brain", *sys.argv[1:]], stdin_closed=sys.stdin is None))
