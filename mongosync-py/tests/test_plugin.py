"""The pytest plugin (entry point `pytest11`), run on a sample test file with pytester."""

from __future__ import annotations

import pytest

INI = """
[pytest]
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""

SAMPLE = '''
import pymongo
import mongosync
from mongosync.testing import MemoryCluster


def test_memory_cluster(memory_cluster: MemoryCluster) -> None:
    assert memory_cluster.user == "admin"
    client = pymongo.MongoClient(memory_cluster.uri_with_credentials())
    client.db.things.insert_one({"_id": 1, "name": "pen"})
    assert client.db.things.find_one({"_id": 1})["name"] == "pen"
    client.close()


def test_factory_syncs_two_clusters(memory_cluster_factory) -> None:
    a, b = memory_cluster_factory(), memory_cluster_factory(replica_set="rs1")
    client = pymongo.MongoClient(a.uri_with_credentials())
    client.db.c.insert_many([{"_id": i} for i in range(10)])
    running = mongosync.connect(a.uri_with_credentials(), b.uri_with_credentials()).start()
    running.wait_can_commit()
    running.commit().wait()
    dest = pymongo.MongoClient(b.uri_with_credentials())
    assert dest.db.c.count_documents({}) == 10
    client.close()
    dest.close()


def test_factory_without_auth(memory_cluster_factory) -> None:
    c = memory_cluster_factory(auth=False)
    assert c.user is None
    client = pymongo.MongoClient(c.uri)
    assert client.admin.command("ping")["ok"] == 1
    client.close()
'''


def test_the_plugin_gives_its_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*memory_cluster_factory*", "*memory_cluster*"])
