"""Cursors: batches, getMore, sort/skip/limit, killCursors and CursorNotFound."""

import pytest
from bson import Int64
from pymongo import ASCENDING, DESCENDING, MongoClient, monitoring
from pymongo.errors import OperationFailure

N = 10_000


class CommandLog(monitoring.CommandListener):
    """Records (command name, command, reply) of each succeeded command."""

    def __init__(self):
        self.commands = {}
        self.log = []

    def started(self, event):
        self.commands[event.request_id] = event.command

    def succeeded(self, event):
        self.log.append((event.command_name, self.commands.pop(event.request_id, None), event.reply))

    def failed(self, event):
        self.commands.pop(event.request_id, None)

    def names(self):
        return [name for name, _, _ in self.log]


@pytest.fixture
def logged(server_uri, db):
    """A second client, with a command listener, on the test's database."""
    log = CommandLog()
    c = MongoClient(server_uri, event_listeners=[log])
    yield c[db.name], log
    c.close()


def fill(coll, n=N):
    coll.insert_many([{"_id": i, "n": i, "pad": "x" * 20} for i in range(n)])


def test_many_getmores_across_10k_docs(db, logged):
    fill(db.c)
    ldb, log = logged
    got = [d["_id"] for d in ldb.c.find({}, sort=[("_id", ASCENDING)], batch_size=100)]
    assert got == list(range(N))
    finds = [r for name, _, r in log.log if name == "find"]
    assert len(finds) == 1
    assert len(finds[0]["cursor"]["firstBatch"]) == 100
    assert finds[0]["cursor"]["ns"] == f"{db.name}.c"
    assert isinstance(finds[0]["cursor"]["id"], Int64) and finds[0]["cursor"]["id"] != 0
    getmores = [(cmd, r) for name, cmd, r in log.log if name == "getMore"]
    # 9,900 documents remain in batches of 100; the server may need one last empty batch to
    # notice the end.
    assert 99 <= len(getmores) <= 100
    for cmd, reply in getmores:
        assert cmd["collection"] == "c"
        assert cmd["batchSize"] == 100
        assert len(reply["cursor"]["nextBatch"]) <= 100
        assert reply["cursor"]["ns"] == f"{db.name}.c"
    assert getmores[-1][1]["cursor"]["id"] == 0


def test_default_first_batch_is_101_docs(db, logged):
    fill(db.c, 500)
    ldb, log = logged
    assert len(list(ldb.c.find())) == 500
    first = next(r for name, _, r in log.log if name == "find")
    assert len(first["cursor"]["firstBatch"]) == 101


def test_sort_skip_limit(db):
    fill(db.c, 100)
    got = [d["n"] for d in db.c.find({"n": {"$lt": 50}}).sort("n", DESCENDING).skip(10).limit(5)]
    assert got == [39, 38, 37, 36, 35]
    got = [d["n"] for d in db.c.find().sort([("n", ASCENDING)]).skip(98)]
    assert got == [98, 99]
    assert list(db.c.find().skip(1000)) == []


def test_limit_larger_than_batch(db, logged):
    fill(db.c, 1000)
    ldb, log = logged
    got = list(ldb.c.find().sort("_id", 1).limit(250).batch_size(100))
    assert [d["_id"] for d in got] == list(range(250))
    # The server closes the cursor once the limit is reached: no killCursors needed.
    assert "killCursors" not in log.names()


def test_compound_sort_and_projection(db):
    db.c.insert_many([{"_id": i, "a": i % 3, "b": -i, "c": "hidden"} for i in range(9)])
    got = list(db.c.find({}, {"a": 1, "b": 1}).sort([("a", DESCENDING), ("b", ASCENDING)]))
    assert [d["_id"] for d in got[:3]] == [8, 5, 2]
    assert all("c" not in d for d in got)
    excl = db.c.find_one({"_id": 0}, {"c": 0, "_id": 0})
    assert excl == {"a": 0, "b": 0}


def test_batch_size_zero_keeps_cursor_open(db):
    fill(db.c, 10)
    reply = db.command("find", "c", batchSize=0)
    assert reply["cursor"]["firstBatch"] == []
    cid = reply["cursor"]["id"]
    assert cid != 0
    more = db.command("getMore", Int64(cid), collection="c", batchSize=4)
    assert [d["_id"] for d in more["cursor"]["nextBatch"]] == [0, 1, 2, 3]
    assert more["cursor"]["id"] == cid
    rest = db.command("getMore", Int64(cid), collection="c")
    assert [d["_id"] for d in rest["cursor"]["nextBatch"]] == [4, 5, 6, 7, 8, 9]
    assert rest["cursor"]["id"] == 0


def test_close_kills_cursor(db, logged):
    fill(db.c, 100)
    ldb, log = logged
    cursor = ldb.c.find().batch_size(10)
    next(cursor)
    cid = cursor.cursor_id
    assert cid
    cursor.close()
    kills = [(cmd, r) for name, cmd, r in log.log if name == "killCursors"]
    assert len(kills) == 1
    cmd, reply = kills[0]
    assert cmd["killCursors"] == "c"
    assert list(cmd["cursors"]) == [cid]
    assert list(reply["cursorsKilled"]) == [cid]
    assert list(reply["cursorsNotFound"]) == []
    with pytest.raises(OperationFailure) as exc:
        db.command("getMore", Int64(cid), collection="c")
    assert exc.value.code == 43


def test_kill_unknown_cursor_reports_not_found(db):
    db.c.insert_one({})
    reply = db.command("killCursors", "c", cursors=[Int64(987654321)])
    assert list(reply["cursorsNotFound"]) == [987654321]
    assert list(reply["cursorsKilled"]) == []


def test_getmore_unknown_cursor_is_cursor_not_found(db):
    db.c.insert_one({})
    with pytest.raises(OperationFailure) as exc:
        db.command("getMore", Int64(123456789), collection="c")
    assert exc.value.code == 43
    assert exc.value.details["codeName"] == "CursorNotFound"


def test_exhausted_cursor_cannot_be_resumed(db):
    fill(db.c, 10)
    reply = db.command("find", "c", batchSize=2)
    cid = reply["cursor"]["id"]
    db.command("getMore", Int64(cid), collection="c")  # drains the rest
    with pytest.raises(OperationFailure) as exc:
        db.command("getMore", Int64(cid), collection="c")
    assert exc.value.code == 43


def test_find_on_missing_collection_is_empty(db):
    reply = db.command("find", "nope")
    assert reply["cursor"]["firstBatch"] == []
    assert reply["cursor"]["id"] == 0
    assert reply["cursor"]["ns"] == f"{db.name}.nope"
