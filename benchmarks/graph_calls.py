"""Benchmark: Graph API calls per cycle for 1,000 executed actions, live client vs the fake server.

    .venv/bin/python benchmarks/graph_calls.py [campaigns] [page_size]

A synthetic account of N (default 1,000) CBO campaigns, each with one ES-only ad set and one ad, 30
days old, 7-day ROAS 4.0 on plenty of data: every campaign qualifies for a budget raise that auto
mode executes (10 % of $500 → $550). With MAX_CAMPAIGNS_PER_TICK and MAX_ACTIONS_PER_TICK at N and
MAX_DAILY_SPEND_USD out of the way, the cycle plans and executes N writes.

The real LiveMetaAdsClient (facebook-business SDK, real HTTP) reads and writes the account served
by FakeGraphServer on 127.0.0.1 (a dev fixture from meta_ads_dagster_tests). The client's clock is
fake (client.use_clock): report polling waits and backoff advance it instead of sleeping, so wall
times are HTTP, SDK and engine work only. The page size is both the server's maximum and the
client's ``limit`` (default 500, Meta's usual maximum for these edges).

Prints what the server saw: total HTTP requests, GETs, write calls (batch envelopes), async
insights report runs, and wall time per phase. Checks: write calls ≤ ceil(N / 50) and exactly one
async insights job for the account (exit status 1 otherwise). Results are in BENCHMARKS.md.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # meta_ads_dagster_tests is not installed

from meta_ads_dagster.engine.cycle import plan_cycle  # noqa: E402
from meta_ads_dagster.engine.snapshot import parse_snapshot  # noqa: E402
from meta_ads_dagster.meta.execution import execute_actions  # noqa: E402
from meta_ads_dagster.meta.live import MAX_BATCH, LiveMetaAdsClient  # noqa: E402
from meta_ads_dagster.settings import load_settings  # noqa: E402
from meta_ads_dagster_tests.meta.fake_graph import FakeGraphServer  # noqa: E402

AS_OF = pd.Timestamp("2026-11-20T10:00:00+00:00")
ACCOUNT = "act_4242"
TOKEN, APP_SECRET = "EAAB-benchmark-token", "benchmark-app-secret"
FULL_DAYS = 8  # full days before today (7-day window + the spike baseline's extra day)


class FakeClock:
    """time() and sleep() for the client: sleeping advances the clock, never waits."""

    def __init__(self, start: pd.Timestamp):
        self.now = start.timestamp()
        self.slept = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def synthetic_account(campaigns: int) -> dict:
    """N CBO campaigns ($500/day), each one ES ad set with one ad, ROAS 4.0 every day, 30 days old."""
    created = (AS_OF - pd.Timedelta(days=30)).isoformat()
    days = [(AS_OF.normalize() - pd.Timedelta(days=d)).date().isoformat() for d in range(FULL_DAYS, -1, -1)]
    doc = {"as_of": AS_OF.isoformat(), "account": {"id": ACCOUNT, "currency": "USD", "timezone_name": "UTC"},
           "campaigns": [], "adsets": [], "ads": [], "creatives": [], "insights": []}
    for c in range(campaigns):
        cid, sid, aid, crid = f"1{c:06d}", f"2{c:06d}", f"3{c:06d}", f"4{c:06d}"
        doc["campaigns"].append({"id": cid, "name": f"campaign {c}", "status": "ACTIVE", "created_time": created, "daily_budget": "50000"})
        doc["adsets"].append({"id": sid, "campaign_id": cid, "name": f"adset {c}", "status": "ACTIVE", "created_time": created,
                              "daily_budget": None, "targeting": {"geo_locations": {"countries": ["ES"]}}})
        doc["ads"].append({"id": aid, "adset_id": sid, "campaign_id": cid, "name": f"ad {c}", "status": "ACTIVE",
                           "created_time": created, "creative": {"id": crid}})
        doc["creatives"].append({"id": crid, "approved": True})
        for day in days:
            partial = day == days[-1]  # today so far
            spend, purchases = (20.0, 2) if partial else (60.0, 6)
            doc["insights"].append({
                "ad_id": aid, "adset_id": sid, "campaign_id": cid, "date_start": day, "date_stop": day, "country": "ES",
                "spend": f"{spend:.2f}", "impressions": str(int(spend * 100)), "clicks": str(int(spend * 2)),
                "actions": [{"action_type": "purchase", "value": str(purchases)}],
                "action_values": [{"action_type": "purchase", "value": f"{purchases * 40:.2f}"}],
            })
    return doc


def get_breakdown(gets: list[dict], report_ids: set[str]) -> dict[str, int]:
    """GET requests per endpoint, report run ids shown as <report_run>."""
    counts: dict[str, int] = {}
    for request in gets:
        parts = request["path"].split("/")
        path = "/".join("<report_run>" if part in report_ids else part for part in parts)
        counts[path] = counts.get(path, 0) + 1
    return counts


def main(campaigns: int = 1000, page_size: int = 500) -> int:
    settings = load_settings(
        meta_auto_mode="auto", max_campaigns_per_tick=campaigns, max_actions_per_tick=campaigns,
        max_daily_spend_usd=1e9,
    )
    doc = synthetic_account(campaigns)
    clock = FakeClock(AS_OF)
    with FakeGraphServer(doc, page_size=page_size, access_token=TOKEN, app_secret=APP_SECRET) as server:
        client = LiveMetaAdsClient(access_token=TOKEN, app_id="1234", app_secret=APP_SECRET, account_id=ACCOUNT,
                                   graph_url=server.url, page_size=page_size).use_clock(clock.sleep, clock.time)
        t0 = time.perf_counter()
        document = client.fetch_snapshot()  # account, async insights report, creatives, campaigns, ad sets, ads
        t1 = time.perf_counter()
        snapshot = parse_snapshot(document)
        t2 = time.perf_counter()
        actions, _ = plan_cycle(snapshot, settings)
        t3 = time.perf_counter()
        reads = len(server.find(batch_items=False))
        executed, _ = execute_actions(actions, client, lambda outcome: None)
        t4 = time.perf_counter()

        top = server.find(batch_items=False)
        gets = [r for r in top if r["method"] == "GET"]
        envelopes = [r for r in top if r["method"] == "POST" and r["path"] == "/"]
        other_posts = [r for r in top if r["method"] == "POST" and r["path"] != "/"]
        items = server.find("POST", top_level=False)
        report_runs = server.report_runs
        budgets = {c["daily_budget"] for c in server.document["campaigns"]}
        assert server.internal_errors == [], server.internal_errors

    verdicts = executed["verdict"].value_counts().to_dict()
    n_executed = int((executed["verdict"] == "executed").sum())
    max_writes = math.ceil(n_executed / MAX_BATCH)
    print(f"account: {campaigns} CBO campaigns, {len(doc['adsets'])} ad sets, {len(doc['ads'])} ads, "
          f"{len(doc['insights'])} insight rows; page size {page_size} (server max and client limit)")
    print(f"actions planned: {len(actions)}  verdicts: {verdicts}")
    print(f"actions executed: {n_executed}  (campaign budgets now: {sorted(budgets)})")
    print(f"HTTP requests the server saw: {len(top)}  (reads {reads}, writes {len(top) - reads}; client counted {client.api.calls})")
    print(f"  GET calls: {len(gets)}  by endpoint: {get_breakdown(gets, {run['id'] for run in report_runs})}")
    print(f"  POST /{ACCOUNT}/insights (async report runs started): {len(other_posts)}")
    print(f"  write calls (batch envelopes): {len(envelopes)}  items per envelope: {sorted({len(e['params']['batch']) for e in envelopes})}"
          f"  batch items: {len(items)}")
    print(f"async insights report runs: {len(report_runs)}  (polls: {[run['polls'] for run in report_runs]})")
    print(f"fake-clock time slept (report polling, backoff; not waited): {clock.slept:.1f} s")
    print(f"wall time: fetch_snapshot {t1 - t0:.2f} s | parse_snapshot {t2 - t1:.2f} s | plan_cycle {t3 - t2:.2f} s | "
          f"execute_actions {t4 - t3:.2f} s | total {t4 - t0:.2f} s")

    checks = {
        f"write calls {len(envelopes)} <= ceil({n_executed}/{MAX_BATCH}) = {max_writes}": len(envelopes) <= max_writes,
        f"one async insights job per account ({len(report_runs)})": len(report_runs) == 1,
        f"every action executed ({n_executed} of {campaigns})": n_executed == campaigns,
    }
    for text, ok in checks.items():
        print(f"check: {text}: {'OK' if ok else 'FAILED'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(*[int(arg) for arg in sys.argv[1:3]]))
