"""Routing's security rules: what needs a person even in auto mode."""

import numpy as np
import pandas as pd
import pytest

from meta_ads_dagster.engine.routing import route_actions
from meta_ads_dagster.settings import load_settings

from .factories import make_action


def routed(*rows, **settings):
    return route_actions(pd.DataFrame(list(rows)), load_settings(meta_auto_mode="auto", **settings)).set_index("id")


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


def test_a_mass_pause_needs_approval_even_for_hard_stops():
    pauses = [make_action(id=f"p{i}", entity_id=str(i), entity_type="ad", type="pause", rule="hard_stop",
                          current_budget_minor=np.nan, amount_pct=np.nan) for i in range(11)]
    out = routed(*pauses)
    assert (out["verdict"] == "queued").all()
    assert all("mass pause: 11 pauses" in r[-1] for r in out["reasons"])
    assert (routed(*pauses[:10])["verdict"] == "executed").all()  # ten is not a mass pause
    assert (routed(*pauses, mass_pause_limit=20)["verdict"] == "executed").all()
