"""An independent checker of the guard rails over time: the multi-cycle property test and the
simulated market (``meta-ads simulate``) hand it every operation.

It reads only what an auditor would: the account documents each operation saw, the client's write
log (the stub's, or the simulated market's in the same shape), and the ledger's rows (who asked for
a write: the autonomous cycle, a person's approval, a rollback; which rule). Every number it needs (7-day ROAS, the ROAS confidence, ages, budget totals,
relative changes) it computes here, from the documents, with its own plain-Python arithmetic:
nothing of ``meta_ads_dagster.engine`` is imported, so a bug in the engine's arithmetic cannot hide
itself here.

Properties (issue 9), checked after every operation:

1. no entity's budget moves more within the 24 h up to a write (the sum of the relative changes)
   than that write's path allows (a person's approval: MAX_DAILY_CHANGE_PCT; the autonomous cycle:
   the mode's limit), rollbacks excluded;
2. after any write that adds budget (a raise, a resume), no campaign total it raised (its own under
   CBO, its active ad sets' sum otherwise) is above MAX_CAMPAIGN_BUDGET_USD and the account's total
   active budget is not above MAX_DAILY_SPEND_USD; today's spend plus a cycle's raises stays under
   MAX_DAILY_SPEND_USD;
3. at most one write per entity per cycle (an A/B decision writes every arm);
4. nothing but hard-stop pauses touches an entity inside its MIN_AGE_HOURS embargo, and no
   creative variant within CREATIVE_EMBARGO_HOURS of the ad's last one;
5. no resume of an entity the hard stop holds (on it, its ad set or its campaign);
6. every hard stop is executed in the cycle that finds it, or queued by the mass-pause rule (only
   once the cycle's own pauses fill MASS_PAUSE_LIMIT) and executed by the cycle after its approval;
   the cycle never pauses more than MASS_PAUSE_LIMIT on its own;
7. executed actions other than hard stops ≤ MAX_ACTIONS_PER_TICK.

A hard stop is recognised by this checker's own numbers (a pause of an entity whose 7-day ROAS and
confidence put it, or its ad set or campaign, under the hard stop), or as a pause a person approved:
only those are exempt from the embargo, the cooldown and the per-tick count. Who asked for a write
(the ledger's actor) and what a row is (its rule, its status) are read from the ledger: they are
the audit's facts, not arithmetic.
8. (the 24 h cooldown) no entity written by a cycle within 24 h of an earlier write to it, except
   by a hard-stop pause.
9. a reallocation (ledger rows sharing ``unit_id``) is written whole or not at all, and its written
   legs leave the total daily budget unchanged; each leg is a budget write like any other, so
   properties 1–4, 7 and 8 count it as one.

Property 5 applies to every resume, a cycle's (a person's approved ``resume``) and a rollback's.

Each breach names its rail (:class:`Breach`). Properties 6's "every hard stop executed" and "an
approved one carried out" are :data:`DUTIES`, what the engine must do; the others are limits on what
anything may write, which is how the simulation compares policies that never promised the duties.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

TOLERANCE = 1e-6
DAY = timedelta(hours=24)
WINDOW_DAYS = 7
CONFIDENCE_BAND = 0.20


# The rails a breach can name; DUTIES are the engine's obligations, the rest limits on any writer.
CHANGE_LIMIT, CAMPAIGN_CAP, ACCOUNT_CAP, SPEND_TODAY = "change_24h", "campaign_cap", "account_cap", "spend_today"
TWICE, UNRECORDED, NO_BUDGET = "one_write_per_entity", "unrecorded_write", "budget_write_without_budget"
EMBARGO, CREATIVE_EMBARGO, COOLDOWN, PER_TICK = "embargo", "creative_embargo", "cooldown", "per_tick"
MASS_PAUSE, RESUME_HALTED = "mass_pause", "resume_under_hard_stop"
UNIT_SPLIT, UNIT_TOTAL = "reallocation_split", "reallocation_total"
HARD_STOP_MISSED, QUEUED_EARLY, APPROVED_NOT_DONE = "hard_stop_missed", "hard_stop_queued_early", "approved_hard_stop_missed"
DUTIES = frozenset({HARD_STOP_MISSED, QUEUED_EARLY, APPROVED_NOT_DONE})


class Breach(str):
    """One breach: its message (a ``str``, so it reads and compares as one) and the ``rail`` it breaks."""

    rail: str

    def __new__(cls, rail: str, message: str) -> "Breach":
        breach = super().__new__(cls, message)
        breach.rail = rail
        return breach


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class Operation:
    """What one cycle, rollback or outside edit saw and wrote."""

    kind: str  # "cycle" | "rollback" | "outside"
    run_id: str
    document: dict  # the account as the operation read it (a cycle: after its sync)
    writes: list[dict]  # the stub's write-log entries it produced, in order
    ledger_rows: list[dict] = field(default_factory=list)  # the ledger's rows of its run
    approved_before: set[str] = field(default_factory=set)  # action ids a person approved just before it


class Account:
    """The account document as plain lookups: parents, statuses, budgets, ages, 7-day metrics."""

    def __init__(self, document: dict):
        self.document = document
        self.as_of = moment(document["as_of"])
        self.minor = 1 if document["account"]["currency"] in {"JPY", "KRW", "CLP", "COP", "CRC", "HUF", "ISK", "IDR", "PYG", "TWD", "VND"} else 100
        self.kind_of, self.row = {}, {}
        for kind, key in (("campaign", "campaigns"), ("adset", "adsets"), ("ad", "ads")):
            for row in document[key]:
                self.kind_of[row["id"]] = kind
                self.row[(kind, row["id"])] = row

    def parents(self, kind: str, entity_id: str) -> list[tuple[str, str]]:
        row = self.row.get((kind, entity_id))
        if row is None:
            return []
        if kind == "ad":
            return [("adset", row["adset_id"]), ("campaign", row["campaign_id"])]
        if kind == "adset":
            return [("campaign", row["campaign_id"])]
        return []

    def active(self, kind: str, entity_id: str) -> bool:
        return all(self.row.get(key, {}).get("status") == "ACTIVE" for key in [(kind, entity_id), *self.parents(kind, entity_id)])

    def age_hours(self, kind: str, entity_id: str) -> float:
        row = self.row.get((kind, entity_id))
        return math.inf if row is None else (self.as_of - moment(row["created_time"])).total_seconds() / 3600

    def window_totals(self) -> dict[tuple[str, str], list[float]]:
        """(kind, id) → [spend, revenue, purchases] over the 7 full days before as_of's day."""
        today = account_day(self.document)
        first = today - timedelta(days=WINDOW_DAYS)
        totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for row in self.document["insights"]:
            day = datetime.fromisoformat(row["date_start"]).date()
            if not (first <= day < today):
                continue
            purchases = sum(float(a["value"]) for a in row.get("actions") or [] if a["action_type"] == "purchase")
            revenue = sum(float(a["value"]) for a in row.get("action_values") or [] if a["action_type"] == "purchase")
            for key in (("campaign", row["campaign_id"]), ("adset", row["adset_id"]), ("ad", row["ad_id"])):
                totals[key][0] += float(row["spend"])
                totals[key][1] += revenue
                totals[key][2] += purchases
        return totals

    def halted(self, hard_stop_roas: float, hard_stop_confidence: float) -> dict[tuple[str, str], tuple[float, float]]:
        """Every entity (active or not) whose 7-day ROAS is below the hard stop, held with enough
        confidence: the documented model, 2Φ(0.2·√n) − 1 with n = max(purchases, spend at the
        account's cost per purchase), written out here as erf(0.2·√n / √2)."""
        totals = self.window_totals()
        account_spend = sum(t[0] for (kind, _), t in totals.items() if kind == "ad")
        account_purchases = sum(t[2] for (kind, _), t in totals.items() if kind == "ad")
        halted = {}
        for key, (spend, revenue, purchases) in totals.items():
            if spend <= 0:
                continue
            expected = spend * account_purchases / account_spend if account_purchases > 0 else 0.0
            confidence = math.erf(CONFIDENCE_BAND * math.sqrt(max(purchases, expected)) / math.sqrt(2))
            roas = revenue / spend
            if roas < hard_stop_roas and confidence >= hard_stop_confidence:
                halted[key] = (roas, confidence)
        return halted

    def budget(self, kind: str, entity_id: str) -> float | None:
        value = self.row.get((kind, entity_id), {}).get("daily_budget")
        return None if value is None else int(value) / self.minor


