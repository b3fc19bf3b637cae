"""Sync two clusters from Python: start, watch the progress, commit, check.

    python examples/first_sync.py                      # two in-memory clusters
    python examples/first_sync.py URI0 URI1            # your clusters (with credentials)

The in-memory clusters run with authentication on: the sync needs a user that may bypass
the destination's write blocking (``root`` has it).
"""

from __future__ import annotations

import secrets
import sys
from contextlib import ExitStack

import pymongo

import mongosync
from mongosync.testing import MemoryCluster


def main() -> None:
    with ExitStack() as stack:
        if len(sys.argv) == 3:
            uri0, uri1 = sys.argv[1], sys.argv[2]
        else:
            c0 = stack.enter_context(MemoryCluster(user="admin", password=secrets.token_hex(8)))
            c1 = stack.enter_context(
                MemoryCluster(user="admin", password=secrets.token_hex(8), replica_set="rs1")
            )
            uri0, uri1 = c0.uri_with_credentials(), c1.uri_with_credentials()
            seed = stack.enter_context(pymongo.MongoClient(uri0))
            seed.shop.orders.insert_many([{"_id": i, "qty": i % 10} for i in range(1_000)])

        idle = mongosync.connect(uri0, uri1)
        running = idle.start(source="cluster0", include_namespaces=[{"database": "shop"}])
        for progress in running.watch_progress():
            copy = progress.collection_copy
            copied = f"{copy.estimated_copied_bytes}/{copy.estimated_total_bytes} bytes" if copy else "-"
            print(f"{progress.state:<10} {progress.info or '':<28} copied {copied}")
            if progress.can_commit:
                break
        committed = running.commit().wait()
        print("final progress:", committed.progress().to_dict())

        source = stack.enter_context(pymongo.MongoClient(uri0))
        destination = stack.enter_context(pymongo.MongoClient(uri1))
        for name in source.shop.list_collection_names():
            src = list(source.shop[name].find().sort("_id", 1))
            assert src == list(destination.shop[name].find().sort("_id", 1)), name
            print(f"shop.{name}: {len(src)} documents, identical")


if __name__ == "__main__":
    main()
