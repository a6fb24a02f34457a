"""Benchmark: how long one cycle's decision engine takes on a large account, and its peak memory.

    .venv/bin/python benchmarks/engine_cycle.py [campaigns ...]

Generates a synthetic account (each campaign: 3 ad sets × 3 ads, 8 days of insights in 2 countries,
a spread of ROAS values so every rule fires somewhere), then times parse_snapshot (validation) and
plan_cycle (metrics, A/B, spikes, fatigue, rules, policy, safety, routing). Prints one line per size.
Results are recorded in BENCHMARKS.md; nothing here asserts a time.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import pandas as pd

from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.settings import load_settings

AS_OF = pd.Timestamp("2026-11-20T10:00:00+00:00")


def synthetic_account(campaigns: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    doc = {"as_of": AS_OF.isoformat(), "account": {"id": "act_42", "currency": "USD", "timezone_name": "UTC"},
           "campaigns": [], "adsets": [], "ads": [], "creatives": [], "insights": [], "ab_tests": []}
    days = [(AS_OF.normalize() - pd.Timedelta(days=d)).date().isoformat() for d in range(8, -1, -1)]
    created = (AS_OF - pd.Timedelta(days=30)).isoformat()
    for c in range(campaigns):
        cid, cbo = f"1{c:07d}", c % 2 == 0
        doc["campaigns"].append({"id": cid, "name": f"c{c}", "status": "ACTIVE", "created_time": created,
                                 "daily_budget": str(int(rng.integers(100, 2000)) * 100) if cbo else None})
        roas = float(rng.choice([0.5, 1.2, 2.2, 3.5, 5.0]))
        for s in range(3):
            sid = f"2{c:06d}{s}"
            doc["adsets"].append({"id": sid, "campaign_id": cid, "name": f"s{s}", "status": "ACTIVE", "created_time": created,
                                  "daily_budget": None if cbo else str(int(rng.integers(50, 500)) * 100),
                                  "targeting": {"geo_locations": {"countries": ["ES", "PT"]}}})
            for a in range(3):
                aid = f"3{c:05d}{s}{a}"
                doc["ads"].append({"id": aid, "adset_id": sid, "campaign_id": cid, "name": f"a{a}", "status": "ACTIVE",
                                   "created_time": created, "creative": {"id": f"4{aid}"}})
                doc["creatives"].append({"id": f"4{aid}", "approved": True})
                for day in days:
                    for country, share in (("ES", 0.6), ("PT", 0.4)):
                        spend = 40 * share * rng.uniform(0.8, 1.2)
                        impressions = int(spend * 90)
                        purchases = int(rng.poisson(spend * roas / 40))
                        doc["insights"].append({
                            "ad_id": aid, "adset_id": sid, "campaign_id": cid, "date_start": day, "date_stop": day,
                            "country": country, "spend": f"{spend:.2f}", "impressions": str(impressions),
                            "clicks": str(int(impressions * 0.02)),
                            "actions": [{"action_type": "purchase", "value": str(purchases)}],
                            "action_values": [{"action_type": "purchase", "value": f"{purchases * 40:.2f}"}]})
        if c % 10 == 0:
            doc["ab_tests"].append({"id": f"ab{c}", "ad_ids": [f"3{c:05d}00", f"3{c:05d}01"], "started_at": created})
    return doc


def main(sizes: list[int]) -> None:
    settings = load_settings(max_campaigns_per_tick=max(sizes))
    print("campaigns  insight_rows  parse_s  plan_s  actions  peak_rss_mb")
    for size in sizes:
        doc = synthetic_account(size)
        start = time.perf_counter()
        snapshot = parse_snapshot(doc)
        parsed = time.perf_counter()
        actions, _ = plan_cycle(snapshot, settings)
        planned = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{size:9d}  {len(doc['insights']):12d}  {parsed - start:7.2f}  {planned - parsed:6.2f}  {len(actions):7d}  {rss:11.0f}")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100, 1000])
