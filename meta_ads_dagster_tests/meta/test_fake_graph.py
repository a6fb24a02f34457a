"""The fake Graph API server, driven by the REAL facebook-business SDK over real HTTP.

These tests pin both the fixture and the SDK behaviour the live client relies on (paging via
``paging.cursors.after`` while ``paging.next`` exists, the batch wire format, which failures the
SDK raises and which it silently takes for successes).
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings

import pytest
import requests

from facebook_business.adobjects.ad import Ad
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.adobjects.adset import AdSet
from facebook_business.adobjects.campaign import Campaign
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from meta_ads_dagster.engine.snapshot import parse_snapshot

from ..repo_files import SEED_SNAPSHOT_PATH
from .fake_graph import DEFAULT_HTML_502, FakeGraphServer

ACCOUNT = "act_2001"
TOKEN = "EAAB-test-token-123"
SECRET = "app-secret-xyz"
SEED = json.loads(SEED_SNAPSHOT_PATH.read_text())


@pytest.fixture(autouse=True)
def _quiet_sdk_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def server():
    with FakeGraphServer(SEED_SNAPSHOT_PATH, page_size=2, hang_seconds=10) as srv:
        yield srv
        assert srv.internal_errors == []


def make_api(server: FakeGraphServer, *, token: str = TOKEN, timeout: float | None = 5.0) -> FacebookAdsApi:
    """What the live client does: a session pointed at the fake, no global API set up by the SDK's init."""
    session = FacebookSession("1234", SECRET, token, timeout=timeout)
    session.GRAPH = server.url
    session.requests.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    return FacebookAdsApi(session, api_version="v26.0")


@pytest.fixture
def api(server):
    return make_api(server)


def _headers_json(headers, name):
    """A usage header as JSON, from a requests header map or a batch item's [{name, value}]."""
    if isinstance(headers, list):
        headers = {h["name"].lower(): h["value"] for h in headers}
    return json.loads(headers[name])


# --------------------------------------------------------------------------- reads and paging


def test_account_node_and_usage_headers(server, api):
    account = AdAccount(ACCOUNT, api=api).api_get(fields=["currency", "timezone_name", "account_id"])
    assert account["id"] == ACCOUNT and account["account_id"] == "2001"
    assert account["currency"] == "USD" and account["timezone_name"] == "UTC"

    response = api.call("GET", (ACCOUNT,), params={"fields": "currency"})
    assert response.json() == {"id": ACCOUNT, "currency": "USD"}  # only what was asked, plus id
    headers = response.headers()
    assert set(_headers_json(headers, "x-app-usage")) == {"call_count", "total_cputime", "total_time"}
    assert set(_headers_json(headers, "x-ad-account-usage")) >= {
        "acc_id_util_pct", "reset_time_duration", "ads_api_access_tier"}
    (entries,) = _headers_json(headers, "x-business-use-case-usage").values()
    assert set(entries[0]) >= {"type", "call_count", "total_cputime", "total_time",
                               "estimated_time_to_regain_access"}

    server.set_usage(87, regain_minutes=3)
    headers = api.call("GET", (ACCOUNT,)).headers()
    assert _headers_json(headers, "x-ad-account-usage")["acc_id_util_pct"] == 87
    buc = next(iter(_headers_json(headers, "x-business-use-case-usage").values()))[0]
    assert buc["call_count"] == 87 and buc["estimated_time_to_regain_access"] == 3


