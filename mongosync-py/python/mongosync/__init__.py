"""mongosync: cluster-to-cluster sync for MongoDB, driven from Python.

The sync's state is its type: :func:`connect` returns an :class:`IdleSyncer`, whose
``start()`` returns a :class:`RunningSyncer`, whose ``commit()`` returns a
:class:`CommittingSyncer`, and so on, so that mypy and pyright reject an illegal transition
(``idle.commit()``) before the code runs. A used object is spent: calling it again raises
:class:`~mongosync.errors.InvalidStateError` naming the state the sync moved to. A failed
transition leaves the object usable.

Every call here blocks without holding the GIL; Ctrl-C interrupts a wait without harming the
sync (call the same transition again to pick up its result). The asyncio API with the same
names is :mod:`mongosync.aio`.

>>> idle = mongosync.connect(uri0, uri1)                            # doctest: +SKIP
>>> running = idle.start(include_namespaces=[{"database": "shop"}])  # doctest: +SKIP
>>> running.wait_can_commit()                                       # doctest: +SKIP
>>> committed = running.commit().wait()                             # doctest: +SKIP
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from . import _mongosync
from ._common import (
    BuildIndexes,
    ClusterName,
    CollectionCopy,
    DirectionMapping,
    Lag,
    Metrics,
    NamespaceFilter,
    Progress,
    RegexSpec,
    State,
    WriteBlocking,
    connect_options,
    start_body,
    wrap_error,
)
from .errors import MongosyncError

if sys.version_info >= (3, 11):
    from typing import Literal, TypeAlias
else:  # pragma: no cover
    from typing_extensions import Literal, TypeAlias

__all__ = [
    "connect",
    "attach",
    "AnySyncer",
    "IdleSyncer",
    "RunningSyncer",
    "PausedSyncer",
    "CommittingSyncer",
    "CommittedSyncer",
    "ReversingSyncer",
    "Progress",
    "Metrics",
    "Lag",
    "CollectionCopy",
    "DirectionMapping",
    "NamespaceFilter",
    "RegexSpec",
    "State",
    "ClusterName",
    "BuildIndexes",
    "WriteBlocking",
    "MongosyncError",
    "ProgressIterator",
]


class ProgressIterator:
    """The progress now, then each change the engine publishes, until the sync stops or the
    syncer is dropped. Nothing polls: each ``next()`` waits on the engine's watch channel."""

    def __init__(self, stream: _mongosync.ProgressStream) -> None:
        self._stream = stream

    def __iter__(self) -> ProgressIterator:
        return self

    def __next__(self) -> Progress:
        doc = self._stream.next()
        if doc is None:
            raise StopIteration
        return Progress.from_json(doc)


class _Syncer:
    """What every state has: progress, warnings, metrics, watching, shutdown."""

    __slots__ = ("_native",)

    def __init__(self, native: _mongosync.Syncer) -> None:
        self._native = native

    def progress(self) -> Progress:
        """The ``/progress`` document now (works on a spent object too)."""
        return Progress.from_json(self._native.progress_json())

    @property
    def warnings(self) -> List[str]:
        """Conditions the user should know about (``progress.warnings``)."""
        return self._native.warnings()

    def metrics(self) -> Metrics:
        """The engine's counters."""
        return Metrics.from_json(self._native.metrics_json())

    def watch_progress(self) -> ProgressIterator:
        """Iterates over the progress as it changes (``for p in syncer.watch_progress()``)."""
        return ProgressIterator(self._native.watch())

    def shutdown(self) -> None:
        """Stops the sync gracefully; positions are persisted so that :func:`attach`
        continues it. The object is spent afterwards."""
        self._native.run("shutdown")

    def _run(self, op: str, body: Optional[str] = None) -> _mongosync.Syncer:
        try:
            next_native = self._native.run(op, body)
        except MongosyncError as e:
            wrap_error(e, _wrap)
            raise
        assert next_native is not None
        return next_native

    def __repr__(self) -> str:
        return repr(self._native)


class IdleSyncer(_Syncer):
    """Connected to both clusters, not started."""

    __slots__ = ()
    state: Literal["IDLE"] = "IDLE"

    def start(
        self,
        body: Optional[Mapping[str, Any]] = None,
        /,
        *,
        source: Optional[ClusterName] = None,
        destination: Optional[ClusterName] = None,
        include_namespaces: Optional[Sequence[NamespaceFilter]] = None,
        exclude_namespaces: Optional[Sequence[NamespaceFilter]] = None,
        build_indexes: Optional[BuildIndexes] = None,
        reversible: Optional[bool] = None,
        enable_user_write_blocking: Optional[WriteBlocking] = None,
        pre_existing_destination_data: Optional[bool] = None,
    ) -> RunningSyncer:
        """IDLE → RUNNING. The keyword arguments mirror mongosync's ``/start`` body (which
        ``body`` may also give, with its camelCase keys); ``source`` defaults to
        ``"cluster0"``.

        Raises InvalidOptionsError (nothing written), DestinationNotEmptyError,
        ConnectionFailedError..."""
        doc = start_body(
            body,
            source=source,
            destination=destination,
            include_namespaces=include_namespaces,
            exclude_namespaces=exclude_namespaces,
            build_indexes=build_indexes,
            reversible=reversible,
            enable_user_write_blocking=enable_user_write_blocking,
            pre_existing_destination_data=pre_existing_destination_data,
        )
        return RunningSyncer(self._run("start", doc))


