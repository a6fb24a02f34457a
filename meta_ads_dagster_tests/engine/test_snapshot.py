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
    # Issue 10: what a fuzz run of `meta-ads plan` crashed on ...
    "impressions above int64": (_set(["insights", 0, "impressions"], str(2**64)), "insights[0].impressions"),
    "clicks a JSON integer above int64": (_set(["insights", 0, "clicks"], 2**64), "insights[0].clicks"),
    "impressions above 10^12": (_set(["insights", 0, "impressions"], str(10**12 + 1)), "insights[0].impressions"),
    "budget of 2^63": (_set(["campaigns", 0, "daily_budget"], str(2**63)), "campaigns[0] (id 100001).daily_budget"),
    "budget above 10^15": (_set(["campaigns", 0, "daily_budget"], 10**15 + 1), "campaigns[0] (id 100001).daily_budget"),
    "countries a number": (
        _set(["adsets", 0, "targeting", "geo_locations", "countries"], 34), "adsets[0] (id 100002).targeting.geo_locations.countries",
    ),
    "countries holding a dict": (
        _set(["adsets", 0, "targeting", "geo_locations", "countries"], [{"code": "ES"}]),
        "adsets[0] (id 100002).targeting.geo_locations.countries[0]",
    ),
    "countries holding a list": (
        _set(["adsets", 1, "targeting", "geo_locations", "countries"], ["ES", ["PT"]]),
        "adsets[1] (id 100006).targeting.geo_locations.countries[1]",
    ),
    "countries holding a bool": (
        _set(["adsets", 0, "targeting", "geo_locations", "countries"], [True]), "adsets[0] (id 100002).targeting.geo_locations.countries[0]",
    ),
    "bad row in a column of numbers": (_set(["insights", 7, "impressions"], 1.5), "insights[7].impressions"),
    # ... and what it accepted.
    "action_type not a string": (
        lambda d: d["insights"][0]["actions"].append({"action_type": 7, "value": "1"}), "insights[0].actions[1].action_type",
    ),
    "two purchase entries in a row": (
        lambda d: d["insights"][0]["actions"].append({"action_type": "purchase", "value": "1"}), "insights[0].actions[1].action_type",
    ),
    "created_time as a numeric epoch": (_set(["campaigns", 0, "created_time"], 1764000000), "campaigns[0] (id 100001).created_time"),
    "started_at as a numeric epoch": (_add_ab_tests({**AB, "started_at": 1764000000}), "ab_tests[0] (id ab-1).started_at"),
    "executed_at as a numeric epoch": (
        _set(["recent_actions"], [{"entity_type": "campaign", "entity_id": "100001", "type": "pause", "executed_at": 1764000000}]),
        "recent_actions[0].executed_at",
    ),
    "a time in year 1": (_set(["as_of"], "0001-01-01T00:00:00+00:00"), "as_of"),
    "countries as a string": (
        _set(["adsets", 0, "targeting", "geo_locations", "countries"], "ES"), "adsets[0] (id 100002).targeting.geo_locations.countries",
    ),
    "a null country code": (
        _set(["adsets", 0, "targeting", "geo_locations", "countries"], [None]), "adsets[0] (id 100002).targeting.geo_locations.countries[0]",
    ),
    "an empty country code": (
        _set(["adsets", 0, "targeting", "geo_locations", "countries"], ["ES", ""]),
        "adsets[0] (id 100002).targeting.geo_locations.countries[1]",
    ),
    "countries null": (
        _set(["adsets", 0, "targeting", "geo_locations", "countries"], None), "adsets[0] (id 100002).targeting.geo_locations.countries",
    ),
    "a lower-case country code": (
        _set(["adsets", 0, "targeting", "geo_locations", "countries"], ["es"]), "adsets[0] (id 100002).targeting.geo_locations.countries[0]",
    ),
    "insights country in lower case": (_set(["insights", 2, "country"], "es"), "insights[2].country"),
    "approved as \"yes\"": (_set(["creatives", 0, "approved"], "yes"), "creatives[0] (id 100004).approved"),
    "approved as 1": (_set(["creatives", 0, "approved"], 1), "creatives[0] (id 100004).approved"),
    "approved as \"false\"": (_set(["creatives", 0, "approved"], "false"), "creatives[0] (id 100004).approved"),
    "purchases above impressions": (
        _set(["insights", 0, "actions"], [{"action_type": "purchase", "value": "2143"}]), "insights[0] (id 100003).actions",
    ),
    "fractional purchases": (
        _set(["insights", 0, "actions"], [{"action_type": "purchase", "value": "12.5"}]), "insights[0].actions[0].value",
    ),
    "spend of 1e15": (_set(["insights", 0, "spend"], 1e15), "insights[0].spend"),
    "spend in exponent form": (_set(["insights", 0, "spend"], "6.429e1"), "insights[0].spend"),
    "revenue above 10^12": (
        _set(["insights", 0, "action_values"], [{"action_type": "purchase", "value": "1000000000000.01"}]),
        "insights[0].action_values[0].value",
    ),
    "full-width digits in a budget": (_set(["campaigns", 0, "daily_budget"], "５００００"), "campaigns[0] (id 100001).daily_budget"),
    "full-width digits in an id": (_set(["campaigns", 2, "id"], "１０００９"), "campaigns[2] (id １０００９).id"),
    "Arabic-Indic digits in an insights id": (_set(["insights", 0, "ad_id"], "١٠٠٠٠٣"), "insights[0].ad_id"),
    "full-width digits in a count": (_set(["insights", 0, "clicks"], "４２"), "insights[0].clicks"),
    "account.id without act_": (_set(["account", "id"], "1234"), "account.id"),
    "account.id act_12ab": (_set(["account", "id"], "act_12ab"), "account.id"),
    "account.id act_abc": (_set(["account", "id"], "act_abc"), "account.id"),
    "a name with a lone surrogate": (_set(["campaigns", 0, "name"], "Black \ud800 Friday"), "campaigns[0] (id 100001).name"),
    "a time zone too long for a file name": (_set(["account", "timezone_name"], "Europe/" + "x" * 5000), "account.timezone_name"),
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


