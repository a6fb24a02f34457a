"""Benchmark: the live client's read of a large account (issue 14), in CPU and memory.

    nice -n 10 .venv/bin/python benchmarks/live_insights.py [--campaigns 2000] [--runs 3] [--data DIR]

The account is ``cycle_scale.py``'s (seeded, cached in ``--data``): 2,000 campaigns make 20,000
ads and 160,000 insights rows. FakeGraphServer (meta_ads_dagster_tests) serves it on 127.0.0.1 in
a process of its own, pages of 500 rows (the client's ``page_size``), so that the client's figures
are the client's alone. Each run is a new process: the real LiveMetaAdsClient (facebook-business
SDK, real HTTP, a fake clock: report polls never wait) runs ``sync_insights`` (the async report,
read page by page) then ``fetch_account`` (the structure's reads and the parse into frames).

Prints per run the CPU seconds (user + system) of the two calls and of ``sync_insights`` alone,
their wall seconds, the process's peak RSS before and after them, and a digest of the frames (the
same for any two versions of the client that read the account alike); then min and median.
The client is the checkout's the script is in (for a before/after, run a copy of the script in
the other checkout). Results go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # meta_ads_dagster_tests and benchmarks are not installed

from benchmarks.cycle_scale import ACCOUNT, AS_OF, account_file  # noqa: E402

TOKEN, APP_ID, APP_SECRET = "EAAB-benchmark-token", "1234", "benchmark-app-secret"
PAGE_SIZE = 500


def serve(path: str) -> None:
    """Serve the account until stdin closes; the first line out is the server's URL."""
    from meta_ads_dagster_tests.meta.fake_graph import FakeGraphServer

    class Server(FakeGraphServer):
        """The fixture filters every insights row for every page it serves (320 passes over
        160,000 rows): the report's rows are filtered once per report instead."""

        _rows: dict[str, list[dict]] = {}

        def _insight_rows(self, params: dict) -> list[dict]:
            key = json.dumps(self._insight_range(params))
            if key not in self._rows:
                self._rows[key] = super()._insight_rows(params)
            return self._rows[key]

    document = json.loads(Path(path).read_text())
    with Server(document, page_size=PAGE_SIZE, access_token=TOKEN, app_secret=APP_SECRET) as server:
        print(server.url, flush=True)
        sys.stdin.read()


def fetch(url: str, account: str) -> None:
    """One read of the account; one JSON line: the figures and the frames' digest."""
    import pandas as pd

    from meta_ads_dagster.meta.live import LiveMetaAdsClient

    now = [pd.Timestamp(AS_OF).timestamp()]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    client = LiveMetaAdsClient(access_token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET, account_id=account,
                               graph_url=url, page_size=PAGE_SIZE).use_clock(sleep, lambda: now[0])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu, wall = time.process_time(), time.perf_counter()
    client.sync_insights()
    sync_cpu = time.process_time() - cpu
    snapshot = client.fetch_account()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    digest = hashlib.sha256()
    for frame in (snapshot.campaigns, snapshot.adsets, snapshot.ads, snapshot.creatives, snapshot.insights):
        digest.update(frame.to_csv(index=False).encode())
    print(json.dumps({"cpu": cpu, "sync_cpu": sync_cpu, "wall": wall, "rss_before_mb": rss_before,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rows": len(snapshot.insights), "digest": digest.hexdigest()[:16], **client.request_counts()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "meta_ads_cycle_scale")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--fetch", nargs=2, metavar=("URL", "ACCOUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.fetch:
        return fetch(*args.fetch)
    args.data.mkdir(parents=True, exist_ok=True)
    path = account_file(args.data, args.campaigns)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        results = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--fetch", url, ACCOUNT], capture_output=True, text=True, check=True).stdout
            results.append(json.loads(out.splitlines()[-1]))
            print(results[-1], flush=True)
    finally:
        server.stdin.close()
        server.wait()
    cpu, wall, sync = ([r[key] for r in results] for key in ("cpu", "wall", "sync_cpu"))
    print(f"{args.campaigns} campaigns, {results[0]['rows']} insights rows: CPU min {min(cpu):.2f} / median {statistics.median(cpu):.2f} s "
          f"(sync_insights min {min(sync):.2f} / median {statistics.median(sync):.2f}), "
          f"wall min {min(wall):.2f} / median {statistics.median(wall):.2f} s, peak RSS {max(r['rss_mb'] for r in results):.0f} MB "
          f"({min(r['rss_before_mb'] for r in results):.0f} MB before the read)")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
