"""Handshake paths: the legacy OP_QUERY `isMaster` (PyMongo <= 4.17 and Node send it), direct
connections, and the replica-set view a driver builds from `hello`."""

import socket
import struct
from urllib.parse import urlparse

import bson
import pytest
from pymongo import MongoClient

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013


def host_port(uri):
    u = urlparse(uri)
    return u.hostname, u.port


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return buf


def recv_message(sock):
    header = recv_exact(sock, 16)
    length, request_id, response_to, op_code = struct.unpack("<iiii", header)
    return request_id, response_to, op_code, recv_exact(sock, length - 16)


def op_query(request_id, command, ns=b"admin.$cmd"):
    body = struct.pack("<i", 0) + ns + b"\x00" + struct.pack("<ii", 0, -1) + bson.encode(command)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_QUERY) + body


def op_msg(request_id, command):
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(command)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_MSG) + body


def parse_op_reply(body):
    flags, cursor_id, starting_from, number_returned = struct.unpack("<iqii", body[:20])
    return flags, cursor_id, starting_from, number_returned, bson.decode_all(body[20:])


@pytest.fixture
def raw(server_uri):
    sock = socket.create_connection(host_port(server_uri), timeout=10)
    yield sock
    sock.close()


def test_op_query_ismaster(raw):
    raw.sendall(
        op_query(
            7,
            {
                "ismaster": 1,
                "helloOk": True,
                "client": {"driver": {"name": "raw-test", "version": "0"}},
            },
        )
    )
    _, response_to, op_code, body = recv_message(raw)
    assert op_code == OP_REPLY
    assert response_to == 7
    flags, cursor_id, starting_from, n, docs = parse_op_reply(body)
    assert flags & 0b11 == 0  # neither CursorNotFound nor QueryFailure
    assert (cursor_id, starting_from, n) == (0, 0, 1)
    reply = docs[0]
    assert reply["ok"] == 1.0
    assert reply["ismaster"] is True
    assert reply["helloOk"] is True
    assert reply["setName"] == "rs0"
    assert reply["maxWireVersion"] == 25  # MongoDB 8.0
    assert reply["minWireVersion"] == 0
    assert reply["maxBsonObjectSize"] == 16 * 1024 * 1024
    assert reply["maxMessageSizeBytes"] == 48_000_000
    assert reply["maxWriteBatchSize"] == 100_000
    for trap in ("msg", "isreplicaset", "hidden", "__nodejs_mock_server__"):
        assert trap not in reply

    # The same connection then speaks OP_MSG, as every driver does after the handshake.
    raw.sendall(op_msg(8, {"ping": 1, "$db": "admin"}))
    _, response_to, op_code, body = recv_message(raw)
    assert (op_code, response_to) == (OP_MSG, 8)
    assert struct.unpack("<I", body[:4])[0] == 0  # no checksum, no moreToCome
    assert body[4] == 0  # a single kind-0 section
    assert bson.decode(body[5:])["ok"] == 1.0


def test_op_query_isMaster_camel_case_and_wrapped(raw):
    raw.sendall(op_query(1, {"$query": {"isMaster": 1}, "$readPreference": {"mode": "primary"}}))
    _, _, op_code, body = recv_message(raw)
    assert op_code == OP_REPLY
    reply = parse_op_reply(body)[4][0]
    assert reply["ok"] == 1.0
    assert reply["ismaster"] is True


def test_op_query_other_command_is_refused(raw):
    raw.sendall(op_query(3, {"find": "c"}, ns=b"test.$cmd"))
    _, response_to, op_code, body = recv_message(raw)
    assert (op_code, response_to) == (OP_REPLY, 3)
    flags, _, _, n, docs = parse_op_reply(body)
    assert flags & 0b10 == 0  # errors travel as {ok: 0}, not as QueryFailure
    assert n == 1
    assert docs[0]["ok"] == 0
    assert docs[0]["code"] == 352
    assert docs[0]["codeName"] == "UnsupportedOpQueryCommand"
    assert docs[0]["errmsg"].startswith("Unsupported OP_QUERY command: find.")


def test_hello_over_op_msg(client):
    reply = client.admin.command("hello")
    assert reply["isWritablePrimary"] is True
    assert "ismaster" not in reply
    assert reply["setName"] == "rs0"
    assert reply["secondary"] is False
    assert reply["maxWireVersion"] == 25
    assert len(reply["hosts"]) == 1
    assert reply["primary"] == reply["me"] == reply["hosts"][0]
    assert "topologyVersion" in reply
    assert isinstance(reply["connectionId"], int)
    assert "lastWrite" in reply


def test_replica_set_discovery(client, server_uri):
    client.admin.command("ping")
    assert client.primary == host_port(server_uri)
    assert client.secondaries == set()


def test_direct_connection(server_uri):
    host, port = host_port(server_uri)
    with MongoClient(f"mongodb://{host}:{port}/?directConnection=true") as c:
        assert c.admin.command("ping")["ok"] == 1.0
        c.direct_db.c.insert_one({"_id": 1})
        assert c.direct_db.c.find_one() == {"_id": 1}
        c.drop_database("direct_db")


def test_retryable_write_and_session_fields_accepted(client, db):
    with client.start_session() as s:
        db.c.insert_one({"_id": 1}, session=s)
        db.c.update_one({"_id": 1}, {"$set": {"a": 1}}, session=s)
        assert db.c.find_one({"_id": 1}, session=s) == {"_id": 1, "a": 1}