class AccountState:
    """Budgets and statuses replayed from a starting document through the write log."""

    def __init__(self, document: dict):
        self.account = Account(document)
        self.budget = {key: self.account.budget(*key) for key in self.account.row if key[0] != "ad"}
        self.status = {key: row["status"] for key, row in self.account.row.items()}

    def learn(self, document: dict) -> None:
        """Entities that appeared since (a new campaign, a creative variant) join the replay as
        ``document`` shows them."""
        for kind, key in (("campaign", "campaigns"), ("adset", "adsets"), ("ad", "ads")):
            for row in document[key]:
                if (kind, row["id"]) in self.account.row:
                    continue
                self.account.kind_of[row["id"]] = kind
                self.account.row[(kind, row["id"])] = row
                self.status[(kind, row["id"])] = row["status"]
                if kind != "ad":
                    self.budget[(kind, row["id"])] = self.account.budget(kind, row["id"])

    def apply(self, write: dict) -> None:
        method = write["method"]
        if method == "update_budget":
            self.budget[(write["entity_type"], write["entity_id"])] = int(write["daily_budget"]) / self.account.minor
        elif method in ("pause", "resume"):
            self.status[(write["entity_type"], write["entity_id"])] = "PAUSED" if method == "pause" else "ACTIVE"
        elif method == "publish_winner_ad":
            self.status[("ad", write["winner_ad_id"])] = "ACTIVE"
            for ad in write["loser_ad_ids"]:
                self.status[("ad", ad)] = "PAUSED"

    def is_active(self, key: tuple[str, str]) -> bool:
        return all(self.status.get(k) == "ACTIVE" for k in [key, *self.account.parents(*key)])

    def campaign_total(self, campaign_id: str) -> float:
        own = self.budget.get(("campaign", campaign_id))
        if own is not None:
            return own
        return sum(
            budget or 0.0 for (kind, adset), budget in self.budget.items()
            if kind == "adset" and self.account.row[(kind, adset)]["campaign_id"] == campaign_id and self.is_active((kind, adset))
        )

    def account_total(self) -> float:
        return sum(budget or 0.0 for key, budget in self.budget.items() if budget is not None and self.is_active(key))


