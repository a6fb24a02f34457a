"""The fast way to read a snapshot file: pyarrow's JSON reader, into typed columns.

A snapshot file's insights rows are its bulk (1.6 M rows, 650 MB at 10,000 campaigns). Decoded
by the standard JSON decoder they become 1.6 M dicts (about 4 GB of Python objects) before the
parser reads them column by column. Here pyarrow's JSON reader (C++) reads the document against
an explicit schema of the format (docs/snapshot-format.md): the insights into typed columns, the
structure (campaigns, ad sets, ads, ...) into the same Python values the standard decoder gives,
for the parser's pydantic models.

This is a fast path, never a second set of rules: it takes a document only when it can vouch
that the parser would see exactly what the standard decoder gives it, and answers None for
anything else, so that the caller parses the document the ordinary way, whose message names the
offending object and field:

- pyarrow refuses a value of another JSON type than the schema's (an id or a count given as a
  JSON number, a budget as a number), a key given twice, and whatever is not JSON;
- a known field that reads as null is taken only where the parser reads null and a missing field
  alike (``daily_budget``, ``learning_stage_info``, ``source_ad_id``, ``ab_tests``, ...): for
  any other field the two differ (a missing ``name`` is "", a null one is an error);
- the insights values must have the form the parser's vectorized readers accept (ids and counts
  as digit strings, money as decimal strings, dates and countries that read, at most one purchase
  entry a row); the frame is then the very one the parser builds.

``meta_ads_dagster_tests/engine/test_columnar.py`` compares both ways on valid documents and
checks that rejected ones fall back.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

INSIGHTS_KEY = "insights"
_TEXT = pa.string()
_INTEGER = pa.int64()
_ACTIONS = pa.list_(pa.struct([("action_type", _TEXT), ("value", _TEXT)]))
# The fields the parser reads from each insights row, all strings in a Graph API report.
_ROW = pa.struct(
    [(name, _TEXT) for name in ("ad_id", "adset_id", "campaign_id", "date_start", "date_stop", "country", "spend",
                                "impressions", "clicks")]
    + [("actions", _ACTIONS), ("action_values", _ACTIONS)]
)
_ROW_REQUIRED = ("ad_id", "adset_id", "campaign_id", "date_start", "date_stop", "country", "spend", "impressions", "clicks")

# The format, field by field: (type, whether null is taken). A type is a pyarrow scalar type, a
# dict (an object: its fields) or a one-item list (an array of that type, whose items are never null). Null is taken only where the parser
# reads a null and a missing field alike; fields not named here are the parser's to ignore.
Spec = tuple[Any, bool]
_REQUIRED_TEXT: Spec = (_TEXT, False)
_STRUCTURE: dict[str, Spec] = {
    "as_of": _REQUIRED_TEXT,
    "account": ({"id": _REQUIRED_TEXT, "currency": _REQUIRED_TEXT, "timezone_name": _REQUIRED_TEXT}, False),
    "campaigns": ([{
        "id": _REQUIRED_TEXT, "name": _REQUIRED_TEXT, "status": _REQUIRED_TEXT, "created_time": _REQUIRED_TEXT,
        "daily_budget": (_TEXT, True),
    }], False),
    "adsets": ([{
        "id": _REQUIRED_TEXT, "campaign_id": _REQUIRED_TEXT, "name": _REQUIRED_TEXT, "status": _REQUIRED_TEXT,
        "created_time": _REQUIRED_TEXT, "daily_budget": (_TEXT, True),
        "targeting": ({"geo_locations": ({"countries": ([_TEXT], False)}, False)}, False),
        "learning_stage_info": ({"status": _REQUIRED_TEXT, "conversions": (_INTEGER, True),
                                 "last_sig_edit_ts": (_INTEGER, True)}, True),
    }], False),
    "ads": ([{
        "id": _REQUIRED_TEXT, "adset_id": _REQUIRED_TEXT, "campaign_id": _REQUIRED_TEXT, "name": _REQUIRED_TEXT,
        "status": _REQUIRED_TEXT, "created_time": _REQUIRED_TEXT, "creative": ({"id": _REQUIRED_TEXT}, False),
        "source_ad_id": (_TEXT, True),
    }], False),
    "creatives": ([{"id": _REQUIRED_TEXT, "approved": (pa.bool_(), False)}], False),
    "ab_tests": ([{"id": _REQUIRED_TEXT, "ad_ids": ([_TEXT], False), "started_at": _REQUIRED_TEXT}], True),
    "recent_actions": ([{
        "entity_type": _REQUIRED_TEXT, "entity_id": _REQUIRED_TEXT, "type": _REQUIRED_TEXT, "executed_at": _REQUIRED_TEXT,
    }], True),
}


def _arrow_type(kind: Any) -> pa.DataType:
    if isinstance(kind, dict):
        return pa.struct([(name, _arrow_type(spec[0])) for name, spec in kind.items()])
    if isinstance(kind, list):
        return pa.list_(_arrow_type(kind[0]))
    return kind


_SCHEMA = pa.schema([(name, _arrow_type(kind)) for name, (kind, _) in _STRUCTURE.items()] + [(INSIGHTS_KEY, pa.list_(_ROW))])
# The whole document is one JSON object, read as one row however it is laid out. Fields the
# format does not name are inferred (and then ignored), as the parser ignores them.
_PARSE = pa_json.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="infer", newlines_in_values=True)
# Only the account's id (the settings' look at a stub file); the rest is checked as JSON, not read.
ACCOUNT_ID_ONLY = pa_json.ParseOptions(
    explicit_schema=pa.schema([("account", pa.struct([("id", _TEXT)]))]), unexpected_field_behavior="ignore", newlines_in_values=True,
)


def read_document(source: bytes | Path, parse: pa_json.ParseOptions = _PARSE) -> pa.Table | None:
    """``source`` (a file's bytes, or the file) as a one-row table of the format's schema (or of
    ``parse``'s), or None when pyarrow cannot read it so (not one JSON object, a value of another
    type than the schema's, a key given twice, a file that cannot be read)."""
    try:
        with (io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")) as file:
            if file.read(3) == b"\xef\xbb\xbf":
                return None  # a byte order mark: the standard decoder refuses it, pyarrow would skip it
            file.seek(0)
            size = len(source) if isinstance(source, bytes) else os.fstat(file.fileno()).st_size
            # The block holds the whole document: a block ends at a line's end, and a file laid
            # out over many lines is still one object.
            options = pa_json.ReadOptions(use_threads=False, block_size=max(size + 1, 1 << 20))
            table = pa_json.read_json(file, read_options=options, parse_options=parse)
    except (pa.ArrowException, ValueError, OverflowError, OSError):
        return None
    return table if table.num_rows == 1 else None


# Newline-delimited insights rows, one object a line (the stub's insights file).
_ROWS_PARSE = pa_json.ParseOptions(explicit_schema=pa.schema(list(_ROW)), unexpected_field_behavior="infer")


def read_rows(path: Path) -> dict[str, pa.Array] | None:
    """The insights rows of a file of one row a line, as their fields (:func:`insights_columns`
    takes them), or None when pyarrow cannot read them as the expected strings."""
    try:
        table = pa_json.read_json(path, read_options=pa_json.ReadOptions(use_threads=False), parse_options=_ROWS_PARSE)
    except (pa.ArrowException, ValueError, OverflowError, OSError):
        return None
    return {name: table.column(name).combine_chunks() for name in _ROW.names}


# A page of a Graph API insights report, as the live client reads the report: {"data": [rows],
# "paging": {"cursors": {"after": ...}, "next": ...}}. Other fields are inferred (and ignored).
_PAGE_PARSE = pa_json.ParseOptions(
    explicit_schema=pa.schema([
        ("data", pa.list_(_ROW)), ("paging", pa.struct([("cursors", pa.struct([("after", _TEXT)])), ("next", _TEXT)])),
    ]),
    unexpected_field_behavior="infer", newlines_in_values=True,
)


def read_page(body: bytes) -> tuple[dict[str, pa.Array], dict[str, Any] | None] | None:
    """A report page's rows as their fields (:func:`insights_columns` takes them; an action entry's
    other fields, such as its attribution windows' values, left out) and its ``paging`` (None where
    it is null or missing, and so are its parts), or None when pyarrow cannot read the page so, its
    ``data`` is not a list of objects, or a row has a field the format does not name (the live
    client's SDK reads such a row its own way)."""
    table = read_document(body, _PAGE_PARSE)
    if table is None:
        return None
    lists = table.column("data").combine_chunks()
    rows = None if lists.null_count else lists.flatten()
    if rows is None or rows.null_count or rows.type.num_fields != _ROW.num_fields:
        return None
    # One type a field for every page (an entry's inferred fields differ from page to page).
    fields = {name: field.cast(_ROW.field(name).type) for name, field in fields_of(rows).items()}
    return fields, table.column("paging").to_pylist()[0]


def fields_of(objects: pa.StructArray) -> dict[str, pa.Array]:
    """An object array's fields by name (the schema's, then any pyarrow inferred beside them)."""
    return {objects.type.field(i).name: child for i, child in enumerate(objects.flatten())}


def _nulls_taken(array: pa.Array, kind: Any) -> bool:
    """Whether every null in ``array``'s fields and items is one the spec takes, recursing. A
    field inherits its object's nulls, so only nulls beyond the object's own count."""
    if isinstance(kind, dict):
        children = fields_of(array)
        for name, (child_kind, nullable) in kind.items():
            child = children[name]
            if (not nullable and child.null_count > array.null_count) or not _nulls_taken(child, child_kind):
                return False
        return True
    if isinstance(kind, list):
        items = array.flatten()
        return items.null_count == 0 and _nulls_taken(items, kind[0])
    return True


def structure_document(table: pa.Table) -> dict[str, Any] | None:
    """The document's structure (everything but its insights) as the standard decoder gives it,
    or None when a known field reads as null where the parser would tell null from missing."""
    document = {}
    for name, (kind, nullable) in _STRUCTURE.items():
        column = table.column(name).combine_chunks()
        if (column.null_count and not nullable) or not _nulls_taken(column, kind):
            return None
        document[name] = column.to_pylist()[0]
    return document | {INSIGHTS_KEY: []}


def insights_rows(table: pa.Table) -> pa.Array | None:
    """The insights rows as one struct array, or None if the list or a row is null."""
    lists = table.column(INSIGHTS_KEY).combine_chunks()
    if lists.null_count:
        return None
    rows = lists.flatten()
    return None if rows.null_count else rows


DIGITS = r"^[0-9]+$"
COUNT_DIGITS = r"^[0-9]{1,18}$"  # 18 digits always fit int64, as the parser's reader requires
DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
MONEY_LENGTH = 40


def _all(mask: pa.Array) -> bool:
    return bool(pc.all(mask).as_py()) if len(mask) else True


def _distinct(column: pa.Array, read: Callable[[list], pd.Series]) -> pd.Series | None:
    """``read`` of each distinct value, spread back over the rows; None if one does not read."""
    encoded = column.dictionary_encode()
    values = read(encoded.dictionary.to_pylist())
    if values.isna().any():
        return None
    return values.take(encoded.indices.to_numpy()).reset_index(drop=True)


def _texts(column: pa.Array, rule: str) -> np.ndarray | None:
    """Python strings of ``column`` (each distinct one made once), if every one matches ``rule``."""
    encoded = column.dictionary_encode()
    distinct = encoded.dictionary
    if not _all(pc.match_substring_regex(distinct, rule)):
        return None
    return np.array(distinct.to_pylist(), dtype=object)[encoded.indices.to_numpy()]


def _counts(column: pa.Array, maximum: int) -> np.ndarray | None:
    if not _all(pc.match_substring_regex(column, COUNT_DIGITS)):
        return None
    numbers = column.cast(pa.int64()).to_numpy()
    return numbers if not len(numbers) or numbers.max() <= maximum else None


def _amounts(column: pa.Array, maximum: float) -> np.ndarray | None:
    if len(column) and (pc.max(pc.utf8_length(column)).as_py() > MONEY_LENGTH or not _all(pc.match_substring_regex(column, DECIMAL))):
        return None
    # float() of each string, as the parser does: the same correctly rounded doubles.
    numbers = column.to_numpy(zero_copy_only=False).astype(np.float64)
    return numbers if not len(numbers) or numbers.max() <= maximum else None


def _purchases(lists: pa.Array, read: Callable[[pa.Array], np.ndarray | None]) -> np.ndarray | None:
    """Per row, the value of its ``purchase`` entry (0 without one); None if an entry lacks a
    field, a row has two, or a value does not read."""
    entries = lists.flatten()
    if entries.null_count:
        return None
    entry = fields_of(entries)
    action_type, value = entry["action_type"], entry["value"]
    if action_type.null_count or value.null_count:
        return None
    purchase = pc.equal(action_type, "purchase").to_numpy(zero_copy_only=False)
    rows = pc.list_parent_indices(lists).to_numpy()[purchase]
    if (np.diff(rows) == 0).any():
        return None
    numbers = read(value.filter(pa.array(purchase)))
    if numbers is None:
        return None
    totals = np.zeros(len(lists))
    totals[rows] = numbers
    return totals


def insights_columns(fields: dict[str, pa.Array], read_dates: Callable[[list], pd.Series],
                     read_countries: Callable[[list], pd.Series], count_max: int, money_max: float) -> dict[str, Any] | None:
    """The parser's insights columns (``snapshot.INSIGHT_COLUMNS``) from the rows' ``fields``
    (:func:`fields_of`), or None when one value is not what the parser's vectorized readers
    accept (``read_dates`` and ``read_countries`` are its readers: missing where a value is bad).
    ``fields`` is emptied as they are read, so that each lets its memory go."""
    if any(fields[name].null_count for name in _ROW_REQUIRED):
        return None
    if not _all(pc.equal(fields["date_start"], fields.pop("date_stop"))):
        return None
    countries = _distinct(fields.pop("country"), read_countries)  # the code itself where it reads
    if countries is None:
        return None
    columns = {
        **{name: _texts(fields.pop(name), DIGITS) for name in ("ad_id", "adset_id", "campaign_id")},
        "date": _distinct(fields.pop("date_start"), read_dates),
        "country": countries.to_numpy(dtype=object),
        "spend": _amounts(fields.pop("spend"), money_max),
        **{name: _counts(fields.pop(name), count_max) for name in ("impressions", "clicks")},
        "purchases": _purchases(fields.pop("actions"), lambda values: _counts(values, count_max)),
        "revenue": _purchases(fields.pop("action_values"), lambda values: _amounts(values, money_max)),
    }
    return None if any(column is None for column in columns.values()) else columns
