"""The backtest's replay on accounts whose replay is known by hand (factories' snapshots).

The hand-known account has 14 full days of insights before its as_of (2026-11-25 10:30 UTC), so
8 days can be replayed: 2026-11-18 to 2026-11-25, each decided at 10:30.

- "Rising" (campaign 0, $500 CBO): ROAS 2 on every day up to 2026-11-20, 20 from 2026-11-21 on.
  The first decision that sees a 2026-11-21 row is 2026-11-22's (7-day ROAS 4.6): its first raise.
- "Mixed" (campaign 1): a good ad (ROAS 2.6) and a bad one (ROAS 0.5, 35 purchases in 7 days);
  the campaign (ROAS 1.55) is in the hold band, the bad ad is hard-stopped on the first day.
- "Strong" (campaign 2): ROAS 4 every day, so a raise is proposed every day; someone changed it by
  hand at 08:30 on 2026-11-20 (``recent_actions``), two hours before that day's decision.
"""

from __future__ import annotations

import pandas as pd
import pytest

from meta_ads_dagster.backtest import backtest_document, decision_moment, replay, replay_days
from meta_ads_dagster.backtest.replay import ReplayedAccount, carry_out_approvals
from meta_ads_dagster.engine.cycle import plan_cycle
from meta_ads_dagster.engine.snapshot import load_snapshot_text, parse_snapshot
from meta_ads_dagster.settings import load_settings

from ..engine.factories import (
    AdSetSpec, AdSpec, CampaignSpec, Day, ad_id, campaign, campaign_id, days_from, make_snapshot, plan_actions,
    recent_action, steady_days,
)
from ..repo_files import DEMO_SNAPSHOT_PATH

OLD = 24 * 30  # every object exists before the first replayed day
REPLAYED = [f"2026-11-{day}" for day in range(18, 26)]
RISING, STRONG, BAD_AD = campaign_id(0), campaign_id(2), ad_id(1, 0, 1)


def hand_known_account(last_day: Day | None = None) -> dict:
    """The account of the module docstring; ``last_day``: a fourth campaign, steady at ROAS 2,
    whose last full day (2026-11-24) is ``last_day``."""
    campaigns = [
        campaign(days=days_from(spend=[100] * 14, revenue=[200] * 10 + [2000] * 4), age_hours=OLD, name="Rising"),
        CampaignSpec(
            adsets=[AdSetSpec(ads=[
                AdSpec(days=steady_days(14, roas=2.6), name="Good ad"),
                AdSpec(days=steady_days(14, roas=0.5, purchases=5), name="Bad ad"),
            ])],
            age_hours=OLD, name="Mixed",
        ),
        campaign(days=steady_days(14, roas=4.0), age_hours=OLD, name="Strong"),
    ]
    if last_day is not None:
        campaigns.append(campaign(days=steady_days(13) + [last_day], age_hours=OLD, name="Steady"))
    return make_snapshot(campaigns, recent_actions=[recent_action("campaign", STRONG, hours_ago=24 * 5 + 2)])


def replayed(document: dict, approve_all: bool = False, **settings) -> list[dict]:
    return backtest_document(parse_snapshot(document), load_settings(**settings), approve_all=approve_all)["actions"]


def of(rows: list[dict], entity_id: str) -> list[dict]:
    return [row for row in rows if row["entity_id"] == entity_id]


def test_every_day_with_seven_full_days_before_it_is_replayed():
    snapshot = parse_snapshot(hand_known_account())
    assert replay_days(snapshot) == len(REPLAYED)
    _, days = replay(snapshot, load_settings())
    assert [day.date().isoformat() for day in days["day"]] == REPLAYED
    assert (days["decided_at"].dt.strftime("%H:%M") == "10:30").all()


def test_each_day_sees_only_the_full_days_before_it():
    snapshot = parse_snapshot(hand_known_account())
    account = ReplayedAccount.start(snapshot)
    for day in pd.to_datetime(REPLAYED):
        as_it_stood = account.as_it_stood(snapshot, day, decision_moment(snapshot, day))
        dates = as_it_stood.insights["date"]
        assert dates.max() == day - pd.Timedelta(days=1) and dates.min() == snapshot.insights["date"].min()
        assert as_it_stood.as_of == pd.Timestamp(f"{day.date()} 10:30", tz="UTC")


@pytest.mark.parametrize("mode, approve_all, verdict, days, budgets", [
    # 10 % auto limit; after a raise the next one waits for a full day since it (engine/decisions.py)
    ("auto", False, "executed", [REPLAYED[4], REPLAYED[6]], [(500.0, 550.0), (550.0, 605.0)]),
    ("suggest", False, "queued", REPLAYED[4:], [(500.0, 600.0)] * 4),  # nobody approves: the budget never moves
])
def test_a_roas_that_rises_is_raised_first_by_the_decision_that_sees_it(mode, approve_all, verdict, days, budgets):
    rows = of(replayed(hand_known_account(), approve_all, meta_auto_mode=mode), RISING)
    assert [row["day"] for row in rows] == days
    assert {row["type"] for row in rows} == {"scale_up"} and {row["verdict"] for row in rows} == {verdict}
    # A raise on one day is the budget of the next: the replay carries its own decisions. The raise
    # of 11-22 (10:30) has its first full day on 11-23, so the next raise is decided on 11-24.
    assert [(row["budget_before"], row["budget_after"]) for row in rows] == budgets
    assert [row["spend_moved_per_day"] for row in rows] == [round(after - before, 2) for before, after in budgets]
    assert {row["applied"] for row in rows} == {mode == "auto"}


