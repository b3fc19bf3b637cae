"""Snapshot sessions and administration commands through PyMongo, with the answers a MongoDB 8.0
replica set gives (run with $MONGODB_URI to check against one)."""

import threading

import pytest
from pymongo.errors import OperationFailure


def test_snapshot_session_reads_one_point_in_time(client, db):
    db.c.insert_one({"_id": 1})
    with client.start_session(snapshot=True) as s:
        # The first read fixes the snapshot's time; later writes are not seen by the session.
        assert [d["_id"] for d in db.c.find({}, session=s)] == [1]
        db.c.insert_one({"_id": 2})
        db.c.delete_one({"_id": 1})
        assert [d["_id"] for d in db.c.find({}, session=s)] == [1]
        assert db.c.distinct("_id", session=s) == [1]
    assert [d["_id"] for d in db.c.find({})] == [2]


def test_snapshot_session_refuses_writes(client, db):
    with client.start_session(snapshot=True) as s:
        with pytest.raises(Exception) as e:
            db.c.insert_one({"_id": 1}, session=s)
    # PyMongo refuses a write in a snapshot session before sending it (ConfigurationError),
    # or the server does with InvalidOptions: either way nothing is written.
    assert "snapshot" in str(e.value).lower()
    assert db.c.count_documents({}) == 0


def test_fsync_lock_holds_writes_shown_in_current_op(client, db):
    db.c.insert_one({"_id": 0})
    client.admin.command("fsync", lock=True)
    done = threading.Event()
    failure: list[BaseException] = []

    def write():
        try:
            db.c.insert_many([{"_id": i, "pad": "x" * 100} for i in range(1, 51)])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failure.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=write)
    t.start()
    try:
        # currentOp shows the insert waiting for the lock; its documents came as an OP_MSG
        # document sequence, which is not part of the command object the server records.
        op = None
        for _ in range(500):
            ops = client.admin.command(
                "currentOp", waitingForLock=True, **{"command.insert": "c"}
            )["inprog"]
            if ops:
                op = ops[0]
                break
            assert not done.wait(0.01), "the insert was not held by the fsync lock"
        assert op is not None, "the held insert never showed in currentOp"
        assert "documents" not in op["command"]
        assert op["ns"] == f"{db.name}.c"
    finally:
        client.admin.command("fsyncUnlock")
        t.join(30)
    assert not failure, failure
    assert db.c.count_documents({}) == 51


def test_fsync_unlock_without_lock_is_refused(client):
    with pytest.raises(OperationFailure) as e:
        client.admin.command("fsyncUnlock")
    assert e.value.code == 20  # IllegalOperation: "fsyncUnlock called when not locked"
    assert "not locked" in str(e.value)


def test_get_and_set_parameter_round_trip(client):
    before = client.admin.command("getParameter", 1, transactionLifetimeLimitSeconds=1)
    assert before["transactionLifetimeLimitSeconds"] == 60
    try:
        reply = client.admin.command("setParameter", 1, transactionLifetimeLimitSeconds=30)
        assert reply["was"] == 60
        got = client.admin.command("getParameter", 1, transactionLifetimeLimitSeconds=1)
        assert got["transactionLifetimeLimitSeconds"] == 30
    finally:
        client.admin.command("setParameter", 1, transactionLifetimeLimitSeconds=60)


def test_explain_find_names_the_index_it_uses(db):
    db.c.create_index("k")
    db.c.insert_many([{"k": i} for i in range(10)])
    plan = db.c.find({"k": 3}).explain()
    winning = plan["queryPlanner"]["winningPlan"]
    text = str(winning)
    assert "IXSCAN" in text and "k_1" in text, winning
    assert plan["queryPlanner"]["namespace"] == f"{db.name}.c"
