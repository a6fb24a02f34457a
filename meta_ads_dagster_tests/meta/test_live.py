"""LiveMetaAdsClient: the real facebook-business SDK over real HTTP against the fake Graph server.

Time is a fake clock: backoff and usage pauses are recorded, never waited for. The only real waits
are the client's 1 s request timeout in the timeout tests.
"""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from meta_ads_dagster.cycle import steps
from meta_ads_dagster.engine.cycle import plan_cycle, plan_document
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.meta.client import Write
from meta_ads_dagster.meta.execution import execute_actions
from meta_ads_dagster.meta.live import LiveMetaAdsClient, MetaApiError, MetaAuthError, MetaTransientError, parse_usage
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.store.ledger import Ledger

from ..engine.factories import make_action
from ..repo_files import SEED_SNAPSHOT_PATH
from .fake_graph import DEFAULT_HTML_502, FakeGraphServer

TOKEN = "EAAB-live-token-0123456789"
SECRET = "app-secret-live"
SEED = json.loads(SEED_SNAPSHOT_PATH.read_text())
ACCOUNT = SEED["account"]["id"]


class FakeClock:
    """time() and sleep() for the client: sleeping advances the clock and is recorded."""

    def __init__(self, start: str):
        self.now = pd.Timestamp(start).timestamp()
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server():
    with FakeGraphServer(SEED, page_size=2, hang_seconds=5, access_token=TOKEN, app_secret=SECRET) as srv:
        yield srv
        assert srv.internal_errors == []


@pytest.fixture
def clock():
    return FakeClock(SEED["as_of"])


def make_client(server: FakeGraphServer, clock: FakeClock, **options) -> LiveMetaAdsClient:
    client = LiveMetaAdsClient(
        access_token=TOKEN, app_id="1234", app_secret=SECRET, account_id=ACCOUNT, graph_url=server.url,
        request_timeout_seconds=1.0, **options,
    )
    return client.use_clock(clock.sleep, clock.time)


def budget_posts(server: FakeGraphServer, object_id: str) -> list[dict]:
    return [r for r in server.find("POST", f"/{object_id}") if "daily_budget" in r["params"]]


# --- the same account through stub and live ---------------------------------------------------------
@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_live_snapshot_gives_the_same_plan_as_the_stub(server, clock, mode):
    live = parse_snapshot(make_client(server, clock).fetch_snapshot())
    settings = load_settings(meta_auto_mode=mode)
    assert plan_document(live, settings) == plan_document(parse_snapshot(SEED), settings)


def test_live_and_stub_send_the_same_writes_in_minor_units(server, clock, tmp_path):
    client = make_client(server, clock)
    actions, _ = plan_cycle(parse_snapshot(client.fetch_snapshot()), load_settings(meta_auto_mode="auto"))
    stub = StubMetaAdsClient(state_dir=str(tmp_path), snapshot_path=str(SEED_SNAPSHOT_PATH))

    live_result, _ = execute_actions(actions, client, lambda outcome: None)
    stub_result, _ = execute_actions(actions, stub, lambda outcome: None)

    assert live_result["verdict"].tolist() == stub_result["verdict"].tolist()
    assert (live_result["verdict"] == "executed").sum() == 2
    # At the HTTP level: Black Friday's budget 500.00 → 550.00 USD is "55000" cents; Variant B paused.
    assert [r["params"]["daily_budget"] for r in budget_posts(server, "100001")] == ["55000"]
    assert [r["params"]["status"] for r in server.find("POST", "/100013")] == ["PAUSED"]
    assert {(w["method"], w.get("entity_id"), w.get("daily_budget")) for w in stub.writes if w["method"] != "sync_insights"} == {
        ("update_budget", "100001", "55000"), ("pause", "100013", None),
    }
    # Both writes went out in one Graph batch.
    assert len(server.find("POST", "/", batch_items=False)) == 1


def test_insights_are_one_async_report_over_28_days_with_pinned_attribution(server, clock):
    make_client(server, clock).fetch_snapshot()
    (run,) = server.report_runs
    params = run["params"]
    assert params["level"] == "ad" and str(params["time_increment"]) == "1" and params["breakdowns"] == ["country"]
    assert params["time_range"] == {"since": "2026-10-29", "until": "2026-11-25"}  # 28 days up to as_of
    assert params["action_attribution_windows"] == ["7d_click", "1d_view"]
    assert run["polls"] >= 2  # polled through its states until "Job Completed"


