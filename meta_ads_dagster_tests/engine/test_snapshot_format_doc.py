"""docs/snapshot-format.md against the parser, and the snapshots in examples/ against both.

The document's ``<!-- fields: NAME -->`` tables must list exactly the fields the parser's models
read, with the same required/optional split; the plan-output tables are checked in
test_seed_examples.py.
"""

from __future__ import annotations

import json

import pytest

from meta_ads_dagster.cli import main
from meta_ads_dagster.engine import snapshot as engine_snapshot
from meta_ads_dagster.engine.cycle import plan_document
from meta_ads_dagster.engine.snapshot import load_snapshot_text
from meta_ads_dagster.meta.demo import demo_snapshot
from meta_ads_dagster.settings import load_settings

from ..repo_files import DEMO_SNAPSHOT_PATH, SEED_SNAPSHOT_PATH, SNAPSHOT_FORMAT_DOC, VERDICTS, documented_tables

MODELS = {
    "snapshot": engine_snapshot.SnapshotDocument,
    "account": engine_snapshot.Account,
    "campaign": engine_snapshot.Campaign,
    "adset": engine_snapshot.AdSet,
    "learning_stage_info": engine_snapshot.LearningStageInfo,
    "ad": engine_snapshot.Ad,
    "creative": engine_snapshot.Creative,
    "ab_test": engine_snapshot.ABTest,
    "recent_action": engine_snapshot.RecentAction,
}


@pytest.fixture(scope="module")
def tables() -> dict[str, list[dict[str, str]]]:
    return documented_tables()


def _split(rows: list[dict[str, str]]) -> tuple[list[str], set[str]]:
    assert all(row["required"] in ("yes", "no") for row in rows), rows
    return [row["name"] for row in rows], {row["name"] for row in rows if row["required"] == "yes"}


@pytest.mark.parametrize("table", sorted(MODELS))
def test_documented_object_fields_are_the_models_fields(tables, table):
    names, required = _split(tables[table])
    model = MODELS[table]
    assert len(names) == len(set(names)), f"{SNAPSHOT_FORMAT_DOC.name}: fields: {table} lists a field twice"
    assert set(names) == set(model.model_fields), f"{SNAPSHOT_FORMAT_DOC.name}: fields: {table}"
    assert required == {name for name, field in model.model_fields.items() if field.is_required()}


def test_documented_insight_fields_are_those_the_parser_reads(tables):
    names, required = _split(tables["insight"])
    assert required == set(engine_snapshot.INSIGHT_REQUIRED)
    assert set(names) == set(engine_snapshot.INSIGHT_REQUIRED) | {"actions", "action_values"}


def test_documented_statuses_are_the_parsers(tables):
    assert [row["name"] for row in tables["status"]] == list(engine_snapshot.STATUSES)


def test_demo_example_is_the_stubs_demo_account():
    # Regenerate with the command in examples/README.md when demo.py changes.
    assert json.loads(DEMO_SNAPSHOT_PATH.read_text()) == demo_snapshot("act_1001")


@pytest.mark.parametrize("path", [SEED_SNAPSHOT_PATH, DEMO_SNAPSHOT_PATH], ids=lambda p: p.name)
@pytest.mark.parametrize("mode", ["suggest", "auto"])
def test_examples_plan_cleanly(path, mode, capsys):
    assert main(["plan", "--snapshot", str(path), "--mode", mode, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == plan_document(load_snapshot_text(path.read_text()), load_settings(meta_auto_mode=mode))
    assert printed["actions"] and {a["verdict"] for a in printed["actions"]} <= VERDICTS


def test_demo_example_shows_every_campaign_of_the_demo():
    document = json.loads(DEMO_SNAPSHOT_PATH.read_text())
    plan = plan_document(load_snapshot_text(DEMO_SNAPSHOT_PATH.read_text()), load_settings())
    # Every campaign but "New launch", still inside its 48 h embargo: it cannot act, so it takes no slot.
    assert len(document["campaigns"]) == 8 and plan["stats"]["campaigns_evaluated"] == 7
    assert {"executed", "queued", "policy_blocked"} <= {a["verdict"] for a in plan["actions"]}
