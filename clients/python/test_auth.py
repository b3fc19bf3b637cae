"""Authentication, user write blocking and retried reads with PyMongo, against a testkit
started with --auth-user/--auth-password (its own process: the session's server has no auth)."""

import os
from urllib.parse import quote_plus

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure, WriteError

from conftest import start_testkit

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URI")),
    reason="needs a testkit started with authentication",
)

ROOT_PWD = "p@ss:word/1"


@pytest.fixture(scope="module")
def auth_uri():
    with start_testkit("--auth-user", "root", "--auth-password", ROOT_PWD) as uri:
        # The printed URI carries no credentials.
        assert "@" not in uri
        yield uri


def connect(uri, user, pwd, **kwargs):
    host = uri.removeprefix("mongodb://")
    sep = "&" if "?" in host else "?"
    return MongoClient(
        f"mongodb://{quote_plus(user)}:{quote_plus(pwd)}@{host}{sep}authSource=admin",
        serverSelectionTimeoutMS=5000,
        **kwargs,
    )


@pytest.fixture(scope="module")
def root(auth_uri):
    c = connect(auth_uri, "root", ROOT_PWD)
    yield c
    c.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", None])
def test_scram_authenticates(auth_uri, mechanism):
    kwargs = {"authMechanism": mechanism} if mechanism else {}
    with connect(auth_uri, "root", ROOT_PWD, **kwargs) as c:
        status = c.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [{"user": "root", "db": "admin"}]
        assert status["authInfo"]["authenticatedUserRoles"] == [{"role": "root", "db": "admin"}]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_wrong_password_is_authentication_failed(auth_uri, mechanism):
    with connect(auth_uri, "root", "wrong", authMechanism=mechanism) as c:
        with pytest.raises(OperationFailure) as exc:
            c.admin.command("ping")
    assert exc.value.code == 18
    assert exc.value.details["errmsg"] == "Authentication failed."


def test_unknown_user_is_authentication_failed(auth_uri):
    with connect(auth_uri, "nobody", "pw") as c:
        with pytest.raises(OperationFailure) as exc:
            c.admin.command("ping")
    assert exc.value.code == 18


def test_unauthenticated_find_is_unauthorized(auth_uri):
    with MongoClient(auth_uri, serverSelectionTimeoutMS=5000) as c:
        with pytest.raises(OperationFailure) as exc:
            c.app.c.find_one()
    assert exc.value.code == 13
    assert exc.value.details["errmsg"] == "Command find requires authentication"


def test_write_blocking_stops_read_write_but_not_root(auth_uri, root):
    root.admin.command(
        "createUser", "pyapp", pwd="pw", roles=[{"role": "readWrite", "db": "pyapp"}]
    )
    try:
        root.pyapp.c.insert_one({"_id": 0})
        root.admin.command({"setUserWriteBlockMode": 1, "global": True})
        try:
            with connect(auth_uri, "pyapp", "pw") as app:
                with pytest.raises(WriteError) as exc:
                    app.pyapp.c.insert_one({"_id": 1})
                assert exc.value.code == 371
                assert exc.value.details["errmsg"] == "User writes blocked"
                with pytest.raises(OperationFailure) as exc:
                    app.pyapp.create_collection("d")
                assert exc.value.code == 371
                assert app.pyapp.c.find_one() == {"_id": 0}
            # root (through restore) holds bypassWriteBlockingMode.
            root.pyapp.c.insert_one({"_id": 2})
            status = root.admin.command("serverStatus")["repl"]
            assert status["userWriteBlockMode"] == 2
        finally:
            root.admin.command({"setUserWriteBlockMode": 1, "global": False})
        assert root.pyapp.c.count_documents({}) == 2
    finally:
        root.admin.command("dropUser", "pyapp")
        root.drop_database("pyapp")


def test_retryable_find_error_is_retried(auth_uri, root):
    root.pyapp2.c.insert_one({"_id": 1})
    # ShutdownInProgress marks the server Unknown: the retry waits for the next heartbeat.
    client = connect(auth_uri, "root", ROOT_PWD, heartbeatFrequencyMS=500)
    try:
        before = root.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": {"times": 1},
                "data": {"failCommands": ["find"], "errorCode": 91},
            }
        )["count"]
        assert client.pyapp2.c.find_one() == {"_id": 1}
        after = root.admin.command({"configureFailPoint": "failCommand", "mode": "off"})[
            "count"
        ]
        assert after - before == 1
    finally:
        client.close()
        root.drop_database("pyapp2")
