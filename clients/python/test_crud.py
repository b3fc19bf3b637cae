"""CRUD through PyMongo: results and error details as a real MongoDB 8.0 returns them."""

import pytest
from bson import ObjectId
from pymongo import DeleteOne, InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError


def test_insert_one_generates_object_id(db):
    doc = {"a": 1}
    res = db.c.insert_one(doc)
    assert res.acknowledged
    assert isinstance(res.inserted_id, ObjectId)
    # PyMongo adds the generated _id to the caller's dict, before the server sees it.
    assert doc["_id"] == res.inserted_id
    assert db.c.find_one({"_id": res.inserted_id}) == {"_id": res.inserted_id, "a": 1}


def test_insert_one_keeps_given_id_and_field_order(db):
    db.c.insert_one({"z": 1, "_id": "k", "a": {"y": 2, "x": 1}})
    got = db.c.find_one({"_id": "k"})
    # The server moves _id first and keeps the other fields' order.
    assert list(got.keys()) == ["_id", "z", "a"]
    assert list(got["a"].keys()) == ["y", "x"]


def test_insert_many_ids(db):
    res = db.c.insert_many([{"n": i} for i in range(5)] + [{"_id": 42, "n": 5}])
    assert len(res.inserted_ids) == 6
    assert all(isinstance(i, ObjectId) for i in res.inserted_ids[:5])
    assert res.inserted_ids[5] == 42
    assert len(set(res.inserted_ids)) == 6
    assert db.c.count_documents({}) == 6


def test_insert_one_duplicate_key_details(db):
    db.c.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError) as exc:
        db.c.insert_one({"_id": 1, "x": 2})
    err = exc.value
    assert err.code == 11000
    assert err.details["keyPattern"] == {"_id": 1}
    assert err.details["keyValue"] == {"_id": 1}
    assert err.details["errmsg"] == (
        f"E11000 duplicate key error collection: {db.name}.c index: _id_ dup key: {{ _id: 1 }}"
    )


def test_ordered_insert_many_stops_at_first_duplicate(db):
    docs = [{"_id": 1}, {"_id": 2}, {"_id": 1}, {"_id": 3}, {"_id": 2}]
    with pytest.raises(BulkWriteError) as exc:
        db.c.insert_many(docs, ordered=True)
    details = exc.value.details
    assert details["nInserted"] == 2
    assert len(details["writeErrors"]) == 1
    we = details["writeErrors"][0]
    assert we["index"] == 2
    assert we["code"] == 11000
    assert we["keyPattern"] == {"_id": 1}
    assert we["keyValue"] == {"_id": 1}
    assert "E11000 duplicate key error" in we["errmsg"]
    assert sorted(d["_id"] for d in db.c.find()) == [1, 2]


def test_unordered_insert_many_reports_every_duplicate(db):
    docs = [{"_id": 1}, {"_id": 2}, {"_id": 1}, {"_id": 3}, {"_id": 2}]
    with pytest.raises(BulkWriteError) as exc:
        db.c.insert_many(docs, ordered=False)
    details = exc.value.details
    assert details["nInserted"] == 3
    assert [e["index"] for e in details["writeErrors"]] == [2, 4]
    assert [e["code"] for e in details["writeErrors"]] == [11000, 11000]
    assert [e["keyValue"] for e in details["writeErrors"]] == [{"_id": 1}, {"_id": 2}]
    assert sorted(d["_id"] for d in db.c.find()) == [1, 2, 3]


