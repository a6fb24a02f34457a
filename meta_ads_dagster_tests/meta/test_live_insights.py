"""Live mode reads the insights report into columns page by page (issue 14), and what it gives is
what the SDK's Cursor gave: the same frames, the same rows, the same requests, the same errors.

Each test reads one report run twice from the fake Graph server: the client's way
(``sync_insights`` and ``fetch_account``), and the way the client read it before, kept here as the
reference: the SDK's Cursor over the same run, a dict per row (``export_all_data``), the document
parsed whole. Pages the fake server would not send (odd paging, odd rows) are served verbatim by
its ``server_error`` fault with HTTP 200.
"""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from facebook_business.adobjects.adreportrun import AdReportRun

from meta_ads_dagster.engine.snapshot import AccountSnapshot, SnapshotError, parse_snapshot
from meta_ads_dagster.meta.live import InsightsReport, LiveMetaAdsClient

from .fake_graph import FakeGraphServer, _encode_cursor
from .test_live import SECRET, SEED, TOKEN, FakeClock, make_client

PAGE = 3  # the server's page size: the seed's 40 rows come in 14 pages


def serve(insights: list[dict]) -> FakeGraphServer:
    return FakeGraphServer({**copy.deepcopy(SEED), "insights": insights}, page_size=PAGE, access_token=TOKEN, app_secret=SECRET)


def rows(**changes: dict) -> list[dict]:
    """The seed's insights rows, row ``r<i>`` changed as given (a None value drops the field)."""
    result = copy.deepcopy(SEED["insights"])
    for key, change in changes.items():
        row = result[int(key[1:])]
        row.update(change)
        for field in [f for f, v in change.items() if v is None]:
            del row[field]
    return result


def report_reads(server: FakeGraphServer, run_id: str) -> list[dict]:
    return [{k: v for k, v in r["params"].items() if k not in ("access_token", "appsecret_proof")}
            for r in server.find("GET", f"/{run_id}/insights")]


def cursor_rows(client: LiveMetaAdsClient, run_id: str) -> list[dict]:
    """The report's rows as the client read them before: the SDK's Cursor, a dict per row."""
    return [row.export_all_data() for row in AdReportRun(run_id, api=client.api).get_insights(params={"limit": client.page_size})]


def assert_same(new: AccountSnapshot, old: AccountSnapshot) -> None:
    for name in ("as_of", "today", "account_id", "currency", "timezone_name", "minor_per_unit"):
        assert getattr(new, name) == getattr(old, name), name
    for name in ("campaigns", "adsets", "ads", "creatives", "insights", "ab_tests", "recent_actions"):
        pd.testing.assert_frame_equal(getattr(new, name), getattr(old, name), check_exact=True, obj=name)


def both_reads(server: FakeGraphServer, columns_expected: bool):
    """The client's read and the reference's of the same run, each an AccountSnapshot or the
    SnapshotError raised; on the way, both sent the same requests and got the same rows."""
    client = make_client(server, FakeClock(SEED["as_of"]))
    client.sync_insights()
    run_id = server.report_runs[-1]["id"]
    new_reads = report_reads(server, run_id)
    assert (client._insights.fields is not None) == columns_expected
    try:
        new = client.fetch_account()
    except SnapshotError as exc:
        new = exc
    server.reset_requests()
    document = {**client.fetch_snapshot(), "insights": cursor_rows(client, run_id)}
    assert report_reads(server, run_id) == new_reads  # the same requests: limit, then each page's cursor
    assert client.fetch_snapshot()["insights"] == document["insights"]  # the rows a parse gets, when it needs them
    try:
        old = parse_snapshot(document)
    except SnapshotError as exc:
        old = exc
    return new, old


def assert_same_outcome(server: FakeGraphServer, columns_expected: bool) -> AccountSnapshot | SnapshotError:
    new, old = both_reads(server, columns_expected)
    if isinstance(old, SnapshotError):
        assert isinstance(new, SnapshotError) and str(new) == str(old)
    else:
        assert_same(new, old)
    return new


