"""engine/outage.py: a tracking outage is told from a bad day, and the cycle holds what it cannot trust.

The decision under test: on an outage the hard stop still pauses an entity that was losing money
before tracking broke, and queues for a person one that only the outage pushed under the
threshold; everything else executable waits (the cycle's own: queued; a person's approvals:
deferred, but their pauses and cuts go ahead).
"""

from __future__ import annotations

import pandas as pd
import pytest

from meta_ads_dagster.engine.outage import OUTAGE_MIN_EXPECTED_PURCHASES, hold_on_outage, tracking_outage
from meta_ads_dagster.engine.snapshot import parse_snapshot
from meta_ads_dagster.settings import load_settings

from .factories import Day, campaign, campaign_id, days_from, make_action, make_snapshot, plan_actions

SPEND, PURCHASES = 200.0, 20  # per campaign and day: a hundred-odd purchases a week, firm confidence


def days(roas: float, dark: int = 0, n: int = 7, purchases: int = PURCHASES, spend: float = SPEND, dark_share: float = 0.0) -> list[Day]:
    """``n`` days at ``roas``, the last ``dark`` of them reporting ``dark_share`` of their purchases
    and revenue (spend and traffic go on)."""
    share = [1.0] * (n - dark) + [dark_share] * dark
    return days_from(
        spend=[spend] * n, revenue=[round(spend * roas * s, 2) for s in share], purchases=[round(purchases * s) for s in share],
    )


def account(dark: int = 0, **kwargs) -> dict:
    """A money pit (ROAS 0.6), a marginal campaign (ROAS 1.0: above the hard stop on real data), a
    weak one (ROAS 1.6: a cut once the outage pulls it under 1.5) and a winner (ROAS 4: a raise)."""
    return make_snapshot([
        campaign(days=days(0.6, dark, **kwargs), name="pit"),
        campaign(days=days(1.0, dark, **kwargs), name="marginal"),
        campaign(days=days(1.6, dark, **kwargs), name="weak"),
        campaign(days=days(4.0, dark, **kwargs), name="winner"),
    ])


PIT, MARGINAL, WEAK, WINNER = (campaign_id(c) for c in range(4))


