"""Spike detection on daily purchases of each budget holder.

The last full day is compared with the 7 days before it:
``z = (x − mean) / sd`` where ``sd = √max(sample variance, mean, 1)``. Flooring the variance at the
Poisson variance (= the mean for counts) keeps a perfectly steady history from turning every
ordinary wobble into a "spike"; the floor of 1 does the same for entities selling a few units a day.
``|z| ≥ 3`` (a three-sigma event, ~0.3 % of normal days) is a spike. At least 3 days of history are
required. Today is not used: a partial day restated every few hours would spike on time of day alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import AdDays, ad_days
from .snapshot import AccountSnapshot

SPIKE_Z = 3.0
BASELINE_DAYS = 7
MIN_BASELINE_DAYS = 3


def detect_spikes(snapshot: AccountSnapshot, entities: pd.DataFrame, days: AdDays | None = None) -> pd.DataFrame:
    """One row per budget holder: last full day's purchases against its baseline, z and direction.
    ``days``: the snapshot's daily ad-level table (engine/metrics.py ``ad_days``), when at hand."""
    days = ad_days(snapshot) if days is None else days
    holders = pd.concat([entities[entities["is_budget_holder"] & entities["entity_type"].eq(level)] for level in ("campaign", "adset")])
    last_day = snapshot.today - pd.Timedelta(days=1)
    # Purchases per holder and day, the baseline's days oldest first and the last full day (age 1)
    # last; NaN where a holder has no insight rows that day (such a day is not history).
    span = BASELINE_DAYS + 1
    recent = days.between(1, span)
    ad, column = recent["ad"].to_numpy(), span - recent["age"].to_numpy()
    rows = days.rows(entities)
    holder_of = np.full(len(entities) + 1, -1)  # entity row → holder position; row -1 (none) → -1
    holder_of[entities.index.get_indexer(holders.index)] = np.arange(len(holders))
    daily = np.full((len(holders), span), np.nan)
    for parent in (rows.campaign, rows.adset):
        holder = holder_of[parent[ad]]
        mine = holder >= 0
        sums = recent["purchases"][mine].groupby(holder[mine] * span + column[mine]).sum()
        key = sums.index.to_numpy()
        daily[key // span, key % span] = sums.to_numpy()

    baseline = daily[:, :-1]
    last = np.nan_to_num(daily[:, -1], nan=0.0)
    history_days = np.sum(~np.isnan(baseline), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(history_days > 0, np.nansum(baseline, axis=1) / np.maximum(history_days, 1), np.nan)
        # Days without data are left out: they add nothing to the squared deviations.
        deviations = np.where(np.isnan(baseline), 0.0, baseline - mean[:, None])
        variance = np.where(history_days > 1, (deviations**2).sum(axis=1) / np.maximum(history_days - 1, 1), 0.0)
    sd = np.sqrt(np.maximum.reduce([np.nan_to_num(variance), np.nan_to_num(mean), np.ones_like(last)]))
    z = (last - mean) / sd
    enough = history_days >= MIN_BASELINE_DAYS
    direction = np.select([enough & (z >= SPIKE_Z), enough & (z <= -SPIKE_Z)], ["up", "down"], default="none")

    return pd.DataFrame(
        {
            "entity_type": holders["entity_type"].to_numpy(),
            "entity_id": holders["entity_id"].to_numpy(),
            "day": last_day,
            "purchases": last,
            "baseline_mean": mean,
            "baseline_sd": sd,
            "z": np.where(enough, z, np.nan),
            "direction": direction,
        }
    )
