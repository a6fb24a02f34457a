"""Random accounts driven through many consecutive cycles, with a person approving, rejecting and
rolling back in between, every operation handed to the independent checker
(:mod:`meta_ads_dagster.audit.guard_rails`).

Used by the property test (a few accounts, in CI) and by ``benchmarks/guard_rails.py`` (a
thousand accounts). Everything is seeded: the same seed gives the same accounts, decisions and
breaches, so a breach found in a large run can be replayed alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from meta_ads_dagster.audit.guard_rails import GuardRailChecker, Operation

from ..engine.factories import AdSetSpec, AdSpec, CampaignSpec, Day, ab_test, ad_id, days_from, make_snapshot, steady_days
from .harness import Account

CYCLES = 50  # a simulated day and more at the default 30-minute interval


def random_account(seed: int) -> tuple[dict, dict]:
    """A random account document and random guard-rail settings that make the rails work: budgets
    near the caps, hard stops above and below the mass-pause limit, young entities that leave their
    embargo during the run, A/B tests (some with a late arm), tired creatives."""
    r = random.Random(seed)
    specs, tests = [], []
    for c in range(r.randint(2, 5)):
        cbo = r.random() < 0.5
        adsets = []
        for s in range(r.randint(1, 3)):
            ads = []
            for _ in range(r.randint(1, 3)):
                spend = r.choice([20, 60, 150, 300, 600])
                impressions = r.choice([300, 3000, 20_000])
                clicks = impressions // 50
                tired = r.random() < 0.15
                ads.append(AdSpec(
                    days=days_from(
                        spend=[spend] * 8, roas=r.choice([0.3, 0.5, 0.8, 1.1, 1.3, 2.0, 2.5, 3.5, 4.5, 6.0]),
                        purchases=r.choice([1, 4, 10, 25]), impressions=impressions,
                        clicks=[clicks] * 7 + [clicks // 3 if tired else clicks],
                    ),
                    age_hours=r.choice([None] * 5 + [30.0, 60.0]),
                    # Today so far: the spend cap also counts it.
                    today=Day(spend=r.choice([0.0, spend / 2, spend * 3]), revenue=0.0, purchases=0, impressions=10, clicks=0),
                ))
            adsets.append(AdSetSpec(
                ads=ads, daily_budget_usd=None if cbo else r.choice([100, 400, 1500, 2500, 3000]),
                age_hours=r.choice([None] * 4 + [30.0]),
            ))
            if len(ads) >= 2 and r.random() < 0.5:
                tests.append(ab_test([ad_id(c, s, a) for a in range(len(ads))], started_hours_ago=r.choice([60.0, 96.0]), id=f"ab-{c}-{s}"))
        specs.append(CampaignSpec(
            adsets=adsets, daily_budget_usd=r.choice([300, 800, 2000, 4000, 4800]) if cbo else None,
            age_hours=r.choice([240.0, 240.0, 240.0, 60.0, 30.0]),
        ))
    document = make_snapshot(specs, ab_tests=tests)
    total = sum(int(x["daily_budget"]) for x in [*document["campaigns"], *document["adsets"]] if x["daily_budget"]) / 100
    daily = r.choice([0.10, 0.20, 0.30])
    settings = {
        "meta_auto_mode": ("suggest", "auto")[seed % 2],  # both modes, alternately
        "max_daily_change_pct": daily,
        "max_auto_change_pct": daily * r.choice([0.5, 1.0]),
        "max_actions_per_tick": r.choice([1, 2, 3, 50]),
        "max_campaigns_per_tick": r.choice([1, 2, 100]),
        "mass_pause_limit": r.choice([0, 1, 2, 10]),
        "max_daily_spend_usd": round(max(total, 100) * r.choice([0.9, 1.05, 1.3, 3.0]), 2),
        "max_campaign_budget_usd": r.choice([3000.0, 5000.0]),
        "require_human_approval_creatives": r.random() < 0.7,
    }
    return document, settings


def bad_day() -> dict:
    """The issue's bad day: 11 ad sets at ROAS 0.3 (70 purchases each: confidence 0.91) under one
    campaign kept above the hard stop by a twelfth, profitable ad set; ad set i spends 100 + 10 i a day."""
    losers = [
        AdSetSpec(ads=[AdSpec(days=steady_days(spend=100 + 10 * i, roas=0.3, purchases=10, impressions=20_000))], daily_budget_usd=100)
        for i in range(11)
    ]
    winner = AdSetSpec(ads=[AdSpec(days=steady_days(spend=2000, roas=4.0, purchases=100, impressions=200_000))], daily_budget_usd=2000)
    return make_snapshot([CampaignSpec(adsets=[*losers, winner], daily_budget_usd=None)])


@dataclass
class Outcome:
    seed: int
    cycles: int = 0
    breaches: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # what the checker looked at, and what the person did


def simulate(
    seed: int, folder: Path, database_url: str | None = None, cycles: int = CYCLES, account: tuple[dict, dict] | None = None,
) -> Outcome:
    """``cycles`` consecutive cycles of account ``seed`` (or of ``account``: a document and its
    settings), a person acting between them."""
    document, overrides = account or random_account(seed)
    account = Account(document, folder, database_url, **overrides)
    checker = GuardRailChecker(account.settings, document)
    person = random.Random(seed * 7919 + 1)
    outcome = Outcome(seed)
    done = {"approved": 0, "rejected": 0, "rollbacks": 0, "empty_rollbacks": 0, "outside_edits": 0}
    try:
        for _ in range(cycles):
            if account.runs:
                _person_acts(account, checker, person, outcome, done)
            client = account.client()
            client.sync_insights()
            before = len(client.writes)
            seen = client.fetch_snapshot()
            account.cycle(document=seen)  # the job's own steps
            writes = account.client().writes[before:]
            outcome.breaches += checker.check(Operation("cycle", account.runs[-1], seen, writes, _rows(account, account.runs[-1])))
            outcome.cycles += 1
    finally:
        account.close()
    outcome.counts = {**checker.checked, **done}
    return outcome


def _rows(account: Account, run_id: str) -> list[dict]:
    return account.ledger.cycle_actions(run_id).to_dict("records")


def _person_acts(account: Account, checker: GuardRailChecker, person: random.Random, outcome: Outcome, done: dict) -> None:
    """Between two cycles a person may approve or reject queued actions, roll back an earlier
    cycle, or change a budget in Ads Manager (outside this system)."""
    pending = account.pending()
    if len(pending) and person.random() < 0.7:
        choices = [person.random() for _ in range(len(pending))]
        approve = [row.action_id for row, x in zip(pending.itertuples(), choices) if x < 0.5]
        reject = [row.action_id for row, x in zip(pending.itertuples(), choices) if 0.5 <= x < 0.75]
        if approve:
            checker.approved(account.approve(approve).to_dict("records"))
            done["approved"] += len(approve)
        if reject:
            account.reject(reject)
            done["rejected"] += len(reject)
    if person.random() < 0.1:
        run_id = person.choice(account.runs)
        before = len(account.client().writes)
        seen = account.client().fetch_snapshot()
        try:
            report = account.rollback(run_id)
        except LookupError:  # a cycle that recorded nothing: nothing to undo (the CLI says so)
            done["empty_rollbacks"] += 1
        else:
            done["rollbacks"] += 1
            writes = account.client().writes[before:]
            outcome.breaches += checker.check(Operation("rollback", report.rollback_run_id, seen, writes, _rows(account, report.rollback_run_id)))
    if person.random() < 0.05:
        holders = [(kind, row["id"], int(row["daily_budget"])) for kind, key in (("campaign", "campaigns"), ("adset", "adsets"))
                   for row in account.client().fetch_snapshot()[key] if row.get("daily_budget")]
        if holders:
            kind, entity_id, budget = person.choice(holders)
            client = account.client()
            before = len(client.writes)
            client.update_budget(kind, entity_id, int(budget * person.choice([0.85, 1.15])))
            done["outside_edits"] += 1
            checker.check(Operation("outside", "ads-manager", client.fetch_snapshot(), client.writes[before:]))
