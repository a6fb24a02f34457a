"""Run policies over a fresh simulated market, one decision every 30 simulated minutes, and measure
what each earned (the market's true, eventual revenue) and what it broke (the independent checker).

Each policy gets its own ``Market(campaigns, seed)``: the same seed draws the same market, and the
market's random streams are keyed apart from the writes (docs/market.md, "Random streams"), so
every policy faces the same account, arrivals, delivery levels, sales and outages; only the
delivery noise of the ads its writes touch, and of the ads drawn after them, differs. Every
number comes from the market's clock and its seeded draws, never from the wall clock: the same
seed gives the same results.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..audit.guard_rails import DUTIES, GuardRailChecker, Operation
from ..market import Market
from ..settings import Settings, load_settings
from ..meta.market import MarketMetaAdsClient
from .policies import PLAIN_RULES_EVERY_TICKS, DoNothing, Engine, PlainRules, Policy

DECISION_MINUTES = 30
TICKS_PER_DAY = 24 * 60 // DECISION_MINUTES
POLICY_NAMES = ("engine", "plain_rules", "do_nothing")
# MAX_DAILY_SPEND_USD for the market: its starting total daily budget with room for the raises the
# rules are there to make (the project default, 10,000, fits no particular market size).
SPEND_CAP_OVER_STARTING_BUDGET = 1.3
# The engine's ledger is thrown away after the run: on a memory-backed file system where there is
# one, its thousands of commits cost no disk syncs (a fifth of a cycle's time on disk).
LEDGER_PARENT = Path("/dev/shm")


@dataclass
class PolicyRun:
    """One policy's run: money from the market's truth, actions from what the market accepted,
    breaches from the independent checker."""

    policy: str
    spend: float
    revenue: float
    profit: float
    roas: float
    actions: dict[str, int]  # executed actions by type (an A/B decision, a reallocation count once)
    refused_writes: int  # writes the market refused (its 4 edits per ad set per hour, a budget below its minimum)
    learning_resets: int  # ad sets whose learning phase the policy's writes restarted
    breaches: int  # writes that break a guard rail (the checker's limits)
    breaches_by_rail: dict[str, int]
    duty_breaches: int  # the engine's duties the checker found undone (hard stops), at the decisions taken
    decisions: int
    daily: list[dict] = field(default_factory=list)  # date, spend, revenue, profit, cumulative_profit
    guard_rails: dict = field(default_factory=dict)  # the settings it ran under (:func:`guard_rails`)

    def as_dict(self) -> dict:
        return asdict(self)


def simulation_settings(market: Market, mode: str) -> Settings:
    """The configured guard rails (the project defaults unless set in the environment) in ``mode``,
    with MAX_DAILY_SPEND_USD sized to the market (:data:`SPEND_CAP_OVER_STARTING_BUDGET`)."""
    cap = round(SPEND_CAP_OVER_STARTING_BUDGET * market.total_daily_budget(), 2)
    return load_settings(meta_auto_mode=mode, max_daily_spend_usd=cap)


# The settings a reader of the comparison needs: the mode, the caps and limits, the hard stop.
REPORTED_SETTINGS = (
    "meta_auto_mode", "max_daily_spend_usd", "max_campaign_budget_usd", "max_daily_change_pct", "max_auto_change_pct",
    "max_actions_per_tick", "max_campaigns_per_tick", "mass_pause_limit", "min_age_hours", "min_spend_usd",
    "hard_stop_roas", "hard_stop_confidence",
)


def guard_rails(settings: Settings, market: Market) -> dict:
    return {"starting_daily_budget_usd": round(market.total_daily_budget(), 2)} | {
        name: getattr(settings, name) for name in REPORTED_SETTINGS
    }


def make_policy(name: str, settings: Settings, client: MarketMetaAdsClient, folder: Path, plain_rules_every: int) -> Policy:
    if name == "engine":
        return Engine(settings, client, folder)
    if name == "plain_rules":
        return PlainRules(settings, client, plain_rules_every)
    if name == "do_nothing":
        return DoNothing(settings, client)
    raise ValueError(f"policy: {name!r} is not one of {', '.join(POLICY_NAMES)}")


def run_policy(
    name: str, campaigns: int, days: int, seed: int, mode: str = "suggest",
    on_day: Callable[[str, int], None] | None = None, plain_rules_every: int = PLAIN_RULES_EVERY_TICKS,
) -> PolicyRun:
    """``name`` over ``Market(campaigns, seed)`` for ``days`` days (``on_day(name, day)`` after each;
    ``plain_rules_every``: plain rules' cadence in decisions, the measured daily one by default)."""
    market = Market(campaigns=campaigns, seed=seed)
    settings = simulation_settings(market, mode)
    rails = guard_rails(settings, market)
    client = MarketMetaAdsClient.over(market)
    resets_before = market.learning_resets
    checker = None
    breaches = []
    decisions = 0
    actions: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix=f"simulate-{name}-", dir=LEDGER_PARENT if LEDGER_PARENT.is_dir() else None) as folder:
        policy = make_policy(name, settings, client, Path(folder), plain_rules_every)
        try:
            for tick in range(days * TICKS_PER_DAY):
                if policy.decides_at(tick):
                    run_id = f"{name}-{tick:05d}"
                    document = market.snapshot()
                    checker = checker or GuardRailChecker(settings, document)
                    before = len(client.writes)
                    decision = policy.decide(run_id, document)
                    breaches += checker.check(Operation("cycle", run_id, document, client.writes[before:], decision.rows))
                    checker.approved(decision.approved)
                    actions.update(
                        "reallocate" if row["rule"] == "reallocate" else row["type"] for row in decision.rows
                        # a reallocation counts once: its raise leg stands for the unit
                        if row["status"] == "done" and not (row["rule"] == "reallocate" and row["type"] == "scale_down")
                    )
                    decisions += 1
                market.advance(minutes=DECISION_MINUTES)
                if on_day and (tick + 1) % TICKS_PER_DAY == 0:
                    on_day(name, (tick + 1) // TICKS_PER_DAY)
        finally:
            policy.close()
    limits = [b for b in breaches if b.rail not in DUTIES]
    daily = daily_truth(market)
    spend, revenue = sum(d["spend"] for d in daily), sum(d["revenue"] for d in daily)
    return PolicyRun(
        policy=name, spend=round(spend, 2), revenue=round(revenue, 2), profit=round(revenue - spend, 2),
        roas=round(revenue / spend, 4) if spend else 0.0, actions=dict(sorted(actions.items())), refused_writes=client.refused,
        learning_resets=market.learning_resets - resets_before, breaches=len(limits),
        breaches_by_rail=dict(sorted(Counter(b.rail for b in breaches).items())), duty_breaches=len(breaches) - len(limits),
        decisions=decisions, daily=daily, guard_rails=rails,
    )


def daily_truth(market: Market) -> list[dict]:
    """The simulated days' true spend, revenue (eventual) and profit, with the running profit;
    the day the market's clock has just entered is left out (nothing of it was delivered yet)."""
    today = market.now.tz_convert(market.params.timezone_name).date().isoformat()
    truth = market.truth_daily()
    truth = truth[truth["date"] < today]
    rows, cumulative = [], 0.0
    for day in truth.itertuples(index=False):
        cumulative += day.revenue - day.spend
        rows.append({
            "date": day.date, "spend": round(day.spend, 2), "revenue": round(day.revenue, 2),
            "profit": round(day.revenue - day.spend, 2), "cumulative_profit": round(cumulative, 2),
        })
    return rows


def compare(
    names: tuple[str, ...], campaigns: int, days: int, seed: int, mode: str = "suggest",
    on_day: Callable[[str, int], None] | None = None,
) -> list[PolicyRun]:
    """Each policy in ``names`` over its own market drawn from the same seed."""
    return [run_policy(name, campaigns, days, seed, mode, on_day) for name in names]
