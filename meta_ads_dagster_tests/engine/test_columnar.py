"""The fast path of reading a snapshot file (engine/columnar.py) against the whole document's parse.

On the documents it takes, the fast path must give the very frames ``parse_snapshot`` gives the
standard decoder's document; on any other it must step aside (``_load_columnar`` answers None) so
that ``load_snapshot_text`` ends exactly as the whole document's parse ends: the same frames, or
the same one-line error.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from meta_ads_dagster.cli import main
from meta_ads_dagster.engine import columnar
from meta_ads_dagster.engine.snapshot import (
    AccountSnapshot, SnapshotError, _load_columnar, decode_snapshot, load_snapshot_file, load_snapshot_text, parse_snapshot,
    snapshot_account_id, snapshot_file_account_id,
)

from ..repo_files import DEMO_SNAPSHOT_PATH, KAG_CSV, SEED_SNAPSHOT_PATH, write_generated_account
from .test_snapshot_fuzz import _mutant

SEED_DOCUMENT = json.loads(SEED_SNAPSHOT_PATH.read_text())


def assert_same_snapshot(fast: AccountSnapshot, whole: AccountSnapshot) -> None:
    for field in dataclasses.fields(AccountSnapshot):
        mine, theirs = getattr(fast, field.name), getattr(whole, field.name)
        if isinstance(mine, pd.DataFrame):
            pd.testing.assert_frame_equal(mine, theirs, check_exact=True, obj=field.name)
        else:
            assert mine == theirs, field.name


def whole_parse(data: bytes) -> AccountSnapshot | str:
    """How the whole document's parse ends: its snapshot, or its error message."""
    try:
        return parse_snapshot(decode_snapshot(data))
    except SnapshotError as exc:
        return str(exc)


def loaded(data: bytes, file: Path | None = None) -> AccountSnapshot | str:
    """How ``load_snapshot_text`` of ``data`` ends, or ``load_snapshot_file`` with ``file`` (which
    the bytes are written to first)."""
    try:
        if file is None:
            return load_snapshot_text(data)
        file.write_bytes(data)
        return load_snapshot_file(file)
    except SnapshotError as exc:
        return str(exc)


def assert_ends_alike(data: bytes, file: Path | None = None) -> None:
    whole, fast = whole_parse(data), loaded(data, file)
    if isinstance(whole, str):
        assert fast == whole
    else:
        assert isinstance(fast, AccountSnapshot), fast
        assert_same_snapshot(fast, whole)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("columnar")
    kag = folder / "kag.json"
    assert main(["import-csv", str(KAG_CSV), "--out", str(kag), "--value-per-conversion", "60"]) == 0
    return {
        "seed examples": SEED_SNAPSHOT_PATH.read_bytes(),
        "demo account": DEMO_SNAPSHOT_PATH.read_bytes(),
        "kag data": kag.read_bytes(),
        "generated, 3 campaigns": write_generated_account(folder / "g3.json", 3, 1).read_bytes(),
        "generated, 40 campaigns": write_generated_account(folder / "g40.json", 40, 2).read_bytes(),
        "indented": json.dumps(SEED_DOCUMENT, indent=2).encode(),
    }


@pytest.mark.parametrize("name", ["seed examples", "demo account", "kag data", "generated, 3 campaigns", "generated, 40 campaigns", "indented"])
def test_the_fast_path_takes_the_usual_files_and_gives_the_parsers_frames(files, name, tmp_path):
    whole = parse_snapshot(json.loads(files[name]))
    (tmp_path / "snapshot.json").write_bytes(files[name])
    for source in (files[name], tmp_path / "snapshot.json"):
        fast = _load_columnar(source)
        assert fast is not None, "the fast path stepped aside"
        assert_same_snapshot(fast, whole)


def _edited(edit) -> bytes:
    document = json.loads(SEED_SNAPSHOT_PATH.read_text())
    result = edit(document)
    return result if isinstance(result, bytes) else json.dumps(document).encode()


def _set(path, value):
    def edit(document):
        *parents, last = path
        for key in parents:
            document = document[key]
        document[last] = value
    return edit


