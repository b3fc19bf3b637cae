"""The asyncio API of mongosync: the names of :mod:`mongosync`, every blocking call an
``async`` one. Cancelling an awaited transition does not harm the sync: the transition goes
on in the engine, and awaiting the same transition on the same object again picks up its
result (dropping the object stops the sync; :func:`attach` continues it)."""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from . import _mongosync
from ._common import (
    BuildIndexes,
    ClusterName,
    Metrics,
    NamespaceFilter,
    Progress,
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
    "ProgressIterator",
]


class ProgressIterator:
    """``async for p in syncer.watch_progress()``: the progress now, then each change the
    engine publishes, until the sync stops or the syncer is dropped. Nothing polls."""

    def __init__(self, stream: _mongosync.ProgressStream) -> None:
        self._stream = stream

    def __aiter__(self) -> ProgressIterator:
        return self

    async def __anext__(self) -> Progress:
        doc = await self._stream.next_async()
        if doc is None:
            raise StopAsyncIteration
        return Progress.from_json(doc)


class _Syncer:
    """What every state has: progress, warnings, metrics, watching, shutdown."""

    __slots__ = ("_native",)

    def __init__(self, native: _mongosync.Syncer) -> None:
        self._native = native

    def progress(self) -> Progress:
        """The ``/progress`` document now (never waits)."""
        return Progress.from_json(self._native.progress_json())

    @property
    def warnings(self) -> List[str]:
        """Conditions the user should know about (``progress.warnings``)."""
        return self._native.warnings()

    def metrics(self) -> Metrics:
        """The engine's counters."""
        return Metrics.from_json(self._native.metrics_json())

    def watch_progress(self) -> ProgressIterator:
        """``async for p in syncer.watch_progress()``."""
        return ProgressIterator(self._native.watch())

    async def shutdown(self) -> None:
        """Stops the sync gracefully; :func:`attach` continues it. The object is spent."""
        await self._native.run_async("shutdown")

    async def _run(self, op: str, body: Optional[str] = None) -> _mongosync.Syncer:
        try:
            next_native = await self._native.run_async(op, body)
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

    async def start(
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
        """IDLE → RUNNING (see :meth:`mongosync.IdleSyncer.start`)."""
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
        return RunningSyncer(await self._run("start", doc))


class RunningSyncer(_Syncer):
    """Copying, then applying the source's change events."""

    __slots__ = ()
    state: Literal["RUNNING"] = "RUNNING"

    async def pause(self) -> PausedSyncer:
        """RUNNING → PAUSED."""
        return PausedSyncer(await self._run("pause"))

    async def commit(self) -> CommittingSyncer:
        """RUNNING → COMMITTING (NotReadyToCommitError while ``canCommit`` is false)."""
        return CommittingSyncer(await self._run("commit"))

    async def wait_can_commit(self) -> Progress:
        """Waits until ``canCommit`` is true; returns that progress."""
        return Progress.from_json(await self._native.wait_can_commit_async())


class PausedSyncer(_Syncer):
    """Stopped with its positions persisted."""

    __slots__ = ()
    state: Literal["PAUSED"] = "PAUSED"

    async def resume(self) -> RunningSyncer:
        """PAUSED → RUNNING."""
        return RunningSyncer(await self._run("resume"))


class CommittingSyncer(_Syncer):
    """Cutting over."""

    __slots__ = ()
    state: Literal["COMMITTING"] = "COMMITTING"

    async def wait(self) -> CommittedSyncer:
        """COMMITTING → COMMITTED."""
        return CommittedSyncer(await self._run("wait"))


class CommittedSyncer(_Syncer):
    """Cut over: the destination accepts writes."""

    __slots__ = ()
    state: Literal["COMMITTED"] = "COMMITTED"

    async def reverse(self) -> ReversingSyncer:
        """COMMITTED → REVERSING (needs ``reversible=True`` and
        ``enable_user_write_blocking="sourceAndDestination"`` at start)."""
        return ReversingSyncer(await self._run("reverse"))


class ReversingSyncer(_Syncer):
    """Swapping the direction."""

    __slots__ = ()
    state: Literal["REVERSING"] = "REVERSING"

    async def wait(self) -> RunningSyncer:
        """REVERSING → RUNNING in the new direction."""
        return RunningSyncer(await self._run("wait"))


AnySyncer: TypeAlias = Union[
    IdleSyncer, RunningSyncer, PausedSyncer, CommittingSyncer, CommittedSyncer, ReversingSyncer
]
"""A syncer in any state; narrow it with ``match`` or ``.state``."""

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


async def connect(
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
    """Connects to both clusters (see :func:`mongosync.connect`)."""
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
    return IdleSyncer(await _mongosync.connect_async(cluster0, cluster1, options))


async def attach(
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
    """Re-enters the sync persisted on the destination (see :func:`mongosync.attach`)."""
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
    return _wrap(await _mongosync.attach_async(cluster0, cluster1, options))
