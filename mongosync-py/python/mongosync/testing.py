"""An in-memory MongoDB replica set for tests: no download, no ``mongod``.

:class:`MemoryCluster` runs the project's testkit (a wire-compatible replica set) inside this
process. PyMongo (blocking or async) connects to ``cluster.uri`` unchanged::

    with MemoryCluster(user="admin", password="secret") as cluster:
        client = pymongo.MongoClient(cluster.uri_with_credentials())

It stops when the ``with`` block ends, on :meth:`stop`, or when garbage-collected.
"""

from __future__ import annotations

from types import TracebackType
import sys
from typing import Optional, Type

from . import _mongosync

if sys.version_info >= (3, 11):
    from typing import TypedDict
else:  # pragma: no cover
    from typing_extensions import TypedDict

__all__ = ["MemoryCluster"]


class _Options(TypedDict):
    host: Optional[str]
    port: Optional[int]
    replica_set: Optional[str]
    user: Optional[str]
    password: Optional[str]
    oplog_max_entries: Optional[int]
    oplog_max_bytes: Optional[int]
    ttl_monitor_period: Optional[float]


class MemoryCluster:
    """A single-member replica set in memory, listening on ``host:port`` (a free port by
    default). Give ``user`` and ``password`` to turn authentication on (the user has the
    ``root`` role). ``oplog_max_entries`` / ``oplog_max_bytes`` bound the history kept;
    ``ttl_monitor_period`` is in seconds.

    Usable as ``with MemoryCluster() as c:`` and ``async with MemoryCluster() as c:``; the
    cluster starts on construction (blocking) or on ``async with`` / :meth:`start_async`.
    """

    def __init__(
        self,
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        replica_set: Optional[str] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        oplog_max_entries: Optional[int] = None,
        oplog_max_bytes: Optional[int] = None,
        ttl_monitor_period: Optional[float] = None,
        start: bool = True,
    ) -> None:
        self._options: _Options = {
            "host": host,
            "port": port,
            "replica_set": replica_set,
            "user": user,
            "password": password,
            "oplog_max_entries": oplog_max_entries,
            "oplog_max_bytes": oplog_max_bytes,
            "ttl_monitor_period": ttl_monitor_period,
        }
        self._native: Optional[_mongosync.MemoryCluster] = None
        if start:
            self._native = _mongosync.MemoryCluster.start(**self._options)

    async def start_async(self) -> MemoryCluster:
        """Starts the cluster (if ``start=False`` was given) without blocking the loop."""
        if self._native is None:
            self._native = await _mongosync.MemoryCluster.start_async(**self._options)
        return self

    def _cluster(self) -> _mongosync.MemoryCluster:
        if self._native is None:
            raise RuntimeError("the MemoryCluster was created with start=False and not started")
        return self._native

    @property
    def uri(self) -> str:
        """``mongodb://HOST:PORT/?replicaSet=rs0`` (no credentials)."""
        return self._cluster().uri

    @property
    def user(self) -> Optional[str]:
        """The user, when authentication is on."""
        return self._cluster().user

    @property
    def password(self) -> Optional[str]:
        """The user's password, when authentication is on."""
        return self._cluster().password

    def uri_with_credentials(
        self, user: Optional[str] = None, password: Optional[str] = None
    ) -> str:
        """The connection string with credentials (percent-encoded, ``authSource=admin``);
        the cluster's own user and password by default."""
        c = self._cluster()
        user = user if user is not None else c.user
        password = password if password is not None else c.password
        if user is None or password is None:
            raise ValueError(
                "this cluster runs without authentication: give `user` and `password`, or use `uri`"
            )
        return c.uri_with_credentials(user, password)

    @property
    def running(self) -> bool:
        """Whether it serves."""
        return self._native is not None and self._native.running

    def stop(self) -> None:
        """Stops serving and closes every connection. Idempotent."""
        if self._native is not None:
            self._native.stop()

    async def stop_async(self) -> None:
        """:meth:`stop` without blocking the loop."""
        if self._native is not None:
            await self._native.stop_async()

    def __enter__(self) -> MemoryCluster:
        self._cluster()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    async def __aenter__(self) -> MemoryCluster:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.stop_async()

    def __repr__(self) -> str:
        state = self.uri if self.running else "stopped"
        return f"<MemoryCluster {state}>"
