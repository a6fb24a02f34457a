"""Paths to the files the tests read from this repository, and the documented field lists.

Everything lives inside the repository: the worked examples in ``examples/``, the public ad data in
``meta_ads_dagster_tests/data/``, and the snapshot / ``plan`` format in ``docs/snapshot-format.md``.
That document is the one source of truth for the field names: its tables marked
``<!-- fields: NAME -->`` are parsed here, and the tests hold the code's output to them.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent

SEED_SNAPSHOT_PATH = REPO_ROOT / "examples" / "seed_worked_examples.json"
DEMO_SNAPSHOT_PATH = REPO_ROOT / "examples" / "demo_account.json"
SNAPSHOT_FORMAT_DOC = REPO_ROOT / "docs" / "snapshot-format.md"
KAG_CSV = TESTS_DIR / "data" / "kag_conversion_data.csv"
ADS_MANAGER_CSV = TESTS_DIR / "data" / "ads_manager_export.csv"  # synthetic, see data/README.md

_MARKER = re.compile(r"<!--\s*fields:\s*([a-z_]+)\s*-->")
_NAME = re.compile(r"`([^`]+)`")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def documented_tables(text: str | None = None) -> dict[str, list[dict[str, str]]]:
    """Every ``<!-- fields: NAME -->`` table of the format document: NAME → its rows.

    A row is a dict from the (lower-cased) column headers to the cell texts, plus ``name``: the
    backticked word of its first cell. The table is the run of ``|`` lines right after the marker
    (blank lines before it are skipped); its second line is the header separator.
    """
    text = SNAPSHOT_FORMAT_DOC.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    tables: dict[str, list[dict[str, str]]] = {}
    for index, line in enumerate(lines):
        marker = _MARKER.fullmatch(line.strip())
        if not marker:
            continue
        name = marker.group(1)
        if name in tables:
            raise ValueError(f"{SNAPSHOT_FORMAT_DOC.name}: two tables marked fields: {name}")
        position = index + 1
        while position < len(lines) and not lines[position].strip():
            position += 1
        table = []
        while position < len(lines) and lines[position].lstrip().startswith("|"):
            table.append(lines[position])
            position += 1
        if len(table) < 3:
            raise ValueError(f"{SNAPSHOT_FORMAT_DOC.name}: fields: {name} is not followed by a table with rows")
        header = [cell.lower() for cell in _cells(table[0])]
        rows = []
        for row_line in table[2:]:
            cells = _cells(row_line)
            found = _NAME.search(cells[0])
            if not found:
                raise ValueError(f"{SNAPSHOT_FORMAT_DOC.name}: fields: {name}: no `name` in the first cell of {row_line!r}")
            rows.append({**dict(zip(header, cells)), "name": found.group(1)})
        tables[name] = rows
    return tables


def documented_names(table: str) -> list[str]:
    """The names listed in one table, in document order."""
    return [row["name"] for row in documented_tables()[table]]


# The plan output as docs/snapshot-format.md specifies it.
PLAN_KEYS = set(documented_names("plan"))
ACTION_KEYS = set(documented_names("action"))
STATS_KEYS = set(documented_names("stats"))
ACTION_TYPES = set(documented_names("action_type"))
ENTITY_TYPES = set(documented_names("entity_type"))
VERDICTS = set(documented_names("verdict"))
RULES = set(documented_names("rule"))


def write_generated_account(path: Path, campaigns: int, seed: int) -> Path:
    """A snapshot file from benchmarks/cycle_scale.py's generator (the accounts issue 14's figures
    are measured on), at ``path``."""
    spec = importlib.util.spec_from_file_location("cycle_scale", REPO_ROOT / "benchmarks" / "cycle_scale.py")
    cycle_scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cycle_scale)
    cycle_scale.write_account(path, campaigns, seed=seed)
    return path
