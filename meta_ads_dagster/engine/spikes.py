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

from .snapshot import AccountSnapshot

SPIKE_Z = 3.0
BASELINE_DAYS = 7
MIN_BASELINE_DAYS = 3


def detect_spikes(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    """One row per budget holder: last full day's purchases against its baseline, z and direction."""
    holders = entities[entities["is_budget_holder"]][["entity_type", "entity_id"]]
    last_day = snapshot.today - pd.Timedelta(days=1)
    first_day = last_day - pd.Timedelta(days=BASELINE_DAYS)
    ins = snapshot.insights
    ins = ins[(ins["date"] >= first_day) & (ins["date"] <= last_day)]
    days = pd.date_range(first_day, last_day, freq="D")

    series = []
    for level, column in (("campaign", "campaign_id"), ("adset", "adset_id")):
        ids = holders.loc[holders["entity_type"] == level, "entity_id"]
        daily = (
            ins[ins[column].isin(ids)].groupby([column, "date"])["purchases"].sum()
            .unstack("date").reindex(index=ids, columns=days)
        )
        series.append(daily.assign(entity_type=level).rename_axis("entity_id").reset_index())
    daily = pd.concat(series, ignore_index=True)

    baseline = daily[days[:-1]].to_numpy(dtype=float)
    last = daily[days[-1]].fillna(0.0).to_numpy(dtype=float)
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
            "entity_type": daily["entity_type"],
            "entity_id": daily["entity_id"],
            "day": last_day,
            "purchases": last,
            "baseline_mean": mean,
            "baseline_sd": sd,
            "z": np.where(enough, z, np.nan),
            "direction": direction,
        }
    )
