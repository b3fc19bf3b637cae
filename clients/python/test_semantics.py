"""Query, update and BSON semantics a real server defines (and drivers do not re-check)."""

import datetime

import pytest
from bson import Decimal128, Int64, ObjectId, Regex
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import OperationFailure
from pymongo.read_concern import ReadConcern


def ids(cursor):
    return [d["_id"] for d in cursor]


def test_query_operators(db):
    db.c.insert_many(
        [
            {"_id": 1, "a": 1, "tags": ["x", "y"], "s": "apple"},
            {"_id": 2, "a": 5, "tags": ["y"], "s": "Banana", "sub": {"k": 1}},
            {"_id": 3, "a": None, "items": [{"q": 1, "r": "a"}, {"q": 5, "r": "b"}]},
            {"_id": 4, "items": [{"q": 5, "r": "a"}]},
        ]
    )
    q = lambda f: sorted(ids(db.c.find(f)))  # noqa: E731
    assert q({"a": {"$in": [1, 5]}}) == [1, 2]
    assert q({"a": {"$nin": [1, 5]}}) == [3, 4]
    assert q({"a": None}) == [3, 4]  # null matches missing too
    assert q({"a": {"$exists": False}}) == [4]
    assert q({"a": {"$type": "null"}}) == [3]
    assert q({"tags": "y"}) == [1, 2]
    assert q({"tags": {"$all": ["x", "y"]}}) == [1]
    assert q({"tags": {"$size": 1}}) == [2]
    assert q({"s": {"$regex": "^b", "$options": "i"}}) == [2]
    assert q({"s": Regex("^a")}) == [1]
    assert q({"sub.k": 1}) == [2]
    assert q({"items.q": 5, "items.r": "a"}) == [3, 4]  # any element each
    assert q({"items": {"$elemMatch": {"q": 5, "r": "a"}}}) == [4]  # the same element
    assert q({"$or": [{"a": 1}, {"tags": {"$size": 1}}]}) == [1, 2]
    assert q({"a": {"$not": {"$gt": 1}}}) == [1, 3, 4]
    assert q({"$expr": {"$gt": ["$a", 2]}}) == [2]
    assert q({"a": {"$gt": None}}) == []


def test_numeric_types_compare_by_value(db):
    db.c.insert_many(
        [
            {"_id": 1, "n": 1},
            {"_id": 2, "n": Int64(1)},
            {"_id": 3, "n": 1.0},
            {"_id": 4, "n": Decimal128("1.0")},
            {"_id": 5, "n": "1"},
        ]
    )
    assert sorted(ids(db.c.find({"n": 1}))) == [1, 2, 3, 4]
    assert sorted(ids(db.c.find({"n": {"$type": "number"}}))) == [1, 2, 3, 4]
    # Types survive the round trip.
    assert isinstance(db.c.find_one({"_id": 2})["n"], Int64)
    assert isinstance(db.c.find_one({"_id": 3})["n"], float)
    assert db.c.find_one({"_id": 4})["n"] == Decimal128("1.0")


def test_sort_follows_bson_type_order(db):
    oid = ObjectId()
    when = datetime.datetime(2024, 1, 1)
    db.c.insert_many(
        [
            {"_id": 1, "v": "b"},
            {"_id": 2, "v": 10},
            {"_id": 3, "v": None},
            {"_id": 4, "v": {"x": 1}},
            {"_id": 5},
            {"_id": 6, "v": True},
            {"_id": 7, "v": oid},
            {"_id": 8, "v": when},
            {"_id": 9, "v": 2.5},
            {"_id": 10, "v": "a"},
        ]
    )
    got = ids(db.c.find().sort([("v", 1), ("_id", 1)]))
    # null/missing < numbers < strings < objects < ObjectId < bool < date
    assert got == [3, 5, 9, 2, 10, 1, 4, 7, 6, 8]


def test_arrays_sort_by_smallest_or_largest_element(db):
    db.c.insert_many([{"_id": 1, "v": [5, 1]}, {"_id": 2, "v": 3}, {"_id": 3, "v": [2, 9]}])
    assert ids(db.c.find().sort("v", 1)) == [1, 3, 2]
    assert ids(db.c.find().sort("v", -1)) == [3, 1, 2]