def test_campaigns_are_paged_through_the_after_cursor(server, api):
    cursor = AdAccount(ACCOUNT, api=api).get_campaigns(
        fields=["id", "name", "status", "created_time", "daily_budget"])
    campaigns = [dict(c) for c in cursor]
    assert [c["id"] for c in campaigns] == ["100001", "100005", "100009"]
    assert campaigns[0]["daily_budget"] == "50000"
    assert "daily_budget" not in campaigns[2]  # null budget: key omitted, as Graph does
    assert json.loads(cursor.headers()["x-app-usage"])["call_count"] == 1  # Cursor keeps last headers

    calls = server.find("GET", "/act_2001/campaigns")
    assert len(calls) == 2  # page_size=2: the SDK re-sent the request with after=<cursors.after>
    assert "after" not in calls[0]["params"] and calls[1]["params"]["after"]
    assert calls[0]["params"]["summary"] == "true"  # the Cursor adds summary=true
    assert calls[0]["params"]["fields"] == "id,name,status,created_time,daily_budget"

    # The raw page: cursors + an absolute next URL on this server (with the token, like Graph).
    page = api.call("GET", (ACCOUNT, "campaigns"), params={"fields": "id", "limit": 1}).json()
    assert page["data"] == [{"id": "100001"}]
    assert page["paging"]["next"].startswith(server.url + "/v26.0/act_2001/campaigns?")
    assert "after=" + page["paging"]["cursors"]["after"] in page["paging"]["next"]
    last = api.call("GET", (ACCOUNT, "campaigns"),
                    params={"fields": "id", "after": page["paging"]["cursors"]["after"], "limit": 5}).json()
    assert [r["id"] for r in last["data"]] == ["100005", "100009"] and "next" not in last["paging"]


def test_adsets_ads_and_creatives_rows(server, api):
    account = AdAccount(ACCOUNT, api=api)
    adsets = [a.export_all_data() for a in account.get_ad_sets(fields=["id", "campaign_id", "daily_budget", "targeting"])]
    assert [a.get("daily_budget") for a in adsets] == [None, None, "10000"]
    assert adsets[1]["targeting"] == {"geo_locations": {"countries": ["ES", "PT"]}}

    ads = [a.export_all_data() for a in account.get_ads(
        fields=["id", "adset_id", "campaign_id", "status", "effective_status", "creative{id}"],
        params={"limit": 1})]
    assert len(ads) == 4 and len(server.find("GET", "/act_2001/ads")) == 4  # limit=1 lowers the page
    assert ads[0]["creative"] == {"id": "100004"} and ads[0]["effective_status"] == "ACTIVE"

    creatives = [dict(c) for c in account.get_ad_creatives(fields=["id", "name", "status"])]
    assert [c["status"] for c in creatives] == ["ACTIVE"] * 4

    campaign = Campaign("100005", api=api).api_get(fields=["name", "daily_budget"])
    assert campaign["daily_budget"] == "440000"


# --------------------------------------------------------------------------- async insights


def test_async_insights_report_run(server, api):
    params = {
        "level": "ad", "time_increment": 1, "breakdowns": ["country"],
        "fields": ["ad_id", "spend", "impressions", "clicks", "actions", "action_values"],
        "time_range": {"since": "2026-11-24", "until": "2026-11-25"},
        "action_attribution_windows": ["7d_click", "1d_view"],
    }
    job = AdAccount(ACCOUNT, api=api).get_insights(is_async=True, params=params)
    assert isinstance(job, AdReportRun) and job["id"] == job["report_run_id"]

    seen = []
    while True:
        job.api_get()
        seen.append((job["async_status"], job["async_percent_completion"]))
        if job["async_status"] == "Job Completed":
            break
    assert seen == [("Job Not Started", 0), ("Job Running", 50), ("Job Completed", 100)]

    rows = [dict(r) for r in job.get_result(params={"limit": 4})]
    expected = [r for r in SEED["insights"] if "2026-11-24" <= r["date_start"] <= "2026-11-25"]
    assert len(rows) == len(expected) == 10
    assert rows[0]["spend"] == expected[0]["spend"] and rows[0]["country"] == "ES"
    assert set(rows[0]) == {"ad_id", "spend", "impressions", "clicks", "actions", "action_values",
                            "date_start", "date_stop", "country"}  # the run's fields apply
    assert len(server.find("GET", f"/{job['id']}/insights")) == 5  # 10 rows, min(limit 4, page_size 2)

    (run,) = server.report_runs
    assert run["id"] == job["id"] and run["polls"] == 3
    assert run["params"]["time_range"] == {"since": "2026-11-24", "until": "2026-11-25"}
    assert run["params"]["breakdowns"] == ["country"] and run["params"]["level"] == "ad"
    assert run["params"]["action_attribution_windows"] == ["7d_click", "1d_view"]
    assert "access_token" not in run["params"]


def test_report_results_before_completion_are_an_error(server, api):
    server.report_status_sequence = [("Job Running", 50)]
    job = AdAccount(ACCOUNT, api=api).get_insights(is_async=True, params={"date_preset": "yesterday"})
    job.api_get()
    assert job["async_status"] == "Job Running"
    with pytest.raises(FacebookRequestError) as err:
        list(job.get_result())
    assert err.value.api_error_code() == 100


