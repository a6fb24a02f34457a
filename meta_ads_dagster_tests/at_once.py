"""Start several Python processes that wait at a start line and then run the same code at once:
for races between processes on first use (a new SQLite file, a new DAGSTER_HOME)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

# Prepended to the code: ``START`` (the start line, a file) and ``ARGS``; the code's imports are
# done before the line is reached, so the processes then race on the work itself.
_PRELUDE = """
import pathlib, sys, time
START, ARGS = pathlib.Path(sys.argv[1]), sys.argv[3:]
"""
_WAIT = """
pathlib.Path(sys.argv[2]).touch()
while not START.exists():
    time.sleep(0.001)
"""


def run_at_once(imports: str, code: str, folder: Path, processes: int, *args: str, env: dict | None = None) -> list[str]:
    """Run ``imports`` in ``processes`` new processes, then, all at once, ``code``; returns the
    last stderr line of each process that failed (an empty list: every one succeeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    start = folder / "start"
    ready = [folder / f"ready-{n}" for n in range(processes)]
    script = _PRELUDE + imports + _WAIT + code
    started = [
        subprocess.Popen([sys.executable, "-c", script, str(start), str(r), *args], env={**os.environ, **(env or {})},
                         stderr=subprocess.PIPE, text=True)
        for r in ready
    ]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in started), "a process did not reach the start line"
        time.sleep(0.01)
    start.touch()
    errors = [p.communicate(timeout=120)[1] for p in started]
    # SQLAlchemy ends its messages with a "(Background on this error ...)" line: the one before it says what.
    return [
        next((line for line in reversed(e.strip().splitlines()) if not line.startswith("(Background")), "(no message)")
        for p, e in zip(started, errors) if p.returncode
    ]
