"""The cycle's IO manager (meta_ads_dagster/io_manager.py): frames through Parquet unchanged, the
insights stored once per run, everything else pickled as Dagster does."""

from __future__ import annotations

import pandas as pd
import pytest
from dagster import DagsterInstance, StaticPartitionsDefinition, build_init_resource_context, materialize
from upath import UPath

from meta_ads_dagster.assets import collection
from meta_ads_dagster.engine.cycle import analyze, plan_cycle
from meta_ads_dagster.engine.snapshot import load_snapshot_text
from meta_ads_dagster.jobs import per_account
from meta_ads_dagster.meta.stub import StubMetaAdsClient
from meta_ads_dagster.io_manager import PARQUET_MAGIC, ParquetFilesystemIOManager, read_frame, write_frame
from meta_ads_dagster.settings import load_settings

from ..repo_files import SEED_SNAPSHOT_PATH

ACCOUNT = "act_1001"


@pytest.fixture(scope="module")
def snapshot():
    return load_snapshot_text(SEED_SNAPSHOT_PATH.read_text())


def round_trip(frame: pd.DataFrame, tmp_path) -> pd.DataFrame:
    path = UPath(tmp_path / "frame")
    assert write_frame(frame, path)
    assert path.read_bytes()[:4] == PARQUET_MAGIC
    with path.open("rb") as file:
        return read_frame(file)


def test_the_cycles_frames_come_back_from_parquet_unchanged(snapshot, tmp_path):
    actions, _ = plan_cycle(snapshot, load_settings(meta_auto_mode="auto"))
    frames = {**analyze(snapshot), "actions": actions, "insights": snapshot.insights, "campaigns": snapshot.campaigns,
              "adsets": snapshot.adsets, "ads": snapshot.ads}
    assert actions["reasons"].map(len).sum() > 0 and frames["roas_metrics"]["countries"].map(len).sum() > 0
    for name, frame in frames.items():
        back = round_trip(frame, tmp_path)
        pd.testing.assert_frame_equal(back, frame, check_exact=True, obj=name)
        for column in frame.columns[frame.dtypes == object]:
            assert [type(v) for v in back[column]] == [type(v) for v in frame[column]], (name, column)



def test_string_columns_come_back_as_python_strings_none_and_nan(tmp_path):
    """Repeated strings, None and NaN in one object column (read back through the distinct strings)."""
    index = [5, 4, 3, 2, 1, 0]
    frame = pd.DataFrame({"id": pd.Series(["7", "8", "7", None, float("nan"), "7"], dtype=object, index=index), "n": range(6)})
    back = round_trip(frame, tmp_path)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert [type(v) for v in back["id"]] == [str, str, str, type(None), float, str]

def test_a_frame_parquet_cannot_hold_is_left_to_pickle(tmp_path):
    path = UPath(tmp_path / "frame")
    assert not write_frame(pd.DataFrame({"details": [{"a": 1}, {"b": "x"}]}), path)
    assert not path.exists()


def test_a_collection_stores_the_insights_once_and_loads_them_back(tmp_path):
    """The snapshot, the insights and the metrics materialized with the IO manager (separate
    steps): the rows are written once, as Parquet beside the snapshot's pickle; the ``insights``
    asset writes nothing of its own; the downstream steps get the snapshot's rows."""
    stored = tmp_path / "storage"
    accounts = StaticPartitionsDefinition([ACCOUNT])
    assets = per_account([collection.account_snapshot, collection.insights, collection.roas_metrics], accounts)
    resources = {
        "meta_client": StubMetaAdsClient(state_dir=str(tmp_path / "stub"), account_id=ACCOUNT),
        "settings": load_settings(),
        "io_manager": ParquetFilesystemIOManager(base_dir=str(stored)),
    }
    with DagsterInstance.ephemeral() as instance:
        result = materialize(assets, resources=resources, partition_key=ACCOUNT, instance=instance)
    assert result.success
    files = sorted(str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file() and ACCOUNT in p.name)
    assert files == [f"account_snapshot/{ACCOUNT}", f"account_snapshot/{ACCOUNT}.insights.parquet", f"roas_metrics/{ACCOUNT}"]
    assert (stored / "roas_metrics" / ACCOUNT).read_bytes()[:4] == PARQUET_MAGIC

    manager = ParquetFilesystemIOManager(base_dir=str(stored)).create_io_manager(build_init_resource_context(instance=DagsterInstance.ephemeral()))
    with (stored / "account_snapshot" / f"{ACCOUNT}.insights.parquet").open("rb") as file:
        rows = read_frame(file)
    snapshot = manager.load_from_path(None, UPath(stored / "account_snapshot" / ACCOUNT))
    pd.testing.assert_frame_equal(snapshot.insights, rows)
    assert len(rows) > 0
    pd.testing.assert_frame_equal(result.output_for_node("roas_metrics"), analyze(snapshot)["roas_metrics"])


def test_a_value_stored_in_this_process_is_handed_on_each_step_its_own(tmp_path):
    """What a step stored is handed to the next ones without reading it back: equal to what the
    files hold, each step's copy its own (a change to one, even to a list cell, is not seen by the
    next step); once the files are not the ones this manager wrote, they are read."""
    import dataclasses

    from meta_ads_dagster.engine.snapshot import parse_snapshot
    from meta_ads_dagster.meta.demo import demo_snapshot

    from ..engine.test_columnar import assert_same_snapshot

    snapshot = parse_snapshot(demo_snapshot(ACCOUNT))  # with an A/B test: a column of lists

    def manager():
        return ParquetFilesystemIOManager(base_dir=str(tmp_path)).create_io_manager(build_init_resource_context(instance=DagsterInstance.ephemeral()))

    writer, reader = manager(), manager()  # the reader: another process
    path = UPath(tmp_path / "account_snapshot" / ACCOUNT)
    path.parent.mkdir(parents=True)
    writer.dump_to_path(None, snapshot, path)
    first = writer.load_from_path(None, path)
    assert first is not snapshot and first.insights is not snapshot.insights
    assert_same_snapshot(first, snapshot)
    assert_same_snapshot(first, reader.load_from_path(None, path))  # what the files hold
    first.insights.loc[:, "spend"] = -1.0
    first.ab_tests["ad_ids"].iloc[0].append("999")
    assert_same_snapshot(writer.load_from_path(None, path), snapshot)

    frame = UPath(tmp_path / "roas_metrics" / ACCOUNT)
    frame.parent.mkdir(parents=True)
    metrics = analyze(snapshot)["roas_metrics"]
    writer.dump_to_path(None, metrics, frame)
    pd.testing.assert_frame_equal(writer.load_from_path(None, frame), reader.load_from_path(None, frame), check_exact=True)

    changed = dataclasses.replace(snapshot, insights=snapshot.insights.iloc[:5].reset_index(drop=True))
    reader.dump_to_path(None, changed, path)  # another process stored the snapshot since
    assert_same_snapshot(writer.load_from_path(None, path), changed)
