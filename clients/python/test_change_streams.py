"""Change streams through PyMongo: a cluster-wide stream over many collections with each event
type, resuming after dropped connections from each start option, updateLookup, a committed
transaction's events, and ChangeStreamHistoryLost (286) past the edge of history."""

import os

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from conftest import start_testkit


def next_events(stream, n):
    out = []
    while len(out) < n:
        ev = stream.try_next()
        if ev is not None:
            out.append(ev)
    return out


def drop_next_get_more(client):
    """The server closes the connection on the next getMore: the driver must resume."""
    client.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": ["getMore"], "closeConnection": True},
    )


def test_cluster_stream_sees_every_event_type(client):
    name = "py_cs_cluster"
    client.drop_database(name)
    db = client[name]
    with client.watch(show_expanded_events=True, max_await_time_ms=200) as stream:
        db.a.insert_one({"_id": 1, "arr": [1, 2, 3]})
        db.a.update_one({"_id": 1}, {"$set": {"x": 1}, "$pop": {"arr": 1}})
        db.a.replace_one({"_id": 1}, {"y": 2})
        db.a.create_index("y")
        db.a.drop_index("y_1")
        db.command("collMod", "a", validator={"y": {"$exists": True}})
        db.b.insert_one({"_id": "k"})
        db.b.delete_one({"_id": "k"})
        client.admin.command("renameCollection", f"{name}.a", to=f"{name}.c")
        client.drop_database(name)
        events = next_events(stream, 14)
    # dropDatabase: a drop for each collection (b, and c renamed from a), then dropDatabase.
    assert [e["operationType"] for e in events] == [
        "create", "insert", "update", "replace", "createIndexes", "dropIndexes", "modify",
        "create", "insert", "delete", "rename", "drop", "drop", "dropDatabase",
    ]
    assert {events[11]["ns"]["coll"], events[12]["ns"]["coll"]} == {"b", "c"}
    update = events[2]["updateDescription"]
    assert update["updatedFields"] == {"x": 1}
    assert update["truncatedArrays"] == [{"field": "arr", "newSize": 2}]
    assert update["disambiguatedPaths"] == {}
    assert events[10]["to"] == {"db": name, "coll": "c"}
    assert all("collectionUUID" in e for e in events if e["operationType"] != "dropDatabase")
    tokens = [e["_id"]["_data"] for e in events]
    assert tokens == sorted(tokens)


@pytest.mark.parametrize("start", ["resumeAfter", "startAfter", "startAtOperationTime"])
def test_streams_resume_after_dropped_connections(client, db, start):
    db.c.insert_one({"_id": 0})
    with db.c.watch(max_await_time_ms=200) as first:
        db.c.insert_one({"_id": 1})
        event = next_events(first, 1)[0]
    options = {
        "resumeAfter": {"resume_after": event["_id"]},
        "startAfter": {"start_after": event["_id"]},
        "startAtOperationTime": {"start_at_operation_time": event["clusterTime"]},
    }[start]
    expected_first = 1 if start == "startAtOperationTime" else 2
    with db.c.watch(max_await_time_ms=200, **options) as stream:
        for i in range(2, 12):
            db.c.insert_one({"_id": i})
            if i % 3 == 0:
                drop_next_get_more(client)
        events = next_events(stream, 12 - expected_first)
    ids = [e["documentKey"]["_id"] for e in events]
    assert ids == list(range(expected_first, 12)), "nothing lost, nothing repeated"


def test_update_lookup_returns_the_current_document(db):
    db.c.insert_one({"_id": 1, "n": 1})
    with db.c.watch(full_document="updateLookup", max_await_time_ms=200) as stream:
        db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})
        ev = next_events(stream, 1)[0]
    assert ev["fullDocument"] == {"_id": 1, "n": 2}


def test_a_committed_transaction_appears_with_one_cluster_time(client, db):
    db.create_collection("t")
    db.t.insert_one({"_id": 0})
    with db.watch(max_await_time_ms=200) as stream:
        with client.start_session() as s:
            with s.start_transaction():
                db.t.insert_one({"_id": 1}, session=s)
                db.t.update_one({"_id": 0}, {"$set": {"x": 1}}, session=s)
        events = next_events(stream, 2)
    assert [e["operationType"] for e in events] == ["insert", "update"]
    assert events[0]["clusterTime"] == events[1]["clusterTime"]
    assert all("lsid" in e and "txnNumber" in e for e in events)


@pytest.mark.skipif(bool(os.environ.get("MONGODB_URI")), reason="needs a testkit with a small oplog")
def test_resuming_past_the_edge_of_history_fails_with_286():
    with start_testkit("--oplog-max-entries", "50") as uri:
        with MongoClient(uri) as client:
            coll = client.py_cs_history.c
            with coll.watch(max_await_time_ms=200) as stream:
                coll.insert_one({"_id": 0})
                token = next_events(stream, 1)[0]["_id"]
            coll.insert_many([{"_id": i} for i in range(1, 200)])
            with pytest.raises(OperationFailure) as exc:
                with coll.watch(resume_after=token) as stream:
                    stream.try_next()
            assert exc.value.code == 286
            assert exc.value.details["codeName"] == "ChangeStreamHistoryLost"
            assert exc.value.has_error_label("NonResumableChangeStreamError")