# --- faults on reads: retried and succeeded ----------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("rate_limit", {"code": 17, "regain_minutes": 2}),
        ("rate_limit", {"code": 80004, "regain_minutes": 1}),
        ("server_error", {}),
        ("server_error", {"body": {"data": []}}),  # a 500 the SDK would take for a success
        ("html_502", {}),
        ("drop", {}),
        ("timeout", {"seconds": 3}),
    ],
)
def test_transient_read_faults_are_retried(server, clock, kind, options):
    server.inject(kind, match="/act_2001/campaigns", **options)
    client = make_client(server, clock)
    assert client.request_counts() == {"api_calls": 0, "api_errors": 0, "api_retries": 0}
    document = client.fetch_snapshot()
    assert [c["id"] for c in document["campaigns"]] == [c["id"] for c in SEED["campaigns"]]
    assert len(clock.sleeps) >= 1
    assert client.request_counts()["api_errors"] == client.request_counts()["api_retries"] == 1
    if kind == "rate_limit":
        assert max(clock.sleeps) >= 60 * options["regain_minutes"]  # Meta's estimate honoured


def test_retries_are_bounded_with_exponential_backoff(server, clock):
    server.inject("server_error", match="/act_2001/campaigns", times=None)
    client = make_client(server, clock, max_tries=4, base_delay_seconds=1.0)
    with pytest.raises(MetaTransientError):
        client.fetch_snapshot()
    # What the account_snapshot asset plots: the 4 failed tries of the last call, 3 of them retries.
    counts = client.request_counts()
    assert counts["api_errors"] == 4 and counts["api_retries"] == 3 and counts["api_calls"] == client.api.calls >= 4
    backoffs = clock.sleeps[-3:]
    assert len(server.find("GET", "/act_2001/campaigns")) == 4
    # Delays 1, 2, 4 s, each with ±50 % jitter.
    for attempt, delay in enumerate(backoffs):
        assert 0.5 * 2**attempt <= delay <= 1.5 * 2**attempt


def test_high_usage_pauses_before_the_next_call(server, clock):
    server.set_usage(95, regain_minutes=3)
    start = clock.now
    client = make_client(server, clock)
    client.fetch_snapshot()
    assert clock.sleeps[0] == 180  # after the first response, before the second call
    # Every call after the first waited Meta's estimate (3 minutes) since the one before.
    assert clock.now - start >= 180 * (client.api.calls - 1)


def test_usage_headers_are_parsed():
    headers = {
        "x-app-usage": json.dumps({"call_count": 12, "total_cputime": 40, "total_time": 91}),
        "x-ad-account-usage": json.dumps({"acc_id_util_pct": 20, "reset_time_duration": 0}),
        "x-business-use-case-usage": json.dumps({"1": [{"type": "ads_management", "call_count": 5, "estimated_time_to_regain_access": 4}]}),
    }
    usage = parse_usage(headers)
    assert usage.pct == 91 and usage.regain_seconds == 240


def test_an_invalid_token_stops_the_cycle_before_any_write(server, clock):
    server.inject("token", match=None, times=None)
    with pytest.raises(MetaAuthError, match="190"):
        make_client(server, clock).fetch_snapshot()
    assert len(server.requests) == 1 and server.find("POST") == []  # stopped at the first answer


# --- faults on writes ---------------------------------------------------------------------------------
def _budget_writes(n: int, start: int = 100001) -> list[Write]:
    """n budget raises on the seed's campaigns (repeating ids is fine for counting calls)."""
    ids = ["100001", "100005"]
    return [Write(f"a{i}", "scale_up", "campaign", ids[i % 2], new_budget_minor=50000 + i) for i in range(n)]


def test_a_permanent_item_error_fails_that_action_only(server, clock):
    server.inject("batch_item", index=0, code=100, message="Invalid parameter")
    outcomes = make_client(server, clock).apply_writes(_budget_writes(3))
    assert [o.status for o in outcomes] == ["failed", "executed", "executed"]
    assert "Meta error 100" in outcomes[0].error and "Invalid parameter" in outcomes[0].error


