"""Fuzzing ``meta-ads plan`` with mutated worked examples (issue 10).

Each mutant is one of the examples with one to three seeded mutations (a key dropped, a value
retyped, NaN or infinity, a huge or negative number, unicode and full-width digits, an object
duplicated, a reference left dangling, values swapped, nesting thousands of levels deep, bytes that
are not UTF-8, the file cut short). Run through ``meta-ads plan`` in this process, every mutant
must end one of two ways, and nothing else:

- exit 0 with a plan document, and the document breaks none of the rules the independent check
  :func:`nonsense` knows (the issue's list of accepted nonsense), or
- exit 2 with one line on standard error, ``meta-ads: snapshot rejected: ...``, naming an object of
  the format and one of its documented fields (or saying the file is not UTF-8 / not JSON).

A failure names the mutant (base, number, mutations); ``_mutant(base, number)`` rebuilds it.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from meta_ads_dagster.cli import main
from meta_ads_dagster.engine.snapshot import COUNT_MAX, SnapshotError, money, parse_snapshot, whole_number

from ..repo_files import DEMO_SNAPSHOT_PATH, PLAN_KEYS, SEED_SNAPSHOT_PATH, documented_tables

SEED = 20261125
MUTANTS = {"seed": 300, "demo": 100}
BASES = {"seed": json.loads(SEED_SNAPSHOT_PATH.read_text()), "demo": json.loads(DEMO_SNAPSHOT_PATH.read_text())}
Position = tuple[Any, ...]  # keys and list indexes from the document's root


# --- mutations: (rng, document) -> the mutated document, or the file's bytes ------------------------
def _nodes(document: dict) -> list[Position]:
    """Every position in the document (containers and leaves), the root excepted."""
    paths, stack = [], [()]
    while stack:
        path = stack.pop()
        node = _get(document, path)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, _ in children:
            paths.append(path + (key,))
            stack.append(path + (key,))
    return paths


def _get(document: Any, path: Position) -> Any:
    for key in path:
        document = document[key]
    return document


def _pick(rng: random.Random, document: dict, leaves_only: bool = False) -> Position:
    """A random position: first a top-level section, so the bulky insights do not take every pick."""
    section = rng.choice(sorted(document))
    inside = [p for p in _nodes(document) if p[0] == section]
    if leaves_only:
        inside = [p for p in inside if not isinstance(_get(document, p), (dict, list))] or inside
    return rng.choice(inside)


def _set(document: dict, path: Position, value: Any) -> dict:
    _get(document, path[:-1])[path[-1]] = value
    return document


def drop(rng, document):
    path = _pick(rng, document)
    del _get(document, path[:-1])[path[-1]]
    return document


OTHER_VALUES = [None, True, False, 0, 1, -1, 1.5, "", "x", [], {}, "2026-11-25", 1700000000, "yes", [None], {"id": None}]


def retype(rng, document):
    return _set(document, _pick(rng, document), copy.deepcopy(rng.choice(OTHER_VALUES)))


def non_finite(rng, document):
    return _set(document, _pick(rng, document, leaves_only=True), rng.choice([math.nan, math.inf, -math.inf, "NaN", "Infinity"]))


def huge(rng, document):
    values = [2**63, 2**64, 10**30, str(2**63), "9" * 30, 1e308, 10**13, str(10**16), "1e15", 1e15, "0" * 25 + "1"]
    return _set(document, _pick(rng, document, leaves_only=True), rng.choice(values))


def negative(rng, document):
    path = _pick(rng, document, leaves_only=True)
    value = _get(document, path)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _set(document, path, -value or -1)
    return _set(document, path, "-" + value if isinstance(value, str) else -1)


FULL_WIDTH = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def unicode(rng, document):
    path = _pick(rng, document, leaves_only=True)
    text = str(_get(document, path))
    return _set(document, path, rng.choice([
        text.translate(FULL_WIDTH), text.translate(ARABIC_INDIC), text + "\u0301", "\ud800", "\u202e" + text,
        text + "\x00", text.lower(), "é" * 3, "😀", text + "\n" + text,
    ]))


def duplicate(rng, document):
    lists = [p for p in _nodes(document) if isinstance(_get(document, p), list) and _get(document, p)]
    target = _get(document, rng.choice(lists))
    target.insert(rng.randrange(len(target) + 1), copy.deepcopy(rng.choice(target)))
    return document


REFERENCES = re.compile(r"(campaign_id|adset_id|ad_id|entity_id|creative\.id|ad_ids\.\d+)$")


def dangling(rng, document):
    references = [p for p in _nodes(document) if REFERENCES.search(".".join(map(str, p)))]
    path = rng.choice(references)
    ids = [node["id"] for key in ("campaigns", "adsets", "ads") for node in document.get(key) or [] if isinstance(node, dict) and "id" in node]
    return _set(document, path, rng.choice(["987654321", *ids[:20]]))


def swap(rng, document):
    first, second = _pick(rng, document, leaves_only=True), _pick(rng, document, leaves_only=True)
    a, b = _get(document, first), _get(document, second)
    _set(document, first, b)
    return _set(document, second, a)


# Mutations a valid document survives: the format ignores unknown keys and list order, and names
# are any text. They make sure the "plans" side of the contract is exercised too.
def extra(rng, document):
    objects = [p for p in _nodes(document) if isinstance(_get(document, p), dict)] + [()]
    value = copy.deepcopy(rng.choice([*OTHER_VALUES, math.nan, 10**40, "\ud800", [[[[[[[[1]]]]]]]], {"id": "x" * 5000}]))
    _get(document, rng.choice(objects))[rng.choice(["colour", "ｉｄ", "id ", "\u00e9t\u00e9", "_extra"])] = value
    return document


def shuffle(rng, document):
    lists = [p for p in _nodes(document) if isinstance(_get(document, p), list)]
    rng.shuffle(_get(document, rng.choice(lists)))
    return document


def rename(rng, document):
    names = [p for p in _nodes(document) if p[-1] == "name"]
    return _set(document, rng.choice(names), rng.choice(["", "Ｂｌａｃｋ Ｆｒｉｄａｙ", "é" * 500, "😀 sale", "a\nb", "\u202eRTL", "x" * 10_000]))


def deep(rng, document) -> bytes:
    depth = rng.choice([64, 900, 5000, 50_000])
    _set(document, _pick(rng, document), "<<DEEP>>")
    return json.dumps(document).replace('"<<DEEP>>"', "[" * depth + "]" * depth).encode()


def not_utf8(rng, document) -> bytes:
    data = json.dumps(document).encode()
    at = rng.randrange(len(data))
    return data[:at] + rng.choice([b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80", "é".encode("latin-1")]) + data[at:]


def cut(rng, document) -> bytes:
    data = json.dumps(document).encode()
    return data[: rng.randrange(len(data))]


MUTATIONS: dict[str, Callable[[random.Random, dict], dict | bytes]] = {
    f.__name__: f for f in (
        drop, retype, non_finite, huge, negative, unicode, duplicate, dangling, swap, extra, shuffle, rename, deep, not_utf8, cut,
    )
}
BYTE_MUTATIONS = {"deep", "not_utf8", "cut"}  # they write the file themselves: the last mutation


def _mutant(base: str, number: int) -> tuple[list[str], dict | None, bytes]:
    """Mutant ``number`` of ``base``: the mutations applied, the document (None when the file is
    not a JSON dump of one) and the file's bytes."""
    rng = random.Random(f"{SEED}/{base}/{number}")
    document, names = copy.deepcopy(BASES[base]), []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        name = rng.choice(sorted(MUTATIONS))
        names.append(name)
        result = MUTATIONS[name](rng, document)
        if name in BYTE_MUTATIONS:
            return names, None, result
    return names, document, json.dumps(document).encode()  # ASCII: "\ud800" stays an escape, as JSON allows