# --------------------------------------------------------------------------- writes and batches


def test_batch_of_three_updates_with_callbacks(server, api):
    batch = api.new_batch()
    outcomes = {}

    def ok(name):
        return lambda response: outcomes.__setitem__(name, ("ok", response.status(), response.json()))

    def failed(name):
        return lambda response: outcomes.__setitem__(name, ("failed", response.error().api_error_code()))

    Campaign("100001", api=api).api_update(params={"daily_budget": 60000}, batch=batch,
                                           success=ok("scale"), failure=failed("scale"))
    AdSet("100010", api=api).api_update(params={"daily_budget": "8000"}, batch=batch,
                                        success=ok("adset"), failure=failed("adset"))
    Ad("100013", api=api).api_update(params={"status": "PAUSED"}, batch=batch,
                                     success=ok("pause"), failure=failed("pause"))
    assert batch.execute() is None  # nothing to retry
    assert outcomes == {name: ("ok", 200, {"success": True}) for name in ("scale", "adset", "pause")}

    doc = server.document
    assert next(c for c in doc["campaigns"] if c["id"] == "100001")["daily_budget"] == "60000"
    assert next(a for a in doc["adsets"] if a["id"] == "100010")["daily_budget"] == "8000"
    assert next(a for a in doc["ads"] if a["id"] == "100013")["status"] == "PAUSED"
    parse_snapshot(doc)  # still a valid snapshot

    envelope, *items = server.requests
    assert envelope["path"] == "/" and envelope["batch_index"] is None and len(envelope["params"]["batch"]) == 3
    assert envelope["params"]["batch"][0] == {"method": "POST", "relative_url": "100001/", "body": "daily_budget=60000"}
    assert [(i["path"], i["batch_index"], i["params"]) for i in items] == [
        ("/100001", 0, {"daily_budget": "60000"}),  # minor units, as sent on the wire
        ("/100010", 1, {"daily_budget": "8000"}),
        ("/100013", 2, {"status": "PAUSED"}),
    ]
    # The token travels once, in the envelope's query string; never inside the batch.
    assert envelope["params"]["access_token"] == TOKEN
    assert TOKEN not in json.dumps([i["params"] for i in items])
    assert TOKEN not in json.dumps(envelope["params"]["batch"])


def test_batch_item_fault_and_null_item(server, api):
    server.inject("batch_item", index=1, code=100, subcode=1885272)
    batch = api.new_batch()
    results = {}
    for cid, budget in (("100001", 51000), ("100005", 450000), ("100009", 1)):
        Campaign(cid, api=api).api_update(
            params={"status": "PAUSED"}, batch=batch,
            success=lambda r, cid=cid: results.__setitem__(cid, "ok"),
            failure=lambda r, cid=cid: results.__setitem__(cid, (r.status(), r.error().api_error_code(),
                                                                  r.error().api_error_subcode())))
    assert batch.execute() is None
    assert results == {"100001": "ok", "100005": (400, 100, 1885272), "100009": "ok"}
    statuses = {c["id"]: c["status"] for c in server.document["campaigns"]}
    assert statuses == {"100001": "PAUSED", "100005": "ACTIVE", "100009": "PAUSED"}

    # A null item (as Meta answers a timed-out item) lands in the SDK's retry batch.
    server.inject("batch_item", index=0, null=True)
    batch = api.new_batch()
    Campaign("100005", api=api).api_update(params={"status": "PAUSED"}, batch=batch)
    retry = batch.execute()
    assert retry is not None and len(retry) == 1
    assert server.requests[-1]["status"] is None and server.requests[-1]["fault"] == "batch_item"
    assert retry.execute() is None
    assert {c["id"]: c["status"] for c in server.document["campaigns"]}["100005"] == "PAUSED"


