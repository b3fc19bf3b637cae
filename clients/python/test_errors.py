"""Command and write errors: codes, code names and the shape PyMongo sees."""

import pytest
from pymongo.errors import OperationFailure, WriteError


def test_unknown_command(db):
    with pytest.raises(OperationFailure) as exc:
        db.command("notARealCommand")
    assert exc.value.code == 59
    assert exc.value.details["codeName"] == "CommandNotFound"
    assert exc.value.details["errmsg"] == "no such command: 'notARealCommand'"
    assert exc.value.details["ok"] == 0


def test_unknown_top_level_operator(db):
    db.c.insert_one({})
    with pytest.raises(OperationFailure) as exc:
        db.c.find_one({"$bogus": 1})
    assert exc.value.code == 2
    # Servers since 5.0 add a hint about $getField/$setField to this message.
    assert exc.value.details["errmsg"] == (
        "unknown top level operator: $bogus. If you have a field name that starts with a '$' "
        "symbol, consider using $getField or $setField."
    )


def test_unknown_update_modifier(db):
    db.c.insert_one({"_id": 1})
    with pytest.raises(WriteError) as exc:
        db.c.update_one({"_id": 1}, {"$bogus": {"a": 1}})
    assert exc.value.code == 9


def test_unknown_pipeline_stage(db):
    db.c.insert_one({})
    with pytest.raises(OperationFailure) as exc:
        db.c.aggregate([{"$bogus": {}}])
    assert exc.value.code == 40324


def test_validator_rejects_document(db):
    db.create_collection("v", validator={"qty": {"$type": "int", "$gte": 0}})
    db.v.insert_one({"_id": 1, "qty": 3})
    with pytest.raises(WriteError) as exc:
        db.v.insert_one({"_id": 2, "qty": "many"})
    err = exc.value
    assert err.code == 121
    assert err.details["errmsg"] == "Document failed validation"
    assert err.details["errInfo"]["failingDocumentId"] == 2
    assert "details" in err.details["errInfo"]
    with pytest.raises(WriteError) as exc:
        db.v.update_one({"_id": 1}, {"$set": {"qty": -1}})
    assert exc.value.code == 121
    assert db.v.find_one({"_id": 1}) == {"_id": 1, "qty": 3}


def test_bypass_document_validation(db):
    db.create_collection("v", validator={"qty": {"$type": "int"}})
    db.v.insert_one({"_id": 1, "qty": "many"}, bypass_document_validation=True)
    db.v.insert_many([{"_id": 2, "qty": "x"}], bypass_document_validation=True)
    db.v.update_one({"_id": 1}, {"$set": {"other": 1}}, bypass_document_validation=True)
    assert db.v.count_documents({}) == 2


def test_validation_action_warn_accepts(db):
    db.create_collection("w", validator={"qty": {"$type": "int"}}, validationAction="warn")
    db.w.insert_one({"qty": "many"})
    assert db.w.count_documents({}) == 1


def test_validation_level_moderate_allows_existing_invalid(db):
    db.c.insert_one({"_id": 1, "qty": "bad"})
    db.command("collMod", "c", validator={"qty": {"$type": "int"}}, validationLevel="moderate")
    # An already-invalid document may be updated under "moderate".
    db.c.update_one({"_id": 1}, {"$set": {"note": 1}})
    with pytest.raises(WriteError) as exc:
        db.c.insert_one({"_id": 2, "qty": "bad"})
    assert exc.value.code == 121


def test_invalid_namespace(db):
    with pytest.raises(OperationFailure) as exc:
        db.command("create", "")
    assert exc.value.code == 73


def test_ping_and_buildinfo(client):
    assert client.admin.command("ping")["ok"] == 1.0
    info = client.server_info()
    assert info["version"].startswith("8.0")
    assert info["versionArray"][:2] == [8, 0]


def test_getmore_on_another_collection_is_unauthorized(db):
    from bson import Int64

    db.c.insert_many([{"_id": i} for i in range(5)])
    reply = db.command("find", "c", batchSize=1)
    with pytest.raises(OperationFailure) as exc:
        db.command("getMore", Int64(reply["cursor"]["id"]), collection="other")
    assert exc.value.code == 13


def test_bad_id_values(db):
    with pytest.raises(WriteError) as exc:
        db.c.insert_one({"_id": [1, 2]})
    # BadValue (2) in older servers' fixDocumentForInsert; InvalidIdField (53) is reported for
    # newer ones. The message is the same in both.
    assert exc.value.code in (2, 53)
    assert exc.value.details["errmsg"] == "can't use an array for _id"
    assert db.c.count_documents({}) == 0
