"""The native module of mongosync (private: import ``mongosync`` or ``mongosync.aio``)."""

from typing import Awaitable, List, Optional, final

__all__ = [
    "ConnectOptions",
    "MemoryCluster",
    "ProgressStream",
    "Syncer",
    "attach",
    "attach_async",
    "connect",
    "connect_async",
    "error_codes",
    "_panic_for_tests",
]

@final
class ConnectOptions:
    def __new__(
        cls,
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
    ) -> ConnectOptions: ...

@final
class ProgressStream:
    def next(self) -> Optional[str]: ...
    def next_async(self) -> Awaitable[Optional[str]]: ...

@final
class Syncer:
    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def usable(self) -> bool: ...
    def run(self, op: str, body: Optional[str] = None) -> Optional[Syncer]: ...
    def run_async(self, op: str, body: Optional[str] = None) -> Awaitable[Optional[Syncer]]: ...
    def progress_json(self) -> str: ...
    def metrics_json(self) -> str: ...
    def warnings(self) -> List[str]: ...
    def watch(self) -> ProgressStream: ...
    def wait_can_commit(self) -> str: ...
    def wait_can_commit_async(self) -> Awaitable[str]: ...

@final
class MemoryCluster:
    @staticmethod
    def start(
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        replica_set: Optional[str] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        oplog_max_entries: Optional[int] = None,
        oplog_max_bytes: Optional[int] = None,
        ttl_monitor_period: Optional[float] = None,
    ) -> MemoryCluster: ...
    @staticmethod
    def start_async(
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        replica_set: Optional[str] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        oplog_max_entries: Optional[int] = None,
        oplog_max_bytes: Optional[int] = None,
        ttl_monitor_period: Optional[float] = None,
    ) -> Awaitable[MemoryCluster]: ...
    @property
    def uri(self) -> str: ...
    @property
    def user(self) -> Optional[str]: ...
    @property
    def password(self) -> Optional[str]: ...
    @property
    def running(self) -> bool: ...
    def uri_with_credentials(self, user: str, password: str) -> str: ...
    def stop(self) -> None: ...
    def stop_async(self) -> Awaitable[None]: ...

def connect(
    cluster0: str, cluster1: str, options: Optional[ConnectOptions] = None
) -> Syncer: ...
def connect_async(
    cluster0: str, cluster1: str, options: Optional[ConnectOptions] = None
) -> Awaitable[Syncer]: ...
def attach(
    cluster0: str, cluster1: str, options: Optional[ConnectOptions] = None
) -> Syncer: ...
def attach_async(
    cluster0: str, cluster1: str, options: Optional[ConnectOptions] = None
) -> Awaitable[Syncer]: ...
def error_codes() -> List[str]: ...
def _panic_for_tests() -> None: ...

