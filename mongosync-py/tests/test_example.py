"""The example runs as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "first_sync.py"


def test_first_sync_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "COMMITTED" in out.stdout
    assert "shop.orders: 1000 documents, identical" in out.stdout
