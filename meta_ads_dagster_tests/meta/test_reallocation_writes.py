"""A reallocation's legs are written all or none: the stub and the market check every leg before
the first write; the live client (fake Graph server) writes them in order and, when a leg fails,
writes the legs already done back to their prior budget."""

from __future__ import annotations

import json

import pytest

from meta_ads_dagster.market import Market
from meta_ads_dagster.meta.client import Write
from meta_ads_dagster.meta.market import MarketMetaAdsClient
from meta_ads_dagster.meta.stub import StubMetaAdsClient

from ..repo_files import SEED_SNAPSHOT_PATH
from .fake_graph import FakeGraphServer
from .test_live import SECRET, TOKEN, FakeClock, budget_posts, make_client

SEED = json.loads(SEED_SNAPSHOT_PATH.read_text())


def legs(donor: tuple[str, str, int, int], recipient: tuple[str, str, int, int]) -> list[Write]:
    """Two legs of one unit: (entity_type, entity_id, prior budget, new budget) each."""
    return [
        Write(f"leg-{i}", kind, entity_type, entity_id, new_budget_minor=new, unit_id="unit-1", prior_budget_minor=prior)
        for i, (kind, (entity_type, entity_id, prior, new)) in enumerate((("scale_down", donor), ("scale_up", recipient)))
    ]


# --- stub ----------------------------------------------------------------------------------------------
@pytest.fixture
def stub(tmp_path):
    def make(**options) -> StubMetaAdsClient:
        path = tmp_path / "seed.json"
        path.write_text(SEED_SNAPSHOT_PATH.read_text())
        return StubMetaAdsClient(state_dir=str(tmp_path / "state"), snapshot_path=str(path), **options)
    return make


def test_the_stub_writes_both_legs_of_a_reallocation(stub):
    client = stub()
    outcomes = client.apply_writes(legs(("campaign", "100001", 50000, 45000), ("adset", "100010", 10000, 15000)))
    assert [o.status for o in outcomes] == ["executed", "executed"]
    assert [(w["entity_id"], w["daily_budget"]) for w in client.writes] == [("100001", "45000"), ("100010", "15000")]


@pytest.mark.parametrize("refused", ["100001", "100010"], ids=["first-leg", "second-leg"])
def test_the_stub_writes_no_leg_when_one_would_be_refused(stub, refused):
    client = stub(fail_writes_for=[refused])
    outcomes = client.apply_writes(legs(("campaign", "100001", 50000, 45000), ("adset", "100010", 10000, 15000)))
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert all("all or none" in o.error and refused in o.error for o in outcomes)
    assert client.writes == []


def test_other_writes_of_the_cycle_go_on_when_a_reallocation_is_refused(stub):
    client = stub(fail_writes_for=["100010"])
    lone = Write("lone", "pause", "adset", "100006")
    outcomes = client.apply_writes([lone, *legs(("campaign", "100001", 50000, 45000), ("adset", "100010", 10000, 15000))])
    assert [o.status for o in outcomes] == ["executed", "failed", "failed"]
    assert [w["method"] for w in client.writes] == ["pause"]


# --- market --------------------------------------------------------------------------------------------
def test_the_market_writes_no_leg_when_one_is_below_its_minimum_budget():
    market = Market(campaigns=8, seed=3)
    client = MarketMetaAdsClient.over(market)
    holders = [row for row in market.snapshot()["adsets"] if row.get("daily_budget")][:2]
    (a, b) = [(row["id"], int(row["daily_budget"])) for row in holders]
    bad = legs(("adset", a[0], a[1], a[1] - 100), ("adset", b[0], b[1], 0))  # 0: below the market's minimum
    assert [o.status for o in client.apply_writes(bad)] == ["failed", "failed"]
    assert client.writes == []
    assert {row["id"]: int(row["daily_budget"]) for row in market.snapshot()["adsets"] if row["id"] in (a[0], b[0])} == {a[0]: a[1], b[0]: b[1]}

    good = legs(("adset", a[0], a[1], a[1] - 100), ("adset", b[0], b[1], b[1] + 100))
    assert [o.status for o in client.apply_writes(good)] == ["executed", "executed"]
    assert [w["entity_id"] for w in client.writes] == [a[0], b[0]]


# --- live (fake Graph server) ---------------------------------------------------------------------------
@pytest.fixture
def server():
    with FakeGraphServer(SEED, page_size=2, hang_seconds=5, access_token=TOKEN, app_secret=SECRET) as srv:
        yield srv
        assert srv.internal_errors == []


def test_live_writes_the_legs_in_order(server):
    client = make_client(server, FakeClock(SEED["as_of"]))
    outcomes = client.apply_writes(legs(("campaign", "100001", 50000, 45000), ("adset", "100010", 10000, 15000)))
    assert [o.status for o in outcomes] == ["executed", "executed"]
    assert server.document["campaigns"][0]["daily_budget"] == "45000"
    assert next(a for a in server.document["adsets"] if a["id"] == "100010")["daily_budget"] == "15000"


def test_live_writes_back_the_legs_done_when_a_later_leg_fails(server):
    server.inject("permanent", match="100010", message="Invalid parameter")
    client = make_client(server, FakeClock(SEED["as_of"]))
    outcomes = client.apply_writes(legs(("campaign", "100001", 50000, 45000), ("adset", "100010", 10000, 15000)))
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "compensation: campaign 100001 written back to 50000" in outcomes[0].error
    assert outcomes[0].result["compensation"] == ["campaign 100001 written back to 50000"]
    # Meta saw the first leg, then its compensation; the account ends where it started.
    assert [str(p["params"]["daily_budget"]) for p in budget_posts(server, "100001")] == ["45000", "50000"]
    assert server.document["campaigns"][0]["daily_budget"] == "50000"
    assert next(a for a in server.document["adsets"] if a["id"] == "100010")["daily_budget"] == "10000"