def test_a_transient_item_error_is_retried_and_applied_once(server, clock):
    server.inject("batch_item", index=1, code=2, status=500)
    outcomes = make_client(server, clock).apply_writes(_budget_writes(3))
    assert [o.status for o in outcomes] == ["executed"] * 3
    attempts = [r for r in server.find("POST", "/100005") if r["params"].get("daily_budget") == "50001"]
    assert [r["applied"] for r in attempts] == [False, True]


def test_a_write_timeout_is_unknown_and_never_resent(server, clock):
    server.inject("timeout", match=lambda method, path, params: method == "POST" and path == "/", seconds=3)
    outcomes = make_client(server, clock).apply_writes(_budget_writes(2))
    assert [o.status for o in outcomes] == ["unknown", "unknown"]
    assert len(server.find("POST", "/", batch_items=False)) == 1  # not re-sent
    assert server.document["campaigns"][0]["daily_budget"] == "50000"  # it did land: reconcile, never resend
    assert TOKEN not in outcomes[0].error


def test_writes_go_out_in_batches_of_at_most_50(server, clock):
    outcomes = make_client(server, clock).apply_writes(_budget_writes(120))
    assert all(o.status == "executed" for o in outcomes)
    envelopes = server.find("POST", "/", batch_items=False)
    assert [len(e["params"]["batch"]) for e in envelopes] == [50, 50, 20]


def test_an_ab_decision_is_never_left_half_done(server, clock):
    write = Write("ab", "publish_winner", "ad", "100011", loser_ad_ids=("100013", "100003"))
    server.inject("batch_item", index=2, code=100, message="Invalid parameter")  # the second loser
    (outcome,) = make_client(server, clock).apply_writes([write])
    assert outcome.status == "failed" and "set ACTIVE again" in outcome.error
    statuses = {ad["id"]: ad["status"] for ad in server.document["ads"]}
    assert statuses["100013"] == "ACTIVE" and statuses["100003"] == "ACTIVE"


def test_an_invalid_token_during_writes_fails_what_was_not_sent(server, clock):
    server.inject("token", match=lambda method, path, params: method == "POST")
    outcomes = make_client(server, clock).apply_writes(_budget_writes(3))
    assert {o.status for o in outcomes} == {"failed"} and all("190" in o.error for o in outcomes)
    assert all(TOKEN not in o.error for o in outcomes)


def test_missing_secrets_are_named(server, clock):
    client = LiveMetaAdsClient(access_token="", app_id="1234", app_secret=" ", account_id=ACCOUNT, graph_url=server.url)
    with pytest.raises(MetaAuthError, match="META_ACCESS_TOKEN, META_APP_SECRET"):
        client.fetch_snapshot()
    assert server.requests == []


@pytest.mark.parametrize("status", ["ACTIVE", "PAUSED"])
def test_a_creative_variant_is_a_copy_in_the_same_ad_set_with_the_asked_status(server, clock, status):
    (outcome,) = make_client(server, clock).apply_writes([Write("v", "create_variant", "ad", "100013", variant_status=status)])
    assert outcome.status == "executed" and outcome.result["status"] == status
    new_id = outcome.result["new_ad_id"]
    ads = {ad["id"]: ad for ad in server.document["ads"]}
    assert ads[new_id]["status"] == status and ads[new_id]["adset_id"] == ads["100013"]["adset_id"]
    assert [r["params"]["status_option"] for r in server.find("POST", "/100013/copies")] == [status]


def test_a_client_bound_to_another_account_reads_that_account_with_nothing_cached(server, clock):
    """The location-wide client serves every account's runs: binding keeps the connection settings
    and starts with nothing the first account's run read (its insights, its account info)."""
    client = make_client(server, clock)
    client.sync_insights()
    other = client.for_account("act_3003")
    assert other is not client and other.account_id == "act_3003"
    assert (other.access_token, other.app_id, other.graph_url, other.request_timeout_seconds) == (TOKEN, "1234", server.url, 1.0)
    assert other._insights is None and other._account is None
    with pytest.raises(MetaApiError):  # the fake server holds one account: act_3003 is unknown to it
        other.fetch_snapshot()
    assert server.find("GET", "/act_3003"), "the bound client asked Graph for its own account"
    assert client.for_account(ACCOUNT) is client


