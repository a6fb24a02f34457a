"""Benchmark: the guard rails over time, on many random accounts (issue 9's large run).

    .venv/bin/python benchmarks/guard_rails.py [accounts] [cycles] [workers] [first_seed]

The property test's simulation (meta_ads_dagster_tests/cycle/simulation.py) at scale: ``accounts``
(default 1,000) random accounts, seeds ``first_seed`` … (default 0), each through ``cycles``
(default 50) consecutive stub cycles on its own SQLite ledger, in both modes (even seeds suggest,
odd seeds auto), with a person approving, rejecting, rolling back and editing budgets in between.
Every operation goes to the independent checker (meta_ads_dagster/audit/guard_rails.py).

Prints one line per 50 accounts, then the totals: accounts, cycles, operations and writes checked,
hard stops found, mass pauses queued and approved, budget changes and raises checked, approvals,
rejections and rollbacks, breaches (each breach with its seed, replayable alone), and wall time.
Results are in BENCHMARKS.md.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # meta_ads_dagster_tests is not installed

from meta_ads_dagster_tests.cycle.simulation import CYCLES, simulate  # noqa: E402


def one_account(args: tuple[int, int]) -> tuple[int, dict, list[str]]:
    seed, cycles = args
    logging.disable(logging.WARNING)  # the sanity check's warnings
    with tempfile.TemporaryDirectory() as folder:
        outcome = simulate(seed, Path(folder), cycles=cycles)
    return seed, {**outcome.counts, "cycles": outcome.cycles}, outcome.breaches


def main() -> None:
    accounts = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    cycles = int(sys.argv[2]) if len(sys.argv) > 2 else CYCLES
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    started = time.perf_counter()
    totals, breaches, done = Counter(), [], 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for seed, counts, found in pool.map(one_account, [(s, cycles) for s in range(first, first + accounts)], chunksize=4):
            totals.update(counts)
            breaches += [f"seed {seed}: {b}" for b in found]
            for line in found:
                print(f"breach, seed {seed}: {line}", flush=True)  # as found: a long run is worth reading while it runs
            done += 1
            if done % 50 == 0:
                print(f"{done} accounts, {totals['cycles']} cycles, {len(breaches)} breaches, {time.perf_counter() - started:.0f} s", flush=True)
    wall = time.perf_counter() - started
    print(f"\naccounts: {accounts} (seeds {first}–{first + accounts - 1}), cycles each: {cycles}, workers: {workers}")
    print(f"cycles run: {totals['cycles']}  (operations checked: {totals['cycle'] + totals['rollbacks']})")
    for key in ("writes", "hard_stops", "mass_pause_queued", "mass_pause_approved", "budget_changes", "raises", "resumes",
                "approved", "rejected", "rollbacks", "empty_rollbacks", "outside_edits"):
        print(f"  {key}: {totals[key]}")
    print(f"breaches: {len(breaches)}")
    for line in breaches[:50]:
        print("  " + line)
    print(f"wall time: {wall:.0f} s, {wall / max(totals['cycles'], 1) * 1000:.0f} ms of wall time per cycle with {workers} workers")


if __name__ == "__main__":
    main()
