"""Profile of the engine's decisions on the simulated market: which rules earn money, which lose it.

    .venv/bin/python benchmarks/decision_profile.py [--campaigns 80] [--days 6] [--seeds 1 2 3]

For every seed the engine runs over ``Market(campaigns, seed)`` as ``meta-ads simulate`` runs it
(the real cycle every 30 simulated minutes, suggest mode, every queued action approved), and the
do-nothing policy runs over the same seed's market: the same seed draws the same account, so a
campaign's do-nothing truth is what it would have earned untouched. The two markets' random
streams part once the engine adds ads (variants), so a single campaign's difference is noisy;
the table sums many campaigns.

Each campaign the engine acted on is put under the rule of its first executed action (what it did
first decides most of what follows), and its true profit over the run is compared with its
do-nothing profit. Untouched campaigns are the noise floor; campaigns launched during the run
have no counterpart (their ids differ between the runs) and are listed apart. For budget actions
the table also says how often the 7-day ROAS the engine judged on (``roas_7d``) was on the wrong
side of the rule's threshold by the truth of the same 7 days: a cut on a campaign truly at
ROAS ≥ 1.5, a raise on one truly at ROAS ≤ 3.0 (the campaign's truth, also for an ad set's
budget). The market reports a day's purchases over several days, so the window's most recent days
are short of purchases.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meta_ads_dagster.engine.metrics import entity_table, roas_metrics  # noqa: E402
from meta_ads_dagster.engine.snapshot import parse_snapshot  # noqa: E402
from meta_ads_dagster.market import Market  # noqa: E402
from meta_ads_dagster.meta.market import MarketMetaAdsClient  # noqa: E402
from meta_ads_dagster.simulate.policies import Engine  # noqa: E402
from meta_ads_dagster.simulate.run import DECISION_MINUTES, TICKS_PER_DAY, simulation_settings  # noqa: E402

RULE_THRESHOLDS = {"roas_low": ("cut", 1.5), "roas_high": ("raise", 3.0)}


def campaign_of(document: dict) -> dict[tuple[str, str], str]:
    """(entity_type, entity_id) → campaign id, for every entity in a snapshot document."""
    owners = {("campaign", c["id"]): c["id"] for c in document["campaigns"]}
    owners |= {("adset", s["id"]): s["campaign_id"] for s in document["adsets"]}
    owners |= {("ad", a["id"]): a["campaign_id"] for a in document["ads"]}
    return owners


def true_window_roas(market: Market) -> pd.Series:
    """Per campaign: the true (eventual) ROAS of the 7 full days before today, the engine's window."""
    truth = market.truth_daily(by_campaign=True, include_warmup=True)
    today = market.now.tz_convert(market.params.timezone_name).date()
    first = (today - pd.Timedelta(days=7)).isoformat()
    window = truth[(truth["date"] >= first) & (truth["date"] < today.isoformat())].groupby("campaign_id")[["spend", "revenue"]].sum()
    return window["revenue"] / window["spend"].where(window["spend"] > 0)


def run_engine(campaigns: int, days: int, seed: int) -> tuple[Market, pd.DataFrame, set[str]]:
    """The engine's run, its executed actions (rule, type, campaign, reported and true ROAS) and
    the ids of the campaigns the account started with."""
    market = Market(campaigns=campaigns, seed=seed)
    initial_campaign_ids = {c["id"] for c in market.snapshot()["campaigns"]}
    client = MarketMetaAdsClient.over(market)
    settings = simulation_settings(market, "suggest")
    executed = []
    with tempfile.TemporaryDirectory(prefix="decision-profile-") as folder:
        engine = Engine(settings, client, Path(folder))
        try:
            true_roas, true_roas_day = None, None
            for tick in range(days * TICKS_PER_DAY):
                document = market.snapshot()
                done = [row for row in engine.decide(f"profile-{tick:05d}", document).rows if row["status"] == "done"]
                if not done:
                    market.advance(minutes=DECISION_MINUTES)
                    continue
                if true_roas_day != tick // TICKS_PER_DAY:
                    true_roas, true_roas_day = true_window_roas(market), tick // TICKS_PER_DAY
                owners = campaign_of(document)
                # An approved action executes a cycle or two after it was proposed: the ROAS read
                # here is the one its re-validation read.
                snapshot = parse_snapshot(document)
                reported_roas = roas_metrics(snapshot, entity_table(snapshot)).set_index(["entity_type", "entity_id"])["roas_7d"]
                for row in done:
                    key = (row["entity_type"], row["entity_id"])
                    campaign = owners.get(key)
                    executed.append({
                        "tick": tick, "campaign_id": campaign, "rule": row["rule"], "type": row["type"],
                        "reported_roas": reported_roas.get(key, float("nan")), "true_roas": true_roas.get(campaign, float("nan")),
                    })
                market.advance(minutes=DECISION_MINUTES)
        finally:
            engine.close()
    return market, pd.DataFrame(executed, columns=["tick", "campaign_id", "rule", "type", "reported_roas", "true_roas"]), initial_campaign_ids


