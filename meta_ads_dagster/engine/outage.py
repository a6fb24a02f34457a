"""A tracking outage: the account's purchases fall to about zero on full days while spend goes on.

When the pixel or the Conversions API stops reporting, every entity's ROAS falls toward 0 at once
and the rules read it as a collapse: cuts everywhere, and hard stops on entities that earn money.
The seed's own sanity check says as much ("very low ROAS + high confidence → warning": check the
tracking). So on an outage the cycle writes only what it would write without the dark days:

- the cycle's own hard stops on entities the hard stop holds on **without the dark days** (the
  brake still stops an entity that was losing money before tracking broke; one that only the
  outage pushed under the threshold is queued for a person, who can tell a broken pixel from a
  broken ad);
- a person's approved protective actions (pauses, cuts, A/B decisions: decided on the data before);
- nothing else: every other executable action (raises, cuts, A/B decisions, creative variants of
  the cycle's own; a person's approved raises) is held, the cycle's own queued for a person and a
  person's approval deferred (it stays approved until its TTL), each with the outage in its reasons.

A day is dark when the account spent enough on it to expect at least OUTAGE_MIN_EXPECTED_PURCHASES
purchases at its cost per purchase over the full days before it, and reported at most
OUTAGE_PURCHASE_SHARE of those. The outage is the run of dark days that ends with the last full
day; today's partial day is never judged (Meta restates it all day), so an outage is seen the day
after it starts, and one longer than the insights' lookback can no longer be told from an account
that stopped selling.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..settings import Settings
from .actions import PROTECTIVE_TYPES, give_verdict, is_approval
from .metrics import entity_table, roas_metrics
from .policy import PolicyEngine
from .snapshot import AccountSnapshot

OUTAGE_PURCHASE_SHARE = 0.10  # a dark day reports at most this share of the purchases it should have
OUTAGE_MIN_EXPECTED_PURCHASES = 10  # below this a quiet day is chance, not an outage


@dataclass(frozen=True)
class TrackingOutage:
    """The dark full days (oldest first, the last one being yesterday) and what they showed."""

    days: tuple[pd.Timestamp, ...]
    spend: float
    purchases: float
    expected_purchases: float

    def describe(self) -> str:
        first, last = self.days[0].date(), self.days[-1].date()
        span = f"on {last}" if first == last else f"from {first} to {last}"
        return (
            f"tracking outage {span}: {self.purchases:.0f} purchase(s) reported where {self.expected_purchases:.0f} were "
            f"expected for a spend of {self.spend:,.2f}"
        )


def daily_tracking(snapshot: AccountSnapshot) -> pd.DataFrame:
    """One row per calendar day up to the last full day: the account's spend and purchases, the
    purchases its cost per purchase over the days before predicts, and whether the day is dark."""
    full = snapshot.insights[snapshot.insights["date"] < snapshot.today]
    if full.empty:
        return pd.DataFrame(columns=["spend", "purchases", "expected", "dark"])
    daily = full.groupby("date")[["spend", "purchases"]].sum()
    days = pd.date_range(daily.index.min(), snapshot.today - pd.Timedelta(days=1), freq="D")
    daily = daily.reindex(days, fill_value=0.0)
    spend_before = daily["spend"].cumsum().shift(fill_value=0.0)
    purchases_before = daily["purchases"].cumsum().shift(fill_value=0.0)
    rate = np.where(spend_before > 0, purchases_before / spend_before.where(spend_before > 0, 1.0), 0.0)
    daily["expected"] = daily["spend"] * rate
    daily["dark"] = (daily["expected"] >= OUTAGE_MIN_EXPECTED_PURCHASES) & (
        daily["purchases"] <= OUTAGE_PURCHASE_SHARE * daily["expected"]
    )
    return daily


def tracking_outage(snapshot: AccountSnapshot) -> TrackingOutage | None:
    """The outage the last full days show, or None when the last full day is not dark."""
    daily = daily_tracking(snapshot)
    # The trailing run of dark days: a day belongs to it when it and every later day are dark.
    trailing = daily["dark"].iloc[::-1].astype(bool).cummin().iloc[::-1]
    dark = daily[trailing]
    if dark.empty:
        return None
    return TrackingOutage(
        days=tuple(dark.index), spend=float(dark["spend"].sum()), purchases=float(dark["purchases"].sum()),
        expected_purchases=float(dark["expected"].sum()),
    )


def halted_without(snapshot: AccountSnapshot, outage: TrackingOutage, settings: Settings) -> pd.DataFrame:
    """The active entities the hard stop holds on when the dark days are left out of the 7-day
    window (their ROAS and confidence from the other days only): ``entity_type``, ``entity_id``."""
    clean = dataclasses.replace(snapshot, insights=snapshot.insights[~snapshot.insights["date"].isin(outage.days)])
    metrics = roas_metrics(clean, entity_table(clean))
    active = metrics[metrics["effective_active"]]
    halt, _ = PolicyEngine(settings).must_halt(active["roas_7d"], active["confidence"], active["spend_7d"])
    return active.loc[halt, ["entity_type", "entity_id"]].reset_index(drop=True)


def hold_on_outage(actions: pd.DataFrame, snapshot: AccountSnapshot, settings: Settings) -> tuple[pd.DataFrame, TrackingOutage | None]:
    """On a tracking outage, hold every executable action but the hard stops that hold without the
    dark days and a person's protective approvals (module docstring). Returns the actions (a copy
    when anything was held) and the outage, or None when there is none."""
    outage = tracking_outage(snapshot)
    if outage is None or actions.empty:
        return actions, outage
    actions = actions.copy()
    executable = actions["verdict"].eq("executed").to_numpy()
    approval = is_approval(actions)
    halted = halted_without(snapshot, outage, settings)
    still_halted = pd.MultiIndex.from_frame(actions[["entity_type", "entity_id"]]).isin(pd.MultiIndex.from_frame(halted))
    keep = (~approval & actions["rule"].eq("hard_stop").to_numpy() & still_halted) | (
        approval & actions["type"].isin(PROTECTIVE_TYPES).to_numpy()
    )
    held = executable & ~keep
    why = outage.describe()
    give_verdict(actions, held & ~approval, "queued", f"held for a person: {why}; the rules read a ROAS the outage pulled down")
    give_verdict(actions, held & approval, "deferred", f"held (stays approved): {why}")
    return actions, outage