# --- what the document allows: an independent check, not the parser's code ------------------------
ASCII_ID = re.compile(r"[0-9]+")
ASCII_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
TIMES = {"campaigns": "created_time", "adsets": "created_time", "ads": "created_time", "ab_tests": "started_at",
         "recent_actions": "executed_at"}


def _is_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (isinstance(value, str) and bool(ASCII_ID.fullmatch(value)))


def _whole(value: Any, maximum: int) -> bool:
    if isinstance(value, str):
        return bool(ASCII_ID.fullmatch(value)) and int(value) <= maximum
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _amount(value: Any, maximum: float) -> bool:
    if isinstance(value, str):
        return bool(ASCII_DECIMAL.fullmatch(value)) and float(value) <= maximum
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= maximum


def nonsense(document: dict) -> list[str]:
    """The issue's "accepted nonsense" in a document the parser accepted (so its shape is sound)."""
    found = [] if re.fullmatch(r"act_[0-9]+", str(document["account"]["id"])) and isinstance(document["account"]["id"], str) else ["account.id"]
    found += [] if isinstance(document["as_of"], str) else ["as_of"]
    for section, field in TIMES.items():
        found += [f"{section}.{field}" for row in document.get(section) or [] if not isinstance(row[field], str)]
    for section in ("campaigns", "adsets", "ads", "creatives"):
        for row in document.get(section) or []:
            found += [f"{section}.{key}" for key in ("id", "campaign_id", "adset_id") if key in row and not _is_id(row[key])]
            if row.get("daily_budget") is not None and not _whole(row["daily_budget"], 10**15):
                found.append(f"{section}.daily_budget")
    found += [f"creatives.approved: {c['approved']!r}" for c in document.get("creatives") or [] if not isinstance(c["approved"], bool)]
    for adset in document["adsets"]:
        countries = adset.get("targeting", {}).get("geo_locations", {}).get("countries", [])
        if not (isinstance(countries, list) and all(isinstance(c, str) and re.fullmatch(r"[A-Z]{2}", c) for c in countries)):
            found.append(f"adsets.targeting.geo_locations.countries: {countries!r}")
    for row in document.get("insights") or []:
        found += [f"insights.{key}" for key in ("impressions", "clicks") if not _whole(row[key], COUNT_MAX)]
        found += [] if _amount(row["spend"], 10**12) else ["insights.spend"]
        for entry in row.get("actions") or []:
            if not isinstance(entry["action_type"], str):
                found.append("insights.actions.action_type")
            elif entry["action_type"] == "purchase" and not _whole(entry["value"], int(row["impressions"])):
                found.append(f"insights.actions.value {entry['value']!r} (impressions {row['impressions']})")
    return found