def written(write: dict) -> list[tuple[str, str]]:
    """The entities one stub write touches."""
    if write["method"] == "publish_winner_ad":
        return [("ad", write["winner_ad_id"]), *(("ad", ad) for ad in write["loser_ad_ids"])]
    if write["method"] == "create_new_ad_variant":
        return [("ad", write["ad_id"])]
    return [(write["entity_type"], write["entity_id"])]


def pauses_in(write: dict) -> int:
    return len(write["loser_ad_ids"]) if write["method"] == "publish_winner_ad" else int(write["method"] == "pause")


class GuardRailChecker:
    """Feed it every operation in order (:meth:`check`); it returns the breaches of that operation."""

    def __init__(self, settings, first_document: dict):
        self.s = settings
        self.state = AccountState(first_document)
        self.budget_changes: dict[tuple[str, str], list[tuple[datetime, float]]] = defaultdict(list)  # (at, relative change)
        self.raised_this_cycle: dict[str, float] = {}
        self.last_write: dict[tuple[str, str], datetime] = {}
        self.last_variant: dict[str, datetime] = {}
        self.awaiting: dict[tuple[str, str], str] = {}  # approved mass-pause hard stop → the run that queued it
        self.checked = defaultdict(int)  # what was looked at, by kind (the test's proof it looked)

    def check(self, op: Operation) -> list[Breach]:
        self.state.learn(op.document)
        if op.kind == "cycle":
            return self._check_cycle(op)
        breaches = []
        rows = {(r["entity_type"], r["entity_id"]): r for r in op.ledger_rows}
        for write in op.writes:
            if op.kind == "rollback" and write["method"] == "resume":
                breaches += self._resume_allowed(op, write, rows)
            breaches += self._after_write(op, write, rows.get(written(write)[0]))
        return breaches

    # --- the cycle's writes ------------------------------------------------------------------------
    def _check_cycle(self, op: Operation) -> list[Breach]:
        s, account = self.s, Account(op.document)
        breaches = []
        rows = {(r["entity_type"], r["entity_id"]): r for r in op.ledger_rows if r["status"] in ("done", "unknown", "executing")}
        touched = [key for write in op.writes for key in written(write)]
        twice = {key for key in touched if touched.count(key) > 1}
        if twice:
            breaches.append(Breach(TWICE, f"{op.run_id}: written twice in one cycle: {sorted(twice)}"))
        self.checked["cycle"] += 1

        halted = account.halted(s.hard_stop_roas, s.hard_stop_confidence)
        budgets_before = dict(self.state.budget)
        not_hard_stop = 0
        own_pauses = 0
        for write in op.writes:
            key = written(write)[0]
            row = rows.get(key)
            if row is None:
                breaches.append(Breach(UNRECORDED, f"{op.run_id}: {write['method']} {key} has no executed ledger row"))
                continue
            # A hard stop, by this checker's own numbers: a pause of an entity that must halt (or
            # under one that must), or a pause a person approved.
            hard_stop = write["method"] == "pause" and (
                any(k in halted for k in [key, *account.parents(*key)]) or row["actor"] != "autonomous"
            )
            not_hard_stop += not hard_stop
            if row["actor"] == "autonomous":
                own_pauses += pauses_in(write)
            for entity in written(write):
                self.checked["writes"] += 1
                age = account.age_hours(*entity)
                if age < s.min_age_hours - TOLERANCE and not (hard_stop and write["method"] == "pause"):
                    breaches.append(Breach(EMBARGO, f"{op.run_id}: {write['method']} {entity} inside its embargo ({age:.1f} h old)"))
                last = self.last_write.get(entity)
                if last is not None and op_time(op) - last < DAY - timedelta(seconds=1) and not hard_stop:
                    breaches.append(Breach(COOLDOWN, f"{op.run_id}: {write['method']} {entity} {op_time(op) - last} after its last write (cooldown)"))
            if write["method"] == "create_new_ad_variant":
                last_variant = self.last_variant.get(write["ad_id"])
                if last_variant is not None and op_time(op) - last_variant < timedelta(hours=s.creative_embargo_hours):
                    breaches.append(Breach(CREATIVE_EMBARGO, f"{op.run_id}: variant of ad {write['ad_id']} inside the creative embargo"))
                self.last_variant[write["ad_id"]] = op_time(op)
            if write["method"] == "resume":
                breaches += self._resume_allowed(op, write, rows)
            breaches += self._after_write(op, write, row)

        breaches += self._units(op, budgets_before)
        if not_hard_stop > s.max_actions_per_tick:
            breaches.append(Breach(PER_TICK, f"{op.run_id}: {not_hard_stop} executed actions besides hard stops > MAX_ACTIONS_PER_TICK {s.max_actions_per_tick}"))
        breaches += self._hard_stops(op, account, own_pauses)
        return breaches

    def _units(self, op: Operation, budgets_before: dict) -> list[Breach]:
        """Property 9: each reallocation of this cycle written whole, its total unchanged."""
        breaches = []
        legs = defaultdict(list)
        for row in op.ledger_rows:
            if isinstance(row.get("unit_id"), str) and row["unit_id"]:
                legs[row["unit_id"]].append((row["entity_type"], row["entity_id"]))
        budget_writes = {(w["entity_type"], w["entity_id"]): w for w in op.writes if w["method"] == "update_budget"}
        for unit, keys in legs.items():
            self.checked["reallocations"] += 1
            written_legs = [key for key in keys if key in budget_writes]
            if written_legs and len(written_legs) != len(keys):
                breaches.append(Breach(UNIT_SPLIT, f"{op.run_id}: reallocation {unit} wrote {len(written_legs)} of its {len(keys)} legs"))
            moved = sum(self.state.budget[k] - (budgets_before.get(k) or 0.0) for k in written_legs)
            if written_legs and abs(moved) > TOLERANCE:
                breaches.append(Breach(UNIT_TOTAL, f"{op.run_id}: reallocation {unit} changed the total daily budget by {moved:+.2f}"))
        return breaches

    def _hard_stops(self, op: Operation, account: Account, own_pauses: int) -> list[Breach]:
        """Property 6 for one cycle (and the mass-pause limit on what it paused itself)."""
        s = self.s
        breaches = []
        paused = {key for write in op.writes if write["method"] in ("pause", "publish_winner_ad") for key in written(write)
                  if write["method"] == "pause" or key[1] in write.get("loser_ad_ids", ())}
        # A hard stop is only ever queued by the mass-pause rule.
        queued = {(r["entity_type"], r["entity_id"]) for r in op.ledger_rows if r["status"] == "pending" and r["rule"] == "hard_stop"}
        if own_pauses > s.mass_pause_limit:
            breaches.append(Breach(MASS_PAUSE, f"{op.run_id}: the cycle paused {own_pauses} on its own > MASS_PAUSE_LIMIT {s.mass_pause_limit}"))
        if queued and own_pauses < s.mass_pause_limit:
            # Hard stops are served first: one waits for a person only once the limit is full.
            breaches.append(Breach(QUEUED_EARLY, f"{op.run_id}: hard stops queued as a mass pause while the cycle paused only {own_pauses} of {s.mass_pause_limit}"))
        for key in account.halted(s.hard_stop_roas, s.hard_stop_confidence):
            if not account.active(*key):
                continue
            self.checked["hard_stops"] += 1
            family = [key, *account.parents(*key)]
            if any(k in paused for k in family):
                continue
            if any(k in queued for k in family):
                self.checked["mass_pause_queued"] += 1
                continue
            breaches.append(Breach(HARD_STOP_MISSED, f"{op.run_id}: the hard stop on {key} was neither executed nor queued as a mass pause"))
        # An approved mass-pause hard stop is carried out by the next cycle.
        for key, queued_in in list(self.awaiting.items()):
            if account.active(*key) and not any(k in paused for k in [key, *account.parents(*key)]):
                breaches.append(Breach(APPROVED_NOT_DONE, f"{op.run_id}: approved hard stop on {key} (queued in {queued_in}) not carried out"))
            self.checked["mass_pause_approved"] += 1
            del self.awaiting[key]
        return breaches

    def approved(self, rows: list[dict]) -> None:
        """A person approved these ledger rows (before the next cycle)."""
        for row in rows:
            if row["rule"] == "hard_stop":  # queued, so by the mass-pause rule
                self.awaiting[(row["entity_type"], row["entity_id"])] = row["cycle_run_id"]

    # --- any write ----------------------------------------------------------------------------------
    def _after_write(self, op: Operation, write: dict, row: dict | None) -> list[Breach]:
        """Properties 1 and 2 for one write, then the replayed state moves on."""
        s, breaches, at = self.s, [], op_time(op)
        before = dict(self.state.budget)
        totals_before = self._totals(written(write)[0])
        self.state.apply(write)
        for key in written(write):
            if op.kind != "outside":
                self.last_write[key] = at
        if op.kind == "outside":
            return breaches
        if write["method"] == "resume":  # a budget may come back into the totals
            return self._caps(op, (write["entity_type"], write["entity_id"]), totals_before)
        if write["method"] != "update_budget":
            return breaches
        key = (write["entity_type"], write["entity_id"])
        old, new = before.get(key), self.state.budget[key]
        if not old:
            return breaches + [Breach(NO_BUDGET, f"{op.run_id}: budget write to {key}, which had no budget")]
        if op.kind == "cycle":
            limit = s.max_daily_change_pct if row is not None and row["actor"] != "autonomous" else (
                s.max_auto_change_pct if s.meta_auto_mode == "auto" else s.max_daily_change_pct)
            self.budget_changes[key].append((at, abs(new - old) / old))
            # Each write's own limit bounds everything the entity moved in the 24 h up to it.
            moved = sum(change for t, change in self.budget_changes[key] if at - t < DAY)
            self.checked["budget_changes"] += 1
            if moved > limit + TOLERANCE:
                breaches.append(Breach(CHANGE_LIMIT, f"{op.run_id}: {key} moved {moved:.4f} within 24 h > its write's limit {limit}"))
            self.raised_this_cycle[op.run_id] = self.raised_this_cycle.get(op.run_id, 0.0) + max(new - old, 0.0)
            spend_today = today_spend(op.document)
            if new > old and spend_today + self.raised_this_cycle[op.run_id] > s.max_daily_spend_usd + TOLERANCE:
                breaches.append(Breach(SPEND_TODAY, f"{op.run_id}: today's spend {spend_today:.2f} plus this cycle's raises > MAX_DAILY_SPEND_USD"))
        if new > old:
            self.checked["raises"] += 1
            breaches += self._caps(op, key, totals_before)
        return breaches

    def _totals(self, key: tuple[str, str]) -> tuple[float, float]:
        """(the campaign of ``key``'s total, the account's total) in the replayed state."""
        if key[0] == "ad" or key not in self.state.account.row:
            return 0.0, self.state.account_total()
        campaign = key[1] if key[0] == "campaign" else self.state.account.row[key]["campaign_id"]
        return self.state.campaign_total(campaign), self.state.account_total()

    def _caps(self, op: Operation, key: tuple[str, str], before: tuple[float, float]) -> list[Breach]:
        """Property 2 after a write that added budget: a total it raised may not end above its cap."""
        s, breaches = self.s, []
        (campaign_before, account_before), (campaign_after, account_after) = before, self._totals(key)
        if campaign_after > campaign_before + TOLERANCE:
            self.checked["cap_checks"] += 1
            if campaign_after > s.max_campaign_budget_usd + TOLERANCE:
                breaches.append(Breach(CAMPAIGN_CAP, f"{op.run_id}: a campaign's total {campaign_after:.2f} > MAX_CAMPAIGN_BUDGET_USD after writing {key}"))
        if account_after > account_before + TOLERANCE and account_after > s.max_daily_spend_usd + TOLERANCE:
            breaches.append(Breach(ACCOUNT_CAP, f"{op.run_id}: account total {account_after:.2f} > MAX_DAILY_SPEND_USD after writing {key}"))
        return breaches

    def _resume_allowed(self, op: Operation, write: dict, rows: dict) -> list[Breach]:
        """Property 5: the account as the rollback read it must not hold a hard stop on the entity."""
        account = Account(op.document)
        halted = account.halted(self.s.hard_stop_roas, self.s.hard_stop_confidence)
        key = (write["entity_type"], write["entity_id"])
        self.checked["resumes"] += 1
        held = [k for k in [key, *account.parents(*key)] if k in halted]
        return [Breach(RESUME_HALTED, f"{op.run_id}: resumed {key} although the hard stop holds on {held}")] if held else []


def account_day(document: dict) -> date:
    """as_of's calendar day in the account's time zone: the day insights rows are dated by."""
    return moment(document["as_of"]).astimezone(ZoneInfo(document["account"]["timezone_name"])).date()


def today_spend(document: dict) -> float:
    """The account's spend so far today (the insights rows dated as_of's day)."""
    today = account_day(document).isoformat()
    return sum(float(row["spend"]) for row in document["insights"] if row["date_start"] == today)


def op_time(op: Operation) -> datetime:
    return moment(op.document["as_of"])
