"""engine/reconcile.py: open writes are settled from what the account shows, never re-sent."""

import pandas as pd

from meta_ads_dagster.engine.reconcile import reconcile_writes
from meta_ads_dagster.engine.snapshot import parse_snapshot

from .factories import seed_document

COLUMNS = ["action_id", "cycle_run_id", "type", "entity_type", "entity_id", "new_budget_minor", "loser_ad_ids"]


def test_open_writes_are_judged_by_the_current_state():
    doc = seed_document()
    doc["campaigns"][0]["daily_budget"] = "55000"  # Black Friday: the raise to 550.00 landed
    doc["ads"][3]["status"] = "PAUSED"  # Variant B paused
    snapshot = parse_snapshot(doc)
    open_writes = pd.DataFrame(
        [
            ["a", "r1", "scale_up", "campaign", "100001", 55000, None],   # landed
            ["b", "r1", "scale_down", "adset", "100010", 9000, None],     # still 10000: did not land
            ["c", "r1", "pause", "ad", "100013", None, None],             # landed
            ["d", "r1", "publish_winner", "ad", "100011", None, ["100013"]],  # loser paused: landed
            ["e", "r1", "publish_winner", "ad", "100013", None, ["100011"]],  # loser still active
            ["f", "r1", "create_variant", "ad", "100003", None, None],    # cannot be told: left open
        ],
        columns=COLUMNS,
    )
    settled = reconcile_writes(open_writes, snapshot).set_index("action_id")
    assert settled["landed"].to_dict() == {"a": True, "b": False, "c": True, "d": True, "e": False}
    assert settled.loc["b", "observed"] == "daily budget now 10000"
    assert settled.loc["c", "observed"] == "status now PAUSED"