def test_mixed_bulk_write_counts(db):
    db.c.insert_many([{"_id": i, "v": i} for i in range(5)])
    res = db.c.bulk_write(
        [
            InsertOne({"_id": 10, "v": 10}),
            UpdateOne({"_id": 0}, {"$set": {"v": 100}}),
            UpdateOne({"_id": 1}, {"$set": {"v": 1}}),  # matched, not modified
            UpdateOne({"_id": 99}, {"$set": {"v": 99}}, upsert=True),
            ReplaceOne({"_id": 2}, {"w": 2}),
            DeleteOne({"_id": 3}),
        ]
    )
    assert res.inserted_count == 1
    assert res.matched_count == 3
    assert res.modified_count == 2
    assert res.upserted_count == 1
    assert res.upserted_ids == {3: 99}
    assert res.deleted_count == 1
    assert db.c.find_one({"_id": 2}) == {"_id": 2, "w": 2}
    assert db.c.count_documents({}) == 6


def test_update_operators(db):
    db.c.insert_one(
        {"_id": 1, "n": 5, "s": "x", "arr": [1, 2], "gone": True, "old": 1, "lo": 5, "hi": 5}
    )
    res = db.c.update_one(
        {"_id": 1},
        {
            "$inc": {"n": 2, "new_counter": 1},
            "$set": {"s": "y", "sub.field": 1},
            "$unset": {"gone": ""},
            "$push": {"arr": {"$each": [3, 4]}},
            "$addToSet": {"tags": "a"},
            "$rename": {"old": "renamed"},
            "$min": {"lo": 1},
            "$max": {"hi": 9},
            "$mul": {"m": 3},
        },
    )
    assert (res.matched_count, res.modified_count) == (1, 1)
    got = db.c.find_one({"_id": 1})
    assert got == {
        "_id": 1,
        "n": 7,
        "s": "y",
        "arr": [1, 2, 3, 4],
        "lo": 1,
        "hi": 9,
        "new_counter": 1,
        "sub": {"field": 1},
        "tags": ["a"],
        "renamed": 1,
        "m": 0,  # $mul on a missing field sets 0 of the multiplier's type
    }


def test_update_noop_is_matched_not_modified(db):
    db.c.insert_one({"_id": 1, "a": 1})
    res = db.c.update_one({"_id": 1}, {"$set": {"a": 1}})
    assert (res.matched_count, res.modified_count) == (1, 0)
    res = db.c.update_one({"_id": 2}, {"$set": {"a": 1}})
    assert (res.matched_count, res.modified_count, res.upserted_id) == (0, 0, None)


def test_update_many_and_array_filters(db):
    db.c.insert_many([{"_id": i, "g": i % 2, "a": [1, 5, 9]} for i in range(4)])
    res = db.c.update_many({"g": 0}, {"$set": {"a.$[x]": 0}}, array_filters=[{"x": {"$gt": 4}}])
    assert (res.matched_count, res.modified_count) == (2, 2)
    assert db.c.find_one({"_id": 0})["a"] == [1, 0, 0]
    assert db.c.find_one({"_id": 1})["a"] == [1, 5, 9]


def test_positional_operator(db):
    db.c.insert_one({"_id": 1, "a": [{"k": 1, "v": 0}, {"k": 2, "v": 0}]})
    db.c.update_one({"_id": 1, "a.k": 2}, {"$set": {"a.$.v": 7}})
    assert db.c.find_one({"_id": 1})["a"] == [{"k": 1, "v": 0}, {"k": 2, "v": 7}]


def test_upsert_generates_id_and_seeds_equality_fields(db):
    res = db.c.update_one({"x": 5, "y": {"$gt": 1}}, {"$set": {"z": 1}}, upsert=True)
    assert res.matched_count == 0
    assert res.modified_count == 0
    assert isinstance(res.upserted_id, ObjectId)
    # Only equality predicates seed the new document.
    assert db.c.find_one({"_id": res.upserted_id}) == {"_id": res.upserted_id, "x": 5, "z": 1}


def test_upsert_takes_id_from_filter(db):
    res = db.c.update_one({"_id": "abc"}, {"$setOnInsert": {"n": 1}, "$inc": {"c": 1}}, upsert=True)
    assert res.upserted_id == "abc"
    res = db.c.update_one({"_id": "abc"}, {"$setOnInsert": {"n": 2}, "$inc": {"c": 1}}, upsert=True)
    assert res.upserted_id is None
    assert (res.matched_count, res.modified_count) == (1, 1)
    assert db.c.find_one() == {"_id": "abc", "n": 1, "c": 2}