# --- what an answer may look like ------------------------------------------------------------------
TABLES = documented_tables()
ELEMENT_TABLE = {"account": "account", "campaigns": "campaign", "adsets": "adset", "ads": "ad", "creatives": "creative",
                 "insights": "insight", "ab_tests": "ab_test", "recent_actions": "recent_action"}
FILE_PROBLEM = re.compile(r"(not UTF-8 text: byte 0x[0-9a-f]{2} at line \d+ column \d+|not valid JSON( at line \d+ column \d+)?: .+|must be a JSON object, got \w+)")
OBJECT_FIELD = re.compile(r"(?P<object>[a-z_]+)(?P<index>\[\d+\])?(?: \(id .*?\))?(?:\.(?P<field>[a-z_]+))?[.\[:]")


def _names_object_and_field(problem: str) -> bool:
    if FILE_PROBLEM.fullmatch(problem):
        return True
    found = OBJECT_FIELD.match(problem)
    if not found or found["object"] not in {row["name"] for row in TABLES["snapshot"]}:
        return False
    if found["field"] is None:  # the object itself: a whole section (campaigns: ...), or one element (insights[3]: ...)
        return found["index"] is not None or problem.startswith(f"{found['object']}:")
    return found["field"] in {row["name"] for row in TABLES[ELEMENT_TABLE.get(found["object"], "snapshot")]}


def problems_with(outcome: tuple[Any, str, str], document: dict | None) -> list[str]:
    """Why one run's (exit code or exception, stdout, stderr) breaks the contract; [] when it keeps it."""
    code, out, err = outcome
    if code == 0:
        try:
            plan = json.loads(out)
        except ValueError:
            plan = None
        if err or not isinstance(plan, dict) or set(plan) != PLAN_KEYS:
            return [f"exit 0 without a clean plan: {out[:100]!r} {err[:200]!r}"]
        return [f"accepted: {n}" for n in nonsense(document)] if document is not None else []
    if code != 2:
        return [f"not exit 0 or 2: {code!r}"]
    if out or err.count("\n") != 1 or not err.endswith("\n") or len(err) > 1500:
        return [f"exit 2 but not one short line on stderr: {err[:300]!r}"]
    if not err.startswith("meta-ads: snapshot rejected: "):
        return [f"exit 2 without 'meta-ads: snapshot rejected: ': {err!r}"]
    if not _names_object_and_field(err.removeprefix("meta-ads: snapshot rejected: ").rstrip("\n")):
        return [f"exit 2 without naming an object and field: {err!r}"]
    return []


