"""A/B test evaluation: Bayesian probability-to-be-best on purchases per impression.

Each arm's conversion rate gets a Beta(1 + purchases, 1 + impressions − purchases) posterior
(uniform prior, binomial likelihood). The probability that an arm is the best is the share of
joint posterior draws in which it has the highest rate; a winner is declared when that probability
is ≥ 0.95, the industry default, and only for tests older than 48 h in which every arm has more than
1,000 impressions (the seed's rule). Every arm is counted over the same days, the full days since
the last arm joined (``compared_since``: the later of the test's start and its youngest ad's
creation), and the test's age runs from then too, so an arm added late is never judged on fewer
days than the others. Draws come from a fixed-seed generator so the same snapshot
always gives the same answer, and all tests are drawn in one array operation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import AdDays, ad_days, arrow_strings, level_rows
from .snapshot import AccountSnapshot

MIN_TEST_AGE_HOURS = 48
MIN_ARM_IMPRESSIONS = 1000
WIN_PROBABILITY = 0.95
POSTERIOR_DRAWS = 8000
RANDOM_SEED = 20261122


def _totals_since(table: pd.DataFrame, code: np.ndarray, counted: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per arm (``code``: its ad's code in the daily ad-level ``table``, -1 for none): its ad's
    impressions and purchases over the days from today back ``counted`` (today − the first day
    counted: the ages 0 to that many days), as differences of running sums between each arm's
    first and last rows (the table is sorted by ad, then age). The sums are the raw rows' to the
    bit: impressions are integers and purchases whole numbers (the parser's rule), exact in any
    order."""
    span = int(table["age"].max()) + 1 if len(table) else 1
    key = table["ad"].to_numpy() * span + table["age"].to_numpy()  # sorted
    last_age = np.clip(counted.to_numpy() // np.timedelta64(1, "D"), -1, span - 1)
    first = np.searchsorted(key, code * span, "left")
    last = np.where(code >= 0, np.searchsorted(key, code * span + last_age, "right"), first)
    sums = []
    for column in ("impressions", "purchases"):
        running = np.concatenate([[0], np.cumsum(table[column].to_numpy())])
        sums.append(running[np.maximum(last, first)] - running[first])
    return sums[0], sums[1]


def probability_to_be_best(purchases: np.ndarray, impressions: np.ndarray, draws: int = POSTERIOR_DRAWS) -> np.ndarray:
    """P(best) per arm for a (tests × arms) matrix; NaN impressions mark absent arms."""
    present = ~np.isnan(impressions)
    successes = np.where(present, purchases, 0.0)
    failures = np.where(present, np.maximum(impressions - purchases, 0.0), 0.0)
    rng = np.random.default_rng(RANDOM_SEED)
    samples = rng.beta(1.0 + successes, 1.0 + failures, size=(draws, *impressions.shape))
    samples[:, ~present] = -np.inf
    # argmax over a short last axis, arm by arm (strictly greater: a tie goes to the first arm,
    # as argmax), then counted per (test, arm): the same figures without (draws × tests × arms)
    # copies. The best arm in the smallest integer type, counted by comparisons: a quarter of the
    # time of an index per draw and a bincount (the draws themselves are the rest).
    tests, arms = impressions.shape
    best = np.zeros((draws, tests), dtype=np.min_scalar_type(max(arms - 1, 0)))
    top = samples[:, :, 0].copy()
    for arm in range(1, arms):
        beats = samples[:, :, arm] > top
        np.copyto(best, arm, where=beats)
        np.maximum(top, samples[:, :, arm], out=top)
    counts = np.stack([np.count_nonzero(best == arm, axis=0) for arm in range(arms)], axis=1)
    return counts / draws


COLUMNS = [
    "test_id", "ad_ids", "compared_since", "age_hours", "min_arm_impressions", "winner_ad_id", "loser_ad_ids",
    "prob_best", "arm_prob_best", "status",
]


def evaluate_ab_tests(snapshot: AccountSnapshot, entities: pd.DataFrame, days: AdDays | None = None) -> pd.DataFrame:
    """One row per test: age, per-arm totals since it started, the best arm's P(best) and every
    arm's (``arm_prob_best``, aligned with ``ad_ids``), winner and status. ``days``: the
    snapshot's daily ad-level table (engine/metrics.py ``ad_days``), when at hand."""
    if snapshot.ab_tests.empty:
        return pd.DataFrame(columns=COLUMNS)
    return judge_arms(snapshot, arm_totals(snapshot, entities, ad_days(snapshot) if days is None else days))


def arm_totals(snapshot: AccountSnapshot, entities: pd.DataFrame, days: AdDays) -> pd.DataFrame:
    """One row per arm (test_id, ad_id, arm, started_at, compared_since, impressions, purchases,
    active): its ad's totals over the days the test compares."""
    arms = snapshot.ab_tests.explode("ad_ids").rename(columns={"id": "test_id", "ad_ids": "ad_id"})
    arms["arm"] = arms.groupby("test_id").cumcount()
    # Each arm's ad in the entity table (NaN: not there) and its insights' code (-1: no rows).
    row = level_rows(arrow_strings(entities["entity_type"]), arrow_strings(entities["entity_id"]), "ad", arrow_strings(arms["ad_id"]))
    arm_ads = (
        entities[["created_time", "status"]].take(np.maximum(row, 0)).reset_index(drop=True)
        .where(pd.Series(row >= 0), axis=0).set_axis(arms.index)
    )
    code = np.where(row >= 0, days.rows(entities).ad_codes()[row], -1)
    # The arms are compared over the same days: from when the last of them started running (an ad
    # added to a test after it began starts the test's clock again).
    arm_start = np.maximum(arms["started_at"], arm_ads["created_time"].fillna(arms["started_at"]))
    arms["compared_since"] = arm_start.groupby(arms["test_id"]).transform("max")
    # Insights are daily: the first day counted is the first one every arm ran from its start.
    started = arms["compared_since"].dt.tz_convert(None).dt.ceil("D")
    arms["impressions"], arms["purchases"] = _totals_since(days.days, code, snapshot.today - started)
    arms["active"] = arm_ads["status"].eq("ACTIVE")
    return arms


def judge_arms(snapshot: AccountSnapshot, arms: pd.DataFrame) -> pd.DataFrame:
    """The tests' rows (:func:`evaluate_ab_tests`) from their arms' totals (:func:`arm_totals`)."""
    tests = snapshot.ab_tests
    impressions = arms.pivot(index="test_id", columns="arm", values="impressions").astype(float)
    purchases = arms.pivot(index="test_id", columns="arm", values="purchases").astype(float).reindex_like(impressions)
    p_best = probability_to_be_best(purchases.to_numpy(), impressions.to_numpy())
    ad_matrix = arms.pivot(index="test_id", columns="arm", values="ad_id").reindex_like(impressions)

    result = tests.rename(columns={"id": "test_id"}).set_index("test_id").loc[impressions.index].reset_index()
    result["compared_since"] = result["test_id"].map(arms.groupby("test_id")["compared_since"].first())
    result["age_hours"] = (snapshot.as_of - result["compared_since"]).dt.total_seconds().to_numpy() / 3600
    result["min_arm_impressions"] = impressions.min(axis=1).to_numpy()
    best_arm = np.nanargmax(p_best, axis=1)
    result["prob_best"] = p_best[np.arange(len(best_arm)), best_arm]
    # Each arm's P(best), in the order of ``ad_ids`` (the arms' order in the pivot).
    result["arm_prob_best"] = [tuple(float(p) for p in row[: len(ads)]) for row, ads in zip(p_best, result["ad_ids"])]
    result["winner_ad_id"] = ad_matrix.to_numpy()[np.arange(len(best_arm)), best_arm]
    result["loser_ad_ids"] = [
        tuple(ad for ad in ads_row if isinstance(ad, str) and ad != winner)
        for ads_row, winner in zip(ad_matrix.to_numpy(), result["winner_ad_id"])
    ]
    running = arms.groupby("test_id")["active"].sum().reindex(impressions.index).to_numpy() >= 2
    result["status"] = np.select(
        [
            ~running,
            result["age_hours"] <= MIN_TEST_AGE_HOURS,
            result["min_arm_impressions"] <= MIN_ARM_IMPRESSIONS,
            result["prob_best"] >= WIN_PROBABILITY,
        ],
        ["finished", "too_young", "insufficient_data", "winner"],
        default="no_clear_winner",
    )
    result["ad_ids"] = result["ad_ids"].apply(tuple)
    return result[COLUMNS]
