"""The fast way to read a snapshot file: pyarrow's JSON reader, into typed columns.

A snapshot file's insights rows are its bulk (1.6 M rows, 650 MB at 10,000 campaigns). Decoded
by the standard JSON decoder they become 1.6 M dicts (about 4 GB of Python objects) before the
parser reads them column by column. Here pyarrow's JSON reader (C++) reads the document against
an explicit schema of the format (docs/snapshot-format.md) into typed columns: the insights, and
the structure's long lists (campaigns, ad sets, ads, creatives), whose frames are built from
their columns; the rest of the structure (as_of, account, A/B tests, recent actions) becomes the
same Python values the standard decoder gives, for the parser's pydantic models.

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
  entry a row); the frame is then the very one the parser builds;
- a long list's columns must pass checks that take a subset of what its pydantic model takes;
  a list that does not is handed to the model as the standard decoder gives it (the model's
  message names the object and field, and the document then goes the ordinary way).

``meta_ads_dagster_tests/engine/test_columnar.py`` compares both ways on valid documents and
checks that rejected ones fall back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from .snapshot import (
    AD_COLUMNS, ADSET_COLUMNS, BUDGET_MAX, CAMPAIGN_COLUMNS, COUNT_MAX, CREATIVE_COLUMNS, EPOCH_MAX, LEARNING_STATUSES, STATUSES,
    epoch_utc, iso_time, utc_times,
)

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


def _reading_pool() -> pa.MemoryPool:
    """The memory pool pyarrow's JSON reader allocates from: jemalloc where pyarrow has it. On
    the 650 MB file the read took 5.1 s CPU and a 1,450 MB peak from mimalloc (pyarrow's default
    on Linux), 3.9 s and 1,370 MB from jemalloc, which gives freed pages back at once."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it (Windows)
        return pa.default_memory_pool()


_POOL = _reading_pool()


def read_document(source: bytes | Path, parse: pa_json.ParseOptions = _PARSE) -> pa.Table | None:
    """``source`` (a file's bytes, or the file) as a one-row table of the format's schema (or of
    ``parse``'s), or None when pyarrow cannot read it so (not UTF-8, not one JSON object, a value
    of another type than the schema's, a key given twice, a file that cannot be read)."""
    try:
        if isinstance(source, bytes):
            data = pa.py_buffer(source)
        else:
            with pa.OSFile(str(source), memory_pool=_POOL) as file:
                data = file.read_buffer()  # read once: checked as UTF-8, then parsed in place
        # A byte order mark: the standard decoder refuses it, pyarrow would skip it. Bytes that
        # are not UTF-8: pyarrow would take them into strings as they are.
        if data.slice(0, 3).to_pybytes() == b"\xef\xbb\xbf" or not _utf8(data):
            return None
        # The block holds the whole document: a block ends at a line's end, and a file laid out
        # over many lines is still one object.
        options = pa_json.ReadOptions(use_threads=False, block_size=max(data.size + 1, 1 << 20))
        table = pa_json.read_json(pa.BufferReader(data), read_options=options, parse_options=parse, memory_pool=_POOL)
    except (pa.ArrowException, ValueError, OverflowError, OSError):
        return None
    return table if table.num_rows == 1 else None


def _utf8(data: pa.Buffer) -> bool:
    """Whether ``data`` is UTF-8, as the standard decoder requires of a file (Arrow's check gives
    Python's strict codec's answer on every byte sequence tried; 0.03 s CPU for 650 MB, the codec
    0.4 s)."""
    offsets = pa.array([0, data.size], pa.int64()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, data]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def column_of(table: pa.Table, name: str) -> pa.Array:
    """A table's column as one array (pyarrow's combine_chunks copies even a lone chunk: 290 MB
    for the insights at 10,000 campaigns)."""
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


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


def structure(table: pa.Table) -> tuple[dict[str, Any], dict[str, pd.DataFrame]] | None:
    """The document's structure (everything but its insights) as the standard decoder gives it,
    but for the long lists whose columns pass the checks below: those as the parser's frames, and
    empty in the document. None when a known field reads as null where the parser would tell null
    from missing."""
    document, frames = {}, {}
    for name, (kind, nullable) in _STRUCTURE.items():
        column = column_of(table, name)
        if (column.null_count and not nullable) or not _nulls_taken(column, kind):
            return None
        items = column.flatten() if name in _LONG_LISTS else None
        frame = _LONG_LISTS[name](fields_of(items)) if items is not None and len(items) else None
        if frame is None:
            document[name] = column.to_pylist()[0]
        else:
            frames[name], document[name] = frame, []
    return document | {INSIGHTS_KEY: []}, frames


def insights_rows(table: pa.Table) -> pa.Array | None:
    """The insights rows as one struct array, or None if the list or a row is null."""
    lists = column_of(table, INSIGHTS_KEY)
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
    # Arrow's parse of a decimal is correctly rounded, as float() of each string (the parser's)
    # is: the same doubles, without a Python string per row.
    numbers = column.cast(pa.float64()).to_numpy()
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