def by_entity(actions: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    return {row.entity_id: (row.type, row.rule, row.verdict) for row in actions.itertuples()}


def test_no_outage_on_a_normal_account():
    assert tracking_outage(parse_snapshot(account())) is None


@pytest.mark.parametrize("dark", [1, 2, 3])
def test_the_dark_days_ending_yesterday_are_the_outage(dark):
    outage = tracking_outage(parse_snapshot(account(dark=dark, n=10)))
    assert outage is not None and len(outage.days) == dark
    snapshot = parse_snapshot(account(dark=dark, n=10))
    assert outage.days[-1] == snapshot.today - pd.Timedelta(days=1)
    assert outage.purchases == 0 and outage.spend == pytest.approx(4 * SPEND * dark)
    assert outage.expected_purchases == pytest.approx(4 * PURCHASES * dark, rel=0.35)
    assert "tracking outage" in outage.describe() and "purchase(s) reported" in outage.describe()


@pytest.mark.parametrize(
    "why, document",
    [
        ("half the purchases is a bad day, not an outage", account(dark=1, dark_share=0.5)),
        ("a dark day before a normal yesterday is over", make_snapshot([campaign(days=days(2.0, dark=1, n=8)[:-1] + days(2.0, n=1))])),
        # A small account: a day without a sale is chance when a few were expected.
        ("too few purchases expected to tell", make_snapshot([campaign(days=days(2.0, dark=1, purchases=1, spend=20))])),
        ("no spend on the dark day", make_snapshot([campaign(days=days(2.0, n=6) + days_from(spend=[0.0], revenue=[0.0], purchases=0))])),
        ("today's partial day is never judged", make_snapshot([campaign(days=days(2.0), today=Day(spend=150, revenue=0, purchases=0))])),
    ],
)
def test_no_outage_without_a_dark_yesterday(why, document):
    assert tracking_outage(parse_snapshot(document)) is None, why


def test_the_threshold_is_the_expected_count():
    # Just above the minimum of expected purchases, a dark day counts; at a tenth of the volume it does not.
    per_day = OUTAGE_MIN_EXPECTED_PURCHASES + 2
    assert tracking_outage(parse_snapshot(make_snapshot([campaign(days=days(2.0, dark=1, purchases=per_day))]))) is not None
    assert tracking_outage(parse_snapshot(make_snapshot([campaign(days=days(2.0, dark=1, purchases=per_day // 10))]))) is None


def test_without_an_outage_the_cycle_acts_on_every_rule():
    actions = by_entity(plan_actions(account(dark=0), meta_auto_mode="auto"))
    assert actions[PIT] == ("pause", "hard_stop", "executed")
    assert actions[MARGINAL] == ("scale_down", "roas_low", "executed")  # ROAS 1.0: above the hard stop, a cut
    assert WEAK not in actions  # ROAS 1.6: the hold band
    assert actions[WINNER] == ("scale_up", "roas_high", "executed")


def test_on_an_outage_only_the_hard_stops_that_hold_without_it_are_written():
    document = account(dark=1)
    snapshot = parse_snapshot(document)
    # What the outage does to the numbers: the marginal campaign now reads under the hard stop.
    actions = plan_actions(document, meta_auto_mode="auto")
    found = by_entity(actions)

    assert found[PIT] == ("pause", "hard_stop", "executed")  # losing money before the outage too
    assert found[MARGINAL] == ("pause", "hard_stop", "queued")  # only the outage put it under 0.9
    assert found[WINNER] == ("scale_up", "roas_high", "queued")
    assert found[WEAK] == ("scale_down", found[WEAK][1], "queued")  # a cut on a ROAS the outage pulled down
    assert (actions["verdict"] == "executed").sum() == 1
    held = actions[actions["verdict"] == "queued"]
    assert held["reasons"].map(lambda r: "tracking outage" in r[-1]).all()
    assert tracking_outage(snapshot) is not None


def test_in_suggest_mode_the_outage_changes_only_the_hard_stops():
    actions = by_entity(plan_actions(account(dark=1), meta_auto_mode="suggest"))
    assert actions[PIT][2] == "executed" and actions[MARGINAL][2] == "queued"
    assert actions[WINNER][2] == actions[WEAK][2] == "queued"


def test_a_persons_approvals_on_an_outage():
    """Approved pauses and cuts were decided on the data before: they go ahead. An approved raise
    waits (deferred: it stays approved); the cycle's own raise is queued."""
    snapshot = parse_snapshot(account(dark=1))
    settings = load_settings(meta_auto_mode="auto")
    rows = [
        make_action(id="approved-pause", type="pause", rule="hard_stop", entity_id=WEAK, campaign_id=WEAK, verdict="executed"),
        make_action(id="approved-cut", type="scale_down", rule="roas_low", entity_id=WEAK, campaign_id=WEAK, verdict="executed"),
        make_action(id="approved-raise", entity_id=WINNER, campaign_id=WINNER, verdict="executed"),
        make_action(id="own-raise", entity_id=WINNER, campaign_id=WINNER, verdict="executed"),
        make_action(id="own-queued", entity_id=WINNER, campaign_id=WINNER, verdict="queued"),
    ]
    actions = pd.DataFrame(rows).assign(approved_in_run=["r0", "r0", "r0", None, None])
    held, outage = hold_on_outage(actions, snapshot, settings)
    assert outage is not None
    assert dict(zip(held["id"], held["verdict"])) == {
        "approved-pause": "executed", "approved-cut": "executed", "approved-raise": "deferred", "own-raise": "queued", "own-queued": "queued",
    }
    assert actions["verdict"].tolist()[:4] == ["executed"] * 4  # the input is left as it was

    unchanged, none = hold_on_outage(actions, parse_snapshot(account()), settings)
    assert none is None and unchanged["verdict"].tolist() == actions["verdict"].tolist()
