"""The insights columns' two readers agree (engine/snapshot.py, issue 14).

A column of strings is checked and converted vectorized; any other column, or one holding a bad
value, is read value by value by the format's rules, which name the first offender. Forcing every
column onto the row-wise readers (``row_wise``) is the parser as it was before the vectorized
readers: both must give the same frames for every valid document and the same message for every
rejected one, on the worked examples, generated accounts, odd but valid values and the fuzz mutants.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from meta_ads_dagster.engine import snapshot as engine_snapshot
from meta_ads_dagster.engine.snapshot import (
    COUNT_MAX, AccountSnapshot, SnapshotError, _amounts, _counts, _digit_strings, _id_or_none, money, parse_snapshot,
    whole_number,
)
from meta_ads_dagster.meta.demo import demo_snapshot

from ..repo_files import DEMO_SNAPSHOT_PATH, SEED_SNAPSHOT_PATH
from .factories import AdSetSpec, AdSpec, CampaignSpec, make_snapshot, steady_days
from .test_snapshot_fuzz import MUTANTS, _mutant

FRAMES = ("campaigns", "adsets", "ads", "creatives", "insights", "ab_tests", "recent_actions")


def parsed_both_ways(document: dict, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """(vectorized, row-wise) outcome of parsing ``document``: an AccountSnapshot or the message."""

    def outcome() -> AccountSnapshot | str:
        try:
            return parse_snapshot(copy.deepcopy(document))
        except SnapshotError as exc:
            return str(exc)

    fast = outcome()
    with monkeypatch.context() as patched:
        # No column counts as all strings: every reader falls back to the format's row-wise rules.
        patched.setattr(engine_snapshot, "_strings", lambda values: False)
        slow = outcome()
    return fast, slow


def assert_same(fast: AccountSnapshot | str, slow: AccountSnapshot | str) -> None:
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(fast, name), getattr(slow, name), check_exact=True, obj=name)
    for name in ("as_of", "today", "account_id", "currency", "timezone_name", "minor_per_unit"):
        assert getattr(fast, name) == getattr(slow, name)


def odd_but_valid() -> dict:
    """A generated account whose insights use every form the format allows besides plain strings."""
    document = make_snapshot([
        CampaignSpec(daily_budget_usd=300, adsets=(AdSetSpec(countries=("ES", "PT"), ads=(AdSpec(days=steady_days()),) * 2),)),
        CampaignSpec(adsets=(AdSetSpec(countries=("FR",), ads=(AdSpec(days=steady_days(purchases=0)),)),)),
    ])
    rows = document["insights"]
    rows[0] |= {"ad_id": int(rows[0]["ad_id"]), "impressions": int(rows[0]["impressions"]), "spend": 12}
    rows[1] |= {"spend": 12.5, "clicks": "00000000000000000003", "country": "unknown"}
    rows[2] |= {"actions": None, "action_values": []}
    rows[3].pop("actions")
    rows[4]["actions"] = [{"action_type": "link_click", "value": "7"}, {"action_type": "purchase", "value": 2}]
    rows[5]["action_values"] = [{"action_type": "purchase", "value": 80}]
    rows[6] |= {"impressions": "0000000000000009000", "spend": "0012.50"}
    return document


def rejected(row: int, **changes: object) -> dict:
    document = make_snapshot(3)
    document["insights"][row].update(changes)
    return document


DOCUMENTS = {
    "seed examples": lambda: json.loads(SEED_SNAPSHOT_PATH.read_text()),
    "demo file": lambda: json.loads(DEMO_SNAPSHOT_PATH.read_text()),
    "demo account act_77": lambda: demo_snapshot("act_77"),
    "generated, 12 campaigns": lambda: make_snapshot(12),
    "odd but valid": odd_but_valid,
    "no insights": lambda: make_snapshot(2) | {"insights": []},
}
VALID = set(DOCUMENTS)
DOCUMENTS |= {
    "spend 1e5": lambda: rejected(5, spend="1e5"),
    "spend with a comma": lambda: rejected(4, spend="1,5"),
    "spend past the bound": lambda: rejected(7, spend="1000000000001"),
    "spend negative": lambda: rejected(6, spend=-1),
    "impressions full-width digits": lambda: rejected(3, impressions="１２"),
    "clicks empty": lambda: rejected(2, clicks=""),
    "clicks past the bound": lambda: rejected(9, clicks=str(COUNT_MAX + 1)),
    "ad id with a space": lambda: rejected(8, ad_id="1 2"),
    "date not a date": lambda: rejected(4, date_start="2026-02-30", date_stop="2026-02-30"),
    "date_stop another day": lambda: rejected(4, date_stop="2020-01-01"),
    "country in lower case": lambda: rejected(3, country="es"),
    "two purchase entries": lambda: rejected(
        6, actions=[{"action_type": "purchase", "value": "1"}, {"action_type": "purchase", "value": "1"}]),
    "purchase value a fraction": lambda: rejected(5, actions=[{"action_type": "purchase", "value": "1.5"}]),
    "revenue value text": lambda: rejected(5, action_values=[{"action_type": "purchase", "value": "much"}]),
    "action without a value": lambda: rejected(5, actions=[{"action_type": "purchase"}]),
    "action type a number": lambda: rejected(5, actions=[{"action_type": 7, "value": "1"}]),
    "actions an object": lambda: rejected(5, actions={"action_type": "purchase", "value": "1"}),
    "a required field missing": lambda: rejected(5, clicks=None),
}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_vectorized_and_row_wise_readers_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = parsed_both_ways(DOCUMENTS[name](), monkeypatch)
    assert_same(fast, slow)
    # The valid documents parse and the others are rejected for their insights row: no comparison is vacuous.
    if name in VALID:
        assert isinstance(fast, AccountSnapshot)
    else:
        assert str(fast).startswith("snapshot rejected: insights[")


@pytest.mark.parametrize("base", sorted(MUTANTS))
def test_the_fuzz_mutants_meet_the_same_answer_both_ways(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for number in range(MUTANTS[base]):
        names, document, _ = _mutant(base, number)
        if document is not None:
            fast, slow = parsed_both_ways(document, monkeypatch)
            try:
                assert_same(fast, slow)
            except AssertionError as exc:
                raise AssertionError(f"mutant {base} {number} ({', '.join(names)}): {exc}") from None


# --- the vectorized readers accept a subset of what the rules accept, with the same values -----------
TEXT = st.text(alphabet="0123456789.,-e ١\n", max_size=22)
VALUES = st.lists(
    st.one_of(TEXT, TEXT, st.integers(-5, 10**13), st.floats(allow_nan=True), st.booleans(), st.none()), max_size=6
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_the_vectorized_readers_vouch_only_for_what_the_rules_accept(values: list) -> None:
    for vectorized, rule in (
        (lambda v: _counts(v, COUNT_MAX), lambda v: whole_number(v, COUNT_MAX)),
        (_amounts, money),
        (_digit_strings, _id_or_none),
    ):
        read = vectorized(values)
        if read is not None:
            expected = [rule(value) for value in values]
            assert None not in expected
            assert np.array_equal(np.asarray(read, dtype=object), np.asarray(expected, dtype=object))
            assert all(type(a) is type(b) or isinstance(a, (np.integer, np.floating)) for a, b in zip(read, expected))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.from_regex(r"[0-9]{1,17}(\.[0-9]{1,6})?", fullmatch=True), min_size=1, max_size=6))
def test_plain_decimal_strings_are_read_vectorized(values: list[str]) -> None:
    amounts = _amounts(values)
    expected = [money(value) for value in values]
    if None in expected:  # past MONEY_MAX
        assert amounts is None
    else:
        assert amounts is not None and amounts.tolist() == expected
