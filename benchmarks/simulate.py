"""Benchmark: the policies compared on the simulated market (issue 12), and how fast it runs.

    .venv/bin/python benchmarks/simulate.py [default] [seeds SEED…] [scaling CAMPAIGNS…] [cadence]

- ``default``: ``meta-ads simulate --compare`` on the default market (200 campaigns, 14 days,
  seed 7, suggest mode): the table (also written, with the chart, to ./simulation-7/), and
  simulated engine cycles per second;
- ``seeds``: the same comparison on other seeds (default 1–5), each one's gains, then the mean and
  the worst of engine vs do-nothing and engine vs plain rules;
- ``scaling``: the engine alone for 1 simulated day (48 cycles) on markets of 200, 500, 1,000 and
  2,000 campaigns: wall time and cycles per second;
- ``cadence``: plain rules on the default market evaluated every 30 minutes instead of once a day
  (the measurement behind the daily cadence, README "Simulated market").

With no part named, runs ``default``, ``seeds`` and ``scaling``. Prints as it goes (a long run is
worth reading while it runs). Results go to BENCHMARKS.md.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meta_ads_dagster.cli.common import format_table  # noqa: E402
from meta_ads_dagster.simulate.report import TABLE_COLUMNS, comparison, table_rows, write_chart, write_table  # noqa: E402
from meta_ads_dagster.simulate.run import POLICY_NAMES, TICKS_PER_DAY, PolicyRun, run_policy  # noqa: E402

CAMPAIGNS, DAYS, SEED = 200, 14, 7
STARTED = time.perf_counter()


def say(line: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.0f} s] {line}", flush=True)


def timed_comparison(campaigns: int, days: int, seed: int) -> tuple[list[PolicyRun], dict[str, float]]:
    runs, seconds = [], {}
    for name in POLICY_NAMES:
        started = time.perf_counter()
        runs.append(run_policy(name, campaigns, days, seed, on_day=lambda policy, day: say(f"seed {seed} {policy}: day {day}/{days}")))
        seconds[name] = time.perf_counter() - started
    return runs, seconds


def default_market() -> None:
    runs, seconds = timed_comparison(CAMPAIGNS, DAYS, SEED)
    rows = comparison(runs)
    out = Path(f"simulation-{SEED}")  # what `meta-ads simulate --compare` writes, for BENCHMARKS.md
    out.mkdir(exist_ok=True)
    setup = {"campaigns": CAMPAIGNS, "days": DAYS, "seed": SEED, "mode": "suggest", "guard_rails": runs[0].guard_rails}
    print(f"written: {write_table(rows, setup, out)}, {write_chart(runs, f'Cumulative profit: {CAMPAIGNS} campaigns, {DAYS} days, seed {SEED}', out)}")
    print(f"\ndefault market: {CAMPAIGNS} campaigns, {DAYS} days, seed {SEED}, suggest mode")
    print(format_table(table_rows(rows), TABLE_COLUMNS))
    for row in rows:
        print(f"{row['policy']}: {row['decisions']} decisions, refused writes {row['refused_writes']}, "
              f"breaches by rail {row['breaches_by_rail']}, {seconds[row['policy']]:.0f} s")
    cycles = DAYS * TICKS_PER_DAY
    print(f"engine: {cycles} simulated cycles in {seconds['engine']:.0f} s = {cycles / seconds['engine']:.2f} cycles/s\n", flush=True)


def other_seeds(seeds: list[int]) -> None:
    gains = []
    for seed in seeds:
        runs, _ = timed_comparison(CAMPAIGNS, DAYS, seed)
        rows = comparison(runs)
        engine = rows[0]
        gains.append((seed, engine["vs_do_nothing"], engine["vs_plain_rules"], engine["breaches"]))
        print(f"seed {seed}: " + "; ".join(f"{r['policy']} profit {r['profit']:,.0f} breaches {r['breaches']}" for r in rows)
              + f"; engine vs do-nothing {engine['vs_do_nothing']:+.1f} %, vs plain rules {engine['vs_plain_rules']:+.1f} %", flush=True)
    for label, column in (("vs do-nothing", 1), ("vs plain rules", 2)):
        values = [g[column] for g in gains]
        print(f"engine {label} over seeds {seeds}: mean {statistics.mean(values):+.1f} %, worst {min(values):+.1f} %")
    print(f"engine breaches over those seeds: {sum(g[3] for g in gains)}\n", flush=True)


def scaling(sizes: list[int]) -> None:
    for campaigns in sizes:
        started = time.perf_counter()
        run_policy("engine", campaigns, 1, SEED)
        wall = time.perf_counter() - started
        print(f"engine, {campaigns} campaigns, 1 day: {wall:.0f} s ({TICKS_PER_DAY / wall:.2f} cycles/s, market set-up included)", flush=True)


def cadence() -> None:
    """plain_rules every 30 minutes, for the cadence decision."""
    started = time.perf_counter()
    run = run_policy("plain_rules", CAMPAIGNS, DAYS, SEED, plain_rules_every=1,
                     on_day=lambda policy, day: say(f"plain rules every 30 min: day {day}/{DAYS}"))
    print(f"plain_rules every 30 minutes on the default market: spend {run.spend:,.0f}, revenue {run.revenue:,.0f}, "
          f"profit {run.profit:,.0f}, ROAS {run.roas:.2f}, actions {run.actions}, refused writes {run.refused_writes}, "
          f"learning resets {run.learning_resets}, breaches {run.breaches}, {time.perf_counter() - started:.0f} s", flush=True)


def main(argv: list[str]) -> None:
    parts: dict[str, list[int]] = {}
    for word in argv:
        if word.isdigit() and parts:
            parts[list(parts)[-1]].append(int(word))
        else:
            parts[word] = []
    for part in parts or {"default": [], "seeds": [], "scaling": []}:
        if part == "default":
            default_market()
        elif part == "seeds":
            other_seeds(parts.get(part) or [1, 2, 3, 4, 5])
        elif part == "scaling":
            scaling(parts.get(part) or [200, 500, 1000, 2000])
        elif part == "cadence":
            cadence()
        else:
            raise SystemExit(f"unknown part {part!r}: default, seeds, scaling or cadence")


if __name__ == "__main__":
    main(sys.argv[1:])