def _run_plan(capsys, path) -> tuple[Any, str, str]:
    try:
        code = main(["plan", "--snapshot", str(path), "--format", "json"])
    except BaseException as exc:  # noqa: BLE001 - a traceback is exactly what this test looks for
        code = f"{type(exc).__name__}: {str(exc)[:200]}"
    out, err = capsys.readouterr()
    return code, out, err


def test_every_mutant_plans_or_is_refused_in_one_line_naming_object_and_field(capsys, tmp_path):
    failures, outcomes, applied = [], Counter(), Counter()
    path = tmp_path / "mutant.json"
    for base, count in MUTANTS.items():
        for number in range(count):
            names, document, data = _mutant(base, number)
            applied.update(names)
            path.write_bytes(data)
            outcome = _run_plan(capsys, path)
            outcomes["planned" if outcome[0] == 0 else "refused" if outcome[0] == 2 else "crashed"] += 1
            failures += [f"{base} #{number} {'+'.join(names)}: {p}" for p in problems_with(outcome, document)]
    assert not failures, f"{len(failures)} mutants broke the contract:\n" + "\n".join(failures[:20])
    # Not blind: the mutants reach both outcomes, and every mutation was tried.
    assert outcomes["planned"] >= 30 and outcomes["refused"] >= 200, outcomes
    assert set(applied) == set(MUTATIONS) and min(applied.values()) >= 10, applied


# --- the checks above are not blind ------------------------------------------------------------------
SEED_DOC = BASES["seed"]


@pytest.mark.parametrize(("outcome", "document"), [
    (("ValueError: boom", "", ""), None),  # a traceback
    ((1, "", "meta-ads: snapshot rejected: as_of: Field required\n"), None),
    ((2, "", "meta-ads: snapshot rejected: as_of: Field required\nTraceback...\n"), None),  # two lines
    ((2, "", "meta-ads: snapshot rejected: insights[0].colour: bad\n"), None),  # not a documented field
    ((2, "", "meta-ads: snapshot rejected: something went wrong\n"), None),  # names nothing
    ((0, json.dumps({key: None for key in PLAN_KEYS}), ""), {**SEED_DOC, "account": {**SEED_DOC["account"], "id": "act_12ab"}}),
    ((0, json.dumps({key: None for key in PLAN_KEYS}), ""), {**SEED_DOC, "creatives": [{"id": "1", "approved": "yes"}]}),
])
def test_the_contract_check_catches_what_it_must(outcome, document):
    assert problems_with(outcome, document)


def test_the_contract_check_accepts_the_parsers_answers():
    assert problems_with((2, "", "meta-ads: snapshot rejected: adsets[0] (id 100002).targeting.geo_locations.countries[0]: must be (got 1)\n"), None) == []
    assert problems_with((2, "", "meta-ads: snapshot rejected: not valid JSON at line 1 column 2: Expecting value\n"), None) == []
    assert nonsense(SEED_DOC) == [] and nonsense(BASES["demo"]) == []


# --- parser invariants (hypothesis) ---------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), value=JSON_VALUES)
def test_any_value_anywhere_is_parsed_or_refused_in_one_line(data, value):
    document = copy.deepcopy(SEED_DOC)
    paths = _nodes(document)
    _set(document, paths[data.draw(st.integers(0, len(paths) - 1))], value)
    try:
        parse_snapshot(document)
    except SnapshotError as exc:
        message = str(exc)
        assert message.startswith("snapshot rejected: ") and "\n" not in message and len(message) <= 1500
    else:
        assert nonsense(document) == []


@given(st.one_of(st.text(max_size=25), st.integers(), st.floats(), st.booleans(), st.none()))
def test_numbers_are_ascii_and_bounded(value):
    count, amount = whole_number(value, COUNT_MAX), money(value)
    if count is not None:
        assert 0 <= count <= COUNT_MAX and not isinstance(value, (bool, float))
        assert isinstance(value, int) or re.fullmatch(r"[0-9]+", value)
    if amount is not None:
        assert math.isfinite(amount) and 0 <= amount <= 10**12 and not isinstance(value, bool)
        assert not isinstance(value, str) or re.fullmatch(r"[0-9]+(\.[0-9]+)?", value)