@pytest.mark.parametrize("data, message", [
    ("{not json", "not valid JSON at line 1 column 2: Expecting property name enclosed in double quotes"),
    ('{"as_of": "2026-11-25T10:30:00+00:00",', "not valid JSON at line 1 column 39: Expecting property name enclosed in double quotes"),
    ('{\n  "as_of": 2026-11-25\n}', "not valid JSON at line 2 column 16: Expecting ',' delimiter"),
    ("[1, 2, 3]", "must be a JSON object, got list"),
    ("", "not valid JSON at line 1 column 1: Expecting value"),
    (b'{"as_of": "caf\xe9"}', "not UTF-8 text: byte 0xe9 at line 1 column 15"),
    (b'{\n"a": 1,\n"b": "\xc3("}', "not UTF-8 text: byte 0xc3 at line 3 column 7"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deep to read"),
    ('{"as_of": ' + "9" * 5000 + "}", "not valid JSON: a number too long to read"),
])
def test_a_file_that_is_not_json_is_a_snapshot_error_in_one_line(data, message):
    with pytest.raises(SnapshotError) as caught:
        load_snapshot_text(data)
    assert str(caught.value) == f"snapshot rejected: {message}"


def test_an_error_never_pastes_a_whole_value():
    doc = seed_document()
    doc["campaigns"][0]["status"] = "RUNNING " * 100_000
    doc["campaigns"][1]["id"] = "1\n2"  # shown escaped: the message stays one line
    doc["campaigns"][1]["status"] = "x"
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(doc)
    message = str(caught.value)
    assert len(message) < 600 and "\n" not in message, message
    assert "campaigns[0] (id 100001).status" in message and "(got 'RUNNING RUNNING" in message
    assert "campaigns[1] (id '1\\n2').id" in message


def test_snapshot_error_is_a_value_error():
    assert issubclass(SnapshotError, ValueError)


def test_integer_ids_and_numbers_are_accepted_like_strings():
    doc = seed_document()
    doc["campaigns"][0]["daily_budget"] = 50000
    doc["insights"][0]["impressions"] = 2142
    doc["insights"][0]["spend"] = 64.29
    doc["insights"][0]["actions"][0]["value"] = 13
    snap = parse_snapshot(doc)
    assert snap.campaigns.loc[0, "daily_budget"] == 50_000
    assert tuple(snap.insights.loc[0, ["impressions", "spend", "purchases"]]) == (2142, 64.29, 13)


def test_the_bounds_themselves_are_allowed():
    doc = seed_document()
    doc["campaigns"][0]["daily_budget"] = str(10**15)
    doc["insights"][0].update(impressions=str(10**12), spend=str(10**12))
    doc["insights"][0]["action_values"][0]["value"] = 10**12
    doc["as_of"] = "2199-12-31T23:59:59-12:00"  # the account's today moves far away: insights stay in the past
    snap = parse_snapshot(doc)
    assert snap.campaigns.loc[0, "daily_budget"] == 10**15
    assert tuple(snap.insights.loc[0, ["impressions", "spend", "revenue"]]) == (10**12, 1e12, 1e12)


def test_countries_may_be_empty_or_absent():
    doc = seed_document()
    doc["adsets"][0]["targeting"]["geo_locations"]["countries"] = []
    del doc["adsets"][1]["targeting"]
    snap = parse_snapshot(doc)
    assert list(snap.adsets["countries"][:2]) == [(), ()]


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
