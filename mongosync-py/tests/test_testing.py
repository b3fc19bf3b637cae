"""`mongosync.testing.MemoryCluster`: context managers, auth, options, garbage collection."""

from __future__ import annotations

import gc
import socket
from typing import Any, Dict

import pymongo
import pytest
from pymongo.errors import OperationFailure

from mongosync.testing import MemoryCluster


def _port_open(uri: str) -> bool:
    hostport = uri.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def test_context_manager_with_auth_and_options() -> None:
    with MemoryCluster(user="admin", password="s3cret", replica_set="rsX") as c:
        assert c.user == "admin" and c.password == "s3cret"
        assert c.uri.endswith("/?replicaSet=rsX")
        client: pymongo.MongoClient[Dict[str, Any]] = pymongo.MongoClient(c.uri_with_credentials())
        try:
            client.db.c.insert_one({"_id": 1})
            assert client.db.c.find_one() == {"_id": 1}
        finally:
            client.close()
        anonymous: pymongo.MongoClient[Dict[str, Any]] = pymongo.MongoClient(c.uri)
        try:
            with pytest.raises(OperationFailure):
                anonymous.db.c.find_one()
        finally:
            anonymous.close()
        uri = c.uri
    assert not c.running
    assert not _port_open(uri)


def test_without_auth_uri_with_credentials_is_refused() -> None:
    with MemoryCluster() as c:
        with pytest.raises(ValueError, match="without authentication"):
            c.uri_with_credentials()


def test_user_without_password_is_refused() -> None:
    with pytest.raises(ValueError, match="go together"):
        MemoryCluster(user="admin")


async def test_async_context_manager() -> None:
    async with MemoryCluster(start=False) as c:
        client: pymongo.AsyncMongoClient[Dict[str, Any]] = pymongo.AsyncMongoClient(c.uri)
        try:
            await client.db.c.insert_one({"_id": 1})
            assert await client.db.c.count_documents({}) == 1
        finally:
            await client.close()
    assert not c.running


def test_stops_when_garbage_collected() -> None:
    c = MemoryCluster()
    uri = c.uri
    assert _port_open(uri)
    del c
    gc.collect()
    # The server task closes its listener once signalled; connecting fails from then on.
    for _ in range(200):
        if not _port_open(uri):
            break
        gc.collect()
    assert not _port_open(uri)