# The structure's long lists (campaigns, ad sets, ads, creatives: 230,000 objects at 10,000
# campaigns) are read column by column, not as an object per item for the parser's pydantic
# models (2.8 s CPU and 400 MB there). Each column is checked against the models' rules at C speed
# or once per distinct value; the checks take a subset of what the models take, and a list with a
# value they cannot vouch for goes to the models as the standard decoder gives it, so that a bad
# value gets their message naming the object and field. A list's frame is the one the parser
# builds from the models (the same columns, values and dtypes).
COUNTRY = r"^[A-Z]{2}$"


def _matching(column: pa.Array, rule: str) -> bool:
    """Whether every present value of ``column`` matches ``rule``."""
    return _all(pc.match_substring_regex(column.drop_null(), rule))


def _among(column: pa.Array, values: tuple[str, ...]) -> bool:
    return _all(pc.is_in(column.drop_null(), value_set=pa.array(values)))


def _within(numbers: pa.Array, maximum: int) -> bool:
    """Whether every present number is from 0 to ``maximum``."""
    bounds = pc.min_max(numbers).as_py()
    return numbers.null_count == len(numbers) or (bounds["min"] >= 0 and bounds["max"] <= maximum)


def _ids(column: pa.Array) -> pd.Series | None:
    return column.to_pandas() if _matching(column, DIGITS) else None


def _optional(column: pa.Array) -> pd.Series:
    """A column with missing values as the parser's frame holds it: pandas infers its dtype from
    the values (text with NaN, or objects when every value is missing)."""
    return pd.Series(column.to_pylist())


def _optional_ids(column: pa.Array) -> pd.Series | None:
    return _optional(column) if _matching(column, DIGITS) else None


def _statuses(column: pa.Array, statuses: tuple[str, ...] = STATUSES) -> pd.Series | None:
    return column.to_pandas() if _among(column, statuses) else None


def _times(column: pa.Array) -> pd.Series | None:
    """``iso_time`` of each distinct value, as UTC timestamps."""
    encoded = column.dictionary_encode()
    try:
        moments = [iso_time(value) for value in encoded.dictionary.to_pylist()]
    except ValueError:
        return None
    return utc_times(pd.Series(moments, dtype=object)).take(encoded.indices.to_numpy()).reset_index(drop=True)


def _integers(numbers: pa.Array, maximum: int) -> pd.Series | None:
    """Whole numbers (or missing) as Int64, if each is from 0 to ``maximum``."""
    return numbers.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get) if _within(numbers, maximum) else None


def _budgets(column: pa.Array) -> pd.Series | None:
    return _integers(column.cast(pa.int64()), BUDGET_MAX) if _matching(column, COUNT_DIGITS) else None


def _frame(columns: list[str], values: list[pd.Series | None]) -> pd.DataFrame | None:
    if any(value is None for value in values):
        return None
    return pd.DataFrame(dict(zip(columns, values)), columns=columns)


def _campaigns(fields: dict[str, pa.Array]) -> pd.DataFrame | None:
    return _frame(CAMPAIGN_COLUMNS, [
        _ids(fields["id"]), fields["name"].to_pandas(), _statuses(fields["status"]), _times(fields["created_time"]),
        _budgets(fields["daily_budget"]),
    ])


def _adsets(fields: dict[str, pa.Array]) -> pd.DataFrame | None:
    countries = fields_of(fields_of(fields["targeting"])["geo_locations"])["countries"]
    learning = fields_of(fields["learning_stage_info"])  # missing where the ad set has none
    if not (_matching(countries.flatten(), COUNTRY) and _among(learning["status"], LEARNING_STATUSES)):
        return None
    return _frame(ADSET_COLUMNS, [
        _ids(fields["id"]), _ids(fields["campaign_id"]), fields["name"].to_pandas(), _statuses(fields["status"]),
        _times(fields["created_time"]), _budgets(fields["daily_budget"]),
        pd.Series(list(map(tuple, countries.to_pylist())), dtype=object),
        _optional(learning["status"]), _integers(learning["conversions"], COUNT_MAX),
        epoch_utc(edits) if (edits := _integers(learning["last_sig_edit_ts"], EPOCH_MAX)) is not None else None,
    ])


def _ads(fields: dict[str, pa.Array]) -> pd.DataFrame | None:
    return _frame(AD_COLUMNS, [
        _ids(fields["id"]), _ids(fields["adset_id"]), _ids(fields["campaign_id"]), fields["name"].to_pandas(),
        _statuses(fields["status"]), _times(fields["created_time"]), _ids(fields_of(fields["creative"])["id"]),
        _optional_ids(fields["source_ad_id"]),
    ])


def _creatives(fields: dict[str, pa.Array]) -> pd.DataFrame | None:
    # approved: the schema's JSON true/false, never null (StrictBool's rule)
    return _frame(CREATIVE_COLUMNS, [_ids(fields["id"]), pd.Series(fields["approved"].to_numpy(zero_copy_only=False))])


_LONG_LISTS: dict[str, Callable[[dict[str, pa.Array]], pd.DataFrame | None]] = {
    "campaigns": _campaigns, "adsets": _adsets, "ads": _ads, "creatives": _creatives,
}


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
