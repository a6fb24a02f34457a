"""``meta-ads simulate``: the policies on the simulated market, compared through the CLI; the same
seed gives the same numbers; the engine breaks no guard rail; the independent checker is not blind."""

from __future__ import annotations

import ast
import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import meta_ads_dagster
from meta_ads_dagster.audit.guard_rails import CHANGE_LIMIT, EMBARGO, GuardRailChecker, Operation
from meta_ads_dagster.cli import main
from meta_ads_dagster.market import Market
from meta_ads_dagster.settings import load_settings
from meta_ads_dagster.meta.market import MarketMetaAdsClient
from meta_ads_dagster.simulate.policies import plain_rule_writes
from meta_ads_dagster.simulate.report import CHART_FILE, TABLE_FILE
from meta_ads_dagster.simulate.run import run_policy, simulation_settings

from ..conftest import SETTINGS_VARIABLES

CAMPAIGNS, DAYS, SEED = 6, 1, 7
PACKAGE = Path(meta_ads_dagster.__file__).parent


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> tuple[dict, str, Path]:
    """``simulate --compare`` on a small market, through the CLI: its JSON, its output, its folder."""
    out = tmp_path_factory.mktemp("simulation") / "results"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        for name in SETTINGS_VARIABLES:  # the project's defaults (conftest's clean environment is per test)
            patch.delenv(name, raising=False)
        code = main(["simulate", "--campaigns", str(CAMPAIGNS), "--days", str(DAYS), "--seed", str(SEED), "--compare", "--out", str(out)])
    assert code == 0
    return json.loads((out / TABLE_FILE).read_text()), printed.getvalue(), out


def test_compare_prints_the_table_and_writes_the_chart_and_the_json(compared):
    document, printed, out = compared
    assert [row["policy"] for row in document["policies"]] == ["engine", "plain_rules", "do_nothing"]
    assert (out / CHART_FILE).read_bytes().startswith(b"\x89PNG")
    assert f"chart: {out / CHART_FILE}" in printed and f"table: {out / TABLE_FILE}" in printed
    for row in document["policies"]:
        assert row["profit"] == pytest.approx(row["revenue"] - row["spend"], abs=0.02)
        assert len(row["daily"]) == DAYS and row["daily"][-1]["cumulative_profit"] == pytest.approx(row["profit"], abs=0.05)
        assert row["policy"] in printed
    engine, plain, nothing = document["policies"]
    assert engine["vs_do_nothing"] == pytest.approx(100 * (engine["profit"] - nothing["profit"]) / abs(nothing["profit"]), abs=0.05)
    assert nothing["vs_do_nothing"] is None and plain["vs_plain_rules"] is None
    rails = document["setup"]["guard_rails"]
    assert rails["max_daily_spend_usd"] == pytest.approx(1.3 * rails["starting_daily_budget_usd"], abs=0.01)


def test_the_engine_acts_and_breaks_no_guard_rail(compared):
    engine = compared[0]["policies"][0]
    assert engine["decisions"] == DAYS * 48 and sum(engine["actions"].values()) > 0
    assert engine["breaches"] == 0 and engine["duty_breaches"] == 0, engine["breaches_by_rail"]


def test_plain_rules_breach_the_daily_change_limit(compared):
    """The checker is not blind on a whole run: +30 % is past MAX_DAILY_CHANGE_PCT (20 %)."""
    plain = compared[0]["policies"][1]
    assert plain["actions"].get("scale_up", 0) + plain["actions"].get("scale_down", 0) > 0
    assert plain["breaches_by_rail"].get(CHANGE_LIMIT, 0) > 0


def test_do_nothing_makes_no_writes(compared):
    nothing = compared[0]["policies"][2]
    assert nothing["actions"] == {} and nothing["decisions"] == 0 and nothing["learning_resets"] == 0
    assert nothing["spend"] > 0


def test_the_same_seed_gives_the_same_numbers(compared):
    again = run_policy("engine", CAMPAIGNS, DAYS, SEED).as_dict()
    again.pop("guard_rails")
    assert again == {key: value for key, value in compared[0]["policies"][0].items() if key in again}


def test_the_checker_finds_planted_breaches():
    """A +80 % raise (the limit is 20 % a day) and a write to an entity inside its 48 h embargo,
    sent to the market as any policy's writes are, are each counted on their rail."""
    market = Market(campaigns=3, seed=SEED)
    settings = simulation_settings(market, "suggest")
    client = MarketMetaAdsClient.over(market)
    document = market.snapshot()
    checker = GuardRailChecker(settings, document)
    holder = next(row for row in document["campaigns"] + document["adsets"] if row["daily_budget"])
    kind = "campaign" if holder in document["campaigns"] else "adset"
    client.update_budget(kind, holder["id"], int(int(holder["daily_budget"]) * 1.8))
    rows = [{"entity_type": kind, "entity_id": holder["id"], "type": "scale_up", "rule": "roas_high", "actor": "autonomous", "status": "done"}]
    breaches = checker.check(Operation("cycle", "planted-raise", document, client.writes, rows))
    assert [b.rail for b in breaches if b.rail == CHANGE_LIMIT] == [CHANGE_LIMIT], breaches

    market.advance(24 * 60 + 30)  # past the cooldown: the next write breaks the embargo only
    document = market.snapshot()
    young = next(row for row in document["ads"] if row["status"] == "ACTIVE")
    young["created_time"] = (market.now - pd.Timedelta(hours=1)).isoformat()  # as the document reports it: an hour old
    before = len(client.writes)
    client.create_new_ad_variant(young["id"])
    rows = [{"entity_type": "ad", "entity_id": young["id"], "type": "create_variant", "rule": "creative_fatigue", "actor": "autonomous", "status": "done"}]
    breaches = checker.check(Operation("cycle", "planted-embargo", document, client.writes[before:], rows))
    assert [b.rail for b in breaches] == [EMBARGO], breaches


