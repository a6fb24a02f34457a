"""Routing's security rules: what needs a person even in auto mode."""

import numpy as np
import pandas as pd
import pytest

from meta_ads_dagster.engine.routing import limit_writes, route_actions
from meta_ads_dagster.settings import load_settings

from .factories import make_action


def routed(*rows, mode="auto", **settings):
    """Routed, then limited: what the cycle would write of ``rows``."""
    settings = load_settings(meta_auto_mode=mode, **settings)
    return limit_writes(route_actions(pd.DataFrame(list(rows)), settings), settings).set_index("id")


@pytest.mark.parametrize("current, new, verdict", [
    (400_000.0, 440_000.0, "executed"),   # +$400: fine in auto mode
    (600_000.0, 660_000.0, "queued"),     # +$600: over $500, needs a person
    (600_000.0, 540_000.0, "queued"),     # -$600: cuts too
])
def test_a_budget_change_over_500_always_needs_approval(current, new, verdict):
    out = routed(make_action(current_budget_minor=current, new_budget_minor=new, amount_pct=0.1))
    assert out.loc["a1", "verdict"] == verdict
    if verdict == "queued":
        assert "APPROVAL_MIN_BUDGET_CHANGE_USD" in out.loc["a1", "reasons"][-1]


def hard_stop(i: int, spend_7d: float, roas: float) -> dict:
    return make_action(id=f"p{i}", entity_id=str(i), entity_type="ad", type="pause", rule="hard_stop",
                       current_budget_minor=np.nan, amount_pct=np.nan, spend_7d=spend_7d, roas_7d=roas)


@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_a_mass_pause_pauses_the_worst_losers_now_and_queues_the_rest(mode):
    """Issue 9 #1: 11 hard stops used to be all queued ("mass pause ... needs approval"), in both
    modes: the brake failed on the day it was needed. Now MASS_PAUSE_LIMIT (10) execute, the most
    money lost per day (spend × (1 − ROAS)) first; the one losing least is queued for a person."""
    # Money lost per day: ad i loses (700 + 70 i)/7 × 0.7; ad 3 made cheapest by a better ROAS.
    pauses = [hard_stop(i, 700.0 + 70 * i, 0.3) for i in range(11)]
    pauses[3] = hard_stop(3, 2000.0, 0.85)  # spends most, but loses 2000/7 × 0.15 ≈ 43 a day: the least
    out = routed(*pauses, mode=mode)
    assert (out.drop(index="p3")["verdict"] == "executed").all()
    assert out.loc["p3", "verdict"] == "queued"
    assert "mass pause: 11 pauses found in one cycle exceed MASS_PAUSE_LIMIT 10" in out.loc["p3", "reasons"][-1]
    assert (routed(*pauses[:10])["verdict"] == "executed").all()  # ten is not a mass pause
    assert (routed(*pauses, mass_pause_limit=20)["verdict"] == "executed").all()
    zero = routed(*pauses, mass_pause_limit=0)
    assert (zero["verdict"] == "queued").all()  # MASS_PAUSE_LIMIT=0: every pause asks a person


def test_an_ab_decision_counts_its_losers_and_comes_after_the_hard_stops():
    stops = [hard_stop(i, 700.0, 0.3) for i in range(8)]
    winner = make_action(id="w", entity_type="ad", entity_id="100", type="publish_winner", rule="ab_winner",
                         current_budget_minor=np.nan, amount_pct=np.nan, loser_ad_ids=("101", "102", "103"))
    out = routed(*stops, winner)
    # 8 + 3 pauses > 10: the eight hard stops go, the A/B unit (3 pauses) no longer fits and waits.
    assert (out.drop(index="w")["verdict"] == "executed").all()
    assert out.loc["w", "verdict"] == "queued" and "mass pause: 11 pauses" in out.loc["w", "reasons"][-1]


def test_a_pause_sent_to_a_person_claims_no_entity_from_the_actions_it_had_superseded():
    """Two hard stops fit under MASS_PAUSE_LIMIT 2; a third, on an ad an A/B decision would also
    pause, is queued. The A/B decision is then not left superseded by a write that never happens:
    it is a pause too and meets the same limit (queued with the same reason)."""
    stops = [hard_stop(i, 2000.0, 0.3) for i in range(2)] + [hard_stop(7, 100.0, 0.5)]
    winner = make_action(id="w", entity_type="ad", entity_id="70", type="publish_winner", rule="ab_winner",
                         current_budget_minor=np.nan, amount_pct=np.nan, loser_ad_ids=("7",))
    out = routed(*stops, winner, mass_pause_limit=2)
    assert out["verdict"].to_dict() == {"p0": "executed", "p1": "executed", "p7": "queued", "w": "queued"}
    assert all("mass pause" in out.loc[i, "reasons"][-1] for i in ("p7", "w"))
    # With room for three, the hard stop pauses the ad and the A/B decision on it is superseded.
    roomy = routed(*stops, winner, mass_pause_limit=3)
    assert roomy["verdict"].to_dict() == {"p0": "executed", "p1": "executed", "p7": "executed", "w": "superseded"}
