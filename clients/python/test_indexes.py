"""Indexes: creation, uniqueness, listing, dropping, conflicts."""

import pytest
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError, OperationFailure


def test_unique_index_rejects_duplicates(db):
    assert db.c.create_index("a", unique=True) == "a_1"
    db.c.insert_one({"_id": 1, "a": 1})
    with pytest.raises(DuplicateKeyError) as exc:
        db.c.insert_one({"_id": 2, "a": 1})
    details = exc.value.details
    assert exc.value.code == 11000
    assert details["keyPattern"] == {"a": 1}
    assert details["keyValue"] == {"a": 1}
    assert details["errmsg"] == (
        f"E11000 duplicate key error collection: {db.name}.c index: a_1 dup key: {{ a: 1 }}"
    )
    # An update that would create a duplicate fails the same way and changes nothing.
    db.c.insert_one({"_id": 3, "a": 3})
    with pytest.raises(DuplicateKeyError):
        db.c.update_one({"_id": 3}, {"$set": {"a": 1}})
    assert db.c.find_one({"_id": 3}) == {"_id": 3, "a": 3}


def test_unique_compound_index_and_missing_fields(db):
    db.c.create_index([("a", ASCENDING), ("b", DESCENDING)], unique=True)
    db.c.insert_one({"a": 1, "b": 1})
    db.c.insert_one({"a": 1, "b": 2})
    db.c.insert_one({"x": 1})  # indexes as {a: null, b: null}
    with pytest.raises(DuplicateKeyError) as exc:
        db.c.insert_one({"y": 1})
    assert exc.value.details["keyPattern"] == {"a": 1, "b": -1}
    assert exc.value.details["keyValue"] == {"a": None, "b": None}


def test_creating_unique_index_over_duplicates_fails(db):
    db.c.insert_many([{"a": 1}, {"a": 1}])
    with pytest.raises(OperationFailure) as exc:
        db.c.create_index("a", unique=True)
    assert exc.value.code == 11000
    assert [i["name"] for i in db.c.list_indexes()] == ["_id_"]


def test_list_indexes(db):
    db.c.create_indexes(
        [
            IndexModel([("a", ASCENDING)], unique=True),
            IndexModel([("b", DESCENDING), ("c", ASCENDING)], name="bc"),
            IndexModel([("t", ASCENDING)], expireAfterSeconds=3600),
            IndexModel([("s", ASCENDING)], sparse=True),
        ]
    )
    got = list(db.c.list_indexes())
    assert got == [
        {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        {"v": 2, "key": {"a": 1}, "name": "a_1", "unique": True},
        {"v": 2, "key": {"b": -1, "c": 1}, "name": "bc"},
        {"v": 2, "key": {"t": 1}, "name": "t_1", "expireAfterSeconds": 3600},
        {"v": 2, "key": {"s": 1}, "name": "s_1", "sparse": True},
    ]
    assert list(got[2]["key"].keys()) == ["b", "c"]
    info = db.c.index_information()
    assert info["a_1"]["unique"] is True
    assert info["bc"]["key"] == [("b", -1), ("c", 1)]


def test_create_indexes_reply_counts(db):
    db.c.insert_one({})
    reply = db.command("createIndexes", "c", indexes=[{"key": {"a": 1}, "name": "a_1"}])
    assert reply["numIndexesBefore"] == 1
    assert reply["numIndexesAfter"] == 2
    again = db.command("createIndexes", "c", indexes=[{"key": {"a": 1}, "name": "a_1"}])
    assert again["numIndexesBefore"] == 2
    assert again["numIndexesAfter"] == 2
    assert again["note"] == "all indexes already exist"


def test_create_index_creates_collection(db):
    reply = db.command("createIndexes", "fresh", indexes=[{"key": {"a": 1}, "name": "a_1"}])
    assert reply["createdCollectionAutomatically"] is True
    assert "fresh" in db.list_collection_names()


def test_drop_index(db):
    db.c.create_index("a")
    db.c.create_index([("b", DESCENDING)])
    db.c.drop_index("a_1")
    assert [i["name"] for i in db.c.list_indexes()] == ["_id_", "b_-1"]
    db.c.drop_index([("b", DESCENDING)])  # by key pattern
    assert [i["name"] for i in db.c.list_indexes()] == ["_id_"]
    with pytest.raises(OperationFailure) as exc:
        db.c.drop_index("nope_1")
    assert exc.value.code == 27
    assert exc.value.details["codeName"] == "IndexNotFound"


def test_drop_indexes_keeps_id_index(db):
    db.c.create_index("a")
    db.c.create_index("b")
    db.c.drop_indexes()
    assert [i["name"] for i in db.c.list_indexes()] == ["_id_"]
    with pytest.raises(OperationFailure) as exc:
        db.c.drop_index("_id_")
    assert exc.value.code == 72


def test_same_key_different_name_is_options_conflict(db):
    db.c.create_index("a")
    with pytest.raises(OperationFailure) as exc:
        db.c.create_index("a", name="other")
    assert exc.value.code == 85
    assert exc.value.details["codeName"] == "IndexOptionsConflict"


def test_same_name_different_key_is_key_specs_conflict(db):
    db.c.create_index("a", name="idx")
    with pytest.raises(OperationFailure) as exc:
        db.c.create_index("b", name="idx")
    assert exc.value.code == 86
    assert exc.value.details["codeName"] == "IndexKeySpecsConflict"


def test_list_indexes_of_missing_collection(db):
    with pytest.raises(OperationFailure) as exc:
        db.command("listIndexes", "missing")
    assert exc.value.code == 26
    # The helper turns NamespaceNotFound into an empty list.
    assert list(db.missing.list_indexes()) == []
