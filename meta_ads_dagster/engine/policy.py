"""PolicyEngine: business rules on what the system may *propose* (the seed's policy layer).

Each check takes scalars or arrays and returns ``(allowed, reason)``: scalars for the seed's
per-action API (``can_scale_budget(current, new, is_auto)``), arrays for the vectorized cycle
(``evaluate(actions)``), from one implementation.

Product decisions implemented here:
- the limits are per day, as the seed says: a budget change above what is left of the mode's
  limit (MAX_DAILY_CHANGE_PCT in suggest mode and for anything a person approved,
  MAX_AUTO_CHANGE_PCT in auto mode) over the rolling 24 h (``changed_24h_pct``: the entity's
  executed changes in the last 24 h, rollbacks excluded) is clamped to it and re-validated, not
  dropped; blocked when less than MIN_MEANINGFUL_CHANGE is left of a limit already partly used. New
  budgets are whole minor units rounded toward the current budget, so a clamped change stays
  within the limit;
- a raise that would take a budget above MAX_CAMPAIGN_BUDGET_USD is clamped to it, and blocked when
  less than MIN_MEANINGFUL_CHANGE would be left; a cut is never blocked for that cap (the campaign
  *total* under ad-set budgets is the SafetyEngine's, served like the spend cap);
- the seed's safety matrix: scale_down only when ROAS ≤ 1.5, scale_up only when ROAS ≥ 2.0, and no
  budget change on a ROAS held with less than MIN_CONFIDENCE (0.65);
- a raise for an entity whose 7-day country spend mix breaks the geo rules is blocked;
- a creative variant is blocked within CREATIVE_EMBARGO_HOURS of the ad's last creative change
  (the seed's "48h cooldown between creative changes");
- a raise is also clamped to SIGNIFICANT_EDIT_PCT (less what the last 24 h changed), Meta's
  significant-edit threshold as assumed here: a larger budget change restarts the learning phase
  of the ad sets it reaches. Cuts keep the mode's limit (they are protective).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..settings import HOLD_BAND_LOW, Settings
from .actions import BUDGET_TYPES, as_array, checked, keep_units_whole, note, pct, pct_text, set_verdict

MIN_MEANINGFUL_CHANGE = 0.05  # a raise clamped below 5 % is not worth an action
MIN_CONFIDENCE = 0.65  # the seed's evaluate_campaign(min_confidence=0.65): budget changes only above it
SCALE_DOWN_MAX_ROAS = HOLD_BAND_LOW  # the seed's safety matrix: scale_down only when ROAS ≤ 1.5
SCALE_UP_MIN_ROAS = 2.0  # ... and scale_up only when ROAS ≥ 2.0
GEO_SUM_TOLERANCE = 1e-6
EPS = 1e-9


class PolicyEngine:
    def __init__(self, settings: Settings):
        self.settings = settings

    # --- the seed's checks (scalars or arrays) --------------------------------------------------
    def can_scale_budget(self, current, new, is_auto: bool):
        """A change within the mode's limit that keeps the budget ≤ MAX_CAMPAIGN_BUDGET_USD (USD).

        A cut is never refused for the cap: lowering a budget that is already above it moves it
        toward the limit (refusing it would keep more money in a campaign judged to deserve less).
        """
        cur, nxt = as_array(current), as_array(new)
        limit = self.settings.max_auto_change_pct if is_auto else self.settings.max_daily_change_pct
        change = np.abs(nxt - cur) / np.where(cur > 0, cur, np.nan)
        within_limit = np.nan_to_num(change, nan=np.inf) <= limit + EPS
        under_max = (nxt <= self.settings.max_campaign_budget_usd + EPS) | (nxt <= cur)
        mode = "auto" if is_auto else "daily"
        reason = np.where(
            within_limit,
            f"new budget exceeds MAX_CAMPAIGN_BUDGET_USD {self.settings.max_campaign_budget_usd:g}",
            "change of " + pct_text(change) + f" exceeds the {pct(limit)} {mode} limit",
        )
        return checked(current, within_limit & under_max & (nxt >= 0), reason, "budget change within limits")

    def must_halt(self, roas, confidence, spend):
        """Hard stop: ROAS < HARD_STOP_ROAS held with confidence ≥ HARD_STOP_CONFIDENCE, on real spend."""
        s = self.settings
        halt = (
            (np.nan_to_num(as_array(roas), nan=np.inf) < s.hard_stop_roas)
            & (np.nan_to_num(as_array(confidence)) >= s.hard_stop_confidence)
            & (as_array(spend) > 0)
        )
        # "allowed" here means "must halt": the reason explains a halt.
        return checked(roas, halt, np.full(halt.shape, "no hard stop", dtype=object),
                       f"hard stop: ROAS below {s.hard_stop_roas} with confidence ≥ {s.hard_stop_confidence}")

    def hard_stop_reason(self, roas: float, confidence: float) -> str:
        """Why the hard stop holds on an entity with this 7-day ROAS and confidence."""
        s = self.settings
        return f"hard stop: ROAS {roas:.2f} < {s.hard_stop_roas} with confidence {confidence:.2f} ≥ {s.hard_stop_confidence}"

    def validate_geo_distribution(self, distribution: Mapping[str, float], countries: Sequence[str]):
        """Geo rules on a budget split: ``distribution`` maps country → share of the budget (0.35 =
        35 %). The shares must be non-negative and sum to 100 %; ES ≥ MIN_SPAIN_PERCENTAGE when ES
        is targeted; no country above MAX_SINGLE_COUNTRY_PCT unless ES is the only target."""
        shares = {country: float(share) for country, share in distribution.items()}
        if any(not np.isfinite(share) or share < 0 for share in shares.values()):
            return False, "geo: every share must be a finite number ≥ 0"
        total = sum(shares.values())
        if abs(total - 1.0) > GEO_SUM_TOLERANCE:
            return False, f"geo: shares sum to {pct(total)}, they must sum to 100%"
        allowed, reason = self.geo_rules(shares.get("ES", 0.0), max(shares.values(), default=0.0), [tuple(countries)])
        return bool(allowed[0]), str(reason[0])

    def can_change_creative(self, hours_since_last_change):
        """The seed's 48 h cooldown between creative changes: a creative may change again only
        CREATIVE_EMBARGO_HOURS after the ad's last creative change (NaN: never changed)."""
        hours = np.nan_to_num(as_array(hours_since_last_change), nan=np.inf)
        allowed = hours >= self.settings.creative_embargo_hours
        blocked = f"creative embargo: the creative changed less than {self.settings.creative_embargo_hours:g} h ago"
        return checked(hours_since_last_change, allowed, np.full(allowed.shape, blocked, dtype=object), "creative outside its embargo")

    def validate_action(self, action: Mapping) -> tuple[bool, str]:
        """One action (a mapping with the action frame's columns) through every policy check."""
        row = self.evaluate(pd.DataFrame([{"verdict": "proposed", "reasons": [], **action}])).iloc[0]
        return row["verdict"] == "proposed", "; ".join(row["reasons"]) or "allowed by policy"

    # --- the vectorized cycle -------------------------------------------------------------------
    def geo_rules(self, spain_share, top_share, countries: Sequence[tuple]):
        """Arrays of (allowed, reason) for the geo rules, one row per entity."""
        s = self.settings
        targets_spain = np.array(["ES" in c for c in countries], dtype=bool)
        spain_only = np.array([tuple(c) == ("ES",) for c in countries], dtype=bool)
        spain, top = as_array(spain_share), as_array(top_share)
        spain_low = targets_spain & (spain + EPS < s.min_spain_percentage)
        concentrated = ~spain_only & (top > s.max_single_country_pct + EPS)
        reason = np.where(
            spain_low,
            "geo: Spain has " + pct_text(spain) + f" of spend, below {pct(s.min_spain_percentage)}",
            "geo: one country has " + pct_text(top) + f" of spend, above {pct(s.max_single_country_pct)}",
        )
        allowed = ~(spain_low | concentrated)
        return allowed, np.where(allowed, "geo distribution within rules", reason)

    def evaluate(self, actions: pd.DataFrame) -> pd.DataFrame:
        """Clamp budget changes to the limits, then block what policy does not allow."""
        actions = actions.copy()
        s = self.settings
        kind = actions["type"]
        is_budget = kind.isin(BUDGET_TYPES).to_numpy()
        sign = np.where(kind.eq("scale_down"), -1.0, 1.0)
        limit = s.budget_change_limit
        mode = "auto" if s.is_auto else "daily"

        roas = actions["roas_7d"].astype(float).to_numpy()
        confidence = actions["confidence"].astype(float).to_numpy()
        set_verdict(actions, is_budget & ~(np.nan_to_num(confidence) >= MIN_CONFIDENCE), "policy_blocked",
                    "ROAS confidence " + np.char.mod("%.2f", np.nan_to_num(confidence)).astype(object) + f" below {MIN_CONFIDENCE}: no budget change")
        # A reallocation's legs answer to its own condition (the ROAS spread), not a lone change's.
        lone = ~(actions["rule"].eq("reallocate").to_numpy() if "rule" in actions else np.zeros(len(actions), dtype=bool))
        set_verdict(actions, lone & kind.eq("scale_down").to_numpy() & ~(roas <= SCALE_DOWN_MAX_ROAS), "policy_blocked",
                    f"safety matrix: scale_down only when ROAS ≤ {SCALE_DOWN_MAX_ROAS}")
        set_verdict(actions, lone & kind.eq("scale_up").to_numpy() & ~(roas >= SCALE_UP_MIN_ROAS), "policy_blocked",
                    f"safety matrix: scale_up only when ROAS ≥ {SCALE_UP_MIN_ROAS}")

        # The limit is per day: what the entity's executed changes of the last 24 h used is gone.
        used = np.nan_to_num(actions["changed_24h_pct"].astype(float).to_numpy(), nan=0.0)
        room = np.maximum(limit - used, 0.0)
        # A raise also stays within the significant-edit threshold (less the same 24 h), so it
        # never restarts Meta's learning phase; a cut is protective and keeps the mode's limit.
        sig = s.significant_edit_pct
        by_sig = kind.eq("scale_up").to_numpy() & (sig - used < room - EPS)
        room = np.where(by_sig, np.maximum(sig - used, 0.0), room)
        used_up = is_budget & (used > EPS) & (room < MIN_MEANINGFUL_CHANGE - EPS)
        set_verdict(actions, used_up & ~by_sig, "policy_blocked",
                    "rolling 24 h change limit reached: " + pct_text(used) + f" already changed of the {pct(limit)} {mode} limit")
        set_verdict(actions, used_up & by_sig, "policy_blocked",
                    "rolling 24 h change limit reached: " + pct_text(used) + f" already changed of the {pct(sig)} significant-edit "
                    "threshold (SIGNIFICANT_EDIT_PCT): a further raise would restart Meta's learning phase")
        proposed = actions["proposed_pct"].astype(float).to_numpy()
        over_limit = is_budget & (proposed > room + EPS)
        by_limit = over_limit & ~by_sig
        note(actions, by_limit & (used <= EPS), "budget change clamped from " + pct_text(proposed) + f" to the {pct(limit)} {mode} limit")
        note(actions, by_limit & (used > EPS), "budget change clamped from " + pct_text(proposed) + " to the " + pct_text(room)
             + f" left of the {pct(limit)} {mode} limit (" + pct_text(used) + " changed in the last 24 h)")
        note(actions, over_limit & by_sig, "raise clamped from " + pct_text(proposed) + " to " + pct_text(room)
             + f" to stay within the {pct(sig)} significant-edit threshold (SIGNIFICANT_EDIT_PCT"
             + np.where(used > EPS, ", " + pct_text(used) + " changed in the last 24 h", "").astype(object)
             + "): a larger one would restart Meta's learning phase")
        amount = np.where(over_limit, room, proposed)

        minor = actions["minor_per_unit"].astype(float).to_numpy()
        current = actions["current_budget_minor"].astype(float).to_numpy()
        # Whole minor units, rounded toward no change: a change clamped to the limit must not be
        # pushed past it by rounding (and then blocked instead of clamped).
        new = current + sign * np.floor(current * amount + EPS * np.abs(current))
        cap = s.max_campaign_budget_usd * minor
        over_max = is_budget & (sign > 0) & (new > cap + EPS)
        new = np.where(over_max, np.maximum(np.floor(cap), current), new)
        amount = np.where(is_budget, np.abs(new - current) / np.where(current > 0, current, np.nan), np.nan)
        actions["amount_pct"] = amount
        actions["new_budget_minor"] = np.where(is_budget, new, np.nan)

        set_verdict(actions, is_budget & ~(current > 0), "policy_blocked", "no daily budget to change")
        at_max = over_max & (np.nan_to_num(amount) < MIN_MEANINGFUL_CHANGE - EPS)
        set_verdict(actions, at_max, "policy_blocked", f"less than a {pct(MIN_MEANINGFUL_CHANGE)} raise fits under MAX_CAMPAIGN_BUDGET_USD {s.max_campaign_budget_usd:g}")
        note(actions, over_max, f"raise clamped to MAX_CAMPAIGN_BUDGET_USD {s.max_campaign_budget_usd:g}")

        allowed, reason = self.can_scale_budget(current / minor, new / minor, s.is_auto)
        set_verdict(actions, is_budget & ~allowed, "policy_blocked", reason)

        geo_ok, geo_reason = self.geo_rules(
            actions["spain_share"].fillna(0.0), actions["top_country_share"].fillna(0.0), list(actions["countries"])
        )
        set_verdict(actions, kind.eq("scale_up").to_numpy() & ~geo_ok, "policy_blocked", geo_reason)

        creative_ok, creative_reason = self.can_change_creative(actions["hours_since_creative_change"].astype(float).to_numpy())
        set_verdict(actions, kind.eq("create_variant").to_numpy() & ~creative_ok, "policy_blocked", creative_reason)
        return keep_units_whole(actions)