def test_item_level_faults_inside_a_batch(server, api):
    server.inject("rate_limit", match="100005", code=80004)
    server.inject("timeout", match="100009")  # inside a batch: applied, answered with null
    batch = api.new_batch()
    failures = []
    for cid in ("100001", "100005", "100009"):
        Campaign(cid, api=api).api_update(params={"status": "PAUSED"}, batch=batch,
                                          failure=lambda r: failures.append(r))
    retry = batch.execute()
    assert retry is not None and len(retry) == 1  # the null (timed-out) item
    (failure,) = failures
    assert failure.error().api_error_code() == 80004
    buc = next(iter(_headers_json(failure.headers(), "x-business-use-case-usage").values()))
    assert any(e["type"] == "ads_management" and e["estimated_time_to_regain_access"] >= 1 for e in buc)
    statuses = {c["id"]: c["status"] for c in server.document["campaigns"]}
    assert statuses == {"100001": "PAUSED", "100005": "ACTIVE", "100009": "PAUSED"}


def test_batch_of_more_than_50_is_rejected(server, api):
    batch = api.new_batch()
    for _ in range(51):
        Campaign("100001", api=api).api_update(params={"status": "PAUSED"}, batch=batch)
    with pytest.raises(FacebookRequestError) as err:
        batch.execute()
    assert err.value.api_error_code() == 1 and "Too many requests in batch" in err.value.api_error_message()
    assert server.document["campaigns"][0]["status"] == "ACTIVE"
    assert len(server.requests) == 1  # the envelope only: no item ran


def test_create_creative_and_ad(server, api):
    account = AdAccount(ACCOUNT, api=api)
    creative = account.create_ad_creative(params={
        "name": "Variant C creative",
        "object_story_spec": {"page_id": "777", "link_data": {"link": "https://example.com", "message": "Hi"}},
    })
    ad = account.create_ad(params={"name": "Variant C", "adset_id": "100010",
                                   "creative": {"creative_id": creative["id"]}, "status": "PAUSED"})
    doc = server.document
    new_ad = next(a for a in doc["ads"] if a["id"] == ad["id"])
    assert new_ad == {"id": ad["id"], "adset_id": "100010", "campaign_id": "100009", "name": "Variant C",
                      "status": "PAUSED", "created_time": SEED["as_of"], "creative": {"id": creative["id"]}}
    assert next(c for c in doc["creatives"] if c["id"] == creative["id"])["approved"] is False
    parse_snapshot(doc)

    read = Ad(ad["id"], api=api).api_get(fields=["id", "creative", "status"]).export_all_data()
    assert read == {"id": ad["id"], "creative": {"id": creative["id"]}, "status": "PAUSED"}
    spec = api.call("GET", (creative["id"],), params={"fields": "status,object_story_spec"}).json()
    assert spec["status"] == "IN_PROCESS" and spec["object_story_spec"]["page_id"] == "777"
    (post,) = server.find("POST", "/act_2001/ads")
    assert post["params"]["creative"] == {"creative_id": creative["id"]}  # JSON-decoded in the record


@pytest.mark.parametrize("entity, params, subcode", [
    (Campaign, {"daily_budget": "600.50"}, 1885272),   # not whole minor units
    (AdSet, {"daily_budget": 9000}, 1885621),          # ad set under a campaign budget (100002)
    (Campaign, {"status": "RUNNING"}, None),
])
def test_invalid_writes_are_rejected_and_not_applied(server, api, entity, params, subcode):
    target = "100001" if entity is Campaign else "100002"
    before = server.document
    with pytest.raises(FacebookRequestError) as err:
        entity(target, api=api).api_update(params=params)
    assert err.value.api_error_code() == 100 and err.value.api_error_subcode() == subcode
    assert server.document == before


