"""The Dagster UI in a real browser: two stub cycles, then the asset page and a run page in
headless Chromium, asserting what a person reads there (the action table, a plot of the numbers).

``dagster-webserver`` serves a fresh DAGSTER_HOME on a free loopback port; the cycles run as a
person runs them (``meta-ads cycle``, the living demo in stub mode). What the pages must show comes
from the instance (the latest materialization's actions), not from fixed numbers. Screenshots go to
``test-artifacts/browser/`` (gitignored; ``META_ADS_TEST_ARTIFACTS`` moves it).

Without Chromium the test skips, unless ``META_ADS_REQUIRE_BROWSER=1`` (set by .ci/run, which
installs Debian's ``chromium`` when it is absent): then it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
from dagster import AssetKey, DagsterInstance

from meta_ads_dagster.ui_metadata import ACTION_SCHEMA

from ..deploy.deployment import BIN, REPO, _free_port, _start
from .chromium import chromium_path, headless_chromium

ARTIFACTS = Path(os.environ.get("META_ADS_TEST_ARTIFACTS") or REPO / "test-artifacts") / "browser"
PAGE_TIMEOUT = 60  # seconds until a page shows what it must
SERVE_TIMEOUT = 90  # seconds until the webserver serves the code location
ACTION_COLUMNS = [column.name for column in ACTION_SCHEMA.columns]
PLOTTED = "spend_vs_cap_pct"  # one of the cycle's numbers the Plots view must draw

if chromium_path() is None:
    if os.environ.get("META_ADS_REQUIRE_BROWSER") == "1":
        pytest.fail("META_ADS_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install -y chromium)", pytrace=False)
    pytestmark = pytest.mark.skip(reason="the browser test needs chromium (apt-get install -y chromium); .ci/run installs it")


def table_with_columns(columns: list[str], element: bool = False) -> str:
    """JS: the first <table> whose header row is exactly ``columns``, as {rows: [[cell text]]} (the
    element itself with ``element``), or null."""
    return f"""(() => {{
      const want = {json.dumps(columns)};
      for (const table of document.querySelectorAll('table')) {{
        if (!table.rows.length) continue;
        const head = [...table.rows[0].cells].map(cell => cell.textContent.trim());
        if (JSON.stringify(head) !== JSON.stringify(want)) continue;
        if ({json.dumps(element)}) return table;
        return {{rows: [...table.rows].slice(1).map(row => [...row.cells].map(cell => cell.textContent.trim()))}};
      }}
      return null;
    }})()"""


def drawn_plot(key: str) -> str:
    """JS: the canvas of the plot titled ``key``, as {{width, height, painted}} when it has painted
    pixels, else null."""
    return f"""(() => {{
      const title = [...document.querySelectorAll('body *')].find(e => e.children.length === 0 && e.textContent.trim() === {json.dumps(key)});
      let box = title;
      while (box && !box.querySelector('canvas')) box = box.parentElement;
      if (!box) return null;
      const canvas = box.querySelector('canvas');
      if (!canvas.width || !canvas.height) return null;
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
      return painted ? {{width: canvas.width, height: canvas.height, painted}} : null;
    }})()"""


def click_button(label: str) -> str:
    """JS: click the first <button> labelled ``label``; whether there was one."""
    return f"""(() => {{
      const button = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === {json.dumps(label)});
      if (button) button.click();
      return Boolean(button);
    }})()"""


def page_text_contains(text: str) -> str:
    return f"document.body && document.body.innerText.includes({json.dumps(text)})"


def settle_and_screenshot(page, path: Path, scroll_to: str | None = None) -> None:
    """A screenshot once the page's last loading placeholders had a moment to fill in (after what
    it must show was found: this wait asserts nothing), with ``scroll_to``'s element at the top."""
    if scroll_to:
        page.evaluate(f"(() => {{ const e = {scroll_to}; if (e) e.scrollIntoView({{block: 'start'}}); return Boolean(e); }})()")
    time.sleep(2)
    page.screenshot(path)


def wait_serving(port: int, server) -> None:
    """Until the webserver answers GraphQL with the code location loaded (bounded)."""
    query = "{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name } } } }"
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {server.popen.returncode}\n{server.tail()}")
        try:
            answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10).json()
            if answer.get("data", {}).get("repositoriesOrError", {}).get("nodes"):
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not serve the code location within {SERVE_TIMEOUT} s\n{server.tail()}")


