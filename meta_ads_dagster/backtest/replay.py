"""Replay the engine day by day over a snapshot's own insights.

For each decision day the account is rebuilt as it stood at that day's decision moment (the
snapshot's time of day, on that day, in the account's time zone):

- insights: only the full days before that day. The partial day is left out on every day,
  the snapshot's own day included: the backtest does not know how much of a past day had been
  spent by that hour, so it models no partial day (``spend_today`` is 0, which leaves the
  daily spend cap only the budgets to check);
- objects: those created by then, with the budgets and statuses the backtest's own earlier
  decisions left them (a raise on day 3 is the budget on day 4, a pause takes the entity out of
  later decisions), starting from the snapshot's budgets and statuses, the only ones it knows;
- history (cooldowns, the rolling 24 h change limit, the creative embargo): the backtest's own
  earlier writes, plus the snapshot's ``recent_actions`` made by then.

Each day then runs exactly what ``meta-ads plan`` runs (``engine.cycle.plan_cycle``: rules,
PolicyEngine, SafetyEngine, routing, the per-cycle limits). What the day executes changes the
replayed account. With ``approve_all`` a person approves everything the day queues at once, and the
next cycle (one cycle interval later) carries the approvals out as a real cycle does: each is
re-validated against the account as it stands then (the human change limit, the spend caps, a
hard stop holding, a budget that changed since) and the per-tick limit applies; what still holds
changes the replayed account too.

The insights stay what happened under the real budgets: the replay does not re-simulate how
delivery would have answered its changes (the market model's ``meta-ads simulate`` does that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from ..engine.actions import BUDGET_TYPES
from ..engine.approvals import approved_candidates, revalidate
from ..engine.cycle import account_spend, analyze, plan_cycle
from ..engine.history import HISTORY_COLUMNS, history_frame
from ..engine.metrics import WINDOW_DAYS
from ..engine.routing import limit_writes
from ..engine.snapshot import AccountSnapshot
from ..settings import Settings

COLLECTIONS = {"campaign": "campaigns", "adset": "adsets", "ad": "ads"}
REVIEWER = "backtest --approve-all"


def replay_days(snapshot: AccountSnapshot) -> int:
    """How many days can be replayed: every day up to the snapshot's own that has WINDOW_DAYS
    full days of insights before it."""
    if snapshot.insights.empty:
        return 0
    first = snapshot.insights["date"].min()
    return max(0, (snapshot.today - first).days - WINDOW_DAYS + 1)


def decision_moment(snapshot: AccountSnapshot, day: pd.Timestamp) -> pd.Timestamp:
    """``day`` at the snapshot's wall-clock time of day in the account's time zone, in UTC. A
    time a clock change skips moves forward; a time it repeats is taken the first time."""
    local = snapshot.as_of.tz_convert(snapshot.timezone_name).tz_localize(None)
    wall_time = local - local.normalize()
    return (day + wall_time).tz_localize(snapshot.timezone_name, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


@dataclass
class ReplayedAccount:
    """The account's objects as the backtest's own decisions left them, and the writes it made."""

    campaigns: pd.DataFrame
    adsets: pd.DataFrame
    ads: pd.DataFrame
    writes: list[dict]

    @classmethod
    def start(cls, snapshot: AccountSnapshot) -> "ReplayedAccount":
        return cls(snapshot.campaigns.copy(), snapshot.adsets.copy(), snapshot.ads.copy(), [])

    def as_it_stood(self, snapshot: AccountSnapshot, day: pd.Timestamp, moment: pd.Timestamp) -> AccountSnapshot:
        """The snapshot of the account at ``moment`` on ``day``: objects created by then, the full
        days of insights before ``day``, the A/B tests started by then over ads that existed."""
        campaigns = self.campaigns[self.campaigns["created_time"] <= moment]
        adsets = self.adsets[(self.adsets["created_time"] <= moment) & self.adsets["campaign_id"].isin(campaigns["id"])]
        ads = self.ads[(self.ads["created_time"] <= moment) & self.ads["adset_id"].isin(adsets["id"])]
        insights = snapshot.insights[(snapshot.insights["date"] < day) & snapshot.insights["ad_id"].isin(ads["id"])]
        tests = snapshot.ab_tests
        tests = tests[(tests["started_at"] <= moment) & tests["ad_ids"].map(lambda ad_ids: set(ad_ids) <= set(ads["id"]))]
        return replace(
            snapshot, as_of=moment, today=day, campaigns=campaigns.reset_index(drop=True), adsets=adsets.reset_index(drop=True),
            ads=ads.reset_index(drop=True), creatives=snapshot.creatives[snapshot.creatives["id"].isin(ads["creative_id"])],
            insights=insights.reset_index(drop=True), ab_tests=tests.reset_index(drop=True),
            recent_actions=snapshot.recent_actions[snapshot.recent_actions["executed_at"] <= moment].reset_index(drop=True),
        )

    def history(self, account: AccountSnapshot) -> pd.DataFrame:
        """What the guard rails look back on at ``account``'s moment: the ``recent_actions`` made
        by then and the backtest's own writes (all earlier: one write per day at most)."""
        return history_frame([account.recent_actions, pd.DataFrame(self.writes, columns=HISTORY_COLUMNS)])

    def _set(self, entity_type: str, entity_ids: list[str], column: str, value) -> None:
        frame = getattr(self, COLLECTIONS[entity_type])
        frame.loc[frame["id"].isin(entity_ids), column] = value

    def apply(self, actions: pd.DataFrame, moment: pd.Timestamp) -> None:
        """Carry out ``actions`` on the replayed account, as the client would, and remember them as
        writes. A creative variant changes nothing that delivers (the real one is a paused copy
        waiting for a person); it is remembered for the creative embargo."""
        for action in actions.itertuples(index=False):
            if action.type in BUDGET_TYPES:
                self._set(action.entity_type, [action.entity_id], "daily_budget", int(action.new_budget_minor))
            elif action.type == "pause":
                self._set(action.entity_type, [action.entity_id], "status", "PAUSED")
            elif action.type == "publish_winner":
                self._set("ad", list(action.loser_ad_ids), "status", "PAUSED")
            self.writes.append(
                {"entity_type": action.entity_type, "entity_id": action.entity_id, "type": action.type, "rule": action.rule,
                 "amount_pct": action.amount_pct, "executed_at": moment, "loser_ad_ids": action.loser_ad_ids}
            )


