"""Real data in: a CSV of ad performance → an account snapshot (docs/snapshot-format.md) that
``meta-ads plan`` and the stub read (``meta-ads import-csv``).

Two formats: an Ads Manager export (``ads_manager.py``) and the public KAG data set (``kag.py``),
told apart by the header unless named. Both become the same normalized rows, checked and turned
into a snapshot one way (``build.py``, where the assumptions about what a file does not say live).
Plain Python and pandas: no Dagster here, and the engine never imports this package; it only uses
the engine's parser to refuse to hand out a snapshot the engine would reject.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path

from .ads_manager import read_ads_manager
from .build import DEFAULT_COUNTRY, Imported, build_snapshot, check_rows
from .kag import is_kag, read_kag
from .table import CsvImportError, Table

FORMATS = ("ads-manager", "kag")

__all__ = ["FORMATS", "CsvImportError", "Imported", "import_csv", "write_json_atomically"]


def import_csv(
    data: bytes, *, file_format: str | None = None, value_per_conversion: float | None = None, currency: str | None = None,
    country: str | None = None, as_of: datetime | None = None, account_id: str | None = None, timezone_name: str = "UTC",
) -> Imported:
    """The snapshot of a CSV file's bytes, or CsvImportError naming the row and column.

    ``file_format``: one of FORMATS, None to tell by the header. ``value_per_conversion``: required for
    the KAG data (it has no revenue), refused otherwise. ``currency``: the KAG data's (USD unless
    given); an Ads Manager export names its own, which a given one must match. ``country``: of every
    row of a file without countries (DEFAULT_COUNTRY unless given). ``as_of``, ``account_id``,
    ``timezone_name`` (the account's IANA time zone, whose days the file's are): see ``build.py``.
    """
    table = Table.read(data)
    file_format = file_format or ("kag" if is_kag(table) else "ads-manager")
    if file_format == "kag":
        if value_per_conversion is None:
            raise CsvImportError("the KAG data has no revenue: give --value-per-conversion (the value of one approved conversion)")
        rows = read_kag(table, value_per_conversion, currency or "USD", country or DEFAULT_COUNTRY)
    else:
        if value_per_conversion is not None:
            raise CsvImportError("--value-per-conversion is for the KAG data only: an Ads Manager export has its own conversion value")
        rows = read_ads_manager(table, currency, country)
    check_rows(table, rows)
    return build_snapshot(rows, as_of, account_id, timezone_name)


def write_json_atomically(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temporary file in the same folder, renamed
    over ``path`` once complete, so a failure never leaves half a file (or a changed old one)."""
    # Not tempfile.mkstemp: its file is private (0600) and would stay so after the rename; "x"
    # creates a new file with the umask's mode, like any file the user writes.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
