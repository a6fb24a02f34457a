"""A whole live cycle through Dagster against the fake Graph server, and the token-leak proof.

The issue: "The token never appears in logs, run config, event metadata, exceptions or the action
ledger (test it: run a live cycle against the fake server and grep every captured output for the
token)". Here the production definitions (``build_definitions`` from the environment, secrets as
``dagster.EnvVar``) run the ``meta_ads_cycle`` job in live mode against :class:`FakeGraphServer`
over real HTTP; then every output the run left anywhere is collected and searched for the token,
the appsecret_proof derived from it and the app secret. The server must have received the token
(so the search cannot pass vacuously), and faults make the client build error messages on the way:
a rate limit on one read (retried) and a permanent error on one write whose message from "Meta"
echoes the token and the proof, as real Graph error messages sometimes echo the request.

The live client uses the real clock, so the seed document is served with its dates shifted to now
(:func:`shift_document`).

Logs are captured at DEBUG (caplog), so urllib3's request-URL lines are searched too: the SDK
sends the token in every query string, and the live client redacts those lines.

The production wiring runs unchanged (resources from ``build_resources``, the client's real clock
and default timings), so the real waiting is kept small by the server instead: the insights report
is complete at its first poll (no 5 s poll interval), and the rate-limited read carries a 0-minute
regain estimate, so its one retry waits the client's 1 s base delay (±50 % jitter) only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import time
import traceback
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance
from dagster._core.definitions import policy as dagster_policy

from meta_ads_dagster.definitions import build_definitions
from meta_ads_dagster.jobs import CYCLE_JOB_NAME
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store.ledger import actions_table

from ..meta.fake_graph import FakeGraphServer
from ..repo_files import SEED_SNAPSHOT_PATH

SEED = json.loads(SEED_SNAPSHOT_PATH.read_text())
ACCOUNT = SEED["account"]["id"]  # act_2001
TOKEN = "EAAGleakCanaryTOKEN7f3a9c1e5b2d4086ZQx"  # URL-safe: it travels unencoded in every form
APP_ID = "987654321012345"
APP_SECRET = "appsecret-canary-5e1f0b7d9a"
PROOF = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
SECRETS = {"access token": TOKEN, "appsecret_proof": PROOF, "app secret": APP_SECRET}

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\S+")


def shift_document(document: dict, now: datetime) -> dict:
    """A copy of a snapshot document moved in time so that its ``as_of`` is ``now``.

    Every datetime string (``as_of``, ``created_time``, ``started_at``, ``executed_at``, ...) moves
    by the same delta, ``now - as_of``; every date string (insights' ``date_start``/``date_stop``)
    by the whole number of days between the old and the new ``as_of`` dates in the account's time
    zone. Ages stay exact and every insights row keeps its distance in days to "today".
    """
    old = datetime.fromisoformat(document["as_of"])
    zone = ZoneInfo(document["account"].get("timezone_name") or "UTC")
    delta = now - old
    days = now.astimezone(zone).date() - old.astimezone(zone).date()

    def shift(value):
        if isinstance(value, dict):
            return {key: shift(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shift(item) for item in value]
        if isinstance(value, str):
            if _DATE.fullmatch(value):
                return (date.fromisoformat(value) + days).isoformat()
            if _DATETIME.fullmatch(value):
                return (datetime.fromisoformat(value) + delta).isoformat()
        return value

    return shift(document)


def test_shift_document_moves_every_date_by_the_same_delta():
    now = datetime(2026, 12, 3, 1, 15, tzinfo=timezone.utc)
    shifted = shift_document(SEED, now)
    assert shifted["as_of"] == now.isoformat()
    delta = now - datetime.fromisoformat(SEED["as_of"])
    for kind in ("campaigns", "adsets", "ads"):
        for old, new in zip(SEED[kind], shifted[kind]):
            assert datetime.fromisoformat(new["created_time"]) - datetime.fromisoformat(old["created_time"]) == delta
            assert {k: v for k, v in new.items() if k != "created_time"} == {k: v for k, v in old.items() if k != "created_time"}
    last_day = max(row["date_start"] for row in shifted["insights"])
    assert last_day == "2026-12-03"  # the seed's "today" (2026-11-25) is now's date
    assert all(row["date_start"] == row["date_stop"] for row in shifted["insights"])
    assert [row["spend"] for row in shifted["insights"]] == [row["spend"] for row in SEED["insights"]]


def _now_clear_of_midnight() -> datetime:
    """Now, but never within a minute of the account's midnight: the served document's "today"
    and the client's (read from the real clock moments later) must be the same day."""
    zone = ZoneInfo(SEED["account"]["timezone_name"])
    local = datetime.now(zone)
    to_midnight = (datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone) - local).total_seconds()
    if to_midnight < 60:
        time.sleep(to_midnight + 1)
    return datetime.now(timezone.utc)


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture
def server():
    document = shift_document(SEED, _now_clear_of_midnight())
    # The insights report is done at the first poll: the production client waits a real 5 s
    # (report_poll_seconds) after each poll that finds it still running.
    done_at_once = [("Job Completed", 100)]
    with FakeGraphServer(document, page_size=2, access_token=TOKEN, app_secret=APP_SECRET, report_status_sequence=done_at_once) as srv:
        yield srv
        assert srv.internal_errors == []