@pytest.fixture
def two_cycles(tmp_path, monkeypatch):
    """A fresh DAGSTER_HOME (the first-run dialog off) with two stub cycles of the living demo;
    the environment the webserver gets."""
    monkeypatch.delenv("META_STUB_DEMO")  # the living demo: what a person sees, moving between cycles
    home = Path(os.environ["DAGSTER_HOME"])  # conftest: a fresh folder
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _ in range(2):
        done = subprocess.run([str(BIN / "meta-ads"), "cycle"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    return env


def test_the_asset_and_run_pages_show_the_action_table_and_plots(two_cycles, tmp_path):
    instance = DagsterInstance.get()
    run_id = instance.get_latest_materialization_event(AssetKey("optimization_cycle")).run_id
    # The actions the second cycle logged (one "action {...}" line each), whatever its metadata holds.
    logged = [entry.user_message for entry in instance.all_logs(run_id) if entry.user_message.startswith("action {")]
    expected_ids = sorted(json.loads(message.removeprefix("action "))["action_id"] for message in logged)
    assert expected_ids, "the second cycle proposed nothing: the table would have no rows to look for"
    assert len(instance.get_run_records()) == 2

    port = _free_port()
    server = _start("dagster-webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", "meta_ads_dagster"],
                    two_cycles, tmp_path, port)
    try:
        wait_serving(port, server)
        ui = f"http://127.0.0.1:{port}"
        with headless_chromium(tmp_path / "chromium-profile", tmp_path / "chromium.log", width=1920, height=1080) as page:
            # The asset page: the latest cycle's actions as a table, every action by id, no "nan".
            page.goto(f"{ui}/assets/optimization_cycle")
            table = page.wait_for(table_with_columns(ACTION_COLUMNS), PAGE_TIMEOUT, "the action table on the optimization_cycle page")
            assert sorted(row[0] for row in table["rows"]) == expected_ids
            cells = [cell for row in table["rows"] for cell in row]
            assert not {"nan", "None", "null", "NaN"} & set(cells), cells

            # Its Plots view over the account's materializations: the numbers drawn, one canvas each.
            assert page.evaluate(click_button("Plots")), "no Plots button in the asset page's metadata"
            assert page.wait_for(click_button("Events"), PAGE_TIMEOUT, "the Events axis of the Plots view")
            plot = page.wait_for(drawn_plot(PLOTTED), PAGE_TIMEOUT, f"the {PLOTTED} plot")
            assert plot["painted"] > 0
            settle_and_screenshot(page, ARTIFACTS / "optimization_cycle-plots.png")

            # The Events tab, full width: the latest materialization's table (the README's picture).
            page.goto(f"{ui}/assets/optimization_cycle?view=events")
            table = page.wait_for(table_with_columns(ACTION_COLUMNS), PAGE_TIMEOUT, "the action table on the Events tab")
            assert sorted(row[0] for row in table["rows"]) == expected_ids
            settle_and_screenshot(page, ARTIFACTS / "optimization_cycle-actions.png", scroll_to=table_with_columns(ACTION_COLUMNS, element=True))

            # The same probes fail where the table is not: the collection's insights page.
            page.goto(f"{ui}/assets/insights")
            page.wait_for(page_text_contains("spend_7d"), PAGE_TIMEOUT, "the insights page's metadata")
            assert page.holds_for(table_with_columns(ACTION_COLUMNS), 3), "an action table on a page that has none"
            assert page.evaluate(drawn_plot(PLOTTED)) is None

            # The run page of the second cycle: its finalize step's materialization carries the table.
            page.goto(f"{ui}/runs/{run_id}?logs=step%3Aoptimization_cycle.finalize")
            page.wait_for(page_text_contains("Materialized value optimization_cycle"), PAGE_TIMEOUT, "the run's materialization event")
            table = page.wait_for(table_with_columns(ACTION_COLUMNS), PAGE_TIMEOUT, "the action table in the run's event log")
            assert sorted(row[0] for row in table["rows"]) == expected_ids
            assert page.evaluate(page_text_contains("Success"))
            settle_and_screenshot(page, ARTIFACTS / "run-page.png")
    finally:
        server.stop()