def test_unknown_objects_and_other_accounts(server, api):
    with pytest.raises(FacebookRequestError) as err:
        Campaign("999", api=api).api_update(params={"status": "PAUSED"})
    assert (err.value.api_error_code(), err.value.api_error_subcode()) == (100, 33)
    with pytest.raises(FacebookRequestError) as err:
        list(AdAccount("act_9999", api=api).get_campaigns(fields=["id"]))
    assert err.value.api_error_code() == 100


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("code, subcode", [(17, 2446079), (613, 1487742), (80004, 2446079)])
def test_rate_limit(server, api, code, subcode):
    server.inject("rate_limit", code=code, pct=96, regain_minutes=7, reset_seconds=120)
    with pytest.raises(FacebookRequestError) as err:
        list(AdAccount(ACCOUNT, api=api).get_campaigns(fields=["id"]))
    exc = err.value
    assert (exc.http_status(), exc.api_error_code(), exc.api_error_subcode()) == (400, code, subcode)
    assert exc.api_error_type() == "OAuthException" and exc.body()["error"]["fbtrace_id"]
    headers = exc.http_headers()
    assert _headers_json(headers, "x-app-usage")["call_count"] >= 96
    assert _headers_json(headers, "x-ad-account-usage")["acc_id_util_pct"] >= 96
    assert _headers_json(headers, "x-ad-account-usage")["reset_time_duration"] == 120
    (entries,) = _headers_json(headers, "x-business-use-case-usage").values()
    management = next(e for e in entries if e["type"] == "ads_management")
    assert management["call_count"] >= 96 and management["estimated_time_to_regain_access"] == 7
    # Consumed: the next call goes through, with normal usage.
    assert len(list(AdAccount(ACCOUNT, api=api).get_campaigns(fields=["id"]))) == 3
    assert server.faults == []


def test_server_error_json_body_raises_and_success_shaped_body_does_not(server, api):
    server.inject("server_error")
    with pytest.raises(FacebookRequestError) as err:
        Campaign("100001", api=api).api_update(params={"status": "PAUSED"})
    assert err.value.http_status() == 500 and err.value.api_error_code() == 2
    assert err.value.api_transient_error() is True
    assert server.document["campaigns"][0]["status"] == "ACTIVE"  # not applied by default

    # SDK quirk: a 500 whose JSON body has no "error" key is a success to the SDK.
    server.inject("server_error", body={"success": True}, apply=False)
    response = api.call("POST", ("100001",), params={"status": "PAUSED"})
    assert response.status() == 500 and response.is_success()
    assert server.document["campaigns"][0]["status"] == "ACTIVE"  # ...yet nothing happened


def test_server_error_that_applied_the_write(server, api):
    server.inject("server_error", apply=True)
    with pytest.raises(FacebookRequestError):
        Campaign("100001", api=api).api_update(params={"daily_budget": 55000})
    assert server.document["campaigns"][0]["daily_budget"] == "55000"
    assert server.requests[-1]["applied"] and server.requests[-1]["fault"] == "server_error"


def test_html_502_is_not_raised_by_the_sdk(server, api):
    server.inject("html_502")
    # SDK quirk: a non-JSON body is a "success" unless it contains "Service Unavailable".
    response = api.call("GET", (ACCOUNT,), params={"fields": "id"})
    assert response.status() == 502 and response.is_success() and response.body() == DEFAULT_HTML_502
    assert response.headers()["Content-Type"].startswith("text/html")

    # ...and the generated object methods then crash while parsing the HTML as an object.
    server.inject("html_502")
    with pytest.raises(TypeError):
        Campaign("100001", api=api).api_update(params={"status": "PAUSED"})
    assert server.document["campaigns"][0]["status"] == "ACTIVE"


def test_timeout_applies_the_write_then_never_answers(server):
    api = make_api(server, timeout=0.3)
    server.inject("timeout", match="100001")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        Campaign("100001", api=api).api_update(params={"daily_budget": 65000})
    assert time.monotonic() - started < 2
    assert server.document["campaigns"][0]["daily_budget"] == "65000"  # the outcome is "unknown"
    record = server.requests[-1]
    assert record["fault"] == "timeout" and record["applied"] and record["status"] is None

    server.inject("timeout", seconds=0, apply=False)  # close at once, without applying
    with pytest.raises(requests.exceptions.ConnectionError):
        Campaign("100001", api=api).api_update(params={"daily_budget": 70000})
    assert server.document["campaigns"][0]["daily_budget"] == "65000"


