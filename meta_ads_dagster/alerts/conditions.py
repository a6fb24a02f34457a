"""When to alert: each condition a plain function of what a cycle (or the clock) shows, no Dagster.

A condition is a :class:`Finding`: its kind, a title, and the items that hold now, each keyed by
what it is about (the account as a whole, an entity, a queued proposal, a check). :func:`advance`
turns the keys already alerted (the state a sensor keeps) and this evaluation's findings into the
alerts to send: an item alerts once when it starts to hold, and again only after an evaluation of
its kind found it clear. Thresholds are the seeds' monitoring numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

API_ERROR_RATE = 0.10  # Meta writes of one cycle that failed (or got no answer)
BIG_BUDGET_CHANGE = 1000.0  # one executed budget change, account currency major units
SPEND_SHARE_OF_CAP = 0.90  # today's spend against MAX_DAILY_SPEND_USD
BLOCKED_SHARE = 0.50  # a cycle's own proposals blocked by policy or safety
NO_SUCCESS_WITHIN = timedelta(hours=1)  # per account, while the schedule runs
SLOW_CYCLE = timedelta(minutes=10)

SENT_STEP = "execute"  # ledger rows whose write was sent (or was to be): step "execute"
FAILED_WRITE = ("failed", "unknown")  # refused, or sent without an answer
WRITTEN = ("done", "unknown", "executing")  # landed, or may have


@dataclass(frozen=True)
class Finding:
    """What one condition found: ``items`` maps each holding item's key (``kind|subject``) to the
    line an alert says about it; empty when the condition is clear."""

    kind: str
    title: str
    items: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check's evaluation in a cycle run."""

    name: str
    asset: str
    passed: bool
    severity: str
    metadata: Mapping[str, object] = field(default_factory=dict)


def key(kind: str, subject: str = "") -> str:
    return f"{kind}|{subject}"


def kind_of(item_key: str) -> str:
    return item_key.split("|", 1)[0]


def advance(active: Iterable[str], findings: Iterable[Finding]) -> tuple[set[str], list[Finding]]:
    """The keys alerted after this evaluation, and the findings to send (each with only its new
    items). An item stays alerted while it holds; a kind evaluated here that no longer holds an
    item clears it; kinds not evaluated here (e.g. a failed run has no spend figures) keep theirs."""
    active = set(active)
    findings = list(findings)
    evaluated = {f.kind for f in findings}
    holding = {k for f in findings for k in f.items}
    state = {k for k in active if kind_of(k) not in evaluated} | holding
    fired = [Finding(f.kind, f.title, {k: v for k, v in f.items.items() if k not in active}) for f in findings]
    return state, [f for f in fired if f.items]


# --- a finished cycle ----------------------------------------------------------------------------


def cycle_failed(status: str, error: str | None) -> Finding:
    """The run failed or was canceled (run monitoring cancels one past its max runtime)."""
    kind = "cycle_failed"
    if status == "success":
        return Finding(kind, "cycle failed")
    return Finding(kind, f"cycle {status}", {key(kind): error or f"the run ended {status}"})


def api_error_rate(actions: pd.DataFrame) -> Finding:
    """More than API_ERROR_RATE of the cycle's Meta writes failed or got no answer."""
    kind = "api_error_rate"
    sent = actions[actions["step"].eq(SENT_STEP)]
    failed = sent[sent["status"].isin(FAILED_WRITE)]
    title = f"Meta API error rate above {API_ERROR_RATE:.0%}"
    if sent.empty or len(failed) / len(sent) <= API_ERROR_RATE:
        return Finding(kind, title)
    examples = "; ".join(f"{describe(row)}: {row.error_message or row.status}" for row in failed.head(3).itertuples(index=False))
    return Finding(kind, title, {key(kind): f"{len(failed)} of {len(sent)} writes failed ({len(failed) / len(sent):.0%}): {examples}"})