def metrics(*rows: dict) -> pd.DataFrame:
    """A hand-made ``roas_metrics`` frame: the columns the plain rules read."""
    defaults = {"effective_active": True, "spend_7d": 500.0, "is_budget_holder": False, "daily_budget": None, "adset_id": None}
    return pd.DataFrame([defaults | row for row in rows])


def test_plain_rules_apply_the_seeds_table():
    settings = load_settings()
    frame = metrics(
        # CBO campaign with ROAS 4: +30 %
        {"entity_type": "campaign", "entity_id": "1", "campaign_id": "1", "roas_7d": 4.0, "is_budget_holder": True, "daily_budget": 10_000},
        # ad-set budgets: ROAS 1.2 → −30 %; ROAS 2 → held; ROAS 0.5 on enough spend → paused, and its ad with it
        {"entity_type": "campaign", "entity_id": "2", "campaign_id": "2", "roas_7d": 1.4},
        {"entity_type": "adset", "entity_id": "21", "campaign_id": "2", "adset_id": "21", "roas_7d": 1.2, "is_budget_holder": True, "daily_budget": 5_000},
        {"entity_type": "adset", "entity_id": "22", "campaign_id": "2", "adset_id": "22", "roas_7d": 2.0, "is_budget_holder": True, "daily_budget": 5_000},
        {"entity_type": "adset", "entity_id": "23", "campaign_id": "2", "adset_id": "23", "roas_7d": 0.5, "is_budget_holder": True, "daily_budget": 5_000},
        {"entity_type": "ad", "entity_id": "231", "campaign_id": "2", "adset_id": "23", "roas_7d": 0.4},
        # ROAS 0.5 on too little spend: no hard stop; a paused entity and one without spend: nothing
        {"entity_type": "ad", "entity_id": "211", "campaign_id": "2", "adset_id": "21", "roas_7d": 0.5, "spend_7d": 50.0},
        {"entity_type": "adset", "entity_id": "24", "campaign_id": "2", "adset_id": "24", "roas_7d": 5.0, "is_budget_holder": True,
         "daily_budget": 5_000, "effective_active": False},
        {"entity_type": "adset", "entity_id": "25", "campaign_id": "2", "adset_id": "25", "roas_7d": float("nan"), "is_budget_holder": True,
         "daily_budget": 5_000, "spend_7d": 0.0},
        # a cut never goes below one currency unit
        {"entity_type": "campaign", "entity_id": "3", "campaign_id": "3", "roas_7d": 1.0, "is_budget_holder": True, "daily_budget": 120},
    )
    writes = plain_rule_writes(frame, 100, settings)
    got = {(w.entity_id, w.type, w.rule, None if pd.isna(w.new_budget_minor) else int(w.new_budget_minor)) for w in writes.itertuples()}
    assert got == {
        ("1", "scale_up", "roas_high", 13_000),
        ("21", "scale_down", "roas_low", 3_500),
        ("23", "pause", "hard_stop", None),
        ("3", "scale_down", "roas_low", 100),
    }


def test_the_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("")
    assert main(["simulate", "--out", str(a_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"meta-ads: --out {a_file}: cannot create it") and "\n" not in err
    for flag, value in (("--days", "0"), ("--campaigns", "lots"), ("--seed", "-1")):
        with pytest.raises(SystemExit) as exit_:
            main(["simulate", flag, value])
        assert exit_.value.code == 2
        assert f"argument {flag}" in capsys.readouterr().err


def imports(folder: Path) -> set[str]:
    """Every module the package's files in ``folder`` import, as absolute names."""
    names = set()
    for path in folder.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = module.split(".")[: len(module.split(".")) - node.level] if node.level else []
                names.add(".".join([*base, node.module or ""]).strip("."))
    return names


def test_arrows_point_downward():
    """The engine, the cycle, the store and the clients never import the simulation; only the
    clients (stub mode's living demo, meta/market.py) use the market, which imports nothing of the
    project; the independent checker imports nothing of the engine."""
    for layer in ("engine", "cycle", "store", "meta", "audit"):
        below = ("meta_ads_dagster.simulate",) if layer == "meta" else ("meta_ads_dagster.simulate", "meta_ads_dagster.market")
        found = {name for name in imports(PACKAGE / layer) if name.startswith(below)}
        assert not found, (layer, found)
    assert not {name for name in imports(PACKAGE / "audit") if name.startswith("meta_ads_dagster.")}