class RunningSyncer(_Syncer):
    """Copying, then applying the source's change events."""

    __slots__ = ()
    state: Literal["RUNNING"] = "RUNNING"

    def pause(self) -> PausedSyncer:
        """RUNNING → PAUSED, once every worker persisted its position."""
        return PausedSyncer(self._run("pause"))

    def commit(self) -> CommittingSyncer:
        """RUNNING → COMMITTING (returns at once, as mongosync's ``/commit``). Raises
        NotReadyToCommitError while ``canCommit`` is false."""
        return CommittingSyncer(self._run("commit"))

    def wait_can_commit(self) -> Progress:
        """Blocks until ``canCommit`` is true; returns that progress. Raises the error that
        stopped the sync, if it stops."""
        return Progress.from_json(self._native.wait_can_commit())


class PausedSyncer(_Syncer):
    """Stopped with its positions persisted."""

    __slots__ = ()
    state: Literal["PAUSED"] = "PAUSED"

    def resume(self) -> RunningSyncer:
        """PAUSED → RUNNING, from the persisted positions."""
        return RunningSyncer(self._run("resume"))


class CommittingSyncer(_Syncer):
    """Cutting over."""

    __slots__ = ()
    state: Literal["COMMITTING"] = "COMMITTING"

    def wait(self) -> CommittedSyncer:
        """COMMITTING → COMMITTED: blocks until the commit finished."""
        return CommittedSyncer(self._run("wait"))


class CommittedSyncer(_Syncer):
    """Cut over: the destination accepts writes."""

    __slots__ = ()
    state: Literal["COMMITTED"] = "COMMITTED"

    def reverse(self) -> ReversingSyncer:
        """COMMITTED → REVERSING: the destination becomes the source. Needs
        ``reversible=True`` and ``enable_user_write_blocking="sourceAndDestination"`` at start."""
        return ReversingSyncer(self._run("reverse"))


class ReversingSyncer(_Syncer):
    """Swapping the direction."""

    __slots__ = ()
    state: Literal["REVERSING"] = "REVERSING"

    def wait(self) -> RunningSyncer:
        """REVERSING → RUNNING in the new direction. If the reverse fails, the error's
        ``syncer`` is the COMMITTED syncer, which can reverse again."""
        return RunningSyncer(self._run("wait"))


AnySyncer: TypeAlias = Union[
    IdleSyncer, RunningSyncer, PausedSyncer, CommittingSyncer, CommittedSyncer, ReversingSyncer
]
"""A syncer in any state; narrow it with ``match`` (``case RunningSyncer():``) or ``.state``."""

_CLASSES: Dict[str, Callable[[_mongosync.Syncer], AnySyncer]] = {
    "IDLE": IdleSyncer,
    "RUNNING": RunningSyncer,
    "PAUSED": PausedSyncer,
    "COMMITTING": CommittingSyncer,
    "COMMITTED": CommittedSyncer,
    "REVERSING": ReversingSyncer,
}


def _wrap(native: _mongosync.Syncer) -> AnySyncer:
    return _CLASSES[native.kind](native)


def connect(
    cluster0: str,
    cluster1: str,
    *,
    id: Optional[str] = None,
    spill_dir: Optional[str] = None,
    commit_lag_limit_secs: Optional[int] = None,
    partition_bytes: Optional[int] = None,
    copy_workers: Optional[int] = None,
    copy_batch_bytes: Optional[int] = None,
    apply_round_events: Optional[int] = None,
    appliers: Optional[int] = None,
    buffer_memory_bytes: Optional[int] = None,
    retry_window: Optional[float] = None,
    monitor_interval: Optional[float] = None,
    oplog_check_interval: Optional[float] = None,
) -> IdleSyncer:
    """Connects to both clusters (connection strings, with credentials) and checks them.

    The keyword arguments are the engine's settings (mongosync's command-line flags; times in
    seconds). Raises ConnectionFailedError naming the cluster (never a password),
    InvalidOptionsError."""
    options = connect_options(
        id=id,
        spill_dir=spill_dir,
        commit_lag_limit_secs=commit_lag_limit_secs,
        partition_bytes=partition_bytes,
        copy_workers=copy_workers,
        copy_batch_bytes=copy_batch_bytes,
        apply_round_events=apply_round_events,
        appliers=appliers,
        buffer_memory_bytes=buffer_memory_bytes,
        retry_window=retry_window,
        monitor_interval=monitor_interval,
        oplog_check_interval=oplog_check_interval,
    )
    return IdleSyncer(_mongosync.connect(cluster0, cluster1, options))


def attach(
    cluster0: str,
    cluster1: str,
    *,
    id: Optional[str] = None,
    spill_dir: Optional[str] = None,
    commit_lag_limit_secs: Optional[int] = None,
    partition_bytes: Optional[int] = None,
    copy_workers: Optional[int] = None,
    copy_batch_bytes: Optional[int] = None,
    apply_round_events: Optional[int] = None,
    appliers: Optional[int] = None,
    buffer_memory_bytes: Optional[int] = None,
    retry_window: Optional[float] = None,
    monitor_interval: Optional[float] = None,
    oplog_check_interval: Optional[float] = None,
) -> AnySyncer:
    """Connects and re-enters the sync persisted on the destination by an earlier process
    or syncer, in its state (a RUNNING or COMMITTING sync continues at once); an
    :class:`IdleSyncer` when there is none. Same settings as :func:`connect`."""
    options = connect_options(
        id=id,
        spill_dir=spill_dir,
        commit_lag_limit_secs=commit_lag_limit_secs,
        partition_bytes=partition_bytes,
        copy_workers=copy_workers,
        copy_batch_bytes=copy_batch_bytes,
        apply_round_events=apply_round_events,
        appliers=appliers,
        buffer_memory_bytes=buffer_memory_bytes,
        retry_window=retry_window,
        monitor_interval=monitor_interval,
        oplog_check_interval=oplog_check_interval,
    )
    return _wrap(_mongosync.attach(cluster0, cluster1, options))
