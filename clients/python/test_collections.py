"""listCollections: names, types, options, info.uuid, idIndex; create errors."""

import uuid

import pytest
from bson import Binary
from pymongo.errors import CollectionInvalid, OperationFailure


def as_uuid(value):
    if isinstance(value, uuid.UUID):
        return value
    assert isinstance(value, Binary) and value.subtype == 4
    return uuid.UUID(bytes=bytes(value))


def by_name(db, **kwargs):
    return {c["name"]: c for c in db.list_collections(**kwargs)}


def test_plain_collection_entry(db):
    db.create_collection("plain")
    entry = by_name(db)["plain"]
    assert entry["type"] == "collection"
    assert entry["options"] == {}
    assert entry["info"]["readOnly"] is False
    as_uuid(entry["info"]["uuid"])
    assert entry["idIndex"] == {"v": 2, "key": {"_id": 1}, "name": "_id_"}


def test_uuids_are_distinct_and_stable(db):
    db.create_collection("a")
    db.create_collection("b")
    first = {n: as_uuid(e["info"]["uuid"]) for n, e in by_name(db).items()}
    assert first["a"] != first["b"]
    db.a.insert_one({})
    again = {n: as_uuid(e["info"]["uuid"]) for n, e in by_name(db).items()}
    assert again == first
    db.a.drop()
    db.create_collection("a")
    assert as_uuid(by_name(db)["a"]["info"]["uuid"]) != first["a"]


def test_implicit_creation_on_insert(db):
    assert db.list_collection_names() == []
    db.implicit.insert_one({})
    assert db.list_collection_names() == ["implicit"]


def test_capped_options(db):
    db.create_collection("capped", capped=True, size=4096, max=10)
    entry = by_name(db)["capped"]
    assert entry["options"] == {"capped": True, "size": 4096, "max": 10}


def test_validator_options(db):
    validator = {"$jsonSchema": {"bsonType": "object", "required": ["name"]}}
    db.create_collection("v", validator=validator)
    entry = by_name(db)["v"]
    assert entry["options"] == {
        "validator": validator,
        "validationLevel": "strict",
        "validationAction": "error",
    }


def test_filter_and_name_only(db):
    for name in ("alpha", "beta", "gamma"):
        db.create_collection(name)
    db.create_collection("capped", capped=True, size=1024)
    assert sorted(db.list_collection_names()) == ["alpha", "beta", "capped", "gamma"]
    assert list(by_name(db, filter={"name": "beta"})) == ["beta"]
    assert list(by_name(db, filter={"options.capped": True})) == ["capped"]
    assert sorted(by_name(db, filter={"name": {"$regex": "^[ab]"}})) == ["alpha", "beta"]
    reply = db.command("listCollections", nameOnly=True, filter={"name": "gamma"})
    assert reply["cursor"]["ns"] == f"{db.name}.$cmd.listCollections"
    assert reply["cursor"]["firstBatch"] == [{"name": "gamma", "type": "collection"}]


def test_view_entry(db):
    db.create_collection("src")
    db.create_collection("vw", viewOn="src", pipeline=[{"$match": {"a": 1}}])
    entry = by_name(db, filter={"name": "vw"})["vw"]
    assert entry["type"] == "view"
    assert entry["options"] == {"viewOn": "src", "pipeline": [{"$match": {"a": 1}}]}
    assert entry["info"] == {"readOnly": True}
    assert "idIndex" not in entry
    db.src.insert_many([{"_id": 1, "a": 1}, {"_id": 2, "a": 2}])
    assert list(db.vw.find()) == [{"_id": 1, "a": 1}]
    with pytest.raises(OperationFailure) as exc:
        db.vw.insert_one({"a": 1})
    assert exc.value.code == 166


def test_create_twice(db):
    db.command("create", "dup")
    # Same options again: a real 8.0 server accepts it.
    db.command("create", "dup")
    with pytest.raises(OperationFailure) as exc:
        db.command("create", "dup", capped=True, size=4096)
    assert exc.value.code == 48
    assert exc.value.details["codeName"] == "NamespaceExists"
    # PyMongo checks with listCollections first and raises its own error.
    with pytest.raises(CollectionInvalid):
        db.create_collection("dup")


def test_drop_and_rename(db):
    db.a.insert_one({"_id": 1})
    db.a.rename("b")
    assert db.list_collection_names() == ["b"]
    assert db.b.find_one() == {"_id": 1}
    db.c.insert_one({})
    with pytest.raises(OperationFailure) as exc:
        db.b.rename("c")
    assert exc.value.code == 48
    db.b.rename("c", dropTarget=True)
    assert db.list_collection_names() == ["c"]
    # Dropping a missing collection succeeds on 7.0+.
    assert db.command("drop", "missing")["ok"] == 1.0
    db.c.drop()
    assert db.list_collection_names() == []


def test_list_databases_shows_database(client, db):
    db.x.insert_one({})
    names = client.list_database_names()
    assert db.name in names
    assert "admin" in names


def test_capped_collection_keeps_newest_in_insertion_order(db):
    db.create_collection("cap", capped=True, size=100_000, max=10)
    db.cap.insert_many([{"_id": 100 - i} for i in range(15)])
    # Natural order is insertion order; the five oldest documents were removed.
    assert [d["_id"] for d in db.cap.find()] == [100 - i for i in range(5, 15)]
    assert db.cap.estimated_document_count() == 10
