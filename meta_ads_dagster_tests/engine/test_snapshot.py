"""engine/snapshot.py: the seed parses; every broken document is rejected whole, naming object and field."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from meta_ads_dagster.engine.snapshot import SnapshotError, load_snapshot_text, parse_snapshot

from .factories import SEED_SNAPSHOT_PATH, campaign, make_snapshot, seed_document


def test_seed_parses_into_frames():
    doc = seed_document()
    snap = load_snapshot_text(SEED_SNAPSHOT_PATH.read_text())

    assert snap.as_of == pd.Timestamp("2026-11-25T10:30:00+00:00")
    assert snap.today == pd.Timestamp("2026-11-25")
    assert snap.account_id == "act_2001"
    assert (snap.currency, snap.minor_per_unit) == ("USD", 100)
    assert list(snap.campaigns["id"]) == ["100001", "100005", "100009"]
    assert len(snap.adsets) == 3 and len(snap.ads) == 4 and len(snap.creatives) == 4
    assert len(snap.insights) == len(doc["insights"])
    assert snap.ab_tests.empty and snap.recent_actions.empty

    budgets = snap.campaigns.set_index("id")["daily_budget"]
    assert budgets["100001"] == 50_000 and budgets["100005"] == 440_000 and pd.isna(budgets["100009"])
    assert snap.adsets.set_index("id").loc["100010", "daily_budget"] == 10_000
    assert snap.adsets.set_index("id").loc["100006", "countries"] == ("ES", "PT")

    # Revenue is the purchase entry of action_values, conversions the purchase entry of actions.
    first = snap.insights.iloc[0]
    assert (first["spend"], first["impressions"], first["clicks"]) == (64.29, 2142, 42)
    assert (first["purchases"], first["revenue"]) == (13.0, 205.71)


def test_missing_optional_lists_mean_none():
    doc = seed_document()
    del doc["ab_tests"], doc["recent_actions"], doc["insights"][0]["actions"]
    snap = parse_snapshot(doc)
    assert snap.ab_tests.empty and snap.recent_actions.empty
    assert snap.insights.iloc[0]["purchases"] == 0.0


def test_only_purchase_entries_count():
    doc = seed_document()
    doc["insights"][0]["actions"].append({"action_type": "link_click", "value": "40"})
    doc["insights"][0]["action_values"].append({"action_type": "add_to_cart", "value": "999.00"})
    row = parse_snapshot(doc).insights.iloc[0]
    assert (row["purchases"], row["revenue"]) == (13.0, 205.71)


def _set(path, value):
    """A mutation setting doc[path...] = value."""
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


def _duplicate(collection, index):
    def mutate(doc):
        doc[collection].append(dict(doc[collection][index]))
    return mutate


def _add_ab_tests(*tests):
    def mutate(doc):
        doc["ab_tests"] = list(tests)
    return mutate


AB = {"id": "ab-1", "ad_ids": ["100011", "100013"], "started_at": "2026-11-20T10:00:00+00:00"}

# (mutation, the "object[index] (id ...).field" the message must name, followed by ": ")
REJECTIONS = {
    "unknown status": (_set(["campaigns", 0, "status"], "RUNNING"), "campaigns[0] (id 100001).status"),
    "negative spend": (_set(["insights", 0, "spend"], "-1.00"), "insights[0].spend"),
    "spend not a number": (_set(["insights", 2, "spend"], "lots"), "insights[2].spend"),
    "clicks > impressions": (_set(["insights", 0, "clicks"], "3000"), "insights[0] (id 100003).clicks"),
    "ad whose ad set does not exist": (_set(["ads", 1, "adset_id"], "999999"), "ads[1] (id 100007).adset_id"),
    "budget not whole minor units": (_set(["campaigns", 0, "daily_budget"], "500.5"), "campaigns[0] (id 100001).daily_budget"),
    "negative budget": (_set(["adsets", 2, "daily_budget"], "-100"), "adsets[2] (id 100010).daily_budget"),
    "ad set budget under a CBO campaign": (_set(["adsets", 0, "daily_budget"], "10000"), "adsets[0] (id 100002).daily_budget"),
    "duplicate campaign id": (_duplicate("campaigns", 0), "campaigns[3] (id 100001).id"),
    "duplicate ad id": (_duplicate("ads", 2), "ads[4] (id 100011).id"),
    "duplicate A/B test id": (_add_ab_tests(AB, AB), "ab_tests[1] (id ab-1).id"),
    "insights row for unknown ad": (_set(["insights", 0, "ad_id"], "424242"), "insights[0] (id 424242).ad_id"),
    "insights row with the wrong ad set": (_set(["insights", 0, "adset_id"], "100006"), "insights[0] (id 100003).adset_id"),
    "non-daily insights row": (_set(["insights", 0, "date_stop"], "2026-11-19"), "insights[0].date_stop"),
    "insights row after as_of": (
        lambda d: d["insights"][0].update(date_start="2026-11-26", date_stop="2026-11-26"),
        "insights[0] (id 100003).date_start",
    ),
    "duplicate insights row": (_duplicate("insights", 5), "insights[40] (id 100003).date_start"),
    "insights row missing spend": (_delete(["insights", 3, "spend"]), "insights[3].spend"),
    "impressions not whole": (_set(["insights", 1, "impressions"], "1.5"), "insights[1].impressions"),
    "malformed date": (
        lambda d: d["insights"][0].update(date_start="25/11/2026", date_stop="25/11/2026"), "insights[0].date_start",
    ),
    "actions not a list": (_set(["insights", 0, "actions"], "13"), "insights[0].actions"),
    "action entry without value": (_set(["insights", 0, "actions"], [{"action_type": "purchase"}]), "insights[0].actions[0]"),
    "negative revenue": (
        _set(["insights", 4, "action_values"], [{"action_type": "purchase", "value": "-5"}]), "insights[4].action_values[0].value",
    ),
    "unknown timezone": (_set(["account", "timezone_name"], "Mars/Olympus_Mons"), "account.timezone_name"),
    "currency not ISO": (_set(["account", "currency"], "dollars"), "account.currency"),
    "missing created_time": (_delete(["campaigns", 0, "created_time"]), "campaigns[0] (id 100001).created_time"),
    "missing as_of": (_delete(["as_of"]), "as_of"),
    "missing ads": (_delete(["ads"]), "ads"),
    "naive as_of": (_set(["as_of"], "2026-11-25T10:30:00"), "as_of"),
    "creative not listed": (_set(["ads", 0, "creative"], {"id": "777"}), "ads[0] (id 100003).creative.id"),
    "ad's campaign is not its ad set's": (_set(["ads", 0, "campaign_id"], "100005"), "ads[0] (id 100003).campaign_id"),
    "A/B test of an unknown ad": (
        _add_ab_tests({**AB, "ad_ids": ["100011", "555"]}), "ab_tests[0] (id ab-1).ad_ids",
    ),
    "A/B test with one ad": (_add_ab_tests({**AB, "ad_ids": ["100011"]}), "ab_tests[0] (id ab-1).ad_ids"),
    "A/B test listing an ad twice": (
        _add_ab_tests({**AB, "ad_ids": ["100011", "100013", "100011"]}), "ab_tests[0] (id ab-1).ad_ids",
    ),
    "insights row without country": (_delete(["insights", 2, "country"]), "insights[2].country"),
    "insights row with a country name": (_set(["insights", 2, "country"], "Spain"), "insights[2].country"),
    "boolean id": (_set(["campaigns", 0, "id"], True), "campaigns[0] (id True).id"),
    "recent action of unknown type": (
        _set(["recent_actions"], [{"entity_type": "campaign", "entity_id": "100001", "type": "explode",
                                   "executed_at": "2026-11-25T01:00:00+00:00"}]),
        "recent_actions[0].type",
    ),
}


@pytest.mark.parametrize("mutate, location", list(REJECTIONS.values()), ids=list(REJECTIONS))
def test_broken_document_is_rejected_naming_object_and_field(mutate, location):
    doc = seed_document()
    mutate(doc)
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(doc)
    message = str(caught.value)
    assert message.startswith("snapshot rejected: ")
    assert f"{location}: " in message, message


def test_missing_required_field_says_so():
    doc = seed_document()
    del doc["ads"][3]["status"]
    with pytest.raises(SnapshotError, match=r"ads\[3\] \(id 100013\)\.status: Field required"):
        parse_snapshot(doc)


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "not valid JSON (line 1"),
    ('{"as_of": "2026-11-25T10:30:00+00:00",', "not valid JSON"),
    ("[1, 2, 3]", "must be a JSON object, got list"),
    ("", "not valid JSON"),
])
def test_invalid_json_text_is_a_snapshot_error(text, fragment):
    with pytest.raises(SnapshotError) as caught:
        load_snapshot_text(text)
    assert fragment in str(caught.value)


def test_snapshot_error_is_a_value_error():
    assert issubclass(SnapshotError, ValueError)


def test_integer_ids_and_numbers_are_accepted_like_strings():
    doc = seed_document()
    doc["campaigns"][0]["daily_budget"] = 50000
    doc["insights"][0]["impressions"] = 2142
    snap = parse_snapshot(doc)
    assert snap.campaigns.loc[0, "daily_budget"] == 50_000
    assert snap.insights.loc[0, "impressions"] == 2142


@pytest.mark.parametrize("currency, minor", [("JPY", 1), ("KRW", 1), ("USD", 100), ("EUR", 100)])
def test_minor_units_per_currency(currency, minor):
    doc = make_snapshot([campaign(budget_usd=500)], currency=currency)
    snap = parse_snapshot(doc)
    assert snap.minor_per_unit == minor
    assert snap.campaigns.loc[0, "daily_budget"] == 500 * minor


def test_today_is_the_as_of_date_in_the_account_time_zone():
    # 23:30 UTC on the 25th is already the 26th in Tokyo.
    doc = make_snapshot([campaign()], as_of="2026-11-25T23:30:00+00:00", timezone="Asia/Tokyo")
    snap = parse_snapshot(doc)
    assert snap.today == pd.Timestamp("2026-11-26")
    assert snap.insights["date"].max() == pd.Timestamp("2026-11-25")  # factory's "yesterday"


def test_factory_documents_are_json_and_parse():
    doc = make_snapshot([campaign(countries=("ES", "FR"), country_shares={"ES": 0.4, "FR": 0.6}), campaign(cbo=False)])
    snap = parse_snapshot(json.loads(json.dumps(doc)))
    assert len(snap.campaigns) == 2
    first = snap.insights[snap.insights["campaign_id"] == "100000"]
    assert first.loc[first["country"] == "ES", "spend"].sum() / first["spend"].sum() == pytest.approx(0.4)
    assert set(first["country"]) == {"ES", "FR"}
