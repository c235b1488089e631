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
from ._brain_class import Brain
from .exceptions import (
    BrainError,
    BrainNameNotExistError,
    BrainStoreFullError,
    BrainUnsupportedObjectError,
)

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
