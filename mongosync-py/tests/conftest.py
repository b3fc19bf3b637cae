"""Two in-memory clusters with authentication on (the engine needs a user that may bypass
write blocking), from the package's own pytest plugin, and PyMongo clients to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List

import pymongo
import pytest

from mongosync.pytest_plugin import MemoryClusterFactory
from mongosync.testing import MemoryCluster

pytest_plugins = ["pytester"]


@dataclass
class Pair:
    cluster0: MemoryCluster
    cluster1: MemoryCluster
    uri0: str
    uri1: str
    client0: pymongo.MongoClient[Dict[str, Any]]
    client1: pymongo.MongoClient[Dict[str, Any]]


@pytest.fixture
def pair(memory_cluster_factory: MemoryClusterFactory) -> Iterator[Pair]:
    c0 = memory_cluster_factory(password="pw-cluster0")
    c1 = memory_cluster_factory(password="pw-cluster1", replica_set="rs1")
    uri0, uri1 = c0.uri_with_credentials(), c1.uri_with_credentials()
    client0: pymongo.MongoClient[Dict[str, Any]] = pymongo.MongoClient(uri0)
    client1: pymongo.MongoClient[Dict[str, Any]] = pymongo.MongoClient(uri1)
    try:
        yield Pair(c0, c1, uri0, uri1, client0, client1)
    finally:
        client0.close()
        client1.close()


def user_namespaces(client: pymongo.MongoClient[Dict[str, Any]]) -> List[str]:
    """Every user collection, `db.coll`."""
    out = []
    for db in client.list_database_names():
        if db in ("admin", "local", "config") or db.startswith("__mdb_internal"):
            continue
        out += [f"{db}.{c}" for c in client[db].list_collection_names()]
    return sorted(out)


def assert_same_documents(
    source: pymongo.MongoClient[Dict[str, Any]], destination: pymongo.MongoClient[Dict[str, Any]]
) -> int:
    """Compares every user collection document by document; returns how many matched."""
    namespaces = user_namespaces(source)
    assert namespaces == user_namespaces(destination)
    n = 0
    for ns in namespaces:
        db, coll = ns.split(".", 1)
        src = list(source[db][coll].find({}).sort("_id", 1))
        dst = list(destination[db][coll].find({}).sort("_id", 1))
        assert len(src) == len(dst), ns
        for a, b in zip(src, dst):
            assert a == b, ns
        n += len(src)
    return n
