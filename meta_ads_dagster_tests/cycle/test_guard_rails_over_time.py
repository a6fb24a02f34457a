"""The multi-cycle property test of issue 9: random accounts through 50 consecutive stub cycles
(25 simulated hours), both modes, a person approving, rejecting and rolling back in between and
editing budgets in Ads Manager, every operation checked by the independent checker
(meta_ads_dagster/audit/guard_rails.py).

Seeded and small enough for CI; ``benchmarks/guard_rails.py`` runs the same over a thousand
accounts. The second half proves the checker is not blind: with a guard rail switched off, the same
simulation reports breaches. Where the plan's blocking check (checks.guard_rail_breaches) covers the
rail, it first refuses the cycle before any write; it is then switched off too, to reach the audit.
"""

from __future__ import annotations

import logging
from collections import Counter

import pytest

import numpy as np

from meta_ads_dagster.cycle import steps
from meta_ads_dagster.engine import decisions, history, routing, safety

from ..engine.factories import campaign, make_snapshot
from .simulation import CYCLES, bad_day, simulate

SEEDS = range(4)  # even seeds run in suggest mode, odd ones in auto mode


@pytest.fixture(autouse=True)
def quiet():
    logging.disable(logging.WARNING)  # the sanity check's warnings, thousands of them
    yield
    logging.disable(logging.NOTSET)


def test_no_guard_rail_breaks_over_many_cycles_with_approvals_rejections_and_rollbacks(tmp_path):
    totals = Counter()
    for seed in SEEDS:
        outcome = simulate(seed, tmp_path / f"account-{seed}")
        assert outcome.cycles == CYCLES
        assert outcome.breaches == [], (seed, outcome.breaches[:5])
        totals.update(outcome.counts)
    # The run looked at what the rails are about: not a vacuous pass.
    assert totals["cycle"] == CYCLES * len(SEEDS)
    for what in ("writes", "hard_stops", "mass_pause_queued", "mass_pause_approved", "budget_changes", "approved", "rejected", "rollbacks"):
        assert totals[what] > 0, (what, dict(totals))


def test_the_checker_catches_a_mass_pause_that_swallows_every_hard_stop(tmp_path, monkeypatch):
    """Issue 9 #1 put back: every pause past the limit and the ones within it are queued."""
    original = routing._mass_paused

    def swallow_all(actions, executed, settings):
        mass = original(actions, executed, settings)
        if mass.any():  # the old rule: every pause of the cycle waits for a person
            return executed & actions["type"].isin(routing.PAUSING_TYPES).to_numpy() & ~routing.is_approval(actions)
        return mass

    monkeypatch.setattr(routing, "_mass_paused", swallow_all)
    outcome = simulate(0, tmp_path / "account", cycles=2, account=(bad_day(), {"meta_auto_mode": "suggest"}))
    assert any("hard stops queued as a mass pause while the cycle paused only 0" in b for b in outcome.breaches), outcome.breaches[:5]


def test_the_checker_catches_a_mass_pause_rule_switched_off(tmp_path, monkeypatch):
    monkeypatch.setattr(routing, "_mass_paused", lambda actions, executed, settings: np.zeros(len(actions), dtype=bool))
    outcome = simulate(0, tmp_path / "account", cycles=1, account=(bad_day(), {"meta_auto_mode": "suggest"}))
    assert any("the cycle paused 11 on its own > MASS_PAUSE_LIMIT 10" in b for b in outcome.breaches), outcome.breaches[:5]


def refused_before_the_writes_then_audited(monkeypatch, tmp_path, rail: str, run) -> list[str]:
    """``run(folder)`` (simulations in ``folder``, returning their breaches) with a rail switched
    off: first the plan's blocking check refuses the cycle naming ``rail``; with that check off as
    well, the breaches the independent checker reports on what was written."""
    with pytest.raises(steps.PlanRefused, match=f"planned_actions_within_guard_rails: guard rails broken: .*{rail}"):
        run(tmp_path / "checked")
    monkeypatch.setattr(steps, "plan_checks", lambda snapshot, plan, settings: [])
    return run(tmp_path / "unchecked")