def large_budget_changes(actions: pd.DataFrame) -> Finding:
    """Budget changes sent by the cycle that move a daily budget by more than BIG_BUDGET_CHANGE."""
    kind = "big_budget_change"
    budget = actions[actions["type"].isin(["scale_up", "scale_down"]) & actions["status"].isin(WRITTEN) & actions["step"].eq(SENT_STEP)]
    per_unit = budget["minor_per_unit"].astype(float)
    change = (budget["new_budget_minor"].astype(float) - budget["current_budget_minor"].astype(float)) / per_unit
    big = budget[change.abs() > BIG_BUDGET_CHANGE]
    items = {}
    for row in big.itertuples(index=False):
        before, after = row.current_budget_minor / row.minor_per_unit, row.new_budget_minor / row.minor_per_unit
        unsure = " (outcome unknown: settled next cycle)" if row.status == "unknown" else ""
        items[key(kind, f"{row.entity_type}:{row.entity_id}")] = (
            f"{describe(row)}: daily budget {before:,.2f} → {_money(after, row.currency)} ({after - before:+,.2f}){unsure}"
        )
    return Finding(kind, f"budget change above {BIG_BUDGET_CHANGE:,.0f} executed", items)


def hard_stops(actions: pd.DataFrame) -> Finding:
    """Hard stops the cycle sent: the pause landed, or it did not (the entity still spends)."""
    kind = "hard_stop"
    sent = actions[actions["rule"].eq("hard_stop") & actions["step"].eq(SENT_STEP)]
    items = {}
    for row in sent.itertuples(index=False):
        outcome = "paused" if row.status in ("done", "executing") else f"pause {row.status}: {row.error_message or 'no answer'}"
        reason = row.reasons[0] if len(row.reasons) else ""
        items[key(kind, f"{row.entity_type}:{row.entity_id}")] = f"{describe(row)} {outcome}" + (f" ({reason})" if reason else "")
    return Finding(kind, "hard stop triggered", items)


def spend_near_cap(spend_today: float, cap: float) -> Finding:
    """Today's spend above SPEND_SHARE_OF_CAP of the daily cap (MAX_DAILY_SPEND_USD)."""
    kind = "spend_near_cap"
    title = f"spend above {SPEND_SHARE_OF_CAP:.0%} of the daily cap"
    if spend_today <= SPEND_SHARE_OF_CAP * cap:
        return Finding(kind, title)
    return Finding(kind, title, {key(kind): f"spent {spend_today:,.2f} today, {spend_today / cap:.0%} of the daily cap {cap:,.2f} (MAX_DAILY_SPEND_USD)"})


def mostly_blocked(generated: int, policy_blocked: int, safety_blocked: int) -> Finding:
    """More than BLOCKED_SHARE of the cycle's own proposals blocked by policy or safety."""
    kind = "mostly_blocked"
    title = f"more than {BLOCKED_SHARE:.0%} of the cycle's actions blocked"
    blocked = policy_blocked + safety_blocked
    if generated <= 0 or blocked / generated <= BLOCKED_SHARE:
        return Finding(kind, title)
    return Finding(kind, title, {key(kind): f"{blocked} of {generated} proposals blocked ({policy_blocked} by policy, {safety_blocked} by safety)"})


def queued_for_review(pending: pd.DataFrame) -> Finding:
    """The account's proposals waiting for a person (the seed's email to the manager). Keyed by
    entity and action type: a newer cycle proposing the same again replaces the queued row, not
    the alert, so each proposal is announced once while it waits."""
    kind = "queued"
    items = {}
    for row in pending.itertuples(index=False):
        budgets = ""
        if pd.notna(row.new_budget_minor) and pd.notna(row.current_budget_minor) and row.minor_per_unit:
            budgets = f": {row.current_budget_minor / row.minor_per_unit:,.2f} → {_money(row.new_budget_minor / row.minor_per_unit, row.currency)}"
        reason = f" ({row.reasons[0]})" if len(row.reasons) else ""
        items[key(kind, f"{row.entity_type}:{row.entity_id}:{row.type}")] = f"{row.type} {describe(row)}{budgets}{reason} [{row.action_id}]"
    return Finding(kind, "actions queued for review (meta-ads pending; approve or reject)", items)