def test_drop_closes_without_answer_and_without_applying(server, api):
    server.inject("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        Campaign("100001", api=api).api_update(params={"status": "PAUSED"})
    assert server.document["campaigns"][0]["status"] == "ACTIVE"
    assert server.requests[-1]["fault"] == "drop" and not server.requests[-1]["applied"]


@pytest.mark.parametrize("code", [100, 200, 10])
def test_permanent_errors(server, api, code):
    server.inject("permanent", code=code)
    with pytest.raises(FacebookRequestError) as err:
        Campaign("100001", api=api).api_update(params={"status": "PAUSED"})
    assert err.value.api_error_code() == code and err.value.api_transient_error() is False


def test_token_errors(server, api):
    server.inject("token")
    with pytest.raises(FacebookRequestError) as err:
        AdAccount(ACCOUNT, api=api).api_get(fields=["currency"])
    assert (err.value.api_error_code(), err.value.api_error_subcode()) == (190, 463)
    assert err.value.api_error_type() == "OAuthException"

    strict = FakeGraphServer(SEED_SNAPSHOT_PATH, access_token=TOKEN, app_secret=SECRET)
    try:
        assert AdAccount(ACCOUNT, api=make_api(strict)).api_get(fields=["currency"])["currency"] == "USD"
        with pytest.raises(FacebookRequestError) as err:
            AdAccount(ACCOUNT, api=make_api(strict, token="wrong")).api_get()
        assert err.value.api_error_code() == 190
        no_token = requests.get(f"{strict.url}/v26.0/{ACCOUNT}", timeout=5)
        assert no_token.status_code == 400 and no_token.json()["error"]["code"] == 104
        bad_proof = requests.get(f"{strict.url}/{ACCOUNT}",
                                 params={"access_token": TOKEN, "appsecret_proof": "x"}, timeout=5)
        assert bad_proof.json()["error"]["code"] == 100
    finally:
        strict.close()


def test_fault_matching_and_times(server, api):
    account = AdAccount(ACCOUNT, api=api)
    server.inject("permanent", match=re.compile(r"/act_2001/ads"), times=2)  # not /adsets
    server.inject("server_error", match=lambda method, path, params: method == "POST" and "status" in params,
                  times=None)
    assert len(list(account.get_campaigns(fields=["id"]))) == 3  # no fault matches
    assert len(list(account.get_ad_sets(fields=["id"]))) == 3
    for _ in range(2):
        with pytest.raises(FacebookRequestError):
            list(account.get_ads(fields=["id"]))
    assert len(list(account.get_ads(fields=["id"]))) == 4  # times=2 used up
    for _ in range(3):
        with pytest.raises(FacebookRequestError) as err:
            Campaign("100001", api=api).api_update(params={"status": "PAUSED"})
        assert err.value.http_status() == 500
    assert [f.kind for f in server.faults] == ["server_error"]  # times=None stays
    server.clear_faults()
    Campaign("100001", api=api).api_update(params={"status": "PAUSED"})
    with pytest.raises(TypeError):
        server.inject("rate_limit", cod=17)
    with pytest.raises(ValueError):
        server.inject("meteor")


# --------------------------------------------------------------------------- server mechanics


def test_close_is_fast_even_with_a_hanging_request():
    server = FakeGraphServer(SEED, hang_seconds=60)
    api = make_api(server, timeout=None)
    server.inject("timeout")
    errors = []
    worker = threading.Thread(target=lambda: _call_collecting(api, errors))
    worker.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.close()
    worker.join(timeout=5)
    assert time.monotonic() - started < 2 and not worker.is_alive()
    assert errors and isinstance(errors[0], requests.exceptions.ConnectionError)
    server.close()  # idempotent


def _call_collecting(api, errors):
    try:
        api.call("GET", (ACCOUNT,))
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        errors.append(exc)


def test_concurrent_requests_are_all_recorded(server):
    apis = [make_api(server) for _ in range(8)]

    def read(api):
        for _ in range(5):
            api.call("GET", (ACCOUNT,), params={"fields": "currency"})

    threads = [threading.Thread(target=read, args=(api,)) for api in apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = server.requests
    assert len(records) == 40 and sorted(r["seq"] for r in records) == list(range(1, 41))
    assert all(r["status"] == 200 for r in records)


def test_paths_without_version_and_document_is_a_copy(server):
    response = requests.get(f"{server.url}/{ACCOUNT}/campaigns/",
                            params={"access_token": "t", "fields": "id", "limit": 10}, timeout=5)
    assert response.status_code == 200 and len(response.json()["data"]) == 2  # page_size caps limit
    assert server.requests[-1]["version"] is None and server.requests[-1]["path"] == "/act_2001/campaigns"
    doc = server.document
    doc["campaigns"].clear()
    assert len(server.document["campaigns"]) == 3