def test_the_checker_catches_the_per_tick_limit_switched_off(tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "limit_writes", _without_tick_limit(routing.limit_writes))
    breaches = refused_before_the_writes_then_audited(monkeypatch, tmp_path, "over_tick_limit", lambda folder: [
        b for seed in (17, 21, 23) for b in simulate(seed, folder / f"account-{seed}", cycles=4).breaches
    ])
    assert any("MAX_ACTIONS_PER_TICK" in b for b in breaches), breaches[:5]


def test_the_checker_catches_the_campaign_cap_switched_off(tmp_path, monkeypatch):
    monkeypatch.setattr(safety.SafetyEngine, "_apply_spend_cap", lambda self, actions, spend: None)
    breaches = refused_before_the_writes_then_audited(monkeypatch, tmp_path, "over_campaign_max", lambda folder: [
        b for seed in range(8) for b in simulate(seed, folder / f"account-{seed}", cycles=6).breaches
    ])
    assert any("MAX_CAMPAIGN_BUDGET_USD" in b or "MAX_DAILY_SPEND_USD" in b for b in breaches), breaches[:5]


def _without_tick_limit(limit_writes):
    def unlimited(actions, settings):
        return limit_writes(actions, settings.model_copy(update={"max_actions_per_tick": 10**6}))
    return unlimited


def test_the_checker_catches_a_rollback_that_resumes_a_hard_stopped_entity(tmp_path, monkeypatch):
    """Issue 9 #2 put back: the rollback's guard rails switched off."""
    monkeypatch.setattr("meta_ads_dagster.store.rollback.RestoreGuard.check", lambda self, *args, **kwargs: None)
    breaches = [b for seed in (0, 3) for b in simulate(seed, tmp_path / f"account-{seed}", cycles=30).breaches]
    assert any("although the hard stop holds" in b for b in breaches), breaches[:5]


def raising_account(**adset) -> tuple[dict, dict]:
    """One 10-day-old campaign whose ad set (ROAS 4, confident) earns a raise every day, in auto mode."""
    spec = campaign(roas=4.0, spend=300, purchases=30, budget_usd=400, cbo=False)
    for name, value in adset.items():
        setattr(spec.adsets[0], name, value)
    return make_snapshot([spec]), {"meta_auto_mode": "auto"}


def test_the_checker_catches_the_cooldown_and_the_24_hour_limit_switched_off(tmp_path, monkeypatch):
    never = lambda actions, history, as_of: np.full(len(actions), np.nan)  # noqa: E731 - "never changed"
    monkeypatch.setattr(history, "hours_since_last_action", never)
    monkeypatch.setattr("meta_ads_dagster.meta.execution.hours_since_last_action", never)
    monkeypatch.setattr(history, "changed_in_window", lambda actions, history, as_of: np.zeros(len(actions)))
    # and the raise's wait for a full day since the last budget change, so the engine raises again
    monkeypatch.setattr(decisions, "roas_since_last_change", lambda holders, history, snapshot: np.full(len(holders), np.inf))
    breaches = simulate(1, tmp_path / "account", cycles=3, account=raising_account()).breaches
    assert any("cooldown" in b for b in breaches) and any("within 24 h" in b for b in breaches), breaches[:5]


def test_the_checker_catches_the_embargo_switched_off(tmp_path, monkeypatch):
    monkeypatch.setattr(safety.SafetyEngine, "enforce_embargo_period", _always_allowed)
    breaches = refused_before_the_writes_then_audited(
        monkeypatch, tmp_path, "written_in_embargo",
        lambda folder: simulate(1, folder, cycles=1, account=raising_account(age_hours=30.0)).breaches,
    )
    assert any("inside its embargo" in b for b in breaches), breaches[:5]


def _always_allowed(self, age_hours):
    allowed = np.ones(np.shape(np.atleast_1d(age_hours)), dtype=bool)
    return allowed, np.full(allowed.shape, "outside the embargo", dtype=object)