@pytest.fixture
def live_env(monkeypatch, tmp_path, server) -> str:
    """The live configuration, all from the environment as in production; returns the ledger URL."""
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    for name, value in {
        "META_API_MODE": "live",
        "META_AUTO_MODE": "auto",
        "META_AD_ACCOUNT_IDS": ACCOUNT,
        "META_GRAPH_URL": server.url,
        "META_ACCESS_TOKEN": TOKEN,
        "META_APP_ID": APP_ID,
        "META_APP_SECRET": APP_SECRET,
        "META_ADS_DATABASE_URL": ledger_url,
    }.items():
        monkeypatch.setenv(name, value)
    return ledger_url


@pytest.fixture
def instance():
    """A persistent instance in the conftest's DAGSTER_HOME (tmp_path): event log, run storage and
    the filesystem IO manager's pickles are files there, searched like everything else."""
    with DagsterInstance.get() as inst:
        assert not inst.is_ephemeral
        yield inst


# --- collecting everything a run left behind ------------------------------------------------------
def _run_outputs(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """Every text the run produced inside Dagster: events, messages, metadata, config, tags."""
    outputs: dict[str, str] = {}
    run = instance.get_run_by_id(run_id)
    outputs["run_config"] = json.dumps(run.run_config, default=repr, sort_keys=True) + repr(run.run_config)
    outputs["run_tags"] = repr(run.tags)
    outputs["run_record"] = repr(run)
    for i, entry in enumerate(instance.all_logs(run_id)):
        parts = [str(entry), repr(entry), entry.user_message or "", entry.message or ""]
        event = entry.dagster_event
        if event is not None:
            parts.append(repr(event.event_specific_data))
            parts.append(event.message or "")
            materialization = event.step_materialization_data.materialization if event.is_step_materialization else None
            if materialization is not None:
                parts.append(repr(materialization.metadata))
                parts += [str(value.value) for value in materialization.metadata.values()]
            if event.is_step_failure:
                parts.append(repr(event.step_failure_data.error))
            metadata = getattr(event.event_specific_data, "metadata", None)  # check results, outputs
            if metadata:
                parts.append(repr(metadata))
                parts += [str(getattr(value, "value", value)) for value in metadata.values()]
        outputs[f"event[{i}] {event.event_type_value if event else 'log'}"] = "\n".join(parts)
    return outputs


def _ledger_rows(url: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(sa.select(actions_table)).mappings()]
    finally:
        engine.dispose()


def _files(*roots: Path) -> dict[str, bytes]:
    """Every file under the roots, as bytes (SQLite event logs, run storage, IO-manager pickles)."""
    found: dict[str, bytes] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def _assert_no_secret(texts: dict[str, str], files: dict[str, bytes]) -> None:
    leaks = [
        f"{what} in {where}"
        for what, secret in SECRETS.items()
        for where, text in texts.items()
        if secret in text
    ] + [
        f"{what} in file {where}"
        for what, secret in SECRETS.items()
        for where, data in files.items()
        if secret.encode() in data
    ]
    assert leaks == [], "\n".join(leaks)


def _assert_server_got_the_token(server: FakeGraphServer) -> None:
    top_level = server.find(batch_items=False)
    assert top_level, "the fake server received nothing"
    assert all(r["params"].get("access_token") == TOKEN for r in top_level)
    assert all(r["params"].get("appsecret_proof") == PROOF for r in top_level)


def _execute(instance: DagsterInstance, raise_on_error: bool = False):
    defs = build_definitions(load_settings())  # production wiring, from the environment
    job = defs.get_job_def(CYCLE_JOB_NAME)
    (account,) = job.partitions_def.get_partition_keys()  # META_AD_ACCOUNT_IDS: the fake server's one account
    return job.execute_in_process(instance=instance, partition_key=account, raise_on_error=raise_on_error)


# --- the tests -------------------------------------------------------------------------------------
def test_a_live_cycle_leaks_the_token_nowhere(live_env, server, instance, capfd, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    # A rate limit on one read: retried after Meta's estimate (0 min here) and the client's backoff.
    server.inject("rate_limit", match="/act_2001/campaigns", code=17, regain_minutes=0, reset_seconds=0)
    # A permanent error on one write, inside the batch, whose message echoes the request's secrets.
    server.inject(
        "permanent",
        match=lambda method, path, params: method == "POST" and path == "/100013",
        code=100,
        message=f"(#100) Invalid parameter: status cannot be changed (request: access_token={TOKEN}&appsecret_proof={PROOF})",
    )

    result = _execute(instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    # The read's requests, as account_snapshot's plotted metadata: the rate limit was one error, one retry.
    read = instance.get_latest_materialization_event(AssetKey("account_snapshot")).asset_materialization.metadata
    assert (read["api_errors"].value, read["api_retries"].value) == (1, 1) and read["api_calls"].value > 2

    # Everything the run left anywhere, searched before anything else is asserted.
    captured = capfd.readouterr()
    ledger_rows = _ledger_rows(live_env)
    actions = result.output_for_node("optimization_cycle")
    texts = _run_outputs(instance, result.run_id)
    texts["stdout"], texts["stderr"] = captured.out, captured.err
    texts["caplog"] = caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    texts["ledger"] = "\n".join(str(row) for row in ledger_rows)
    texts["result events"] = "\n".join(str(e) for e in result.all_events)
    texts["cycle output"] = actions.to_string() + repr(actions.to_dict())
    files = _files(tmp_path)  # DAGSTER_HOME (instance storage, IO-manager pickles) and the ledger file
    _assert_no_secret(texts, files)
    # ... and the search had something to find: the token went out, error texts were recorded,
    # urllib3 logged every request URL at DEBUG (redacted), the pickles were read.
    _assert_server_got_the_token(server)
    assert "access_token=***" in caplog.text
    assert "Meta error 100" in texts["ledger"] and any("Meta error 100" in t for k, t in texts.items() if k.startswith("event"))
    assert Path(os.environ["DAGSTER_HOME"]).is_relative_to(tmp_path)
    assert any(name.endswith(os.path.join("storage", "optimization_cycle", "act_2001")) for name in files)
    assert any(name.endswith("ledger.sqlite") for name in files)

    # The cycle did real work, live.
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["meta/mode"] == "live" and run.tags["meta/auto_mode"] == "auto"
    # Rate-limited, retried, then the second page (page_size=2, 3 campaigns).
    assert [r["fault"] for r in server.find("GET", "/act_2001/campaigns")] == ["rate_limit", None, None]
    assert len(server.report_runs) == 1  # one async insights job
    budget_items = [r for r in server.find("POST", "/100001") if "daily_budget" in r["params"]]
    assert [(r["params"]["daily_budget"], r["applied"]) for r in budget_items] == [("55000", True)]  # $550.00 in cents
    assert {c["id"]: c["daily_budget"] for c in server.document["campaigns"]}["100001"] == "55000"
    pause_items = server.find("POST", "/100013")
    assert [(r["params"]["status"], r["fault"], r["applied"]) for r in pause_items] == [("PAUSED", "permanent", False)]
    assert {a["id"]: a["status"] for a in server.document["ads"]}["100013"] == "ACTIVE"
    assert len(server.find("POST", "/", batch_items=False)) == 1  # both writes in one Graph batch

    by_entity = actions.set_index("entity_id")
    assert by_entity.loc["100001", "verdict"] == "executed" and int(by_entity.loc["100001", "new_budget_minor"]) == 55000
    assert by_entity.loc["100013", "verdict"] == "failed"
    failure_reason = next(r for r in by_entity.loc["100013", "reasons"] if r.startswith("write failed"))
    assert "Meta error 100" in failure_reason and "Invalid parameter" in failure_reason and "access_token=***" in failure_reason

    ledger = {row["entity_id"]: row for row in ledger_rows}
    assert (ledger["100001"]["verdict"], ledger["100001"]["status"]) == ("executed", "done")
    assert (ledger["100013"]["verdict"], ledger["100013"]["status"]) == ("failed", "failed")
    assert "Meta error 100" in ledger["100013"]["error_message"]


def test_an_invalid_token_fails_the_run_before_any_write(live_env, server, instance, capfd, caplog, tmp_path, monkeypatch):
    caplog.set_level(logging.DEBUG)
    server.inject("token", match=None, times=None)
    # account_snapshot's RetryPolicy (delay 2 s, exponential) retries even an auth error: do not
    # wait those delays for real (the attempts themselves still happen).
    monkeypatch.setattr(dagster_policy, "calculate_delay", lambda **kwargs: 0.0)

    with pytest.raises(Exception) as raised:  # noqa: PT011 - whatever Dagster re-raises is searched
        _execute(instance, raise_on_error=True)
    (run,) = instance.get_runs()
    assert run.is_failure
    failures = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_step_failure]
    assert [e.step_key for e in failures] == ["account_snapshot"]
    error = failures[0].step_failure_data.error

    # Everything the failed run left anywhere, the exception Dagster raised included.
    captured = capfd.readouterr()
    texts = _run_outputs(instance, run.run_id)
    texts["stdout"], texts["stderr"] = captured.out, captured.err
    texts["caplog"] = caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    texts["failure"] = repr(error) + error.to_string()
    texts["raised"] = "".join(traceback.format_exception(raised.value)) + repr(raised.value) + repr(raised.value.__context__)
    _assert_no_secret(texts, _files(tmp_path))
    _assert_server_got_the_token(server)

    # The failure names the invalid token (Meta's code 190) without the token itself.
    message = error.message + "".join(c.message for c in _causes(error))
    assert "Meta error 190" in message and "access token" in message.lower()
    assert "Meta error 190" in texts["raised"]
    # Nothing after collection ran, and no write (nor the insights report) was ever sent.
    assert instance.get_run_stats(run.run_id).steps_succeeded == 0
    assert {(r["method"], r["path"]) for r in server.requests} == {("GET", "/act_2001")}
    assert [r for r in server.requests if r["method"] == "POST" and {"daily_budget", "status"} & set(r["params"])] == []
    assert server.report_runs == []
    assert _ledger_rows_or_none(live_env) in (None, [])


def _causes(error):
    while error is not None:
        error = error.cause or error.context
        if error is not None:
            yield error


def _ledger_rows_or_none(url: str):
    try:
        return _ledger_rows(url)
    except sa.exc.OperationalError:  # no table: the ledger was never opened
        return None
