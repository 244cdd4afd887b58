"""dynadask's exceptions: one base class, a few specific kinds.

Every error dynadask raises on purpose is a :class:`DynadaskError`, so that a script (or the
``dynadask`` command, which turns them into exit status 2 and one line) can tell a wrong input
from a bug. Each specific kind is also a subclass of the built-in exception a caller would
already catch (``ValueError``, ``KeyError``, ``FileNotFoundError``), so code written against
the built-ins keeps working. Messages say what is wrong and what to do about it.
"""

from __future__ import annotations


class DynadaskError(Exception):
    """Base class of the errors dynadask raises for a wrong input, call order or store."""


class InputError(DynadaskError, ValueError):
    """An argument or the data have a wrong value or shape (a ``ValueError``)."""


class OptionError(InputError, TypeError):
    """An unknown keyword option (also a ``TypeError``, as Python's own for a wrong keyword)."""


class CountsError(InputError):
    """A layer that must hold counts holds negative, non-finite or non-integer values."""


class MissingKeyError(DynadaskError, KeyError, ValueError):
    """A key the call reads is absent: a layer, an obs/var column, an embedding or a result.

    Also a ``ValueError`` (dynadask raised that for missing keys before this class existed).
    The message names the call that writes the key.
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; the message is a sentence, not a key
        return str(self.args[0]) if self.args else ""


class StoreNotFoundError(DynadaskError, FileNotFoundError):
    """No store (or input file) at the given path (a ``FileNotFoundError``)."""


class StoreExistsError(DynadaskError, FileExistsError):
    """The output path exists and the call would replace it (a ``FileExistsError``)."""


class StoreError(DynadaskError, ValueError):
    """A path is not a dynadask/AnnData store, or the store cannot take this write."""


class StoreLockedError(DynadaskError, RuntimeError):
    """Another process is writing the store (its lock file names the owner and the time)."""


__all__ = [
    "CountsError",
    "DynadaskError",
    "InputError",
    "MissingKeyError",
    "OptionError",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "StoreNotFoundError",
]
