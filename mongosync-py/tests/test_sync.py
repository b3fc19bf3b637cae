"""A full sync driven from Python, PyMongo writing to the source while it runs; pause and
resume; reverse; attach after the syncer object was dropped; a spent object."""

from __future__ import annotations

import gc
import threading
from typing import Any, Dict, List

import pymongo
import pytest

import mongosync
from mongosync.errors import InvalidStateError

from conftest import Pair, assert_same_documents


class Writer(threading.Thread):
    """Inserts and updates documents on the source until stopped; counts what it wrote in
    each state it saw the sync in."""

    def __init__(self, client: pymongo.MongoClient[Dict[str, Any]], syncer: List[Any]) -> None:
        super().__init__(daemon=True)
        self.coll = client.shop.orders
        self.syncer = syncer
        self.stop_event = threading.Event()
        self.written: Dict[str, int] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            i = 10_000
            while not self.stop_event.is_set():
                self.coll.insert_one({"_id": i, "item": f"live-{i}", "qty": i % 7})
                self.coll.update_one({"_id": i - 5_000}, {"$inc": {"qty": 100}})
                info = self.syncer[0].progress().info if self.syncer else "before start"
                self.written[str(info)] = self.written.get(str(info), 0) + 1
                i += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def stop(self) -> None:
        self.stop_event.set()
        self.join()
        assert self.error is None, self.error


def test_full_sync_with_writes_throughout(pair: Pair) -> None:
    pair.client0.shop.orders.insert_many(
        [{"_id": i, "item": f"seed-{i}", "qty": i % 5} for i in range(5_000)]
    )
    pair.client0.shop.customers.insert_many([{"_id": i, "name": f"c{i}"} for i in range(300)])
    seen: List[Any] = []
    writer = Writer(pair.client0, seen)
    writer.start()

    idle = mongosync.connect(pair.uri0, pair.uri1)
    running = idle.start(source="cluster0", include_namespaces=[{"database": "shop"}])
    seen.append(running)
    assert running.state == "RUNNING"
    infos = []
    for p in running.watch_progress():
        infos.append(p.info)
        assert p.state == "RUNNING"
        if p.can_commit:
            break
    assert "change event application" in infos
    writer.stop()
    # Writes reached the source during the sync itself, not only before it.
    assert sum(v for k, v in writer.written.items() if k != "before start") > 0

    committing = running.commit()
    committed = committing.wait()
    progress = committed.progress()
    assert progress.state == "COMMITTED"
    assert progress.can_write is True
    doc = progress.to_dict()
    assert doc["state"] == "COMMITTED" and doc["canWrite"] is True
    assert set(doc) >= {"canCommit", "lagTimeSeconds", "collectionCopy", "directionMapping"}
    assert committed.metrics().documents_copied >= 5_300
    assert assert_same_documents(pair.client0, pair.client1) > 5_300


def test_pause_resume(pair: Pair) -> None:
    pair.client0.db.c.insert_many([{"_id": i} for i in range(200)])
    running = mongosync.connect(pair.uri0, pair.uri1).start()
    running.wait_can_commit()
    paused = running.pause()
    assert isinstance(paused, mongosync.PausedSyncer)
    assert paused.progress().state == "PAUSED"
    pair.client0.db.c.insert_many([{"_id": i, "while": "paused"} for i in range(200, 300)])
    assert pair.client1.db.c.count_documents({"while": "paused"}) == 0
    running = paused.resume()
    assert running.progress().state == "RUNNING"
    running.wait_can_commit()
    running.commit().wait()
    assert assert_same_documents(pair.client0, pair.client1) == 300


def test_reverse(pair: Pair) -> None:
    pair.client0.db.c.insert_many([{"_id": i} for i in range(50)])
    running = mongosync.connect(pair.uri0, pair.uri1).start(
        reversible=True, enable_user_write_blocking="sourceAndDestination"
    )
    running.wait_can_commit()
    committed = running.commit().wait()
    reversing = committed.reverse()
    assert isinstance(reversing, mongosync.ReversingSyncer)
    running = reversing.wait()
    assert running.progress().state == "RUNNING"
    mapping = running.progress().direction_mapping
    assert mapping is not None and mapping.source.startswith("cluster1")
    # cluster1 is now the source: its writes flow back to cluster0.
    pair.client1.db.c.insert_many([{"_id": i, "from": "cluster1"} for i in range(50, 80)])
    running.wait_can_commit()
    running.commit().wait()
    assert assert_same_documents(pair.client1, pair.client0) == 80


def test_attach_after_the_syncer_was_dropped(pair: Pair) -> None:
    pair.client0.db.c.insert_many([{"_id": i} for i in range(100)])
    running = mongosync.connect(pair.uri0, pair.uri1).start()
    running.wait_can_commit()
    watch = running.watch_progress()
    del running
    gc.collect()
    # The progress stream ends once the engine is gone: nothing of it runs any more.
    for _ in watch:
        pass
    pair.client0.db.c.insert_many([{"_id": i, "after": "drop"} for i in range(100, 150)])

    attached = mongosync.attach(pair.uri0, pair.uri1)
    match attached:
        case mongosync.RunningSyncer():
            attached.wait_can_commit()
            attached.commit().wait()
        case _:
            pytest.fail(f"attach found {attached.state}, not RUNNING")
    assert assert_same_documents(pair.client0, pair.client1) == 150


def test_a_spent_object_names_the_state_the_sync_moved_to(pair: Pair) -> None:
    running = mongosync.connect(pair.uri0, pair.uri1).start()
    paused = running.pause()
    with pytest.raises(InvalidStateError) as e:
        running.pause()
    assert e.value.code == "InvalidState"
    assert "spent by pause()" in str(e.value) and "PAUSED" in str(e.value)
    # The spent object still reports progress (from the engine's handle).
    assert running.progress().state == "PAUSED"
    paused.shutdown()
    with pytest.raises(InvalidStateError, match="shut down"):
        paused.resume()
