"""Type tests (never run): checked by `mypy --strict` and `pyright`. Each illegal transition
carries an ignore comment; both checkers fail if it stops being an error
(`warn_unused_ignores`, `reportUnnecessaryTypeIgnoreComment`)."""

from typing import Literal, Optional

from typing_extensions import assert_type

import mongosync
import mongosync.aio as aio
from mongosync import (
    AnySyncer,
    CommittedSyncer,
    CommittingSyncer,
    IdleSyncer,
    PausedSyncer,
    Progress,
    ReversingSyncer,
    RunningSyncer,
)
from mongosync.errors import MongosyncError


def legal(idle: IdleSyncer) -> None:
    running = idle.start(source="cluster0", include_namespaces=[{"database": "shop"}])
    assert_type(running, RunningSyncer)
    assert_type(idle.start({"source": "cluster0", "reversible": True}), RunningSyncer)
    assert_type(running.wait_can_commit(), Progress)
    paused = running.pause()
    assert_type(paused, PausedSyncer)
    assert_type(paused.resume(), RunningSyncer)
    committing = running.commit()
    assert_type(committing, CommittingSyncer)
    committed = committing.wait()
    assert_type(committed, CommittedSyncer)
    reversing = committed.reverse()
    assert_type(reversing, ReversingSyncer)
    assert_type(reversing.wait(), RunningSyncer)
    assert_type(running.state, Literal["RUNNING"])
    for p in running.watch_progress():
        assert_type(p, Progress)
    assert_type(mongosync.connect("a", "b"), IdleSyncer)
    assert_type(mongosync.attach("a", "b"), AnySyncer)


def illegal(
    idle: IdleSyncer,
    running: RunningSyncer,
    paused: PausedSyncer,
    committing: CommittingSyncer,
    committed: CommittedSyncer,
    reversing: ReversingSyncer,
) -> None:
    idle.commit()  # type: ignore[attr-defined]
    idle.pause()  # type: ignore[attr-defined]
    idle.wait()  # type: ignore[attr-defined]
    running.start()  # type: ignore[attr-defined]
    running.resume()  # type: ignore[attr-defined]
    running.wait()  # type: ignore[attr-defined]
    running.reverse()  # type: ignore[attr-defined]
    paused.pause()  # type: ignore[attr-defined]
    paused.commit()  # type: ignore[attr-defined]
    committing.pause()  # type: ignore[attr-defined]
    committing.commit()  # type: ignore[attr-defined]
    committed.pause()  # type: ignore[attr-defined]
    committed.commit()  # type: ignore[attr-defined]
    committed.wait()  # type: ignore[attr-defined]
    reversing.reverse()  # type: ignore[attr-defined]
    reversing.commit()  # type: ignore[attr-defined]
    idle.start(source="cluster2")  # type: ignore[arg-type]
    idle.start(build_indexes="sometimes")  # type: ignore[arg-type]
    idle.start(unknown_option=True)  # type: ignore[call-arg]
    bad_state: RunningSyncer = idle  # type: ignore[assignment]
    del bad_state


def narrowing(any_syncer: AnySyncer) -> None:
    match any_syncer:
        case RunningSyncer():
            assert_type(any_syncer.pause(), PausedSyncer)
        case CommittingSyncer():
            assert_type(any_syncer.wait(), CommittedSyncer)
        case ReversingSyncer():
            assert_type(any_syncer.wait(), RunningSyncer)
        case _:
            pass
    any_syncer.pause()  # type: ignore[union-attr]
    if any_syncer.state == "PAUSED":
        assert_type(any_syncer, PausedSyncer)
        assert_type(any_syncer.resume(), RunningSyncer)


def errors(e: MongosyncError) -> None:
    assert_type(e.code, str)
    assert_type(e.syncer, Optional[AnySyncer])


async def asyncio_api(idle: aio.IdleSyncer) -> None:
    running = await idle.start(include_namespaces=[{"database": "shop"}])
    assert_type(running, aio.RunningSyncer)
    committing = await running.commit()
    assert_type(committing, aio.CommittingSyncer)
    assert_type(await committing.wait(), aio.CommittedSyncer)
    async for p in running.watch_progress():
        assert_type(p, Progress)
    await idle.commit()  # type: ignore[attr-defined]
    await (await running.pause()).pause()  # type: ignore[attr-defined]
    assert_type(await aio.attach("a", "b"), aio.AnySyncer)