# --- writes that must never be applied twice ---------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "options", "times"),
    [("server_error", {}, 1), ("rate_limit", {"code": 17}, 2), ("html_502", {"status": 200}, 1), ("timeout", {"seconds": 3}, 1)],
    ids=["500-after-the-copy", "code-17-twice", "html-200", "timeout"],
)
def test_a_creative_copy_is_sent_once_and_an_ambiguous_answer_is_unknown(server, clock, kind, options, times):
    """Issue 11 #1: POST /{ad_id}/copies is not idempotent. A 500 after Meta applied it was retried
    (2 copies), code 17 twice gave 3 copies. An answer that leaves the outcome open is unknown."""
    server.inject(kind, match="/100013/copies", times=times, **({"apply": True} if kind != "timeout" else {}), **options)
    (outcome,) = make_client(server, clock).apply_writes([Write("v", "create_variant", "ad", "100013")])
    assert outcome.status == "unknown", outcome
    assert len(server.find("POST", "/100013/copies")) == 1  # sent once, never again
    assert len(server.document["ads"]) == len(SEED["ads"]) + 1  # one copy, as Meta applied it
    assert TOKEN not in outcome.error


def test_a_permanent_error_on_a_copy_fails_it(server, clock):
    server.inject("permanent", match="/100013/copies", code=100)
    (outcome,) = make_client(server, clock).apply_writes([Write("v", "create_variant", "ad", "100013")])
    assert outcome.status == "failed" and "Meta error 100" in outcome.error
    assert len(server.document["ads"]) == len(SEED["ads"])


# --- unparseable answers -------------------------------------------------------------------------------
def test_an_html_body_with_http_200_on_a_batch_leaves_its_writes_unknown(server, clock):
    """Issue 11 #4: the SDK parsed the HTML page as the batch's answer and crashed ('str' object
    has no attribute 'get'). The batch was sent and may have been applied: its writes are unknown."""
    server.inject("html_502", match=lambda method, path, params: method == "POST" and path == "/", status=200, apply=True)
    outcomes = make_client(server, clock).apply_writes(_budget_writes(3))
    assert [o.status for o in outcomes] == ["unknown"] * 3
    assert "unparseable" in outcomes[0].error
    assert len(server.find("POST", "/", batch_items=False)) == 1  # not re-sent


def test_a_batch_answer_of_the_wrong_shape_leaves_its_writes_unknown(server, clock):
    server.inject("server_error", match=lambda method, path, params: method == "POST" and path == "/", status=200, body={"data": []})
    outcomes = make_client(server, clock).apply_writes(_budget_writes(2))
    assert [o.status for o in outcomes] == ["unknown"] * 2
    assert len(server.find("POST", "/", batch_items=False)) == 1


def test_an_unparseable_batch_item_leaves_that_write_unknown(server, clock):
    server.inject("batch_item", index=1, status=200, body=DEFAULT_HTML_502, apply=True)
    outcomes = make_client(server, clock).apply_writes(_budget_writes(3))
    assert [o.status for o in outcomes] == ["executed", "unknown", "executed"]


def test_an_unparseable_read_is_retried(server, clock):
    server.inject("html_502", match="/act_2001/campaigns", status=200)
    document = make_client(server, clock).fetch_snapshot()
    assert [c["id"] for c in document["campaigns"]] == [c["id"] for c in SEED["campaigns"]]
    first, again = server.find("GET", "/act_2001/campaigns")[:2]
    assert (first["fault"], first["status"], again["fault"], again["params"].get("after")) == ("html_502", 200, None, None)
    assert len(clock.sleeps) == 3  # the report's two polls at 5 s, then one backoff before the same page again


