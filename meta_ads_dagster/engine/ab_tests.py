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

from .snapshot import AccountSnapshot

MIN_TEST_AGE_HOURS = 48
MIN_ARM_IMPRESSIONS = 1000
WIN_PROBABILITY = 0.95
POSTERIOR_DRAWS = 8000
RANDOM_SEED = 20261122


def probability_to_be_best(purchases: np.ndarray, impressions: np.ndarray, draws: int = POSTERIOR_DRAWS) -> np.ndarray:
    """P(best) per arm for a (tests × arms) matrix; NaN impressions mark absent arms."""
    present = ~np.isnan(impressions)
    successes = np.where(present, purchases, 0.0)
    failures = np.where(present, np.maximum(impressions - purchases, 0.0), 0.0)
    rng = np.random.default_rng(RANDOM_SEED)
    samples = rng.beta(1.0 + successes, 1.0 + failures, size=(draws, *impressions.shape))
    samples[:, ~present] = -np.inf
    # argmax over a short last axis, arm by arm (strictly greater: a tie goes to the first arm,
    # as argmax), then counted per (test, arm): the same figures without (draws × tests × arms) copies.
    tests, arms = impressions.shape
    best = np.zeros((draws, tests), dtype=np.intp)
    top = samples[:, :, 0].copy()
    for arm in range(1, arms):
        beats = samples[:, :, arm] > top
        best[beats] = arm
        np.maximum(top, samples[:, :, arm], out=top)
    counts = np.bincount((best + np.arange(tests) * arms).ravel(), minlength=tests * arms)
    return counts.reshape(tests, arms) / draws


def evaluate_ab_tests(snapshot: AccountSnapshot, entities: pd.DataFrame) -> pd.DataFrame:
    """One row per test: age, per-arm totals since it started, the best arm's P(best) and every
    arm's (``arm_prob_best``, aligned with ``ad_ids``), winner and status."""
    columns = [
        "test_id", "ad_ids", "compared_since", "age_hours", "min_arm_impressions", "winner_ad_id", "loser_ad_ids",
        "prob_best", "arm_prob_best", "status",
    ]
    tests = snapshot.ab_tests
    if tests.empty:
        return pd.DataFrame(columns=columns)

    arms = tests.explode("ad_ids").rename(columns={"id": "test_id", "ad_ids": "ad_id"})
    arms["arm"] = arms.groupby("test_id").cumcount()
    # The arms are compared over the same days: from when the last of them started running (an ad
    # added to a test after it began starts the test's clock again).
    created = entities[entities["entity_type"] == "ad"].set_index("entity_id")["created_time"]
    arm_start = np.maximum(arms["started_at"], arms["ad_id"].map(created).fillna(arms["started_at"]))
    arms["compared_since"] = arm_start.groupby(arms["test_id"]).transform("max")
    ins = snapshot.insights
    # Insights are daily: the first day counted is the first one every arm ran from its start.
    started = arms["compared_since"].dt.tz_convert(None).dt.ceil("D")
    rows = arms[["test_id", "ad_id", "arm"]].assign(started=started.to_numpy()).merge(ins, on="ad_id", how="left")
    rows = rows[rows["date"] >= rows["started"]]
    totals = rows.groupby(["test_id", "ad_id"])[["impressions", "purchases"]].sum()
    arms = arms.merge(totals, left_on=["test_id", "ad_id"], right_index=True, how="left").fillna(
        {"impressions": 0.0, "purchases": 0.0}
    )
    ads = entities[entities["entity_type"] == "ad"].set_index("entity_id")["status"]
    arms["active"] = arms["ad_id"].map(ads).eq("ACTIVE")

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
    return result[columns]