def failed_checks(checks: Iterable[CheckOutcome]) -> list[Finding]:
    """One finding per asset check evaluated in the run: holding when it failed."""
    findings = []
    for check in checks:
        kind = f"check:{check.name}"
        title = f"asset check {check.name} on {check.asset} failed ({check.severity})"
        if check.passed:
            findings.append(Finding(kind, title))
            continue
        facts = ", ".join(f"{name}={value}" for name, value in check.metadata.items() if value not in (0, 0.0, None, "")) or "no details"
        findings.append(Finding(kind, title, {key(kind, check.asset): facts}))
    return findings


@dataclass(frozen=True)
class CycleOutcome:
    """What a finished cycle run shows: its status, its stats (the ``optimization_cycle``
    materialization's numbers, None when it did not get that far), its ledger rows (None when
    unknown: a failed run that recorded nothing), the account's queue, its checks."""

    status: str  # success | failure | canceled
    error: str | None
    stats: Mapping[str, float] | None
    actions: pd.DataFrame | None
    pending: pd.DataFrame
    checks: tuple[CheckOutcome, ...] = ()


def cycle_findings(outcome: CycleOutcome, daily_cap: float) -> list[Finding]:
    """Every condition a finished cycle can be judged on (what it did not record is not judged)."""
    findings = [cycle_failed(outcome.status, outcome.error), queued_for_review(outcome.pending), *failed_checks(outcome.checks)]
    if outcome.actions is not None:
        findings += [api_error_rate(outcome.actions), large_budget_changes(outcome.actions), hard_stops(outcome.actions)]
    if outcome.stats is not None:
        stats = outcome.stats
        findings += [
            spend_near_cap(float(stats["total_spend_today"]), daily_cap),
            mostly_blocked(int(stats["actions_generated"]), int(stats["actions_policy_blocked"]), int(stats["actions_safety_blocked"])),
        ]
    return findings


# --- the clock: checked by the schedule-aware sensor ---------------------------------------------


def no_recent_success(now: datetime, last_success: datetime | None, watching_since: datetime | None) -> Finding:
    """No successful cycle within NO_SUCCESS_WITHIN while the schedule runs (``watching_since``:
    since when it has been seen running; None: it is not running, nothing is overdue)."""
    kind = "no_success"
    title = f"no successful cycle in {_span(NO_SUCCESS_WITHIN)}"
    if watching_since is None:
        return Finding(kind, title)
    since = max(watching_since, last_success) if last_success is not None else watching_since
    if now - since <= NO_SUCCESS_WITHIN:
        return Finding(kind, title)
    last = f"last success {last_success:%Y-%m-%d %H:%M} UTC" if last_success is not None else "no success since the schedule was seen running"
    return Finding(kind, title, {key(kind): f"{last}; the schedule is running"})


def slow_cycle(now: datetime, running_since: datetime | None, last_duration: timedelta | None) -> Finding:
    """A cycle running longer than SLOW_CYCLE, or the last finished one took longer (it clears
    once a cycle finishes in time)."""
    kind = "slow_cycle"
    title = f"cycle longer than {_span(SLOW_CYCLE)}"
    if running_since is not None and now - running_since > SLOW_CYCLE:
        return Finding(kind, title, {key(kind): f"a cycle has been running for {_span(now - running_since)}"})
    if last_duration is not None and last_duration > SLOW_CYCLE:
        return Finding(kind, title, {key(kind): f"the last cycle took {_span(last_duration)}"})
    return Finding(kind, title)


def describe(row) -> str:
    """An entity as a person reads it: type, name when known, id."""
    name = getattr(row, "entity_name", None)
    named = f" '{name}'" if isinstance(name, str) and name else ""
    return f"{row.entity_type}{named} ({row.entity_id})"


def _money(amount: float, currency: str | None) -> str:
    return f"{amount:,.2f} {currency}" if isinstance(currency, str) and currency else f"{amount:,.2f}"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes >= 60 and minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minutes"
