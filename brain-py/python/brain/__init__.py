"""brain: a fast, daemonless, shared-memory namespace of named objects.

>>> from brain import Brain
>>> brain = Brain()                  # no server to start
>>> brain["greeting"] = "hello"      # any process of this user can now read it
>>> brain["greeting"]
'hello'

Values can be str, bytes, numpy arrays, pyarrow tables, pandas and polars
objects (read back zero-copy), and anything picklable. See the README for
namespaces, watching, waiting and read-modify-write.
"""

from __future__ import annotations

from . import exceptions
from ._brain import __version__, default_store_path
from .exceptions import (
    BrainError,
    BrainNameNotExistError,
    BrainStoreFullError,
    BrainUnsupportedObjectError,
)

# typing.TYPE_CHECKING without importing typing (milliseconds of the command's start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._brain_class import Brain

__all__ = [
    "Brain",
    "BrainError",
    "BrainNameNotExistError",
    "BrainStoreFullError",
    "BrainUnsupportedObjectError",
    "default_store_path",
    "exceptions",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Brain (and with it the codecs, html, datetime...) is imported on first
    # use: the `brain` command of a pip install imports this package and
    # needs none of it, so it starts in Python's own start-up time.
    if name == "Brain":
        from ._brain_class import Brain

        globals()["Brain"] = Brain
        return Brain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"Brain"})