def run_do_nothing(campaigns: int, days: int, seed: int) -> Market:
    market = Market(campaigns=campaigns, seed=seed)
    for _ in range(days * TICKS_PER_DAY):
        market.advance(minutes=DECISION_MINUTES)
    return market


def campaign_profit(market: Market) -> pd.Series:
    """True profit per campaign over the simulated full days (today, just entered, left out)."""
    truth = market.truth_daily(by_campaign=True)
    today = market.now.tz_convert(market.params.timezone_name).date().isoformat()
    truth = truth[truth["date"] < today]
    return (truth["revenue"] - truth["spend"]).groupby(truth["campaign_id"]).sum()


def profile(campaigns: int, days: int, seeds: list[int]) -> pd.DataFrame:
    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for seed in seeds:
        engine_market, executed, matched = run_engine(campaigns, days, seed)
        engine_profit = campaign_profit(engine_market)
        untouched_profit = campaign_profit(run_do_nothing(campaigns, days, seed))
        delta = engine_profit.sub(untouched_profit, fill_value=0.0)
        # A campaign launched during the run gets its id from a counter the engine's variants also
        # draw from, so the two runs' newcomers have different ids: they have no counterpart. (The
        # account at the start is the same in both; one paused at once has no spend in the run.)
        first_rule = executed.sort_values("tick").drop_duplicates("campaign_id").set_index("campaign_id")["rule"]
        for campaign, change in delta.items():
            group = groups[first_rule.get(campaign, "(untouched)") if campaign in matched else "(launched in the run)"]
            group["campaigns"] += 1
            group["profit_vs_do_nothing"] += change
        for rule, rows in executed.groupby("rule"):
            groups[rule]["actions"] += len(rows)
            if rule in RULE_THRESHOLDS:
                side, threshold = RULE_THRESHOLDS[rule]
                wrong = rows["true_roas"] >= threshold if side == "cut" else rows["true_roas"] <= threshold
                groups[rule]["wrong_side_of_threshold"] += int(wrong.sum())
                groups[rule]["reported_roas_sum"] += rows["reported_roas"].sum()
                groups[rule]["true_roas_sum"] += rows["true_roas"].sum()
        total = delta.sum()
        print(f"seed {seed}: engine − do-nothing profit {total:,.0f} over {len(delta)} campaigns", flush=True)
    table = pd.DataFrame(groups).T.fillna(0.0)
    table["profit_per_campaign"] = table["profit_vs_do_nothing"] / table["campaigns"].where(table["campaigns"] > 0)
    for column in ("reported_roas", "true_roas"):
        table[f"mean_{column}"] = table.get(f"{column}_sum", 0.0) / table["actions"].where(table.index.isin(list(RULE_THRESHOLDS)))
    columns = ["campaigns", "actions", "profit_vs_do_nothing", "profit_per_campaign", "wrong_side_of_threshold",
               "mean_reported_roas", "mean_true_roas"]
    return table.reindex(columns=columns).sort_values("profit_vs_do_nothing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=80)
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    table = profile(args.campaigns, args.days, args.seeds)
    with pd.option_context("display.width", 200, "display.float_format", "{:,.2f}".format):
        print(f"\n{args.campaigns} campaigns, {args.days} days, seeds {args.seeds}: by the rule of each campaign's first action")
        print(table.to_string())


if __name__ == "__main__":
    main()
