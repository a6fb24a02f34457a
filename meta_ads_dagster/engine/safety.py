"""SafetyEngine: hard limits that no proposal may cross, whatever the policy allowed.

Like the PolicyEngine, every check takes scalars (the seed's per-action API) or arrays (the
vectorized cycle) and returns ``(allowed, reason)``.

- Embargo: nothing but a hard stop touches an entity younger than MIN_AGE_HOURS (an A/B decision
  touches every arm: its youngest arm counts).
- Minimum data: an action needs ≥ MIN_IMPRESSIONS and ≥ MIN_SPEND_USD over the 7-day window;
  hard stops excepted (the seed: "Pause has no safety concerns").
- Cooldown: one executed action per entity per 24 h (hard stops excepted: they only cut spend);
  an A/B decision waits while any of its arms is in its cooldown.
- Unapproved creatives are never put live (publishing a winner, resuming an ad).
- Spend caps: a raise is allowed while the account's total active daily budget after it and
  today's spend plus it stay ≤ MAX_DAILY_SPEND_USD, and its campaign's total daily budget (the
  campaign's own under CBO, the sum of its active ad sets' otherwise) stays ≤
  MAX_CAMPAIGN_BUDGET_USD. Raises are served highest confidence first, each clamped to the room
  the ones before it left under both caps, or blocked when less than a meaningful change would
  remain (its room then goes to the next). A resume of a budget holder brings its whole budget
  back into the totals: it fits, or it is blocked.
- Meta's budget edit limit: no budget change on an entity whose budget already changed
  META_BUDGET_EDITS_PER_HOUR (4) times in the last hour, by any path, whatever the cycle interval
  (Meta refuses the fifth).
- Learning-phase hold (LEARNING_PHASE_HOLD): a raise is ``deferred`` while a running ad set it
  reaches is in Meta's learning phase (an ad set's budget: that ad set; a campaign budget: any of
  the campaign's ad sets); the reason names them. Only raises are held: pauses, hard stops and
  cuts only lower spend and are never held. An approved raise stays approved (until its TTL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..settings import Settings
from .actions import BUDGET_TYPES, as_array, checked, keep_units_whole, note, set_verdict
from .history import COOLDOWN_HOURS
from .policy import EPS, MIN_MEANINGFUL_CHANGE

AUTO_MIN_CONFIDENCE = 0.75  # the seed's safety matrix: auto-scale only with confidence ≥ 0.75
PUTS_CREATIVE_LIVE = ("publish_winner", "resume")
META_BUDGET_EDITS_PER_HOUR = 4  # Marketing API: an ad set's budget can change at most 4 times an hour
HELD_WHILE_LEARNING = ("scale_up",)  # the non-protective budget changes


@dataclass(frozen=True)
class AccountSpend:
    """What the spend caps are measured against (account currency, major units).

    ``campaign_budgets``: campaign id → its total active daily budget (MAX_CAMPAIGN_BUDGET_USD).
    """

    total_active_daily_budget: float
    spend_today: float
    campaign_budgets: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    def after_raises(self, actions: pd.DataFrame) -> "AccountSpend":
        """The totals once ``actions``' executed raises have landed."""
        raises = actions[actions["type"].eq("scale_up") & actions["verdict"].eq("executed")]
        added = (raises["new_budget_minor"].astype(float) - raises["current_budget_minor"].astype(float)) / raises["minor_per_unit"].astype(float)
        by_campaign = added.groupby(raises["campaign_id"]).sum()
        total = float(added.sum())
        return AccountSpend(
            self.total_active_daily_budget + total,
            self.spend_today + total,
            self.campaign_budgets.add(by_campaign, fill_value=0.0),
        )


def _learning_reason(entity_type: str, adsets: tuple[str, ...]) -> str:
    if not adsets:
        return ""
    plural = len(adsets) > 1
    owner = "this campaign's ad set" if entity_type == "campaign" else "ad set"
    return (
        f"learning phase: {owner}{'s' if plural else ''} {', '.join(adsets)} {'are' if plural else 'is'} in Meta's learning phase: "
        f"raise held until {'they leave' if plural else 'it leaves'} it (LEARNING_PHASE_HOLD)"
    )


