"""The exceptions of mongosync: one class per engine error code.

Every exception raised by the engine is a :class:`MongosyncError` whose ``code`` is the
engine's error code, the same name as the ``error`` field of mongosync's REST API
(``"InvalidState"``, ``"NotReadyToCommit"``...). The Rust cause chain is kept twice: in the
message (``caused by:`` lines) and as ``__cause__`` (:class:`SourceError` objects).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Optional

if TYPE_CHECKING:
    from . import AnySyncer

__all__ = [
    "MongosyncError",
    "SourceError",
    "InvalidOptionsError",
    "InvalidStateError",
    "ConnectionFailedError",
    "DestinationNotEmptyError",
    "HistoryLostError",
    "NotReadyToCommitError",
    "UnsupportedError",
    "OperationFailedError",
    "MetadataMismatchError",
    "DecodeFailedError",
    "LocalIoFailedError",
    "CancelledError",
    "InternalError",
    "ERRORS_BY_CODE",
]


class MongosyncError(Exception):
    """The root of mongosync's exceptions.

    ``syncer`` is set when a failed transition left the sync in another state than the
    object it was called on (a failed reverse hands back a COMMITTED syncer).
    """

    code: ClassVar[str] = ""
    syncer: Optional[AnySyncer] = None


class SourceError(Exception):
    """One cause in the Rust ``source()`` chain of a :class:`MongosyncError`."""


class InvalidOptionsError(MongosyncError, ValueError):
    """An option is not allowed; nothing was written."""

    code = "InvalidOptions"


class InvalidStateError(MongosyncError):
    """The operation is not allowed in the sync's state, or the object was spent."""

    code = "InvalidState"


class ConnectionFailedError(MongosyncError):
    """A cluster could not be reached, authenticated to, or used."""

    code = "ConnectionFailed"


class DestinationNotEmptyError(MongosyncError):
    """The destination holds data the options do not allow."""

    code = "DestinationNotEmpty"


class HistoryLostError(MongosyncError):
    """The source's history no longer reaches back to the sync's resume point."""

    code = "HistoryLost"


class NotReadyToCommitError(MongosyncError):
    """A commit was asked for while ``canCommit`` is false."""

    code = "NotReadyToCommit"


class UnsupportedError(MongosyncError):
    """The source holds something the sync cannot migrate."""

    code = "Unsupported"


class OperationFailedError(MongosyncError):
    """A step of the sync failed on a cluster (after its retries)."""

    code = "OperationFailed"


class MetadataMismatchError(MongosyncError):
    """The persisted state of a sync cannot be used (another sync's, other clusters')."""

    code = "MetadataMismatch"


class DecodeFailedError(MongosyncError):
    """A document or change event could not be decoded."""

    code = "DecodeFailed"


class LocalIoFailedError(MongosyncError):
    """A local file (the event buffer's spill file) could not be used."""

    code = "LocalIoFailed"


class CancelledError(MongosyncError):
    """The operation was cancelled: the syncer was shut down or dropped.

    Not :class:`asyncio.CancelledError`: this one is an engine error.
    """

    code = "Cancelled"


class InternalError(MongosyncError):
    """A bug: a task of the engine panicked or an invariant did not hold."""

    code = "Internal"


ERRORS_BY_CODE: dict[str, type[MongosyncError]] = {
    cls.code: cls
    for cls in (
        InvalidOptionsError,
        InvalidStateError,
        ConnectionFailedError,
        DestinationNotEmptyError,
        HistoryLostError,
        NotReadyToCommitError,
        UnsupportedError,
        OperationFailedError,
        MetadataMismatchError,
        DecodeFailedError,
        LocalIoFailedError,
        CancelledError,
        InternalError,
    )
}
"""The exception class of each error code."""