def test_new_fields_are_appended_in_lexicographic_order(db):
    # Manual (update operators, 5.0+): fields are processed in lexicographic order.
    db.c.insert_one({"_id": 1, "m": 0})
    db.c.update_one({"_id": 1}, {"$set": {"z": 1, "b": 1, "a.y": 1, "a.x": 1}})
    got = db.c.find_one({"_id": 1})
    assert list(got.keys()) == ["_id", "m", "a", "b", "z"]
    assert list(got["a"].keys()) == ["x", "y"]


def test_array_update_operators(db):
    db.c.insert_one({"_id": 1, "a": [3, 1, 2], "b": [1, 2, 3, 2], "c": [1, 2, 3], "d": ["x"]})
    db.c.update_one(
        {"_id": 1},
        {
            "$push": {"a": {"$each": [5, 0], "$sort": 1, "$slice": 4}},
            "$pull": {"b": 2},
            "$pop": {"c": -1},
            "$addToSet": {"d": {"$each": ["x", "y", "y"]}},
        },
    )
    assert db.c.find_one() == {"_id": 1, "a": [0, 1, 2, 3], "b": [1, 3], "c": [2, 3], "d": ["x", "y"]}


def test_pipeline_update(db):
    db.c.insert_one({"_id": 1, "a": 2, "b": 3})
    res = db.c.update_one({"_id": 1}, [{"$set": {"sum": {"$add": ["$a", "$b"]}}}, {"$unset": "b"}])
    assert res.modified_count == 1
    assert db.c.find_one() == {"_id": 1, "a": 2, "sum": 5}


def test_update_conflicting_paths(db):
    db.c.insert_one({"_id": 1, "a": {"b": 1}})
    with pytest.raises(OperationFailure) as exc:
        db.c.update_one({"_id": 1}, {"$set": {"a": 1, "a.b": 2}})
    assert exc.value.code == 40  # ConflictingUpdateOperators


def test_write_and_read_concerns(client, db):
    coll = db.get_collection(
        "c",
        write_concern=WriteConcern(w="majority", j=True, wtimeout=5000),
        read_concern=ReadConcern("majority"),
        read_preference=ReadPreference.PRIMARY_PREFERRED,
    )
    coll.insert_one({"_id": 1})
    assert coll.find_one() == {"_id": 1}
    local = db.get_collection("c", read_concern=ReadConcern("local"))
    assert local.count_documents({}) == 1
    # Unacknowledged writes still apply.
    db.get_collection("c", write_concern=WriteConcern(w=0)).insert_one({"_id": 2})
    assert db.c.count_documents({}) >= 1


def test_transaction_commit_and_abort(client, db):
    db.create_collection("t")
    with client.start_session() as s:
        with s.start_transaction():
            db.t.insert_one({"_id": 1}, session=s)
            # Inside: visible to the transaction only.
            assert db.t.find_one({"_id": 1}, session=s) == {"_id": 1}
            assert db.t.find_one({"_id": 1}) is None
        assert db.t.find_one({"_id": 1}) == {"_id": 1}
        s.start_transaction()
        db.t.insert_one({"_id": 2}, session=s)
        s.abort_transaction()
    assert ids(db.t.find()) == [1]


def test_change_stream_sees_insert_update_delete(db):
    with db.c.watch(full_document="updateLookup", max_await_time_ms=500) as stream:
        db.c.insert_one({"_id": 1, "a": 1})
        db.c.update_one({"_id": 1}, {"$set": {"a": 2}})
        db.c.delete_one({"_id": 1})
        events = [stream.next() for _ in range(3)]
    assert [e["operationType"] for e in events] == ["insert", "update", "delete"]
    assert all(e["ns"] == {"db": db.name, "coll": "c"} for e in events)
    assert all(e["documentKey"] == {"_id": 1} for e in events)
    assert events[0]["fullDocument"] == {"_id": 1, "a": 1}
    assert events[1]["updateDescription"]["updatedFields"] == {"a": 2}
    assert events[1]["updateDescription"]["removedFields"] == []
    times = [e["clusterTime"] for e in events]
    assert times == sorted(times) and len(set(times)) == 3
