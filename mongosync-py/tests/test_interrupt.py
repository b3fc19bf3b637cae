"""Ctrl-C during a blocking wait interrupts the wait, not the sync; a forked child gets a
clear error instead of a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import Pair

SCRIPT = textwrap.dedent(
    """
    import sys
    import mongosync

    uri0, uri1 = sys.argv[1], sys.argv[2]
    # A lag limit below zero: canCommit never becomes true, so the wait blocks until Ctrl-C.
    running = mongosync.connect(uri0, uri1, commit_lag_limit_secs=-1).start()
    try:
        # Inside the try: a signal that lands before the wait starts is caught the same way.
        print("waiting", flush=True)
        running.wait_can_commit()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    # The sync was not harmed: it still runs and takes its next transition.
    print("state", running.progress().state, flush=True)
    paused = running.pause()
    print("state", paused.progress().state, flush=True)
    """
)


def test_ctrl_c_interrupts_a_blocking_wait(pair: Pair) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, pair.uri0, pair.uri1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "waiting"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert out.split("\n")[:3] == ["interrupted", "state RUNNING", "state PAUSED"], err
    assert "PanicException" not in err


FORK_SCRIPT = textwrap.dedent(
    """
    import os
    import mongosync
    from mongosync.testing import MemoryCluster

    with MemoryCluster() as cluster:  # starts the runtime in the parent
        pid = os.fork()
        if pid == 0:
            try:
                MemoryCluster()
            except RuntimeError as e:
                print("child:", e, flush=True)
                os._exit(0)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        print("parent: child exited", os.waitstatus_to_exitcode(status), flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_gets_a_clear_error() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "child: mongosync cannot be used in this process: it was forked" in out.stdout
    assert "parent: child exited 0" in out.stdout