def test_replace_one(db):
    db.c.insert_one({"_id": 1, "a": 1, "b": 2})
    res = db.c.replace_one({"_id": 1}, {"c": 3})
    assert (res.matched_count, res.modified_count) == (1, 1)
    assert db.c.find_one() == {"_id": 1, "c": 3}
    # Replacing with an identical document is a no-op.
    res = db.c.replace_one({"_id": 1}, {"c": 3})
    assert (res.matched_count, res.modified_count) == (1, 0)
    res = db.c.replace_one({"_id": 2}, {"c": 4}, upsert=True)
    assert res.upserted_id == 2
    assert db.c.find_one({"_id": 2}) == {"_id": 2, "c": 4}


def test_update_of_id_is_immutable(db):
    db.c.insert_one({"_id": 1, "a": 1})
    with pytest.raises(WriteError) as exc:
        db.c.update_one({"_id": 1}, {"$set": {"_id": 2}})
    assert exc.value.code == 66
    assert "_id" in exc.value.details["errmsg"]
    with pytest.raises(WriteError) as exc:
        db.c.replace_one({"_id": 1}, {"_id": 3, "a": 2})
    assert exc.value.code == 66
    assert db.c.find_one() == {"_id": 1, "a": 1}


def test_inc_on_string_is_type_mismatch(db):
    db.c.insert_one({"_id": 1, "s": "text"})
    with pytest.raises(WriteError) as exc:
        db.c.update_one({"_id": 1}, {"$inc": {"s": 1}})
    assert exc.value.code == 14


def test_delete_one_and_many(db):
    db.c.insert_many([{"_id": i, "g": i % 3} for i in range(9)])
    assert db.c.delete_one({"g": 1}).deleted_count == 1
    assert db.c.delete_many({"g": 1}).deleted_count == 2
    assert db.c.delete_many({"g": 7}).deleted_count == 0
    assert db.c.delete_many({}).deleted_count == 6
    assert db.c.count_documents({}) == 0


def test_find_one_and_update_before_and_after(db):
    db.c.insert_one({"_id": 1, "n": 1, "other": "x"})
    before = db.c.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}})
    assert before == {"_id": 1, "n": 1, "other": "x"}
    after = db.c.find_one_and_update(
        {"_id": 1},
        {"$inc": {"n": 1}},
        projection={"n": 1, "_id": 0},
        return_document=ReturnDocument.AFTER,
    )
    assert after == {"n": 3}
    assert db.c.find_one_and_update({"_id": 2}, {"$inc": {"n": 1}}) is None
    upserted = db.c.find_one_and_update(
        {"_id": 2}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert upserted == {"_id": 2, "n": 1}


def test_find_one_and_update_respects_sort(db):
    db.c.insert_many([{"_id": i, "p": i} for i in range(5)])
    got = db.c.find_one_and_update({}, {"$set": {"hit": True}}, sort=[("p", -1)])
    assert got["_id"] == 4
    assert db.c.find_one({"hit": True})["_id"] == 4


def test_find_one_and_replace_and_delete(db):
    db.c.insert_many([{"_id": 1, "a": 1}, {"_id": 2, "a": 2}])
    old = db.c.find_one_and_replace({"_id": 1}, {"b": 1})
    assert old == {"_id": 1, "a": 1}
    new = db.c.find_one_and_replace(
        {"_id": 2}, {"b": 2}, return_document=ReturnDocument.AFTER
    )
    assert new == {"_id": 2, "b": 2}
    deleted = db.c.find_one_and_delete({"b": 1})
    assert deleted == {"_id": 1, "b": 1}
    assert db.c.find_one_and_delete({"b": 1}) is None
    assert db.c.count_documents({}) == 1