def _drop(path):
    def edit(document):
        *parents, last = path
        for key in parents:
            document = document[key]
        del document[last]
    return edit


def _text(transform):
    return lambda document: transform(json.dumps(document).encode())


STEPS_ASIDE = {
    # Valid documents the parser reads otherwise than the schema says: the whole parse takes them.
    "an id as a JSON number": _set(("campaigns", 0, "id"), 120001),
    "a budget as a JSON number": _set(("campaigns", 0, "daily_budget"), 50000),
    "a count as a JSON number": _set(("insights", 0, "impressions"), 2143),
    "a missing name (read as empty)": _drop(("campaigns", 0, "name")),
    "a missing creatives list": _drop(("creatives",)),
    "an unknown field of mixed types": lambda d: d.update(notes=[1, "two"]),
    # Refused documents: the whole parse names what is wrong.
    "a null name": _set(("campaigns", 0, "name"), None),
    "a null status": _set(("adsets", 0, "status"), None),
    "a missing insights field": _drop(("insights", 0, "clicks")),
    "a null insights list": _set(("insights",), None),
    "a null insights row": lambda d: d["insights"].insert(1, None),
    "an insights row that is a number": lambda d: d["insights"].insert(0, 7),
    "spend not a decimal": _set(("insights", 0, "spend"), "12,5"),
    "spend past the maximum": _set(("insights", 0, "spend"), "1" * 39),
    "a count with 19 digits": _set(("insights", 0, "clicks"), "1" * 19),
    "a full-width digit in an id": _set(("insights", 0, "ad_id"), "３４0001"),
    "date_stop after date_start": _set(("insights", 0, "date_stop"), "2026-11-20"),
    "a date that is no date": _set(("insights", 0, "date_start"), "2026-02-30"),
    "a lower-case country": _set(("insights", 0, "country"), "es"),
    "two purchase entries": _set(("insights", 0, "actions"), [{"action_type": "purchase", "value": "1"}] * 2),
    "an entry without a value": _set(("insights", 0, "action_values"), [{"action_type": "purchase"}]),
    "an approved flag as text": _set(("creatives", 0, "approved"), "true"),
    "an A/B test ad id that is null": lambda d: d.update(ab_tests=[{"id": "t", "ad_ids": [d["ads"][0]["id"], None], "started_at": d["as_of"]}]),
    "a lone surrogate in a name": _text(lambda data: data.replace(b'"name": "', b'"name": "\\ud800', 1)),
    "a duplicated key": _text(lambda data: data.replace(b'"status": "ACTIVE"', b'"status": "ACTIVE", "status": "PAUSED"', 1)),
    "NaN as a spend": _text(lambda data: data.replace(b'"spend": "', b'"spend": NaN, "x": "', 1)),
    "a raw tab in a name": _text(lambda data: data.replace(b'"name": "', b'"name": "\t', 1)),
    "a byte order mark": _text(lambda data: b"\xef\xbb\xbf" + data),
    "bytes that are not UTF-8 in an unknown field": _text(lambda data: data[:-1] + b', "x": "\xff"}'),
    "a surrogate's UTF-8 bytes in a name": _text(lambda data: data.replace(b'"name": "', b'"name": "\xed\xa0\x80', 1)),
    "a character cut short at the end": _text(lambda data: data + b"\xe2\x82"),
    "a second document after the first": _text(lambda data: data + b" {}"),
    "a list at the top": _text(lambda data: b"[" + data + b"]"),
    "the file cut short": _text(lambda data: data[: len(data) // 2]),
}


@pytest.mark.parametrize("case", sorted(STEPS_ASIDE))
def test_the_fast_path_steps_aside_and_the_load_ends_as_the_whole_parse(case, tmp_path):
    data = _edited(STEPS_ASIDE[case])
    assert _load_columnar(data) is None
    assert_ends_alike(data)
    assert_ends_alike(data, tmp_path / "snapshot.json")


LONG_LISTS = {"campaigns", "adsets", "ads", "creatives"}


def lists_read_as_columns(data: bytes) -> set[str]:
    """The long lists the fast path reads column-wise (the rest go to the parser's models)."""
    table = columnar.read_document(data)
    assert table is not None
    parts = columnar.structure(table)
    assert parts is not None
    return set(parts[1])


@pytest.mark.parametrize("name", ["seed examples", "demo account", "kag data", "generated, 40 campaigns"])
def test_the_usual_files_long_lists_are_read_as_columns(files, name):
    """So that the comparisons above hold for the column-wise reading, not for the models'."""
    assert lists_read_as_columns(files[name]) == LONG_LISTS


def _learning(index: int, info) -> Callable:
    return _set(("adsets", index, "learning_stage_info"), info)


# A value in a column of a long list the column checks refuse: the list goes to the models, so the
# load ends with the whole parse's message (or, for a value the models take, its frames).
REFUSED_IN_A_COLUMN = {
    "a campaign id with a letter": ("campaigns", _set(("campaigns", 1, "id"), "10000a")),
    "an empty campaign id": ("campaigns", _set(("campaigns", 0, "id"), "")),
    "an unknown campaign status": ("campaigns", _set(("campaigns", 2, "status"), "RUNNING")),
    "a campaign time without offset": ("campaigns", _set(("campaigns", 0, "created_time"), "2026-11-15T10:30:00")),
    "a campaign time that is no time": ("campaigns", _set(("campaigns", 1, "created_time"), "yesterday")),
    "a campaign time before 1970": ("campaigns", _set(("campaigns", 1, "created_time"), "1969-12-31T23:00:00+00:00")),
    "a budget with cents": ("campaigns", _set(("campaigns", 0, "daily_budget"), "500.00")),
    "a negative budget": ("campaigns", _set(("campaigns", 0, "daily_budget"), "-5")),
    "a budget past the maximum": ("campaigns", _set(("campaigns", 0, "daily_budget"), "1" + "0" * 15 + "1")),
    "a budget of 21 digits": ("campaigns", _set(("campaigns", 0, "daily_budget"), "0" * 16 + "50000")),
    "a budget of 19 digits (taken by the models)": ("campaigns", _set(("campaigns", 0, "daily_budget"), "0" * 14 + "50000")),
    "an ad set id with a full-width digit": ("adsets", _set(("adsets", 0, "id"), "１00002")),
    "an ad set's campaign id with a sign": ("adsets", _set(("adsets", 1, "campaign_id"), "+100005")),
    "a lower-case ad set status": ("adsets", _set(("adsets", 0, "status"), "active")),
    "an ad set time with a bad day": ("adsets", _set(("adsets", 2, "created_time"), "2026-02-30T10:00:00+00:00")),
    "an ad set budget that is text": ("adsets", _set(("adsets", 2, "daily_budget"), "ten")),
    "a lower-case country": ("adsets", _set(("adsets", 1, "targeting", "geo_locations", "countries"), ["ES", "pt"])),
    "a three-letter country": ("adsets", _set(("adsets", 0, "targeting", "geo_locations", "countries"), ["ESP"])),
    "an unknown learning status": ("adsets", _learning(0, {"status": "LEARNING_LIMITED"})),
    "negative learning conversions": ("adsets", _learning(1, {"status": "LEARNING", "conversions": -1})),
    "learning conversions past the maximum": ("adsets", _learning(1, {"status": "LEARNING", "conversions": 10**12 + 1})),
    "a negative last edit time": ("adsets", _learning(2, {"status": "SUCCESS", "last_sig_edit_ts": -1})),
    "a last edit time past 2199": ("adsets", _learning(2, {"status": "SUCCESS", "last_sig_edit_ts": 7258118400})),
    "an ad id with a space": ("ads", _set(("ads", 3, "id"), "100 15")),
    "an ad's ad set id that is a name": ("ads", _set(("ads", 0, "adset_id"), "ES broad")),
    "an ad's campaign id with a decimal point": ("ads", _set(("ads", 1, "campaign_id"), "100005.0")),
    "an unknown ad status": ("ads", _set(("ads", 2, "status"), "")),
    "an ad time in milliseconds as text": ("ads", _set(("ads", 0, "created_time"), "1763202600000")),
    "a creative id with a letter": ("ads", _set(("ads", 0, "creative", "id"), "c100004")),
    "a source ad id that is negative": ("ads", _set(("ads", 1, "source_ad_id"), "-100003")),
    "a creative's id with a letter": ("creatives", _set(("creatives", 3, "id"), "x")),
}


@pytest.mark.parametrize("case", sorted(REFUSED_IN_A_COLUMN))
def test_a_value_the_column_checks_refuse_gets_the_models_answer(case, tmp_path):
    name, edit = REFUSED_IN_A_COLUMN[case]
    data = _edited(edit)
    assert lists_read_as_columns(data) == LONG_LISTS - {name}
    assert_ends_alike(data)
    assert_ends_alike(data, tmp_path / "snapshot.json")


def _each(name, field, values):
    def edit(document):
        for item, value in zip(document[name], values):
            item[field] = value
    return edit


def _all_of(*edits):
    def edit(document):
        for each in edits:
            each(document)
    return edit


# Valid values of every kind a column can hold, read column-wise: the frames must be the models'.
READ_AS_COLUMNS = {
    "times with other offsets and forms": _all_of(
        _each("campaigns", "created_time", ["2026-11-15T10:30:00Z", "2026-10-16 12:30:00+02:00", "2026-10-16T10:30:00.25-05:30"]),
        _each("ads", "created_time", ["2026-11-15T10:30:00+00:00", "2026-11-15T11:30:00+01:00", "20261115T103000+0000", "2199-12-31T23:59:59.999999+00:00"]),
    ),
    "budgets on every campaign and none on ad sets": _all_of(
        _each("campaigns", "daily_budget", ["0", "999999999999999", "1000000000000000"]), _each("adsets", "daily_budget", [None] * 3),
    ),
    "no budget anywhere": _all_of(_each("campaigns", "daily_budget", [None] * 3), _each("adsets", "daily_budget", [None] * 3)),
    "one ad set with learning info": _learning(1, {"status": "LEARNING", "conversions": 12, "last_sig_edit_ts": 1763600000}),
    "learning info on every ad set, some fields missing": _all_of(
        _learning(0, {"status": "FAIL"}), _learning(1, {"status": "SUCCESS", "conversions": None, "last_sig_edit_ts": 0}),
        _learning(2, {"status": "LEARNING", "conversions": 10**12, "last_sig_edit_ts": 7258118399}),
    ),
    "countries: none, and three": _all_of(
        _set(("adsets", 0, "targeting", "geo_locations", "countries"), []),
        _set(("adsets", 1, "targeting", "geo_locations", "countries"), ["PT", "ES", "FR"]),
    ),
    "one ad copied from another": _set(("ads", 3, "source_ad_id"), "100003"),
    "every ad copied": _each("ads", "source_ad_id", ["100011", "100003", "100003", "100007"]),
    "names of any text": _each("campaigns", "name", ["", "café ☕ \"quoted\" \u00e9", "a\nb"]),
    "creatives not approved": _each("creatives", "approved", [False, True, False, False]),
    "unknown fields beside the known ones": _all_of(_each("ads", "tracking", [{"a": 1}] * 4), _each("adsets", "notes", ["x"] * 3)),
}


@pytest.mark.parametrize("case", sorted(READ_AS_COLUMNS))
def test_valid_values_read_as_columns_give_the_models_frames(case):
    data = _edited(READ_AS_COLUMNS[case])
    assert lists_read_as_columns(data) == LONG_LISTS
    whole = parse_snapshot(json.loads(data))
    fast = _load_columnar(data)
    assert fast is not None
    assert_same_snapshot(fast, whole)


def test_an_account_without_campaigns_loads_as_the_whole_parse():
    """Empty lists are left to the models (their empty frames' dtypes are the models')."""
    data = _edited(lambda d: d.update(campaigns=[], adsets=[], ads=[], creatives=[], insights=[]))
    assert lists_read_as_columns(data) == set()
    assert_ends_alike(data)


@pytest.mark.parametrize("base, numbers", [("seed", range(0, 300, 3)), ("demo", range(0, 100, 3))])
def test_every_fuzz_mutant_loads_as_the_whole_parse_ends(base, numbers):
    """The fuzz test's mutants (one to three seeded mutations of a worked example each)."""
    for number in numbers:
        data = _mutant(base, number)[2]
        try:
            assert_ends_alike(data)
        except AssertionError as exc:
            raise AssertionError(f"mutant {base} {number}: {exc}") from None


ACCOUNT_CASES = {
    "as usual": lambda d: None,
    "an id that is not act_<digits>": _set(("account", "id"), "1001"),
    "an id as a JSON number": _set(("account", "id"), 1001),
    "a null id": _set(("account", "id"), None),
    "no id": _drop(("account", "id")),
    "no account": _drop(("account",)),
    "an account that is a list": _set(("account",), ["act_1"]),
    "a byte order mark": _text(lambda data: b"\xef\xbb\xbf" + data),
    "bytes that are not UTF-8": _text(lambda data: data[:-1] + b', "x": "\xff"}'),
    "not JSON": _text(lambda data: data[:-1]),
    "a list at the top": _text(lambda data: b"[" + data + b"]"),
}


def _account_id(read) -> str:
    try:
        return read()
    except SnapshotError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize("case", sorted(ACCOUNT_CASES))
def test_a_files_account_id_is_read_as_from_the_whole_document(case, tmp_path):
    """The settings' look at META_STUB_SNAPSHOT reads only the account id where pyarrow can."""
    data = _edited(ACCOUNT_CASES[case])
    path = tmp_path / "snapshot.json"
    path.write_bytes(data)
    assert _account_id(lambda: snapshot_file_account_id(path)) == _account_id(lambda: snapshot_account_id(decode_snapshot(data)))


def _hard_decimals(count: int, seed: int) -> list[str]:
    """Decimal strings the parser takes whose doubles are hard to get right: the exact midpoints
    between two neighbouring doubles (cut to 40 characters), long fractions, long integers."""
    rng = random.Random(seed)
    values = []
    for _ in range(count):
        low = rng.random() * 10 ** rng.randint(0, 11)
        with localcontext() as context:
            context.prec = 80  # a double's exact decimal has at most 60 significant digits here
            midpoint = (Decimal(low) + Decimal(float(np.nextafter(low, np.inf)))) / 2
        values.append(format(midpoint, "f")[:40].rstrip("."))
        values.append(f"{rng.randint(0, 10**12)}.{''.join(rng.choices('0123456789', k=rng.randint(1, 26)))}")
        values.append(str(rng.randint(0, 10**12)).zfill(rng.randint(1, 40)))
    return values


def test_amounts_are_read_as_floats_of_the_strings():
    """Arrow's string-to-double cast against ``float()`` (the parser's) on hard cases."""
    values = _hard_decimals(20_000, seed=14)
    read = columnar._amounts(pa.array(values), 10**12)
    assert read is not None
    assert read.tobytes() == np.array([float(value) for value in values]).tobytes()


def test_utf8_is_judged_as_the_standard_decoders_codec_judges_it():
    """The fast path's check of a whole file against Python's strict UTF-8 codec (the parser's):
    overlong forms, surrogates, code points past U+10FFFF, cut and stray bytes, at every offset
    of a long run of ASCII (the check reads ASCII in blocks)."""
    pieces = [b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xe0\x80\x80", b"\xe0\xa0\x80",
              b"\xf0\x80\x80\x80", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
              b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xe2\x82\xac", b"\x00", b"\xef\xbf\xbe"]
    rng = random.Random(14)
    pieces += [bytes(rng.choice([rng.randrange(256), rng.randrange(0x80, 0xC0), rng.choice([0xC2, 0xE0, 0xED, 0xF0, 0xF4])])
                     for _ in range(rng.randint(1, 5))) for _ in range(3000)]
    for piece in pieces:
        for data in (piece, b"a" * rng.randint(1, 70) + piece + b"b" * rng.randint(0, 70)):
            try:
                data.decode("utf-8")
                expected = True
            except UnicodeDecodeError:
                expected = False
            assert columnar._utf8(pa.py_buffer(data)) is expected, data
