"""engine/reconcile.py: open writes are settled from what the account shows, never re-sent."""

import pandas as pd

from meta_ads_dagster.engine.reconcile import reconcile_writes
from meta_ads_dagster.engine.snapshot import parse_snapshot

from .factories import seed_document

COLUMNS = ["action_id", "cycle_run_id", "as_of", "type", "entity_type", "entity_id", "new_budget_minor", "loser_ad_ids"]


def test_open_writes_are_judged_by_the_current_state():
    doc = seed_document()
    doc["campaigns"][0]["daily_budget"] = "55000"  # Black Friday: the raise to 550.00 landed
    doc["ads"][3]["status"] = "PAUSED"  # Variant B paused
    # Two copies of ad 100003: one made by an earlier variant, one at this write's time.
    source = next(ad for ad in doc["ads"] if ad["id"] == "100003")
    doc["ads"] += [
        {**source, "id": "100090", "source_ad_id": "100003", "created_time": "2026-11-20T08:00:00+00:00"},
        {**source, "id": "100091", "source_ad_id": "100003", "created_time": "2026-11-25T09:00:00+00:00"},
    ]
    snapshot = parse_snapshot(doc)
    now, earlier = "2026-11-25T09:00:00+00:00", "2026-11-10T09:00:00+00:00"
    open_writes = pd.DataFrame(
        [
            ["a", "r1", now, "scale_up", "campaign", "100001", 55000, None],   # landed
            ["b", "r1", now, "scale_down", "adset", "100010", 9000, None],     # still 10000: did not land
            ["c", "r1", now, "pause", "ad", "100013", None, None],             # landed
            ["d", "r1", now, "publish_winner", "ad", "100011", None, ["100013"]],  # loser paused: landed
            ["e", "r1", now, "publish_winner", "ad", "100013", None, ["100011"]],  # loser still active
            ["f", "r1", now, "create_variant", "ad", "100003", None, None],    # a copy made since: landed
            ["g", "r0", earlier, "create_variant", "ad", "100003", None, None],  # the older copy is its own
            ["h", "r1", now, "create_variant", "ad", "100007", None, None],    # no copy of 100007: did not land
            ["i", "r1", now, "resume", "ad", "100011", None, None],            # ACTIVE: landed
            ["j", "r1", now, "resume", "ad", "100013", None, None],            # still PAUSED: did not land
            ["k", "r1", now, "reallocate", "campaign", "100001", None, None],  # cannot be told: left open
        ],
        columns=COLUMNS,
    )
    settled = reconcile_writes(open_writes, snapshot).set_index("action_id")
    assert settled["landed"].to_dict() == {
        "a": True, "b": False, "c": True, "d": True, "e": False, "f": True, "g": True, "h": False, "i": True, "j": False,
    }
    assert settled.loc["b", "observed"] == "daily budget now 10000"
    assert settled.loc["c", "observed"] == "status now PAUSED"
    assert settled.loc["f", "observed"] == "copy 100091 created 2026-11-25T09:00:00+00:00"
    assert settled.loc["g", "observed"] == "copy 100090 created 2026-11-20T08:00:00+00:00"
    assert settled.loc["h", "observed"] == "no copy of it created since 2026-11-25T09:00:00+00:00"


def test_a_copy_made_before_the_write_is_not_its_variant():
    doc = seed_document()
    source = next(ad for ad in doc["ads"] if ad["id"] == "100003")
    doc["ads"].append({**source, "id": "100090", "source_ad_id": "100003", "created_time": "2026-11-20T08:00:00+00:00"})
    open_writes = pd.DataFrame([["f", "r1", "2026-11-25T09:00:00+00:00", "create_variant", "ad", "100003", None, None]], columns=COLUMNS)
    (landed,) = reconcile_writes(open_writes, parse_snapshot(doc))["landed"]
    assert not landed
