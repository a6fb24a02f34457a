"""Paths into ../shared (the binding contract and its examples) and the plan contract's keys."""

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED_SNAPSHOT_PATH = SHARED / "examples" / "seed_worked_examples.json"
CONTRACT_PATH = SHARED / "contracts" / "SNAPSHOT.md"
KAG_CSV = SHARED / "data" / "kag_conversion_data.csv"

# The output keys of `meta-ads plan --format json`, as SNAPSHOT.md specifies them.
PLAN_KEYS = {"as_of", "mode", "actions", "stats"}
ACTION_KEYS = {
    "id", "type", "entity_type", "entity_id", "rule", "proposed_pct", "amount_pct",
    "current_budget_usd", "new_budget_usd", "confidence", "verdict", "reasons",
}
STATS_KEYS = {
    "campaigns_evaluated", "actions_generated", "actions_policy_blocked", "actions_safety_blocked",
    "actions_queued", "actions_executed", "actions_failed", "errors",
}
ACTION_TYPES = {"scale_up", "scale_down", "pause", "resume", "reallocate", "publish_winner", "create_variant"}