class SafetyEngine:
    def __init__(self, settings: Settings):
        self.settings = settings

    # --- the seed's checks (scalars or arrays) --------------------------------------------------
    def prevent_overspend(self, total_active_budget, spend_today, increase):
        """After the increase, total active daily budget and today's spend stay ≤ MAX_DAILY_SPEND_USD."""
        cap = self.settings.max_daily_spend_usd
        budget_after = as_array(total_active_budget) + as_array(increase)
        spend_after = as_array(spend_today) + as_array(increase)
        allowed = (budget_after <= cap + EPS) & (spend_after <= cap + EPS)
        reason = np.where(
            budget_after > cap + EPS,
            f"spend cap: total daily budget would exceed MAX_DAILY_SPEND_USD {cap:g}",
            f"spend cap: today's spend plus the raise would exceed MAX_DAILY_SPEND_USD {cap:g}",
        )
        return checked(increase, allowed, reason, "within the daily spend cap")

    def enforce_embargo_period(self, age_hours):
        allowed = np.nan_to_num(as_array(age_hours), nan=0.0) >= self.settings.min_age_hours
        return checked(age_hours, allowed, np.full(allowed.shape, f"embargo: entity is younger than {self.settings.min_age_hours:g} h", dtype=object), "outside the embargo")

    def block_unapproved_creatives(self, approved):
        allowed = np.atleast_1d(np.asarray(pd.array(np.atleast_1d(approved), dtype="boolean").fillna(False), dtype=bool))
        return checked(approved, allowed, np.full(allowed.shape, "creative is not approved", dtype=object), "creative approved")

    def check_minimum_data(self, impressions, spend):
        s = self.settings
        enough = (as_array(impressions) >= s.min_impressions) & (as_array(spend) >= s.min_spend_usd - EPS)
        reason = np.full(enough.shape, f"not enough data: needs {s.min_impressions} impressions and {s.min_spend_usd:g} spend over 7 days", dtype=object)
        return checked(impressions, enough, reason, "enough data")

    def check_action_rate_limit(self, hours_since_last_action):
        hours = np.nan_to_num(as_array(hours_since_last_action), nan=np.inf)
        allowed = hours >= COOLDOWN_HOURS
        reason = np.full(allowed.shape, f"cooldown: this entity was changed less than {COOLDOWN_HOURS} h ago", dtype=object)
        return checked(hours_since_last_action, allowed, reason, "outside the cooldown")

    def check_budget_edit_rate(self, edits_last_hour):
        """Meta's limit: fewer than META_BUDGET_EDITS_PER_HOUR budget edits in the last hour."""
        edits = np.nan_to_num(as_array(edits_last_hour), nan=0.0)
        allowed = edits < META_BUDGET_EDITS_PER_HOUR
        reason = np.array(
            [f"Meta's budget edit limit: the budget changed {e:.0f} times in the last hour (at most {META_BUDGET_EDITS_PER_HOUR})" for e in edits],
            dtype=object,
        )
        return checked(edits_last_hour, allowed, reason, "within Meta's budget edits per hour")

    def hold_while_learning(self, entity_type, learning_adsets):
        """(allowed, reason): not allowed while the entity's budget reaches a running ad set in
        Meta's learning phase. ``learning_adsets``: their ids (a tuple), or a column of such tuples
        beside a column of entity types; the reason names them."""
        scalar = isinstance(entity_type, str)
        kinds = [entity_type] if scalar else list(entity_type)
        adsets = [learning_adsets] if scalar else list(learning_adsets)
        adsets = [tuple(a) if isinstance(a, (tuple, list)) else () for a in adsets]
        allowed = np.array([not a for a in adsets], dtype=bool)
        reason = np.array([_learning_reason(kind, a) for kind, a in zip(kinds, adsets)], dtype=object)
        return checked(entity_type, allowed, reason, "no ad set it reaches is learning")

    def validate_roas_confidence(self, confidence, minimum: float = AUTO_MIN_CONFIDENCE):
        allowed = np.nan_to_num(as_array(confidence)) >= minimum
        reason = np.full(allowed.shape, f"confidence below {minimum:.2f}", dtype=object)
        return checked(confidence, allowed, reason, "confidence sufficient")

    def validate_action(self, action: Mapping, spend: AccountSpend) -> tuple[bool, str]:
        row = self.evaluate(pd.DataFrame([{"verdict": "proposed", "reasons": [], **action}]), spend).iloc[0]
        return row["verdict"] == "proposed", "; ".join(row["reasons"]) or "allowed by safety"

    # --- the vectorized cycle -------------------------------------------------------------------
    def evaluate(self, actions: pd.DataFrame, spend: AccountSpend) -> pd.DataFrame:
        actions = actions.copy()
        kind = actions["type"]
        hard_stop = actions["rule"].eq("hard_stop").to_numpy()

        ok, reason = self.check_minimum_data(actions["impressions_7d"].astype(float), actions["spend_7d"].astype(float))
        set_verdict(actions, ~hard_stop & ~ok, "safety_blocked", reason)
        ok, reason = self.enforce_embargo_period(actions["age_hours"].astype(float))
        set_verdict(actions, ~hard_stop & ~ok, "safety_blocked", reason)
        ok, reason = self.check_action_rate_limit(actions["hours_since_last_action"].astype(float))
        set_verdict(actions, ~hard_stop & ~ok, "safety_blocked", reason)
        ok, reason = self.block_unapproved_creatives(actions["creative_approved"])
        set_verdict(actions, kind.isin(PUTS_CREATIVE_LIVE).to_numpy() & ~ok, "safety_blocked", reason)
        ok, reason = self.check_budget_edit_rate(actions["budget_edits_1h"].astype(float))
        set_verdict(actions, kind.isin(BUDGET_TYPES).to_numpy() & ~ok, "safety_blocked", reason)
        if self.settings.learning_phase_hold:
            # Before the spend cap: a held raise must not take room the next raise could use.
            ok, reason = self.hold_while_learning(actions["entity_type"], actions["learning_adsets"])
            set_verdict(actions, kind.isin(HELD_WHILE_LEARNING).to_numpy() & ~ok, "deferred", reason)

        self._apply_spend_cap(actions, spend)
        return keep_units_whole(actions)

    def _apply_spend_cap(self, actions: pd.DataFrame, spend: AccountSpend) -> None:
        """Serve raises highest confidence first; each gets what fits in the room the ones before
        it left under the account cap and its campaign's cap (a sequential fold: a raise that is
        blocked leaves its room to the next)."""
        # A resume brings its budget (``current_budget_minor``) back into the totals: all or nothing.
        resuming = actions["type"].eq("resume") & (actions["current_budget_minor"].astype(float) > 0)
        raises = actions[(actions["type"].eq("scale_up") | resuming) & actions["verdict"].eq("proposed")]
        if raises.empty:
            return
        order = raises.sort_values(["confidence", "entity_id"], ascending=[False, True]).index
        whole = actions.loc[order, "type"].eq("resume").to_numpy()
        minor = actions.loc[order, "minor_per_unit"].astype(float).to_numpy()
        current = actions.loc[order, "current_budget_minor"].astype(float).to_numpy() / minor
        increase = np.where(whole, current, actions.loc[order, "new_budget_minor"].astype(float).to_numpy() / minor - current)
        current = np.where(whole, np.inf, current)  # a resume is never clamped to a part of its budget
        campaigns = actions.loc[order, "campaign_id"].to_numpy()
        cap, campaign_cap = self.settings.max_daily_spend_usd, self.settings.max_campaign_budget_usd
        campaign_total = {c: float(spend.campaign_budgets.get(c, 0.0)) for c in set(campaigns)}

        granted = np.zeros(len(order))
        reasons = np.full(len(order), "", dtype=object)
        bound_by = np.full(len(order), "", dtype=object)
        spent = 0.0  # raised so far by the raises served before
        for i in range(len(order)):
            fits, reason = self.prevent_overspend(spend.total_active_daily_budget + spent, spend.spend_today + spent, increase[i])
            account_room = max(0.0, cap - max(spend.total_active_daily_budget, spend.spend_today) - spent)
            campaign_room = max(0.0, campaign_cap - campaign_total[campaigns[i]])
            if fits and increase[i] > campaign_room + EPS:
                fits, reason = False, f"campaign cap: campaign {campaigns[i]}'s total daily budget would exceed MAX_CAMPAIGN_BUDGET_USD {campaign_cap:g}"
            room = min(account_room, campaign_room)
            granted[i] = increase[i] if fits else min(increase[i], room)
            bound_by[i] = "" if fits else ("campaign" if campaign_room < account_room else "account")
            if not fits and (whole[i] or granted[i] < MIN_MEANINGFUL_CHANGE * current[i] - EPS):
                granted[i], reasons[i] = 0.0, reason
            spent += granted[i]
            campaign_total[campaigns[i]] += granted[i]

        clamp = (granted < increase - EPS) & (granted > 0)
        actions.loc[order[clamp], "new_budget_minor"] = np.floor((current[clamp] + granted[clamp]) * minor[clamp])
        actions.loc[order[clamp], "amount_pct"] = granted[clamp] / current[clamp]
        clamp_reason = np.where(
            bound_by == "campaign",
            f"raise clamped to the room left under MAX_CAMPAIGN_BUDGET_USD {campaign_cap:g} (the campaign's total daily budget)",
            f"raise clamped to the room left under MAX_DAILY_SPEND_USD {cap:g}",
        )
        note(actions, actions.index.isin(order[clamp]), pd.Series(clamp_reason, index=order).reindex(actions.index).fillna("").to_numpy())
        blocked = granted <= 0
        set_verdict(actions, actions.index.isin(order[blocked]), "safety_blocked", pd.Series(reasons, index=order).reindex(actions.index).fillna("").to_numpy())