def test_approved_raises_are_carried_out_by_the_next_cycle_within_the_rolling_24_h_limit():
    """Approved at once, each raise is written by the next cycle, 30 minutes after the decision
    that queued it; the next raise waits for a full day since that write (11-23), so a raise goes
    through every other day, each from the budget the last one left."""
    rows = of(replayed(hand_known_account(), True, meta_auto_mode="suggest"), RISING)
    assert [(row["day"], row["decided_at"][11:16], row["verdict"], row["budget_before"], row["budget_after"], row["applied"]) for row in rows] == [
        ("2026-11-22", "10:30", "queued", 500.0, 600.0, False),
        ("2026-11-22", "11:00", "executed", 500.0, 600.0, True),
        ("2026-11-24", "10:30", "queued", 600.0, 720.0, False),
        ("2026-11-24", "11:00", "executed", 600.0, 720.0, True),
    ]
    assert rows[1]["reasons"][0] == "approved by backtest --approve-all (proposed in run backtest 2026-11-22)"


@pytest.mark.parametrize("change, verdict, reason", [
    ("budget", "superseded", "the budget changed since it was proposed (500.00 → 700.00)"),
    ("pause", "safety_blocked", "no longer active: approval not carried out"),
])
def test_an_approval_the_account_no_longer_supports_is_not_carried_out(change, verdict, reason):
    """Between the decision that queued a raise and the next cycle, the campaign's budget is
    changed (or it is paused): the approval is refused, as a real cycle refuses it."""
    snapshot = parse_snapshot(hand_known_account())
    settings = load_settings(meta_auto_mode="suggest")
    account = ReplayedAccount.start(snapshot)
    day = pd.Timestamp(REPLAYED[4])
    moment = decision_moment(snapshot, day)
    actions, _ = plan_cycle(account.as_it_stood(snapshot, day, moment), settings, account.history(account.as_it_stood(snapshot, day, moment)))
    queued = actions[actions["verdict"].eq("queued") & actions["entity_id"].eq(RISING)]
    assert len(queued) == 1
    column, value = {"budget": ("daily_budget", 70_000), "pause": ("status", "PAUSED")}[change]
    account.campaigns.loc[account.campaigns["id"].eq(RISING), column] = value
    then = account.as_it_stood(snapshot, day, moment + pd.Timedelta(minutes=30))
    (approval,) = carry_out_approvals(then, queued, actions.iloc[:0], account.history(then), settings, moment).itertuples()
    assert approval.verdict == verdict and reason in approval.reasons[-1]


@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_a_money_losing_ad_is_paused_once_and_never_acted_on_again(mode):
    rows = replayed(hand_known_account(), meta_auto_mode=mode)
    (pause,) = of(rows, BAD_AD)
    assert (pause["day"], pause["type"], pause["rule"], pause["verdict"], pause["applied"]) == (
        REPLAYED[0], "pause", "hard_stop", "executed", True)
    assert pause["spend_moved_per_day"] == -100.0  # its trailing daily spend
    assert of(rows, campaign_id(1)) == []  # the campaign (ROAS 1.55) holds


def test_a_change_made_by_hand_counts_from_when_it_was_made():
    """Strong (ROAS 4) is raised on 11-18; 11-19 has no full day since; on 11-20 the change made by
    hand at 08:30 that day is the last change, so the next raise is decided on 11-22, once 11-21 is
    a full day after it."""
    rows = of(replayed(hand_known_account(), meta_auto_mode="auto"), STRONG)
    assert [(row["day"], row["verdict"]) for row in rows] == [(REPLAYED[0], "executed"), (REPLAYED[4], "executed"), (REPLAYED[6], "executed")]
    assert [row["budget_before"] for row in rows[1:]] == [row["budget_after"] for row in rows[:-1]]


def test_a_spike_on_the_last_day_is_seen_by_the_last_decision_only():
    plain = replayed(hand_known_account(last_day=Day()), meta_auto_mode="auto")
    spiked = replayed(hand_known_account(last_day=Day(spend=100, revenue=20_000, purchases=400)), meta_auto_mode="auto")
    before_last = [row for row in spiked if row["day"] != REPLAYED[-1]]
    assert before_last == [row for row in plain if row["day"] != REPLAYED[-1]]
    steady = campaign_id(3)
    assert of(plain, steady) == []
    (raise_,) = of(spiked, steady)
    assert (raise_["day"], raise_["type"]) == (REPLAYED[-1], "scale_up")


