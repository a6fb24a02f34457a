"""A CSV file read as text cells with the line each row starts on, and the cell rules every import
format shares. Every problem is a :class:`CsvImportError` naming the row (its line in the file,
the header being line 1) and the column, e.g. ``row 17, column "Impressions": "12x" is not a whole
number``. A column's cells are checked all at once; of several bad cells the one on the earliest
row is reported, so a person fixing a file top to bottom meets the errors in order."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..engine.snapshot import COUNT_MAX, MONEY_MAX, YEARS
from ..input_rules import ECHO_MAX, echo, utf8_text

DIGITS = r"[0-9]+"
DECIMAL = r"[0-9]+(?:\.[0-9]+)?"  # as exports write money: "12.34"; no sign, exponent or separators
DECIMAL_COMMA = r"[0-9]+(?:,[0-9]+)?"  # "12,34": a spreadsheet in a European locale
NEGATIVE = r"-[0-9]+(?:[.,][0-9]+)?"
COUNTRY = r"[A-Z]{2}"


def quoted(cell: str) -> str:
    """A cell in a message: in double quotes like a CSV cell, escaped, cut short when long."""
    return json.dumps(cell, ensure_ascii=False) if len(cell) <= ECHO_MAX else echo(cell)


class CsvImportError(ValueError):
    """The file cannot become a snapshot; the message is one line naming the row and column."""


@dataclass
class Table:
    """The cells of a CSV file as strings (a frame with the header's columns) and, per row, the
    line of the file it starts on (a quoted cell may hold a line break, so rows and lines differ)."""

    cells: pd.DataFrame
    lines: np.ndarray
    delimiter: str = ","
    problems: list[tuple[int, int, str]] = field(default_factory=list)

    @classmethod
    def read(cls, data: bytes) -> "Table":
        try:
            text = utf8_text(data).removeprefix("\ufeff")  # spreadsheet programs start a UTF-8 CSV with a BOM
        except ValueError as exc:
            raise CsvImportError(str(exc)) from None
        delimiter = _delimiter(text)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        records, lines, start = [], [], 1
        try:
            for record in reader:
                if any(cell.strip() for cell in record):  # blank lines (a trailing one) are not rows
                    records.append(record)
                    lines.append(start)
                start = reader.line_num + 1
        except csv.Error as exc:
            raise CsvImportError(f"row {start}: not valid CSV: {exc}") from None
        if not records:
            raise CsvImportError("the file is empty: no header line")
        header = [name.strip() for name in records[0]]
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise CsvImportError(f"the header names column {quoted(repeated[0])} twice")
        for record, line in zip(records[1:], lines[1:]):
            if len(record) != len(header):
                raise CsvImportError(f"row {line}: {len(record)} cells, but the header has {len(header)} columns")
        if len(records) == 1:
            raise CsvImportError("the file has a header but no rows")
        cells = pd.DataFrame(records[1:], columns=header, dtype=object).apply(lambda column: column.str.strip())
        return cls(cells, np.array(lines[1:]), delimiter)

    @property
    def columns(self) -> list[str]:
        return list(self.cells.columns)

    def require(self, *columns: str) -> None:
        missing = [column for column in columns if column not in self.cells.columns]
        if missing:
            names = ", ".join(f'"{column}"' for column in missing)
            raise CsvImportError(f"missing column{'s' if len(missing) > 1 else ''} {names} (the header has: {', '.join(self.columns)})")

    # --- cell rules: each notes its column's first bad row; raise_first_problem reports the earliest ---
    def note(self, bad: pd.Series, column: str, message: str) -> None:
        """Note the first row where ``bad`` holds; ``message`` may use {value} (the cell, quoted)."""
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            self.note_at(row, column, message.format(value=quoted(self.cells[column].iloc[row])))

    def note_at(self, row: int, column: str, message: str) -> None:
        """Note a problem of the row at position ``row`` (0 = the first after the header)."""
        self.problems.append((self.line(row), self.columns.index(column), message))

    def line(self, row: int) -> int:
        return int(self.lines[row])

    def raise_first_problem(self) -> None:
        if self.problems:
            line, column, message = min(self.problems)
            raise CsvImportError(f'row {line}, column "{self.columns[column]}": {message}')

    def names(self, column: str) -> pd.Series:
        values = self.cells[column]
        self.note(values == "", column, "is empty; every row needs a name (the export's summary row? export without it)")
        return values

    def whole_numbers(self, column: str, blank_is_zero: bool = False) -> pd.Series:
        values = self._cells(column, blank_is_zero)
        self._note_negative(values, column)
        digits = values.str.fullmatch(DIGITS)
        self.note(~digits & ~values.str.fullmatch(NEGATIVE), column, "{value} is not a whole number")
        return self._at_most(values.where(digits, "0").astype("float64"), COUNT_MAX, column).astype("int64")

    def amounts(self, column: str, blank_is_zero: bool = False) -> pd.Series:
        """Amounts as exports write them: "12.34"; in a semicolon-separated file (a spreadsheet in a
        European locale) a column that writes a decimal comma anywhere writes it everywhere: "12,34",
        and a "12.34" there is refused rather than guessed (it could be 1234 with a thousands dot)."""
        values = self._cells(column, blank_is_zero)
        self._note_negative(values, column)
        if self.delimiter == ";" and values.str.fullmatch(r"[0-9]+,[0-9]+").any():
            decimal = values.str.fullmatch(DECIMAL_COMMA)
            self.note(~decimal & ~values.str.fullmatch(NEGATIVE), column,
                      "{value} is not an amount (this column writes decimals with a comma: 12,34)")
            values = values.str.replace(",", ".", regex=False)
        else:
            decimal = values.str.fullmatch(DECIMAL)
            self.note(~decimal & ~values.str.fullmatch(NEGATIVE), column,
                      "{value} is not an amount (digits with an optional decimal point: 12.34)")
        return self._at_most(values.where(decimal, "0").astype("float64"), MONEY_MAX, column)

    def ids(self, column: str) -> pd.Series:
        values = self.cells[column]
        self.note(~values.str.fullmatch(DIGITS), column, "{value} is not an id (digits 0-9)")
        return values

    def days(self, column: str, form: str, example: str) -> pd.Series:
        """Dates in the strftime ``form``, exactly: a day that does not exist (31 April) is bad, and
        so is one that strptime would read but not write back ("2026-1-5")."""
        days = pd.to_datetime(self.cells[column], format=form, errors="coerce")
        self.note(days.dt.strftime(form) != self.cells[column], column, f"{{value}} is not a date {example}")
        in_years = days.isna() | days.dt.year.between(*YEARS)
        self.note(~in_years, column, f"{{value}} is not in the years {YEARS[0]} to {YEARS[1]}")
        return days

    def countries(self, column: str) -> pd.Series:
        # Meta reports the spend it cannot place as the country "unknown" (Ads Manager: "Unknown").
        values = self.cells[column].where(self.cells[column].str.lower() != "unknown", "unknown")
        self.note(~values.str.fullmatch(COUNTRY) & (values != "unknown"), column,
                  "{value} is not a two-letter country code in capitals (ES) or Unknown")
        return values

    def optional_ids(self, column: str) -> pd.Series | None:
        """The column's ids when the file has the column (None when not)."""
        return self.ids(column) if column in self.cells.columns else None

    def _cells(self, column: str, blank_is_zero: bool) -> pd.Series:
        return self.cells[column].replace("", "0") if blank_is_zero else self.cells[column]

    def _note_negative(self, values: pd.Series, column: str) -> None:
        self.note(values.str.fullmatch(NEGATIVE), column, "{value} is negative")

    def _at_most(self, numbers: pd.Series, maximum: int, column: str) -> pd.Series:
        # Floats hold every whole number up to 2^53 exactly, far past the bounds (the snapshot
        # format's): a longer number is past them too, however it rounds.
        self.note(numbers > maximum, column, f"{{value}} is more than {maximum:,}: a unit mistake?")
        return numbers.where(numbers <= maximum, 0.0)


def _delimiter(text: str) -> str:
    """"," unless the header line splits into more columns on ";": spreadsheets in locales whose
    decimal mark is a comma (most of Europe) save "CSV" separated by semicolons. No header name
    holds either character, so the header tells."""
    first_line = text.split("\n", 1)[0]
    columns = {mark: len(next(csv.reader([first_line], delimiter=mark), [])) for mark in ",;"}
    return ";" if columns[";"] > columns[","] else ","