# --- the columnar read: the same frames, no dict per row --------------------------------------------
@pytest.mark.parametrize(
    "insights",
    [
        pytest.param(rows(), id="seed-14-pages"),
        pytest.param(rows(
            r0={"actions": None}, r1={"action_values": None}, r2={"actions": None, "action_values": None},
            r5={"actions": [], "action_values": []},
            r6={"actions": [{"action_type": "link_click", "value": "40"}], "action_values": [{"action_type": "link_click", "value": "0.00"}]},
            r7={"actions": [{"action_type": "link_click", "value": "40"}, {"action_type": "purchase", "value": "7", "7d_click": "6", "1d_view": "1"}],
                "action_values": [{"action_type": "purchase", "value": "99.50", "7d_click": "90.00", "1d_view": "9.50"}]},
        ), id="missing-optional-fields-and-action-lists"),
        pytest.param([], id="no-rows"),
    ],
)
def test_the_columns_give_the_frames_the_cursor_s_rows_gave(insights, monkeypatch):
    with serve(insights) as server:
        monkeypatch.setattr(InsightsReport, "rows", lambda self, api: pytest.fail("a dict per row was made"))
        client = make_client(server, FakeClock(SEED["as_of"]))
        client.sync_insights()
        run_id = server.report_runs[-1]["id"]
        snapshot = client.fetch_account()
        assert len(report_reads(server, run_id)) == max(1, -(-len(insights) // PAGE))
        monkeypatch.undo()
        assert_same(snapshot, parse_snapshot({**client.fetch_snapshot(), "insights": cursor_rows(client, run_id)}))
        assert snapshot.insights["purchases"].sum() == sum(
            float(e["value"]) for r in insights for e in r.get("actions") or [] if e["action_type"] == "purchase")


def test_the_columns_are_read_again_for_each_fetch():
    with serve(rows()) as server:
        client = make_client(server, FakeClock(SEED["as_of"]))
        first = client.fetch_account()
        assert_same(client.fetch_account(), first)
        assert len(server.report_runs) == 1


# --- where the columns cannot vouch: the SDK's rows, today's message ---------------------------------
@pytest.mark.parametrize(
    ("insights", "message"),
    [
        (rows(r17={"spend": "64,29"}), "insights[17].spend: must be a finite number"),
        (rows(r20={"impressions": "12", "clicks": "40"}), "insights[20] (id 100007).clicks: 40 clicks exceed 12 impressions"),
        (rows(r9={"actions": [{"action_type": "purchase", "value": "2"}, {"action_type": "purchase", "value": "3"}]}),
         "insights[9].actions[1].action_type: a second purchase entry"),
        (rows(r31={"action_values": [{"action_type": "purchase", "value": "1e3"}]}), "insights[31].action_values[0].value: must be a finite number"),
        (rows(r4={"actions": [{"action_type": "purchase"}]}), "insights[4].actions[0]: needs action_type and value"),
        (rows(r38={"country": "es"}), "insights[38].country: must be a two-letter country code"),
        (rows(r12={"date_stop": "2026-11-21"}), "insights[12].date_stop: insights must be daily"),
        (rows(r3={"ad_id": None}), "insights[3].ad_id: Field required"),
        (rows(r26={"ad_id": "999"}), "insights[26] (id 999).ad_id: ad 999 does not exist"),
    ],
    ids=["spend", "clicks-over-impressions", "two-purchases", "purchase-value", "entry-without-value", "country",
         "not-daily", "no-ad-id", "unknown-ad"],
)
def test_a_bad_value_is_rejected_with_today_s_message(insights, message):
    with serve(insights) as server:
        new = assert_same_outcome(server, columns_expected=True)
        assert isinstance(new, SnapshotError) and message in str(new)


def test_values_of_another_json_type_are_read_from_the_sdk_s_rows():
    """A count as a JSON number: pyarrow's reader refuses it, the parser takes it (and the SDK
    keeps it a number): the whole report is the SDK's rows, and the frames are today's."""
    with serve(rows(r22={"impressions": 2142, "clicks": 42})) as server:
        assert isinstance(assert_same_outcome(server, columns_expected=False), AccountSnapshot)


# --- pages the fake server would not send -------------------------------------------------------------
def page_after(index: int | None):
    """Matches the request for the page after row ``index`` (its cursor; None: the first page), in both reads."""
    cursor = None if index is None else _encode_cursor(index)
    return lambda method, path, params: method == "GET" and path.endswith("/insights") and params.get("after") == cursor


def page(first: int, count: int, *, last: bool = False, data: list | None = None, next_link: str | None = "more") -> str:
    """The page of ``count`` rows from row ``first`` (or ``data``), leading on to the next rows."""
    body: dict = {"data": data if data is not None else copy.deepcopy(SEED["insights"][first:first + count])}
    if not last:
        body["paging"] = {"cursors": {"before": _encode_cursor(first), "after": _encode_cursor(first + count - 1)}, "next": next_link}
    return json.dumps(body)


@pytest.mark.parametrize(
    ("body", "columns_expected"),
    [
        # An empty first page does not end the Cursor's read (its first page is read before it iterates).
        pytest.param((None, page(0, 3, data=[])), True, id="empty-first-page-reads-on"),
        # An empty page after the first ends the Cursor's read, paging or not: the rest is never read.
        pytest.param(page(3, 3, data=[]), True, id="empty-page-ends-the-read"),
        # "next": null is still a "next" to the Cursor: it reads on.
        pytest.param(page(3, 3, next_link=None), True, id="null-next-reads-on"),
        # No paging: the last page.
        pytest.param(page(3, 3, last=True), True, id="no-paging-is-the-last-page"),
        # The SDK's parser takes a row's "data" object for the row: the columns must not read it.
        pytest.param(page(3, 3, data=[{"data": SEED["insights"][5]}, *SEED["insights"][4:6]]), False, id="row-with-data-object"),
        # A field the client does not read (the SDK type-checks it): the SDK's rows.
        pytest.param(page(3, 3, data=[{**row, "reach": "12"} for row in SEED["insights"][3:6]]), False, id="row-with-another-field"),
        # A key given twice: the standard decoder keeps the last, as the SDK saw it.
        pytest.param(page(3, 3).replace('"spend": "64.29"', '"spend": "1.00", "spend": "64.29"', 1), False, id="key-twice"),
    ],
)
def test_odd_pages_are_read_as_the_cursor_reads_them(body, columns_expected):
    after, body = body if isinstance(body, tuple) else (2, body)  # by default the second page
    with serve(rows()) as server:
        server.inject("server_error", match=page_after(after), times=None, status=200, body=body)
        assert_same_outcome(server, columns_expected)


def test_a_null_row_fails_the_read_where_the_cursor_failed():
    with serve(rows()) as server:
        server.inject("server_error", match=page_after(2), times=None, status=200, body=page(3, 3, data=[None, *SEED["insights"][4:6]]))
        client = make_client(server, FakeClock(SEED["as_of"]))
        with pytest.raises(TypeError) as new:
            client.sync_insights()
        with pytest.raises(TypeError) as old:
            cursor_rows(client, server.report_runs[-1]["id"])
        assert str(new.value) == str(old.value)