# --- an unknown outcome, settled by the next cycle from the account --------------------------------
def _execute_into_ledger(ledger: Ledger, client: LiveMetaAdsClient, rows: list[dict], run_id: str) -> pd.DataFrame:
    """What the execute step does with ``rows`` (action rows, verdict executed): record, send, mark."""
    snapshot = parse_snapshot(client.fetch_snapshot())
    actions = pd.DataFrame([make_action(**row, verdict="executed", reasons=["test"]) for row in rows])
    ledger.record_cycle(actions, run_id, ACCOUNT, snapshot.as_of)
    done, _ = execute_actions(
        actions, client, lambda o: ledger.mark_outcome(run_id, o.action_id, snapshot.as_of, o.error, o.status, o.result)
    )
    return done


@pytest.mark.parametrize(("kind", "landed"), [("server_error", True), ("drop", False)], ids=["applied-then-500", "never-applied"])
def test_an_unknown_copy_is_found_by_the_next_cycle_from_its_source_ad(server, clock, tmp_path, kind, landed):
    """Issue 11 #1: the copy's outcome is unknown; the next cycle reads the account and settles it
    from the ads copied from the source ad since the write (``source_ad_id``, ``created_time``):
    done when the copy is there, failed when not. Never sent again either way."""
    server.inject(kind, match="/100013/copies", **({"apply": True} if landed else {}))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    client = make_client(server, clock)
    variant = {"id": "v1", "type": "create_variant", "entity_type": "ad", "entity_id": "100013", "rule": "creative_fatigue"}
    done = _execute_into_ledger(ledger, client, [variant], "run-1")
    assert done["verdict"].tolist() == ["failed"] and "outcome unknown" in done["reasons"].iloc[0][-1]
    assert ledger.cycle_actions("run-1")["status"].tolist() == ["unknown"]

    settled = steps.reconcile(ledger, client, parse_snapshot(client.fetch_snapshot()), load_settings(), "run-2", logging.getLogger(__name__))
    assert settled["landed"].tolist() == [landed]
    row = ledger.cycle_actions("run-1").iloc[0]
    copies = [ad["id"] for ad in server.document["ads"] if ad.get("source_ad_id") == "100013"]
    if landed:
        assert row["status"] == "done" and row["reasons"][-1].startswith(f"reconciled: landed (copy {copies[0]} created ")
    else:
        assert row["status"] == "failed" and row["reasons"][-1].startswith("reconciled: did not land (no copy of it created since")
    assert len(copies) == int(landed) and len(server.find("POST", "/100013/copies")) == 1
    ledger.dispose()


def test_an_html_answer_to_a_batch_is_reported_and_settled_next_cycle(server, clock, tmp_path):
    """Issue 11 #4 end to end: the execute step finishes, both writes are reported failed with the
    outcome unknown; the next cycle finds them landed."""
    server.inject("html_502", match=lambda method, path, params: method == "POST" and path == "/", status=200, apply=True)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    client = make_client(server, clock)
    raises = [
        {"id": f"r{i}", "entity_id": campaign, "current_budget_minor": 50000.0, "new_budget_minor": 55000.0 + i}
        for i, campaign in enumerate(("100001", "100005"))
    ]
    done = _execute_into_ledger(ledger, client, raises, "run-1")
    assert done["verdict"].tolist() == ["failed", "failed"]
    assert all(r[-1].startswith("outcome unknown: unparseable answer (HTTP 200)") for r in done["reasons"])
    assert ledger.cycle_actions("run-1")["status"].tolist() == ["unknown", "unknown"]

    steps.reconcile(ledger, client, parse_snapshot(client.fetch_snapshot()), load_settings(), "run-2", logging.getLogger(__name__))
    assert ledger.cycle_actions("run-1")["status"].tolist() == ["done", "done"]
    ledger.dispose()


def test_the_sdk_s_crash_reporter_is_never_switched_on(server, clock):
    """The SDK's ``init`` with its crash log on (its default) would install a global excepthook that
    posts tracebacks (with the access token in them) to Meta; the live client builds its session
    without ``init``, so neither the excepthook nor a default API is set."""
    import sys

    from facebook_business.api import FacebookAdsApi

    hook = sys.excepthook
    client = make_client(server, clock)
    client.sync_insights()
    client.fetch_snapshot()
    client.apply_writes([Write("a1", "pause", "ad", SEED["ads"][0]["id"])])
    assert sys.excepthook is hook
    assert FacebookAdsApi.get_default_api() is None
