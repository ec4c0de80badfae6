"""The store's errors (a branch of :mod:`schemas.errors`)::

    PipelineError
    └── StoreError             ClickHouse or chDB refused a statement or could not be reached;
        │                      ``retriable`` per instance, the server's error ``code`` when known
        ├── StoreBusy          another process holds the chDB data directory (retriable)
        ├── OwnerUnavailable   nobody answers on a home's query socket (retriable)
        ├── RunNotFound        a read asked for a run the store does not hold (LookupError)
        ├── FileNotFound       a read asked for a file the run does not hold, whole (LookupError)
        └── NotVisible         events did not become visible within the reader's timeout

:func:`sink_error` decides ``retriable`` from ClickHouse's error code.
"""

from __future__ import annotations

from schemas.errors import PipelineError

__all__ = ["StoreError", "StoreBusy", "OwnerUnavailable", "RunNotFound", "FileNotFound", "NotVisible", "sink_error"]


class StoreError(PipelineError):
    """Raised by a store adapter, with the server's error ``code`` when there is one.

    ``retriable`` is per instance: True when the server could not be reached or
    was overloaded, False when the statement or its data was refused (a retry
    of the same batch cannot help; see :func:`sink_error`).
    """

    def __init__(self, message: str, *, code: int | None = None, retriable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable


class StoreBusy(StoreError):
    """Another process (or another store in this one) holds the chDB data directory.

    ``holder_pid`` is the holder's pid when known. Retriable: the holder may let go.
    """

    def __init__(self, message: str, holder_pid: int | None = None) -> None:
        super().__init__(message, retriable=True)
        self.holder_pid = holder_pid


_RETRIABLE_CODES = frozenset({
    32,  # ATTEMPT_TO_READ_AFTER_EOF (a shard's server died during a Distributed insert)
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY (a replica or server in read-only mode)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    225,  # NO_ZOOKEEPER (replicated tables while ZooKeeper/Keeper is unreachable)
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY (likewise, once the session is lost)
    252,  # TOO_MANY_PARTS
    279,  # ALL_CONNECTION_TRIES_FAILED
    319,  # UNKNOWN_STATUS_OF_INSERT
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    473,  # DEADLOCK_AVOIDED
    999,  # KEEPER_EXCEPTION
})
"""Server error codes where the same statement may succeed later (load, memory, timeouts).

Every other server error (syntax, unknown table or column, type mismatch, bad
value) is about the statement or its data: retrying the same batch cannot help.
"""


def sink_error(message: str, *, code: int | None = None, retriable: bool | None = None) -> StoreError:
    """A :class:`StoreError` whose ``retriable`` follows the server error ``code`` unless given.

    No code (the server could not be reached) -> retriable; a code in
    ``_RETRIABLE_CODES`` -> retriable; any other code -> not.
    """
    if retriable is None:
        retriable = code is None or code in _RETRIABLE_CODES
    return StoreError(message, code=code, retriable=retriable)


class OwnerUnavailable(StoreError):
    """Nobody answers on a home's query socket (the owner exited, or is still starting)."""


class RunNotFound(StoreError, LookupError):
    """The store holds no such run (not logged, or not ingested yet)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class FileNotFound(StoreError, LookupError):
    """The run holds no such file, or no complete upload of it yet."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class NotVisible(StoreError):
    """Events a reader waits for did not become visible in time; ``seen`` is the last sequence number seen."""

    def __init__(self, message: str, *, seen: int) -> None:
        super().__init__(message, retriable=True)
        self.seen = seen