def carry_out_approvals(account: AccountSnapshot, queued: pd.DataFrame, cycle_actions: pd.DataFrame, history: pd.DataFrame,
                        settings: Settings, approved_at: pd.Timestamp) -> pd.DataFrame:
    """The next cycle's treatment of ``queued`` once a person approved them all at ``approved_at``:
    re-validated against ``account`` (the account then, the day's executed actions already in it;
    ``cycle_actions``: the rest of the day's actions, whose queued hard stops still hold), then the
    one-write-per-entity and per-tick limits (engine/approvals.py, routing.limit_writes)."""
    settings = settings.for_account(account.account_id)
    approved = pd.DataFrame({
        "action_id": queued["id"], "cycle_run_id": "backtest " + approved_at.date().isoformat(), "type": queued["type"],
        "entity_type": queued["entity_type"], "entity_id": queued["entity_id"], "rule": queued["rule"],
        "amount_pct": queued["amount_pct"], "current_budget_minor": queued["current_budget_minor"],
        "loser_ad_ids": queued["loser_ad_ids"], "decided_by": REVIEWER, "decided_at": approved_at,
        "unit_id": queued["unit_id"],
    })
    metrics = analyze(account)["roas_metrics"]
    candidates = approved_candidates(approved, metrics, account.minor_per_unit, account.as_of, history)
    return limit_writes(revalidate(candidates, cycle_actions, account_spend(account, metrics), settings), settings)


def replay(snapshot: AccountSnapshot, settings: Settings, days: int | None = None, approve_all: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replay the last ``days`` days (default: every day :func:`replay_days` allows).

    Returns (the actions of every day, each with ``day``, ``decided_at`` and ``applied``: whether
    the replayed account was changed by it; with ``approve_all`` the day's approvals follow its
    actions, decided one cycle interval later; one row per day with ``day``, ``decided_at`` and
    ``campaigns_evaluated``)."""
    available = replay_days(snapshot)
    days = available if days is None else days
    if not 1 <= days <= available:
        raise ValueError(f"days must be from 1 to {available} for this snapshot (got {days})")
    account = ReplayedAccount.start(snapshot)
    next_cycle = pd.Timedelta(minutes=settings.meta_cycle_interval_minutes)
    decided, evaluated = [], []
    for day in pd.date_range(end=snapshot.today, periods=days, freq="D"):
        moment = decision_moment(snapshot, day)
        as_it_stood = account.as_it_stood(snapshot, day, moment)
        actions, campaigns_evaluated = plan_cycle(as_it_stood, settings, account.history(as_it_stood))
        executed = actions["verdict"].eq("executed")
        account.apply(actions[executed], moment)
        decided.append(actions.assign(day=day, decided_at=moment, applied=executed))
        queued = actions[actions["verdict"].eq("queued")]
        if approve_all and not queued.empty:
            then = account.as_it_stood(snapshot, day, moment + next_cycle)
            approvals = carry_out_approvals(then, queued, actions[~executed], account.history(then), settings, moment)
            carried = approvals["verdict"].eq("executed")
            account.apply(approvals[carried], moment + next_cycle)
            decided.append(approvals.assign(day=day, decided_at=moment + next_cycle, applied=carried))
        evaluated.append({"day": day, "decided_at": moment, "campaigns_evaluated": campaigns_evaluated})
    return pd.concat(decided, ignore_index=True), pd.DataFrame(evaluated)
