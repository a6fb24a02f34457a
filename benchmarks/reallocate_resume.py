"""Benchmark: the engine with and without reallocate and resume proposals on the simulated market (issue 15).

    nice -n 5 .venv/bin/python benchmarks/reallocate_resume.py --seed 1 --variant off|reallocate|resume|both [--campaigns 60] [--days 7]

One engine run over ``Market(campaigns, seed)`` as ``meta-ads simulate`` runs it (the real cycle
every 30 simulated minutes, suggest mode, every queued action approved by the simulated reviewer,
who then approves both legs of a reallocation), with REALLOCATE_PROPOSALS and RESUME_PROPOSALS set
by ``--variant``, everything else equal. One run per process, so two variants can run side by side
on a shared machine. Prints true profit, learning resets, breaches (limits and duties), executed
actions by type (a reallocation counts once) and how many reallocations and resumes were
proposed (distinct units / entities queued). Results go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {"off": (False, False), "reallocate": (True, False), "resume": (False, True), "both": (True, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--campaigns", type=int, default=60)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    reallocate, resume = VARIANTS[args.variant]
    os.environ["REALLOCATE_PROPOSALS"] = str(reallocate).lower()
    os.environ["RESUME_PROPOSALS"] = str(resume).lower()

    from meta_ads_dagster.simulate import policies
    from meta_ads_dagster.simulate import run as simulate_run

    proposed: dict[str, set] = {"reallocate": set(), "recovered": set()}

    class CountingEngine(policies.Engine):
        """The engine policy, noting the reallocations and resumes each decision queued."""

        def decide(self, run_id: str, document: dict) -> policies.Decision:
            decision = super().decide(run_id, document)
            for row in decision.rows:
                if row["rule"] in proposed and row["status"] == "pending":
                    proposed[row["rule"]].add(row.get("unit_id") or (row["entity_type"], row["entity_id"]))
            return decision

    simulate_run.Engine = CountingEngine  # what run_policy's make_policy builds for "engine"
    started = time.perf_counter()
    run = simulate_run.run_policy("engine", args.campaigns, args.days, args.seed)
    print(json.dumps({
        "variant": args.variant, "seed": args.seed, "campaigns": args.campaigns, "days": args.days,
        "profit": run.profit, "spend": run.spend, "revenue": run.revenue, "learning_resets": run.learning_resets,
        "breaches": run.breaches, "duty_breaches": run.duty_breaches, "refused_writes": run.refused_writes,
        "actions": run.actions, "reallocations_proposed": len(proposed["reallocate"]), "resumes_proposed": len(proposed["recovered"]),
        "seconds": round(time.perf_counter() - started),
    }))


if __name__ == "__main__":
    main()
