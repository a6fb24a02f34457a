"""Benchmark: the engine with and without the learning-phase hold on the simulated market (issue 15).

    .venv/bin/python benchmarks/learning_hold.py [--campaigns 60] [--days 7] [--seeds 1 2 3 4 5]

For every seed the engine runs twice over ``Market(campaigns, seed)`` as ``meta-ads simulate``
runs it (the real cycle every 30 simulated minutes, suggest mode, every queued action approved):
with LEARNING_PHASE_HOLD on and off, everything else equal; do-nothing runs beside them as the
baseline. Prints each run's true profit, learning resets, breaches, executed actions and how
often the hold deferred a raise (decisions, and distinct entities), then the hold's gain per seed
(profit with − without, in % of without) and the mean. Results go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meta_ads_dagster.simulate import policies  # noqa: E402
from meta_ads_dagster.simulate import run as simulate_run  # noqa: E402
from meta_ads_dagster.simulate.run import run_policy  # noqa: E402

STARTED = time.perf_counter()
held: list[tuple[str, str]] = []  # (entity_type, entity_id) of every raise the hold deferred, per decision


class CountingEngine(policies.Engine):
    """The engine policy, noting the raises the learning-phase hold deferred at each decision."""

    def decide(self, run_id: str, document: dict) -> policies.Decision:
        decision = super().decide(run_id, document)
        held.extend((row["entity_type"], row["entity_id"]) for row in decision.rows
                    if row["verdict"] == "deferred" and any("learning phase" in reason for reason in row["reasons"]))
        return decision


simulate_run.Engine = CountingEngine  # what run_policy's make_policy builds for "engine"


def say(line: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.0f} s] {line}", flush=True)


def engine_run(campaigns: int, days: int, seed: int, hold: bool):
    os.environ["LEARNING_PHASE_HOLD"] = "true" if hold else "false"
    held.clear()
    try:
        return run_policy("engine", campaigns, days, seed), len(held), len(set(held))
    finally:
        del os.environ["LEARNING_PHASE_HOLD"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=60)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    gains = []
    for seed in args.seeds:
        baseline = run_policy("do_nothing", args.campaigns, args.days, seed)
        runs = {}
        for hold in (True, False):
            run, decisions_held, entities_held = engine_run(args.campaigns, args.days, seed, hold)
            runs[hold] = run
            say(f"seed {seed} hold {'on ' if hold else 'off'}: profit {run.profit:,.0f} (do-nothing {baseline.profit:,.0f}), "
                f"learning resets {run.learning_resets}, breaches {run.breaches} (duties {run.duty_breaches}), "
                f"refused {run.refused_writes}, held {decisions_held} decisions on {entities_held} entities, actions {run.actions}")
        gain = (runs[True].profit - runs[False].profit) / abs(runs[False].profit) * 100
        gains.append(gain)
        say(f"seed {seed}: hold on vs off {runs[True].profit - runs[False].profit:+,.0f} ({gain:+.2f} %)")
    say(f"{args.campaigns} campaigns × {args.days} days, seeds {args.seeds}: hold on vs off mean {statistics.mean(gains):+.2f} %, "
        f"worst {min(gains):+.2f} %, best {max(gains):+.2f} %")


if __name__ == "__main__":
    main()