def test_a_day_23_hours_long_puts_the_next_decision_inside_the_24_hour_window():
    """Spain moves its clocks forward on 2026-03-29: 10:00 that day is 23 h after 10:00 the day
    before, so the replay's own cut of the 28th still fills the rolling 24 h change limit (a cut:
    a raise would wait for a full day since the last one anyway)."""
    document = make_snapshot([campaign(days=steady_days(10, roas=1.2), age_hours=OLD)],
                             as_of="2026-03-31T10:00:00+02:00", timezone="Europe/Madrid")
    rows = replayed(document, meta_auto_mode="auto")
    assert [(row["decided_at"], row["verdict"]) for row in rows] == [
        ("2026-03-28T10:00:00+01:00", "executed"),
        ("2026-03-29T10:00:00+02:00", "policy_blocked"),
        ("2026-03-30T10:00:00+02:00", "executed"),
        ("2026-03-31T10:00:00+02:00", "executed"),
    ]
    assert rows[1]["reasons"][-1] == "rolling 24 h change limit reached: 10% already changed of the 10% auto limit"


def test_an_object_created_later_is_not_there_before():
    young = campaign(days=steady_days(3, roas=0.2, purchases=20), age_hours=24 * 3 + 1, name="Young")
    document = make_snapshot([campaign(days=steady_days(14), age_hours=OLD), young])
    snapshot = parse_snapshot(document)
    account = ReplayedAccount.start(snapshot)
    seen = [
        campaign_id(1) in account.as_it_stood(snapshot, day, decision_moment(snapshot, day)).campaigns["id"].tolist()
        for day in pd.to_datetime(REPLAYED)
    ]
    assert seen == [False] * 4 + [True] * 4  # created at 09:30 on 11-22


@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_one_replayed_day_is_the_plan_of_the_snapshot(mode):
    """Without a partial day and recent actions the last replayed day sees what `plan` sees."""
    document = make_snapshot([campaign(roas=4.0, age_hours=OLD), campaign(roas=1.2, age_hours=OLD), campaign(age_hours=OLD)])
    planned = plan_actions(document, meta_auto_mode=mode)
    rows = backtest_document(parse_snapshot(document), load_settings(meta_auto_mode=mode), days=1)["actions"]
    assert [(r["id"], r["type"], r["verdict"], r["reasons"]) for r in rows] == [
        (a.id, a.type, a.verdict, a.reasons) for a in planned.itertuples()
    ]


def test_totals_count_by_type_and_verdict_and_add_up_what_was_applied():
    document = backtest_document(parse_snapshot(hand_known_account()), load_settings(meta_auto_mode="auto"))
    assert document["totals"] == {
        "actions": 6,
        "applied": 6,
        "by_type_and_verdict": {"pause": {"executed": 1}, "scale_up": {"executed": 5}},
        "daily_spend_moved_up": 270.5,  # Rising 500 → 605, Strong 500 → 665.5 (raises every other day)
        "daily_spend_moved_down": -100.0,  # the bad ad's trailing daily spend
    }


@pytest.mark.parametrize("approve_all, decided", [
    # approved at once, the variant is made by the next cycle at 11:00; the 48 h embargo from then
    # holds off the next two days' variants (2026-11-25 10:30 is 47.5 h later)
    (True, [("2026-11-23", "queued"), ("2026-11-23", "executed"), ("2026-11-24", "policy_blocked"), ("2026-11-25", "policy_blocked")]),
    (False, [(day, "queued") for day in REPLAYED[5:]]),  # nobody made it: no embargo
])
def test_an_approved_creative_variant_holds_the_next_one_off_for_the_creative_embargo(approve_all, decided):
    """The ad's CTR halves from 2026-11-22 on: every decision from 2026-11-23 finds it tired."""
    tired = campaign(days=days_from(spend=[100] * 14, clicks=[100] * 11 + [50] * 3), age_hours=OLD)
    rows = replayed(make_snapshot([tired]), approve_all)
    assert {row["type"] for row in rows} == {"create_variant"}
    assert [(row["day"], row["verdict"]) for row in rows] == decided
    if approve_all:
        assert rows[2]["reasons"][-1].startswith("creative embargo: the creative changed less than 48 h ago")


def test_the_demo_account_in_auto_mode():
    """Two days: the A/B test is decided once (its loser stays paused), Black Friday is raised on
    the first; on the second the raise waits for a full day since it."""
    rows = backtest_document(load_snapshot_text(DEMO_SNAPSHOT_PATH.read_bytes()), load_settings(meta_auto_mode="auto"))["actions"]
    decided = [(row["day"], row["type"], row["entity_name"], row["verdict"]) for row in rows if row["type"] in ("publish_winner", "pause")]
    assert decided == [("2026-11-19", "pause", "Variant B - Low Performer", "executed"), ("2026-11-19", "publish_winner", "Spring A", "executed")]
    black_friday = [(row["day"], row["budget_before"], row["budget_after"]) for row in rows if row["entity_name"] == "Black Friday - ES"]
    assert black_friday == [("2026-11-19", 500.0, 550.0)]
