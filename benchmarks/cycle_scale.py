"""Benchmark: what one account costs per cycle as it grows (issue 14), in CPU, wall time and memory.

    nice -n 5 .venv/bin/python benchmarks/cycle_scale.py [--sizes 200 2000 10000] [--runs 3]
                                                         [--skip cycle@10000 ...] [--data DIR]

For each size it generates (seeded, cached in ``--data``) an account snapshot file: ``campaigns``
campaigns with 10 ads each (20 from 10,000 campaigns up), in two ad sets, one targeting ES and one
PT; every ad has 8 days of ad-level daily insights (7 full days and today so far), one row a day
in its ad set's country: 160,000 rows at 2,000 campaigns, 1.6 M at 10,000. ROAS values are spread
so that every budget rule fires somewhere; every tenth campaign runs an A/B test.

Then, each in its own process (so CPU and peak RSS are that work's own, process start included
where a person would pay it), ``--runs`` times:

- ``plan``: ``meta-ads plan --snapshot FILE`` (read, parse, the engine, the table printed);
- ``engine``: ``plan_cycle`` on the already-parsed frames (the parse is done before timing);
- ``analyze``: of that, the analyses of the rows alone (``engine.cycle.analyze``: entity table,
  metrics, A/B tests, spikes, fatigue), without the decisions, guard rails and routing;
- ``floor``: the bare aggregation of the same rows: the 7-day sums and today's spend per ad, ad
  set and campaign (one ``groupby().sum()`` each), what no engine can do with less;
- ``cycle``: ``meta-ads cycle`` in stub mode on that file, all in one DAGSTER_HOME (the first run
  makes the stub's state, the next ones cycle on it, as a daemon does).

Prints CPU seconds (user + system) and wall seconds as min and median over the runs, and the peak
RSS (max over the runs; for ``engine`` and ``floor`` the process's, which holds the parsed frames).
``--skip WORK@SIZE`` leaves one out (``cycle@10000``: many GB on a small box). Nothing here asserts
a time; results go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ACCOUNT = "act_4242"
AS_OF = "2026-11-20T10:00:00+00:00"
DAYS = 8  # the 7 full days of the ROAS window, and today so far
WORKS = ("plan", "engine", "analyze", "floor", "cycle")


def ads_per_campaign(campaigns: int) -> int:
    return 20 if campaigns >= 10_000 else 10


def write_account(path: Path, campaigns: int, seed: int = 14) -> None:
    """The snapshot file for ``campaigns`` campaigns, written row by row (a 1.6 M-row document as
    Python dicts would take gigabytes before the benchmark even starts)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    per_campaign = ads_per_campaign(campaigns)
    today = pd.Timestamp(AS_OF).normalize()
    days = [(today - pd.Timedelta(days=d)).date().isoformat() for d in range(DAYS - 1, -1, -1)]
    created = (pd.Timestamp(AS_OF) - pd.Timedelta(days=40)).isoformat()
    dump = json.dumps
    structure = {"campaigns": [], "adsets": [], "ads": [], "creatives": [], "ab_tests": []}
    rows = []  # (ad, adset, campaign, country, roas) per ad
    for c in range(campaigns):
        cid, cbo = f"1{c:07d}", c % 2 == 0
        structure["campaigns"].append({"id": cid, "name": f"campaign {c}", "status": "ACTIVE", "created_time": created,
                                       "daily_budget": str(int(rng.integers(100, 2000)) * 100) if cbo else None})
        roas = float(rng.choice([0.5, 1.2, 2.2, 3.5, 5.0]))
        for s, country in enumerate(("ES", "PT")):
            sid = f"2{c:07d}{s}"
            structure["adsets"].append({"id": sid, "campaign_id": cid, "name": f"ad set {country}", "status": "ACTIVE",
                                        "created_time": created,
                                        "daily_budget": None if cbo else str(int(rng.integers(50, 500)) * 100),
                                        "targeting": {"geo_locations": {"countries": [country]}}})
            for a in range(per_campaign // 2):
                aid = f"3{c:07d}{s}{a:02d}"
                structure["ads"].append({"id": aid, "adset_id": sid, "campaign_id": cid, "name": f"ad {a}", "status": "ACTIVE",
                                         "created_time": created, "creative": {"id": f"4{aid}"}})
                structure["creatives"].append({"id": f"4{aid}", "approved": True})
                rows.append((aid, sid, cid, country, roas * float(rng.uniform(0.7, 1.3))))
        if c % 10 == 0:
            structure["ab_tests"].append({"id": f"ab{c}", "ad_ids": [f"3{c:07d}000", f"3{c:07d}001"], "started_at": created})
    with open(path, "w") as out:
        out.write(dump({"as_of": AS_OF, "account": {"id": ACCOUNT, "currency": "USD", "timezone_name": "UTC"}})[:-1])
        for key, values in structure.items():
            out.write(f', "{key}": ' + dump(values))
        out.write(', "insights": [')
        first = True
        for aid, sid, cid, country, roas in rows:
            spend = rng.uniform(5, 60, DAYS) * np.r_[np.ones(DAYS - 1), 0.4]  # today is a part day
            purchases = rng.poisson(spend * roas / 40)
            for day, amount, bought in zip(days, spend, purchases):
                impressions = int(amount * 90)
                out.write(("" if first else ",") + dump({
                    "ad_id": aid, "adset_id": sid, "campaign_id": cid, "date_start": day, "date_stop": day,
                    "country": country, "spend": f"{amount:.2f}", "impressions": str(impressions),
                    "clicks": str(impressions // 50),
                    "actions": [{"action_type": "link_click", "value": str(impressions // 50)},
                                {"action_type": "purchase", "value": str(bought)}],
                    "action_values": [{"action_type": "purchase", "value": f"{bought * 40:.2f}"}]}))
                first = False
        out.write("]}")


def account_file(data: Path, campaigns: int) -> Path:
    path = data / f"account_{campaigns}.json"
    if not path.exists():
        partial = path.with_suffix(".part")
        write_account(partial, campaigns)
        partial.rename(path)
    return path


def measured(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``command`` to its end; its CPU (user + system), wall time and peak RSS."""
    # Files, not pipes: nobody reads a pipe while wait4 waits, and a full one would block the child.
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {(err or out).strip()[-2000:]}")
    return {"cpu": usage.ru_utime + usage.ru_stime, "wall": wall, "rss_mb": usage.ru_maxrss / 1024, "out": out}


def in_process(work: str, path: str, runs: int) -> None:
    """``engine``, ``analyze`` or ``floor`` ``runs`` times on frames parsed once; one JSON line per run."""
    from meta_ads_dagster.engine.cycle import analyze, plan_cycle
    from meta_ads_dagster.engine.snapshot import load_snapshot_text
    from meta_ads_dagster.settings import load_settings

    snapshot = load_snapshot_text(Path(path).read_bytes())
    settings = load_settings()

    def floor() -> None:
        insights, today = snapshot.insights, snapshot.today
        window = insights[(insights["date"] >= today - np.timedelta64(7, "D")) & (insights["date"] < today)]
        today_rows = insights[insights["date"] == today]
        for key in ("ad_id", "adset_id", "campaign_id"):
            window.groupby(key, sort=False)[["spend", "impressions", "clicks", "purchases", "revenue"]].sum()
            today_rows.groupby(key, sort=False)["spend"].sum()

    task = {"engine": lambda: plan_cycle(snapshot, settings), "analyze": lambda: analyze(snapshot), "floor": floor}[work]
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        task()
        print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                          "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def run_work(work: str, path: Path, runs: int, home: Path) -> list[dict[str, float]]:
    env = {**os.environ, "META_API_MODE": "stub", "META_AUTO_MODE": "suggest", "META_AD_ACCOUNT_IDS": ACCOUNT}
    env.pop("META_ACCOUNTS_FILE", None)
    if work == "plan":
        return [measured([str(BIN / "meta-ads"), "plan", "--snapshot", str(path)], env) for _ in range(runs)]
    if work == "cycle":
        env |= {"DAGSTER_HOME": str(home), "META_STUB_SNAPSHOT": str(path)}
        return [measured([str(BIN / "meta-ads"), "cycle"], env) for _ in range(runs)]
    result = measured([sys.executable, __file__, "--in-process", work, str(path), "--runs", str(runs)], env)
    return [json.loads(line) for line in result["out"].splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--works", nargs="+", choices=WORKS, default=list(WORKS))
    parser.add_argument("--skip", nargs="*", default=[], metavar="WORK@SIZE")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "meta_ads_cycle_scale")
    parser.add_argument("--in-process", nargs=2, metavar=("WORK", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        in_process(*args.in_process, args.runs)
        return
    args.data.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'campaigns':>9} {'ads':>7} {'rows':>9}  {'work':<6} {'cpu min':>8} {'cpu med':>8} {'wall min':>8} {'wall med':>8} {'peak MB':>8}")
    for size in args.sizes:
        path = account_file(args.data, size)
        ads, rows = size * ads_per_campaign(size), size * ads_per_campaign(size) * DAYS
        with tempfile.TemporaryDirectory() as home:
            for work in args.works:
                if f"{work}@{size}" in args.skip:
                    print(f"{size:9d} {ads:7d} {rows:9d}  {work:<6} skipped")
                    continue
                results = run_work(work, path, args.runs, Path(home))
                cpu, wall = [r["cpu"] for r in results], [r["wall"] for r in results]
                print(f"{size:9d} {ads:7d} {rows:9d}  {work:<6} {min(cpu):8.2f} {statistics.median(cpu):8.2f} "
                      f"{min(wall):8.2f} {statistics.median(wall):8.2f} {max(r['rss_mb'] for r in results):8.0f}", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
