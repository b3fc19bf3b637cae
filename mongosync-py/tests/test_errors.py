"""Every exception class, raised by a real condition where one exists; the cause chain;
no password in a message; a panic is an InternalError."""

from __future__ import annotations

import gc
from typing import Any, Dict

import pymongo
import pytest

import mongosync
from mongosync import _mongosync
from mongosync.pytest_plugin import MemoryClusterFactory
from mongosync.errors import (
    ERRORS_BY_CODE,
    ConnectionFailedError,
    DestinationNotEmptyError,
    HistoryLostError,
    InternalError,
    InvalidOptionsError,
    InvalidStateError,
    MongosyncError,
    NotReadyToCommitError,
    SourceError,
)

from conftest import Pair


def test_one_class_per_engine_error_code() -> None:
    assert sorted(ERRORS_BY_CODE) == sorted(_mongosync.error_codes())
    for code, cls in ERRORS_BY_CODE.items():
        assert cls.code == code
        assert cls.__name__ == f"{code}Error"
        assert issubclass(cls, MongosyncError)


def test_bad_start_options_leave_the_syncer_usable(pair: Pair) -> None:
    idle = mongosync.connect(pair.uri0, pair.uri1)
    with pytest.raises(InvalidOptionsError) as e:
        idle.start(build_indexes="sometimes")  # type: ignore[arg-type]
    assert e.value.code == "InvalidOptions"
    assert "sometimes" in str(e.value) and "afterDataCopy" in str(e.value)
    with pytest.raises(InvalidOptionsError, match="preExistingDestinationData"):
        idle.start({"preExistingDestinationData": True})
    # A failed transition leaves the object usable.
    running = idle.start()
    assert running.progress().state == "RUNNING"


def test_bad_engine_settings() -> None:
    with pytest.raises(InvalidOptionsError, match="copyWorkers"):
        mongosync.connect("mongodb://127.0.0.1:1/", "mongodb://127.0.0.1:2/", copy_workers=0)


def test_wrong_state_start_on_a_paused_sync(pair: Pair) -> None:
    paused = mongosync.connect(pair.uri0, pair.uri1).start().pause()
    del paused
    gc.collect()
    idle = mongosync.connect(pair.uri0, pair.uri1)
    with pytest.raises(InvalidStateError) as e:
        idle.start()
    assert e.value.code == "InvalidState"
    assert "PAUSED" in str(e.value)
    # attach re-enters it.
    attached = mongosync.attach(pair.uri0, pair.uri1)
    assert isinstance(attached, mongosync.PausedSyncer)


def test_unreachable_cluster(pair: Pair) -> None:
    dead = "mongodb://127.0.0.1:1/?replicaSet=rs0&serverSelectionTimeoutMS=300&connectTimeoutMS=300"
    with pytest.raises(ConnectionFailedError) as e:
        mongosync.connect(dead, pair.uri1)
    assert e.value.code == "ConnectionFailed"
    assert "cluster0" in str(e.value)


def test_auth_failure_hides_the_password(pair: Pair) -> None:
    wrong = pair.cluster0.uri_with_credentials("admin", "not-the-Passw0rd")
    with pytest.raises(ConnectionFailedError) as e:
        mongosync.connect(wrong, pair.uri1)
    chain = []
    err: BaseException | None = e.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__
    assert len(chain) >= 2, "the Rust cause chain becomes __cause__"
    assert isinstance(e.value.__cause__, SourceError)
    assert "caused by:" in str(e.value)
    for message in chain + [repr(e.value)]:
        assert "not-the-Passw0rd" not in message
    assert "auth" in str(e.value).lower()


def test_not_ready_to_commit(pair: Pair) -> None:
    pair.client0.db.c.insert_one({"_id": 1})
    # A lag limit below zero: canCommit can never be true.
    running = mongosync.connect(pair.uri0, pair.uri1, commit_lag_limit_secs=-1).start()
    with pytest.raises(NotReadyToCommitError) as e:
        running.commit()
    assert e.value.code == "NotReadyToCommit"
    # Still usable.
    assert isinstance(running.pause(), mongosync.PausedSyncer)


def test_destination_not_empty(pair: Pair) -> None:
    pair.client1.other.c.insert_one({"_id": 1})
    idle = mongosync.connect(pair.uri0, pair.uri1)
    with pytest.raises(DestinationNotEmptyError) as e:
        idle.start()
    assert e.value.code == "DestinationNotEmpty"
    assert "other.c" in str(e.value)


def test_a_panic_is_an_internal_error_not_a_panic_exception() -> None:
    with pytest.raises(InternalError) as e:
        _mongosync._panic_for_tests()
    assert e.value.code == "Internal"
    assert "on purpose" in str(e.value)


def test_history_lost(memory_cluster_factory: MemoryClusterFactory) -> None:
    # A source that keeps only 50 oplog entries: a paused sync's resume point falls out of it.
    c0 = memory_cluster_factory(password="pw0", oplog_max_entries=50)
    c1 = memory_cluster_factory(password="pw1", replica_set="rs1")
    source: pymongo.MongoClient[Dict[str, Any]] = pymongo.MongoClient(c0.uri_with_credentials())
    try:
        source.db.c.insert_one({"_id": 0})
        running = mongosync.connect(c0.uri_with_credentials(), c1.uri_with_credentials()).start()
        running.wait_can_commit()
        paused = running.pause()
        for i in range(1, 200):
            source.db.c.insert_one({"_id": i})
        with pytest.raises(HistoryLostError) as e:
            paused.resume().wait_can_commit()
        assert e.value.code == "HistoryLost"
        assert "oplog" in str(e.value)
    finally:
        source.close()
