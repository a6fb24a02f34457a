"""``meta-ads import-csv``: an Ads Manager export (the synthetic one in data/) becomes a snapshot the
engine accepts, whose numbers are the file's; every bad file is one line naming the row and column,
and then nothing is written."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meta_ads_dagster.cli import main
from meta_ads_dagster.engine.snapshot import load_snapshot_text
from meta_ads_dagster.importing import import_csv

from ..repo_files import ADS_MANAGER_CSV, KAG_CSV

EXPORT_TEXT = ADS_MANAGER_CSV.read_text(encoding="utf-8")
EXPORT_CELLS = pd.read_csv(ADS_MANAGER_CSV, dtype=str, keep_default_na=False)  # as text, blanks kept
OLD_SNAPSHOT = '{"old": "snapshot"}\n'


def with_cells(*changes: tuple[int, str, str], cells: pd.DataFrame = EXPORT_CELLS) -> str:
    """The export with each (row, column, value) change: the cell of record ``row - 1`` replaced,
    which is on file line ``row`` while no cell before it holds a line break."""
    cells = cells.copy()
    for row, column, value in changes:
        cells.loc[row - 2, column] = value
    return cells.to_csv(index=False)


def run_import(capsys, *argv) -> tuple[int, str, str]:
    code = main(["import-csv", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def imported(capsys, tmp_path: Path, text: str = EXPORT_TEXT, *options) -> dict:
    source, out = tmp_path / "export.csv", tmp_path / "snapshot.json"
    source.write_text(text, encoding="utf-8")
    code, stdout, err = run_import(capsys, source, "--out", out, *options)
    assert (code, err) == (0, ""), err
    assert stdout.splitlines()[-1] == f"wrote {out}"
    load_snapshot_text(out.read_bytes())  # what plan and the stub will read
    return json.loads(out.read_text(encoding="utf-8"))


def export_frame(text: str = EXPORT_TEXT) -> pd.DataFrame:
    """The export as an analyst reads it: blank cells are zero."""
    frame = pd.read_csv(StringIO(text))
    return frame.fillna({"Link clicks": 0, "Purchases": 0, "Purchases conversion value": 0})


def insights_by_campaign(document: dict) -> pd.DataFrame:
    names = {c["id"]: c["name"] for c in document["campaigns"]}
    rows = pd.DataFrame(document["insights"])
    return pd.DataFrame({
        "campaign": rows["campaign_id"].map(names),
        "spend": rows["spend"].astype(float),
        "impressions": rows["impressions"].astype(int),
        "clicks": rows["clicks"].astype(int),
        "purchases": [int(a[0]["value"]) for a in rows["actions"]],
        "revenue": [float(a[0]["value"]) for a in rows["action_values"]],
    }).groupby("campaign").sum()


def test_an_export_becomes_a_snapshot_whose_numbers_are_the_files(capsys, tmp_path):
    document = imported(capsys, tmp_path)
    export = export_frame()
    expected = export.groupby("Campaign name")[
        ["Amount spent (EUR)", "Impressions", "Link clicks", "Purchases", "Purchases conversion value"]
    ].sum()
    expected.columns = ["spend", "impressions", "clicks", "purchases", "revenue"]
    pd.testing.assert_frame_equal(insights_by_campaign(document), expected, check_names=False, check_dtype=False)

    assert document["account"]["currency"] == "EUR" and document["account"]["timezone_name"] == "UTC"
    assert document["as_of"] == "2026-11-09T10:00:00+00:00"  # 10:00 UTC the day after the last day
    assert (len(document["campaigns"]), len(document["adsets"]), len(document["ads"]), len(document["insights"])) == (2, 3, 4, 48)
    # "Video A" runs in two ad sets: two ads, two ids.
    assert sorted(a["name"] for a in document["ads"]) == ["Carousel B", "Static C", "Video A", "Video A"]
    assert len({a["id"] for a in document["ads"]}) == 4
    # Ad sets target the countries they spent in (the geo rules read it).
    assert {a["name"]: a["targeting"]["geo_locations"]["countries"] for a in document["adsets"]} == {
        "Lookalike 1%": ["ES", "PT"], "Retargeting 30d": ["ES"], "Broad": ["PT"],
    }


def test_ids_are_derived_from_the_names_as_documented(capsys, tmp_path):
    def derived(*names: str) -> str:
        return str(int(hashlib.sha256("\x1f".join(names).encode()).hexdigest(), 16) % 10**15).zfill(15)

    document = imported(capsys, tmp_path)
    campaign = next(c for c in document["campaigns"] if c["name"] == "Winter Sale - ES")
    adset = next(a for a in document["adsets"] if a["name"] == "Retargeting 30d")
    ad = next(a for a in document["ads"] if a["adset_id"] == adset["id"])
    assert campaign["id"] == "1" + derived("Winter Sale - ES")
    assert adset["id"] == "2" + derived("Winter Sale - ES", "Retargeting 30d")
    assert ad["id"] == "3" + derived("Winter Sale - ES", "Retargeting 30d", "Video A")
    assert ad["creative"]["id"] == "9" + ad["id"]
    assert imported(capsys, tmp_path) == document  # the same file, the same snapshot


@pytest.mark.parametrize("currency, minor_per_unit", [("EUR", 100), ("USD", 100), ("JPY", 1), ("KRW", 1)])
def test_the_currency_comes_from_the_header_and_budgets_are_its_whole_units(capsys, tmp_path, currency, minor_per_unit):
    text = EXPORT_TEXT.replace("Amount spent (EUR)", f"Amount spent ({currency})")
    document = imported(capsys, tmp_path, text)
    assert document["account"]["currency"] == currency

    export = export_frame(text)
    days = pd.to_datetime(export["Day"])
    last_week = export[days > days.max() - pd.Timedelta(days=7)]
    mean_daily_spend = last_week.groupby("Campaign name")[f"Amount spent ({currency})"].sum() / 7
    budgets = {c["name"]: int(c["daily_budget"]) for c in document["campaigns"]}
    assert budgets == {name: math.ceil(spend) * minor_per_unit for name, spend in mean_daily_spend.items()}
    assert all(a["daily_budget"] is None for a in document["adsets"])  # campaign budgets (CBO)


def test_a_file_of_fewer_than_7_days_budgets_the_mean_over_its_days(capsys, tmp_path):
    three_days = EXPORT_CELLS[EXPORT_CELLS["Day"] >= "2026-11-06"]
    document = imported(capsys, tmp_path, three_days.to_csv(index=False))
    spend = three_days.astype({"Amount spent (EUR)": float}).groupby("Campaign name")["Amount spent (EUR)"].sum()
    assert {c["name"]: int(c["daily_budget"]) for c in document["campaigns"]} == {
        name: math.ceil(total / 3) * 100 for name, total in spend.items()
    }


def test_each_entity_is_created_the_day_before_its_first_row(capsys, tmp_path):
    frame = EXPORT_CELLS
    late_ad = frame[(frame["Ad name"] != "Carousel B") | (frame["Day"] >= "2026-11-05")]
    document = imported(capsys, tmp_path, late_ad.to_csv(index=False))
    created = {a["name"]: a["created_time"] for a in document["ads"]}
    assert created["Carousel B"] == "2026-11-04T00:00:00+00:00"
    assert created["Static C"] == "2026-10-31T00:00:00+00:00"


def test_an_export_without_countries_takes_the_country_given(capsys, tmp_path):
    frame = EXPORT_CELLS[EXPORT_CELLS["Country"] == "ES"].drop(columns="Country")
    text = frame.to_csv(index=False)
    assert {row["country"] for row in imported(capsys, tmp_path, text)["insights"]} == {"ES"}  # the default
    document = imported(capsys, tmp_path, text, "--country", "PT")
    assert {row["country"] for row in document["insights"]} == {"PT"}
    assert all(a["targeting"]["geo_locations"]["countries"] == ["PT"] for a in document["adsets"])


def test_as_of_and_account_can_be_given(capsys, tmp_path):
    document = imported(capsys, tmp_path, EXPORT_TEXT, "--as-of", "2026-11-08T18:30:00+01:00", "--account", "4242")
    assert document["as_of"] == "2026-11-08T18:30:00+01:00" and document["account"]["id"] == "act_4242"


def test_the_account_time_zone_names_the_file_s_days(capsys, tmp_path):
    document = imported(capsys, tmp_path, EXPORT_TEXT, "--timezone", "America/Los_Angeles")
    assert document["account"]["timezone_name"] == "America/Los_Angeles"
    assert document["as_of"] == "2026-11-09T10:00:00-08:00"  # 10:00 on the account's clock the day after the last day
    code, _, err = run_import(capsys, ADS_MANAGER_CSV, "--out", tmp_path / "s.json", "--timezone", "Asia/Tokyo",
                              "--as-of", "2026-11-07T20:00:00+00:00")  # 05:00 on 8 November in Tokyo: still the last day
    assert (code, err) == (0, "")
    assert run_import(capsys, ADS_MANAGER_CSV, "--out", tmp_path / "s.json", "--timezone", "Asia/Tokyo",
                      "--as-of", "2026-11-07T14:00:00+00:00")[2].endswith("is before the file's last day, 2026-11-08 (Asia/Tokyo)\n")


def semicolon_export(text: str = EXPORT_TEXT) -> str:
    """The export as a spreadsheet in a European locale saves it: semicolons, decimal commas."""
    cells = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
    for column in ("Amount spent (EUR)", "Purchases conversion value", "Cost per result"):
        cells[column] = cells[column].str.replace(".", ",", regex=False)
    return cells.to_csv(index=False, sep=";")


def test_a_semicolon_file_with_decimal_commas_reads_as_the_comma_file(capsys, tmp_path):
    assert ";" in semicolon_export().splitlines()[0] and "39,59" in semicolon_export()
    assert imported(capsys, tmp_path, semicolon_export()) == imported(capsys, tmp_path, EXPORT_TEXT)


def test_a_decimal_point_in_a_column_of_decimal_commas_is_refused_not_guessed(capsys, tmp_path):
    text = semicolon_export().replace("39,59", "39.59", 1)
    source = tmp_path / "export.csv"
    source.write_text(text, encoding="utf-8")
    assert run_import(capsys, source, "--out", tmp_path / "s.json") == (
        2, "", f'meta-ads: {source}: row 2, column "Amount spent (EUR)": "39.59" is not an amount (this column writes decimals with a comma: 12,34)\n')


def with_id_columns(text: str = EXPORT_TEXT) -> pd.DataFrame:
    cells = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
    numbers = {name: str(100 + i) for i, name in enumerate(cells["Campaign name"].unique())}
    cells["Campaign ID"] = cells["Campaign name"].map(numbers)
    cells["Ad set ID"] = (cells["Campaign name"] + "/" + cells["Ad set name"]).map(
        {key: str(200 + i) for i, key in enumerate((cells["Campaign name"] + "/" + cells["Ad set name"]).unique())})
    cells["Ad ID"] = (cells["Ad set name"] + "/" + cells["Ad name"]).map(
        {key: str(300 + i) for i, key in enumerate((cells["Ad set name"] + "/" + cells["Ad name"]).unique())})
    return cells


def test_id_columns_are_the_ids_and_a_renamed_object_takes_its_latest_name(capsys, tmp_path):
    cells = with_id_columns()
    renamed = cells["Campaign name"].eq("Winter Sale - ES") & cells["Day"].eq("2026-11-08")
    cells.loc[renamed, "Campaign name"] = "Winter Sale - ES (renamed)"
    document = imported(capsys, tmp_path, cells.to_csv(index=False))
    names = {c["id"]: c["name"] for c in document["campaigns"]}
    assert sorted(names) == ["100", "101"] and names["100"] == "Winter Sale - ES (renamed)"  # Winter Sale's rows are first
    assert {a["id"] for a in document["adsets"]} == set(cells["Ad set ID"])
    assert {a["id"] for a in document["ads"]} == set(cells["Ad ID"])
    assert {r["ad_id"] for r in document["insights"]} == set(cells["Ad ID"])
    # The sums are the file's, whatever the names say.
    assert insights_by_campaign(document)["spend"].sum() == pytest.approx(export_frame()["Amount spent (EUR)"].sum())


def test_an_ad_set_id_under_two_campaign_ids_is_named(capsys, tmp_path):
    cells = with_id_columns()
    assert cells.loc[[5, 11], "Ad set ID"].tolist() == ["202", "202"]  # "Broad" on file lines 7 and 13
    cells.loc[11, "Campaign ID"] = "999"
    source = tmp_path / "export.csv"
    source.write_text(cells.to_csv(index=False), encoding="utf-8")
    assert run_import(capsys, source, "--out", tmp_path / "s.json") == (
        2, "", f'meta-ads: {source}: row 13, column "Ad set ID": ad set 202 is in campaign 999 here but in campaign 101 on row 7\n')


def test_the_summary_states_counts_and_assumptions(capsys, tmp_path):
    source, out = tmp_path / "export.csv", tmp_path / "snapshot.json"
    source.write_text(EXPORT_TEXT, encoding="utf-8")
    code, stdout, err = run_import(capsys, source, "--out", out)
    document = json.loads(out.read_text())
    total = sum(int(c["daily_budget"]) for c in document["campaigns"]) // 100
    assert (code, err) == (0, "")
    assert stdout == (
        f"imported {source}: 2 campaigns, 3 ad sets, 4 ads, 48 rows, 8 days (2026-11-01 to 2026-11-08), currency EUR, "
        f"account {document['account']['id']}, as of 2026-11-09T10:00:00+00:00; campaign budgets assumed: mean daily "
        f"spend over the last 7 days, rounded up: {total:,} EUR a day in all\nwrote {out}\n"
    )


@pytest.mark.parametrize("rows, note", [([6], "; Link clicks cut to the impressions on 1 row"), ([6, 9], "; Link clicks cut to the impressions on 2 rows")])
def test_more_link_clicks_than_impressions_are_cut_to_the_impressions_and_said(capsys, tmp_path, rows, note):
    """Link clicks count every click (one impression can bring two); the snapshot format holds
    clicks to at most the impressions."""
    source, out = tmp_path / "export.csv", tmp_path / "snapshot.json"
    source.write_text(with_cells(*[(row, "Link clicks", "99999") for row in rows]), encoding="utf-8")
    code, stdout, err = run_import(capsys, source, "--out", out)
    assert (code, err) == (0, "") and stdout.splitlines()[0].endswith(note)
    insights = json.loads(out.read_text())["insights"]
    for row in rows:
        assert insights[row - 2]["clicks"] == insights[row - 2]["impressions"] == EXPORT_CELLS.loc[row - 2, "Impressions"]


# --- bad files: one line naming the row and column, nothing written ------------------------------------
LINES = EXPORT_TEXT.splitlines()
IMPRESSIONS_LAST = EXPORT_CELLS[[*EXPORT_CELLS.columns.drop("Impressions"), "Impressions"]]
BAD_FILES = {
    "not a number": (with_cells((17, "Impressions", "12x")), 'row 17, column "Impressions": "12x" is not a whole number'),
    "negative spend": (with_cells((9, "Amount spent (EUR)", "-5.00")), 'row 9, column "Amount spent (EUR)": "-5.00" is negative'),
    "negative purchases": (with_cells((30, "Purchases", "-1")), 'row 30, column "Purchases": "-1" is negative'),
    "a fraction of a click": (with_cells((4, "Link clicks", "3.5")), 'row 4, column "Link clicks": "3.5" is not a whole number'),
    "money with a comma": (with_cells((5, "Purchases conversion value", "1,234.50")),
                           'row 5, column "Purchases conversion value": "1,234.50" is not an amount (digits with an optional decimal point: 12.34)'),
    "a day that does not exist": (with_cells((12, "Day", "2026-11-31")), 'row 12, column "Day": "2026-11-31" is not a date YYYY-MM-DD'),
    "a day in another form": (with_cells((12, "Day", "11/03/2026")), 'row 12, column "Day": "11/03/2026" is not a date YYYY-MM-DD'),
    "a day without its zeros": (with_cells((12, "Day", "2026-11-3")), 'row 12, column "Day": "2026-11-3" is not a date YYYY-MM-DD'),
    "a country name": (with_cells((8, "Country", "Spain")),
                       'row 8, column "Country": "Spain" is not a two-letter country code in capitals (ES) or Unknown'),
    "an empty name": (with_cells((20, "Ad set name", "")),
                      'row 20, column "Ad set name": is empty; every row needs a name (the export\'s summary row? export without it)'),
    "more purchases than impressions": (with_cells((6, "Purchases", "99999")),
                                        'row 6, column "Purchases": "99999" is more than the row\'s Impressions: a purchase follows an impression of the ad that day'),
    "a unit mistake": (with_cells((6, "Impressions", "5000000000000")),
                       'row 6, column "Impressions": "5000000000000" is more than 1,000,000,000,000: a unit mistake?'),
    "a bad impressions cell is not blamed on the purchases before it": (
        with_cells((2, "Impressions", "x"), cells=IMPRESSIONS_LAST), 'row 2, column "Impressions": "x" is not a whole number'),
    "a row after a name of two lines": (with_cells((2, "Ad name", "Video\nA"), (3, "Impressions", "x")),
                                        'row 4, column "Impressions": "x" is not a whole number'),
    "the earliest of two bad rows": (with_cells((40, "Impressions", "x"), (33, "Amount spent (EUR)", "y")),
                                     'row 33, column "Amount spent (EUR)": "y" is not an amount (digits with an optional decimal point: 12.34)'),
    "a duplicate row": ("\n".join([*LINES, LINES[3]]) + "\n",
                        'row 50, column "Day": the same ad, day and country as row 4 (ad "Carousel B" of ad set "Lookalike 1%", 2026-11-01, ES)'),
    "a missing column": (EXPORT_CELLS.drop(columns="Impressions").to_csv(index=False),
                         'missing column "Impressions" (the header has: Reporting starts, Reporting ends, Campaign name, Ad set name, '
                         'Ad name, Day, Country, Amount spent (EUR), Link clicks, Results, Result indicator, Purchases, '
                         'Purchases conversion value, Cost per result)'),
    "no spend column": (EXPORT_TEXT.replace("Amount spent (EUR)", "Amount spent"),
                        'missing column "Amount spent (USD)", or the same with the account\'s currency: "Amount spent (EUR)"'),
    "a row with a cell too many": ("\n".join([*LINES[:10], LINES[10] + ",extra", *LINES[11:]]),
                                   "row 11: 16 cells, but the header has 15 columns"),
    "a header only": (LINES[0] + "\n", "the file has a header but no rows"),
    "an empty file": ("", "the file is empty: no header line"),
    "a column named twice": (EXPORT_TEXT.replace("Results", "Purchases", 1), 'the header names column "Purchases" twice'),
    "a cell past the csv module's limit": ("\n".join([*LINES[:3], LINES[3].replace("Carousel B", "B" * 200_000), *LINES[4:]]),
                                           "row 4: not valid CSV: field larger than field limit (131072)"),
}


@pytest.mark.parametrize("text, message", BAD_FILES.values(), ids=BAD_FILES.keys())
@pytest.mark.parametrize("earlier_output", [False, True], ids=["no output yet", "an output from before"])
def test_a_bad_file_is_one_line_naming_row_and_column_and_nothing_is_written(capsys, tmp_path, text, message, earlier_output):
    source, out = tmp_path / "export.csv", tmp_path / "snapshot.json"
    source.write_text(text, encoding="utf-8")
    if earlier_output:
        out.write_text(OLD_SNAPSHOT)
    before = sorted(tmp_path.iterdir())
    assert run_import(capsys, source, "--out", out) == (2, "", f"meta-ads: {source}: {message}\n")
    assert sorted(tmp_path.iterdir()) == before  # no snapshot, no temporary file left behind
    if earlier_output:
        assert out.read_text() == OLD_SNAPSHOT


KAG_LINES = KAG_CSV.read_text(encoding="utf-8").splitlines()[:20]
BAD_KAG_FILES = {  # the row (its line in the file), a cell's text, what it becomes, the message
    "an id with a letter": (2, "708746", "70874x", 'row 2, column "ad_id": "70874x" is not an id (digits 0-9)'),
    "a day that does not exist": (5, "30-08-2023", "31-09-2023", 'row 5, column "Date": "31-09-2023" is not a date DD-MM-YYYY'),
    "a fraction of a conversion": (10, ",1,0", ",1,0.5", 'row 10, column "Approved_Conversion": "0.5" is not a whole number'),
}


@pytest.mark.parametrize("row, cell, bad_cell, message", BAD_KAG_FILES.values(), ids=BAD_KAG_FILES.keys())
def test_a_bad_row_of_the_kag_data_is_named_too(capsys, tmp_path, row, cell, bad_cell, message):
    lines = list(KAG_LINES)
    lines[row - 1] = lines[row - 1].replace(cell, bad_cell)
    assert lines[row - 1] != KAG_LINES[row - 1]
    source, out = tmp_path / "kag.csv", tmp_path / "kag.json"
    source.write_text("\n".join(lines), encoding="utf-8")
    assert run_import(capsys, source, "--out", out, "--value-per-conversion", "60") == (2, "", f"meta-ads: {source}: {message}\n")
    assert not out.exists()


@pytest.mark.parametrize("options, message", [
    (["--currency", "USD"], '--currency USD: the export is in EUR (column "Amount spent (EUR)")'),
    (["--country", "ES"], '--country ES: the export has its own "Country" column'),
    (["--value-per-conversion", "60"], "--value-per-conversion is for the KAG data only: an Ads Manager export has its own conversion value"),
    (["--as-of", "2026-11-07T23:00:00+00:00"], "--as-of 2026-11-07T23:00:00+00:00 is before the file's last day, 2026-11-08 (UTC)"),
    (["--format", "kag", "--value-per-conversion", "60"], 'missing columns "xyz_campaign_id", "fb_campaign_id", "ad_id", "Date", '
     '"Clicks", "Spent", "Approved_Conversion", "age", "gender", "interest" (the header has: Reporting starts, Reporting ends, '
     'Campaign name, Ad set name, Ad name, Day, Country, Amount spent (EUR), Impressions, Link clicks, Results, Result indicator, '
     'Purchases, Purchases conversion value, Cost per result)'),
])
def test_options_that_contradict_the_file_are_one_line(capsys, tmp_path, options, message):
    out = tmp_path / "snapshot.json"
    assert run_import(capsys, ADS_MANAGER_CSV, "--out", out, *options) == (2, "", f"meta-ads: {ADS_MANAGER_CSV}: {message}\n")
    assert not out.exists()


def test_unreadable_files_are_one_line(capsys, tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(EXPORT_TEXT.replace("Winter", "Invierno año").encode("latin-1"))
    assert run_import(capsys, tmp_path / "absent.csv", "--out", tmp_path / "s.json") == (
        2, "", f"meta-ads: cannot read {tmp_path / 'absent.csv'}: No such file or directory\n")
    code, out, err = run_import(capsys, latin1, "--out", tmp_path / "s.json")
    assert (code, out) == (2, "") and err.startswith(f"meta-ads: {latin1}: not UTF-8 text: byte 0xf1 at line 2 column ")
    assert run_import(capsys, ADS_MANAGER_CSV, "--out", tmp_path / "no" / "s.json") == (
        2, "", f"meta-ads: cannot write {tmp_path / 'no' / 's.json'}: No such file or directory\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dagster_home", "latin1.csv"]


@pytest.mark.parametrize("argv, message", [
    (["--value-per-conversion", "-1"], "argument --value-per-conversion: '-1' must be a finite number, 0 or more"),
    (["--value-per-conversion", "inf"], "argument --value-per-conversion: 'inf' must be a finite number, 0 or more"),
    (["--currency", "eur"], "argument --currency: 'eur' is not an ISO 4217 currency code (EUR)"),
    (["--country", "Spain"], "argument --country: 'Spain' is not a two-letter country code in capitals (ES)"),
    (["--as-of", "2026-11-09T10:00:00"], "argument --as-of: '2026-11-09T10:00:00' is not an ISO 8601 time with a UTC offset"),
    (["--timezone", "Madrid"], "argument --timezone: 'Madrid' is not an IANA time zone (Europe/Madrid)"),
])
def test_bad_options_are_usage_errors(capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["import-csv", str(ADS_MANAGER_CSV), "--out", str(tmp_path / "s.json"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


# --- any valid export round-trips ----------------------------------------------------------------------
NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).map(str.strip).filter(bool)
CELLS = st.tuples(
    st.integers(0, 20), st.sampled_from(["ES", "PT", "FR", "Unknown"]),  # day offset, country
    st.integers(0, 10**7), st.integers(0, 10**6),  # spend in cents, impressions
    st.floats(0, 1), st.floats(0, 1), st.integers(0, 10**8),  # clicks and purchases as shares of impressions, value in cents
)


@st.composite
def exports(draw) -> list[list[str]]:
    """Rows of a valid export: ads named by (campaign, ad set, ad), one row per ad, day and country."""
    ads = draw(st.lists(st.tuples(NAMES, NAMES, NAMES), min_size=1, max_size=6, unique=True))
    rows = draw(st.lists(st.tuples(st.sampled_from(ads), CELLS), min_size=1, max_size=40,
                         unique_by=lambda row: (row[0], row[1][0], row[1][1])))
    blank_zero = lambda n: str(n) if n else ""  # noqa: E731 - Ads Manager leaves zeros blank
    return [
        [*names, f"2026-10-{1 + day:02d}", country, f"{spend / 100:.2f}", str(impressions),
         blank_zero(int(impressions * clicks)), blank_zero(int(impressions * purchases)), blank_zero(value) and f"{value / 100:.2f}"]
        for names, (day, country, spend, impressions, clicks, purchases, value) in rows
    ]


@settings(max_examples=60, deadline=None)
@given(exports())
def test_any_valid_export_round_trips_its_sums(rows):
    header = ["Campaign name", "Ad set name", "Ad name", "Day", "Country", "Amount spent (USD)", "Impressions",
              "Link clicks", "Purchases", "Purchases conversion value"]
    text = StringIO()
    csv.writer(text).writerows([header, *rows])
    document = import_csv(text.getvalue().encode("utf-8")).document

    expected = pd.DataFrame(rows, columns=header).replace("", "0").astype({c: float for c in header[5:]})
    expected = expected.groupby("Campaign name")[header[5:]].sum()
    expected.columns = ["spend", "impressions", "clicks", "purchases", "revenue"]
    pd.testing.assert_frame_equal(insights_by_campaign(document), expected, check_names=False, check_dtype=False)
    assert len(document["insights"]) == len(rows)
    assert len(document["ads"]) == len({tuple(row[:3]) for row in rows})


def test_importing_needs_no_dagster_and_the_engine_never_imports_it(tmp_path):
    script = f"""
import sys
import meta_ads_dagster.engine.cycle
assert "meta_ads_dagster.importing" not in sys.modules, "the engine imported the importer"
from meta_ads_dagster.cli import main
assert main(["import-csv", {str(ADS_MANAGER_CSV)!r}, "--out", "snapshot.json"]) == 0
loaded = sorted(name for name in sys.modules if name == "dagster" or name.startswith("dagster."))
sys.exit(f"Dagster loaded: {{loaded[:5]}}" if loaded else 0)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_snapshot_is_written_with_the_umask_s_mode_like_any_file(capsys, tmp_path):
    out = tmp_path / "snapshot.json"
    previous = os.umask(0o022)
    try:
        assert run_import(capsys, ADS_MANAGER_CSV, "--out", out)[0] == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # readable by a code server running as another user
