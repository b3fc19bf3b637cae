"""The asyncio API: a sync with async PyMongo, `async for` on progress, and the cancellation
of an awaited commit."""

from __future__ import annotations

import asyncio
import gc
from typing import Any, Dict

import pymongo
import pytest

import mongosync.aio as aio
from mongosync.testing import MemoryCluster

from conftest import Pair, assert_same_documents


async def test_async_sync_with_async_pymongo() -> None:
    async with MemoryCluster(user="admin", password="pw0", start=False) as c0, MemoryCluster(
        user="admin", password="pw1", start=False
    ) as c1:
        source: pymongo.AsyncMongoClient[Dict[str, Any]] = pymongo.AsyncMongoClient(
            c0.uri_with_credentials()
        )
        try:
            await source.db.c.insert_many([{"_id": i} for i in range(500)])
            idle = await aio.connect(c0.uri_with_credentials(), c1.uri_with_credentials())
            running = await idle.start(include_namespaces=[{"database": "db"}])
            async for p in running.watch_progress():
                if p.can_commit:
                    break
            committed = await (await running.commit()).wait()
            assert committed.progress().state == "COMMITTED"
            dest: pymongo.AsyncMongoClient[Dict[str, Any]] = pymongo.AsyncMongoClient(
                c1.uri_with_credentials()
            )
            try:
                assert [d async for d in dest.db.c.find({}).sort("_id", 1)] == [
                    d async for d in source.db.c.find({}).sort("_id", 1)
                ]
            finally:
                await dest.close()
        finally:
            await source.close()


async def test_cancelled_wait_keeps_the_transition_going(pair: Pair) -> None:
    pair.client0.db.c.insert_many([{"_id": i} for i in range(100)])
    running = await (await aio.connect(pair.uri0, pair.uri1)).start()
    await running.wait_can_commit()
    committing = await running.commit()
    task = asyncio.ensure_future(committing.wait())
    await asyncio.sleep(0)
    assert task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Awaiting the same transition again picks up its result.
    committed = await committing.wait()
    assert isinstance(committed, aio.CommittedSyncer)
    assert assert_same_documents(pair.client0, pair.client1) == 100


async def test_cancelled_commit_then_attach_finds_a_consistent_state(pair: Pair) -> None:
    pair.client0.db.c.insert_many([{"_id": i} for i in range(100)])
    running = await (await aio.connect(pair.uri0, pair.uri1)).start()
    await running.wait_can_commit()
    watch = running.watch_progress()
    task = asyncio.ensure_future(running.commit())
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    # Dropping the object stops the sync like a kill; the watch ends once it is gone.
    del running, task
    gc.collect()
    async for _ in watch:
        pass

    attached = await aio.attach(pair.uri0, pair.uri1)
    match attached:
        case aio.RunningSyncer():
            await attached.wait_can_commit()
            committed = await (await attached.commit()).wait()
        case aio.CommittingSyncer():
            committed = await attached.wait()
        case aio.CommittedSyncer():
            committed = attached
        case _:
            raise AssertionError(f"attach found {attached.state}")
    assert committed.progress().state == "COMMITTED"
    assert assert_same_documents(pair.client0, pair.client1) == 100
