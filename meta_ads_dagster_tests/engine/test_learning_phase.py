"""Learning-phase awareness (issue 15): the parser's learning_stage_info, the hold on raises while an
ad set they reach is learning, raises sized within the significant-edit threshold, and Meta's four
budget edits per hour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meta_ads_dagster.engine.history import budget_edits_in_hour, history_frame
from meta_ads_dagster.engine.metrics import entity_table
from meta_ads_dagster.engine.policy import PolicyEngine
from meta_ads_dagster.engine.safety import META_BUDGET_EDITS_PER_HOUR, AccountSpend, SafetyEngine
from meta_ads_dagster.engine.snapshot import SnapshotError, parse_snapshot
from meta_ads_dagster.settings import load_settings

from .factories import AdSetSpec, CampaignSpec, adset_id, campaign, campaign_id, make_action, make_snapshot, plan_actions

ROOMY = AccountSpend(total_active_daily_budget=0.0, spend_today=0.0)


def one_adset_document(learning_stage_info) -> dict:
    document = make_snapshot([campaign()])
    document["adsets"][0]["learning_stage_info"] = learning_stage_info
    return document


# --- the parser ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("info", "status", "conversions", "last_edit"),
    [
        ({"status": "LEARNING", "conversions": "12", "last_sig_edit_ts": 1763600000}, "LEARNING", 12, "2025-11-20T00:53:20+00:00"),
        ({"status": "SUCCESS", "conversions": 57, "last_sig_edit_ts": "1763600000", "attribution_windows": ["7d_click"]},
         "SUCCESS", 57, "2025-11-20T00:53:20+00:00"),
        ({"status": "FAIL"}, "FAIL", None, None),
        (None, None, None, None),
    ],
    ids=["learning", "success-with-strings-and-extra-keys", "fail-status-only", "null"],
)
def test_learning_stage_info_is_read_into_the_ad_set_frame(info, status, conversions, last_edit):
    adset = parse_snapshot(one_adset_document(info)).adsets.iloc[0]
    assert (adset["learning_status"] if isinstance(adset["learning_status"], str) else None) == status
    assert (None if pd.isna(adset["learning_conversions"]) else int(adset["learning_conversions"])) == conversions
    assert (None if pd.isna(adset["last_sig_edit_at"]) else adset["last_sig_edit_at"].isoformat()) == last_edit


def test_an_ad_set_without_learning_stage_info_is_not_learning():
    adsets = parse_snapshot(make_snapshot([campaign()])).adsets
    assert adsets["learning_status"].isna().all() and adsets["last_sig_edit_at"].isna().all()


@pytest.mark.parametrize(
    ("info", "field", "says"),
    [
        ({"status": "LEARNED"}, "status", "'LEARNING', 'SUCCESS' or 'FAIL'"),
        ({"conversions": 3}, "status", "Field required"),
        ({"status": "LEARNING", "conversions": 1.5}, "conversions", "whole number"),
        ({"status": "LEARNING", "conversions": -1}, "conversions", "whole number"),
        ({"status": "LEARNING", "last_sig_edit_ts": "2026-11-20T10:00:00+00:00"}, "last_sig_edit_ts", "Unix time in whole seconds"),
        ({"status": "LEARNING", "last_sig_edit_ts": 10**13}, "last_sig_edit_ts", "years 1970 to 2199"),
        ({"status": "LEARNING", "last_sig_edit_ts": True}, "last_sig_edit_ts", "Unix time"),
        ("LEARNING", None, "valid dictionary"),
    ],
    ids=["unknown-status", "no-status", "fractional-conversions", "negative-conversions", "time-as-text", "past-2199",
         "boolean-time", "a-string"],
)
def test_a_bad_learning_stage_info_is_rejected_naming_object_index_and_field(info, field, says):
    document = one_adset_document(info)
    with pytest.raises(SnapshotError) as error:
        parse_snapshot(document)
    where = f"adsets[0] (id {document['adsets'][0]['id']}).learning_stage_info" + (f".{field}" if field else "")
    assert where in str(error.value) and says in str(error.value)


# --- which learning ad sets a budget reaches ---------------------------------------------------------
def test_a_campaign_budget_reaches_its_running_ad_sets_and_an_ad_set_budget_only_itself():
    cbo = CampaignSpec(adsets=[AdSetSpec(learning_status="LEARNING"), AdSetSpec(learning_status="SUCCESS"),
                               AdSetSpec(learning_status="LEARNING", status="PAUSED")])
    own = CampaignSpec(daily_budget_usd=None, adsets=[AdSetSpec(daily_budget_usd=100, learning_status="LEARNING"),
                                                       AdSetSpec(daily_budget_usd=100, learning_status="FAIL")])
    table = entity_table(parse_snapshot(make_snapshot([cbo, own]))).set_index(["entity_type", "entity_id"])["learning_adsets"]
    assert table[("campaign", campaign_id(0))] == (adset_id(0, 0),)  # the paused learning ad set delivers nothing
    assert table[("adset", adset_id(1, 0))] == (adset_id(1, 0),)
    assert table[("adset", adset_id(1, 1))] == ()  # FAIL (learning limited) is not learning
    assert table[("campaign", campaign_id(1))] == (adset_id(1, 0),)


# --- the hold --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "held"),
    [
        (dict(type="scale_up", entity_type="adset", entity_id="7", learning_adsets=("7",)), True),
        (dict(type="scale_up", learning_adsets=("8", "9")), True),  # a campaign budget (CBO): any of its ad sets
        (dict(type="scale_up", learning_adsets=()), False),
        (dict(type="scale_down", rule="roas_low", roas_7d=1.0, learning_adsets=("8",)), False),
        (dict(type="pause", rule="hard_stop", roas_7d=0.5, proposed_pct=np.nan, amount_pct=np.nan, learning_adsets=("8",)), False),
        (dict(type="pause", rule="hard_stop", roas_7d=0.5, proposed_pct=np.nan, amount_pct=np.nan, impressions_7d=10, spend_7d=1.0,
              age_hours=1.0, hours_since_last_action=0.5, learning_adsets=("8",)), False),
        (dict(type="publish_winner", rule="ab_winner", entity_type="ad", proposed_pct=np.nan, amount_pct=np.nan,
              creative_approved=True, learning_adsets=("8",)), False),
    ],
    ids=["adset-raise", "cbo-raise", "nothing-learning", "cut", "hard-stop", "hard-stop-past-every-other-rail", "ab-decision"],
)
def test_only_raises_are_held_while_an_ad_set_they_reach_is_learning(row, held):
    settings = load_settings(learning_phase_hold=True)
    out = SafetyEngine(settings).evaluate(PolicyEngine(settings).evaluate(pd.DataFrame([make_action(**row)])), ROOMY).iloc[0]
    learning_reasons = [r for r in out["reasons"] if "learning phase" in r]
    assert (out["verdict"] == "deferred") == held
    assert bool(learning_reasons) == held
    if held:
        assert all(adset in learning_reasons[0] for adset in row["learning_adsets"])
        assert "LEARNING_PHASE_HOLD" in learning_reasons[0]


@pytest.mark.parametrize(("settings", "held"), [({}, False), ({"learning_phase_hold": False}, False), ({"learning_phase_hold": True}, True)],
                         ids=["off-by-default", "off", "on"])
def test_the_hold_is_a_setting_off_by_default(settings, held):
    settings = load_settings(**settings)
    row = PolicyEngine(settings).evaluate(pd.DataFrame([make_action(learning_adsets=("8",))]))
    assert (SafetyEngine(settings).evaluate(row, ROOMY).iloc[0]["verdict"] == "deferred") == held


def test_a_held_raise_leaves_its_room_under_the_spend_cap_to_the_next():
    settings = load_settings(max_daily_spend_usd=1100, learning_phase_hold=True)
    rows = [make_action(id="held", entity_id="1", campaign_id="1", confidence=0.99, learning_adsets=("11",)),
            make_action(id="next", entity_id="2", campaign_id="2", confidence=0.90)]
    out = SafetyEngine(settings).evaluate(PolicyEngine(settings).evaluate(pd.DataFrame(rows)), AccountSpend(1000.0, 0.0)).set_index("id")
    assert out.loc["held", "verdict"] == "deferred"
    assert out.loc["next", "verdict"] == "proposed" and out.loc["next", "new_budget_minor"] == 60_000  # the whole $100 room


@pytest.mark.parametrize(("status", "held"), [("LEARNING", True), ("SUCCESS", False), ("FAIL", False), (None, False)])
def test_a_cycle_holds_the_raise_of_a_cbo_campaign_with_a_learning_ad_set(status, held):
    strong = campaign(roas=4.5, purchases=60)
    strong.adsets = [AdSetSpec(ads=strong.adsets[0].ads, learning_status=status), AdSetSpec(learning_status="SUCCESS")]
    raise_ = plan_actions(make_snapshot([strong]), learning_phase_hold=True).set_index("type").loc["scale_up"]
    assert (raise_["verdict"] == "deferred") == held
    assert (f"this campaign's ad set {adset_id(0, 0)} is in Meta's learning phase" in " ".join(raise_["reasons"])) == held


def test_an_approved_raise_is_held_and_stays_approved_while_learning():
    from meta_ads_dagster.engine.approvals import revalidate

    settings = load_settings(learning_phase_hold=True)
    candidate = pd.DataFrame([make_action(learning_adsets=("8",), reasons=["approved by ana"])]).assign(
        active=True, approved_budget_minor=50_000.0, actor="ana", approved_in_run="run-1", decided_at=pd.Timestamp("2026-11-25", tz="UTC"))
    out = revalidate(candidate, candidate.iloc[0:0], ROOMY, settings).iloc[0]
    assert out["verdict"] == "deferred"  # close_carried_approvals keeps a deferred approval approved


# --- raises within the significant-edit threshold ----------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "proposed", "used", "amount", "verdict", "says"),
    [
        ("scale_up", 0.40, 0.0, 0.20, "proposed", "to stay within the 20% significant-edit threshold"),
        ("scale_up", 0.15, 0.0, 0.15, "proposed", None),
        ("scale_up", 0.40, 0.08, 0.12, "proposed", "8% changed in the last 24 h"),
        ("scale_up", 0.40, 0.18, np.nan, "policy_blocked", "significant-edit threshold (SIGNIFICANT_EDIT_PCT)"),
        ("scale_down", 0.40, 0.0, 0.40, "proposed", None),  # a cut keeps the mode's limit: it is protective
    ],
    ids=["clamped", "within", "less-the-last-24h", "used-up", "cut-unaffected"],
)
def test_a_raise_is_sized_within_the_significant_edit_threshold(kind, proposed, used, amount, verdict, says):
    settings = load_settings(max_daily_change_pct=0.5, max_auto_change_pct=0.1, significant_edit_pct=0.2)
    row = make_action(type=kind, rule="roas_high" if kind == "scale_up" else "roas_low", roas_7d=3.5 if kind == "scale_up" else 1.0,
                      proposed_pct=proposed, amount_pct=proposed, changed_24h_pct=used)
    out = PolicyEngine(settings).evaluate(pd.DataFrame([row])).iloc[0]
    assert out["verdict"] == verdict
    if verdict == "proposed":
        assert out["amount_pct"] == pytest.approx(amount)
    assert (says is None) == (not any("significant-edit" in r for r in out["reasons"]))
    if says:
        assert any(says in r for r in out["reasons"])


@given(proposed=st.floats(0.01, 1.0), used=st.floats(0.0, 0.5), threshold=st.floats(0.05, 1.0), budget=st.integers(100, 10**9))
def test_no_raise_ever_exceeds_the_threshold_less_the_last_24h(proposed, used, threshold, budget):
    settings = load_settings(max_daily_change_pct=1.0, significant_edit_pct=threshold)
    row = make_action(proposed_pct=proposed, amount_pct=proposed, changed_24h_pct=used, current_budget_minor=float(budget))
    out = PolicyEngine(settings).evaluate(pd.DataFrame([row])).iloc[0]
    if out["verdict"] == "proposed":
        assert out["new_budget_minor"] - budget <= (threshold - used) * budget + 1e-6


# --- Meta's four budget edits per hour ---------------------------------------------------------------
@pytest.mark.parametrize(("edits", "blocked"), [(0, False), (3, False), (4, True), (7, True)])
@pytest.mark.parametrize("kind", ["scale_up", "scale_down"])
def test_a_fifth_budget_edit_within_the_hour_is_blocked(kind, edits, blocked):
    settings = load_settings()
    row = make_action(type=kind, rule="roas_low" if kind == "scale_down" else "roas_high", roas_7d=1.0 if kind == "scale_down" else 3.5,
                      budget_edits_1h=edits, hours_since_last_action=30.0)
    out = SafetyEngine(settings).evaluate(PolicyEngine(settings).evaluate(pd.DataFrame([row])), ROOMY).iloc[0]
    assert (out["verdict"] == "safety_blocked") == blocked
    assert any(f"changed {edits} times in the last hour" in r for r in out["reasons"]) == blocked


def test_a_pause_is_never_blocked_by_the_budget_edit_limit():
    row = make_action(type="pause", rule="hard_stop", roas_7d=0.5, proposed_pct=np.nan, amount_pct=np.nan, budget_edits_1h=9)
    assert SafetyEngine(load_settings()).evaluate(pd.DataFrame([row]), ROOMY).iloc[0]["verdict"] == "proposed"


@pytest.mark.parametrize("interval_minutes", [5, 10, 15, 20, 30, 60])
def test_never_more_than_four_budget_edits_an_hour_whatever_the_interval(interval_minutes):
    """A cycle every ``interval_minutes`` that would change the same budget every time (the 24 h
    cooldown aside): the edit rate rail alone keeps every rolling hour at four edits at most."""
    safety, start = SafetyEngine(load_settings()), pd.Timestamp("2026-11-25T00:00:00Z")
    written: list[pd.Timestamp] = []
    for tick in range(6 * 60 // interval_minutes):
        now = start + pd.Timedelta(minutes=tick * interval_minutes)
        history = history_frame([pd.DataFrame({"entity_type": "campaign", "entity_id": "1", "type": "scale_up", "rule": "roas_high",
                                               "amount_pct": 0.05, "executed_at": written})])
        edits = budget_edits_in_hour(pd.DataFrame({"entity_type": ["campaign"], "entity_id": ["1"]}), history, now)
        allowed, _ = safety.check_budget_edit_rate(edits)
        if allowed[0]:
            written.append(now)
    times = pd.Series(written)
    per_hour = [((times > t - pd.Timedelta(hours=1)) & (times <= t)).sum() for t in times]
    assert max(per_hour) <= META_BUDGET_EDITS_PER_HOUR
    # and the limit is not stricter than Meta's: four edits do go through in an hour when the interval allows it
    assert max(per_hour) == min(META_BUDGET_EDITS_PER_HOUR, 60 // interval_minutes)


def test_rollbacks_count_toward_the_budget_edits_of_the_hour():
    now = pd.Timestamp("2026-11-25T12:00:00Z")
    history = history_frame([pd.DataFrame({
        "entity_type": "adset", "entity_id": "5", "type": ["scale_up", "scale_down", "scale_up", "pause"],
        "rule": ["roas_high", "rollback", "roas_high", "hard_stop"], "amount_pct": 0.1,
        "executed_at": [now - pd.Timedelta(minutes=m) for m in (10, 20, 70, 5)],
    })])
    assert budget_edits_in_hour(pd.DataFrame({"entity_type": ["adset"], "entity_id": ["5"]}), history, now).tolist() == [2]
