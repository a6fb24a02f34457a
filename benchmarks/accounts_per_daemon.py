"""Benchmark: how many accounts one daemon drives on this machine, through a real schedule tick.

    META_ADS_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/test \
        .venv/bin/python benchmarks/accounts_per_daemon.py [accounts] [cycle_limit]

The production deployment of the deploy tests (meta_ads_dagster_tests/deploy/deployment.py): a fresh
PostgreSQL database as the instance and the ledger, ``dagster-daemon``, ``dagster-webserver`` and a
read-only webserver, the top-level ``dagster.yaml`` with its ``meta/cycle`` limit (accounts cycling
at once) set to ``cycle_limit`` (default 10, the file's value). ``accounts`` (default 24) demo
accounts in stub mode, suggest mode, the schedule every minute: the script starts the schedule,
waits for the daemon's first tick to create one run per account, stops the schedule, and waits until
every run has finished.

Prints: the tick's runs and their outcome, wall time from the first run's creation to the last
run's end, queue wait (creation → start) and run time (start → end) per run, the most runs seen in
progress at once, cycles per minute and what that makes per 30-minute interval. Results are in
BENCHMARKS.md.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # meta_ads_dagster_tests is not installed
os.environ.setdefault("META_ADS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

from meta_ads_dagster_tests.conftest import fresh_postgres_database  # noqa: E402
from meta_ads_dagster_tests.deploy.deployment import (  # noqa: E402
    SCHEDULE_SELECTOR, START_SCHEDULE, STOP_SCHEDULE, production_deployment,
)


def main(accounts: int = 24, cycle_limit: int = 10) -> int:
    ids = [f"act_{1001 + i}" for i in range(accounts)]
    settings = {"META_AD_ACCOUNT_IDS": ",".join(ids), "META_CYCLE_AUTO_START": "false", "META_CYCLE_INTERVAL_MINUTES": "1"}

    def with_limit(text: str) -> str:
        edited, found = re.subn(r'(- key: "meta/cycle"\n\s+limit: )\d+', rf"\g<1>{cycle_limit}", text)
        assert found == 1, "dagster.yaml has no meta/cycle limit"
        return edited

    with tempfile.TemporaryDirectory() as root, fresh_postgres_database() as database_url:
        with production_deployment(Path(root), database_url, settings, instance=with_limit) as deployment:
            started = deployment.gql(deployment.admin, START_SCHEDULE, {"selector": SCHEDULE_SELECTOR})["startSchedule"]
            assert started["__typename"] == "ScheduleStateResult", started
            try:
                scheduled = deployment.wait_scheduled(accounts, timeout=180)
            finally:
                deployment.gql(deployment.admin, STOP_SCHEDULE, {"selector": SCHEDULE_SELECTOR})
            tags = {run_id: {t["key"]: t["value"] for t in run["tags"]} for run_id, run in scheduled.items()}
            first_tick = min(int(t["dagster/tick"]) for t in tags.values())
            tick_runs = [run_id for run_id, t in tags.items() if int(t["dagster/tick"]) == first_tick]
            clock = time.monotonic()
            runs = deployment.wait_finished(tick_runs, timeout=60 * 30)
            waited = time.monotonic() - clock

    statuses = [run["status"] for run in runs.values()]
    created = min(run["creationTime"] for run in runs.values())
    ended = max(run["endTime"] for run in runs.values())
    queue_wait = [run["startTime"] - run["creationTime"] for run in runs.values()]
    run_time = [run["endTime"] - run["startTime"] for run in runs.values()]
    events = sorted([(run["startTime"], 1) for run in runs.values()] + [(run["endTime"], -1) for run in runs.values()])
    in_progress = peak = 0
    for _, step in events:
        in_progress += step
        peak = max(peak, in_progress)
    wall = ended - created
    per_minute = len(runs) / wall * 60

    print(f"accounts: {accounts}, meta/cycle limit: {cycle_limit}, cpus: {os.cpu_count()}")
    print(f"tick runs: {len(tick_runs)} ({statuses.count('SUCCESS')} SUCCESS, {len(statuses) - statuses.count('SUCCESS')} other)")
    print(f"wall time, first run created -> last run ended: {wall:.1f} s (script waited {waited:.1f} s after the tick)")
    print(f"queue wait per run (s): median {statistics.median(queue_wait):.1f}, max {max(queue_wait):.1f}")
    print(f"run time per run (s): median {statistics.median(run_time):.1f}, min {min(run_time):.1f}, max {max(run_time):.1f}")
    print(f"most runs in progress at once: {peak}")
    print(f"throughput: {per_minute:.1f} cycles/min -> about {per_minute * 30:.0f} accounts per 30-minute interval")
    return 0 if statuses.count("SUCCESS") == accounts == len(tick_runs) else 1


if __name__ == "__main__":
    sys.exit(main(*(int(arg) for arg in sys.argv[1:])))
