"""Entities as columns of numpy arrays, one row per entity, so that a market interval is a handful
of array operations over every ad at once instead of a Python loop per ad."""

from __future__ import annotations

from typing import Any

import numpy as np


class Table:
    """Named arrays of equal length along their first axis (a column may have more axes: an ad's
    insights window is ``(countries, days)``). Rows are only ever added, never removed."""

    def __init__(self, columns: dict[str, np.ndarray]):
        self.columns = columns

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        self.columns[name] = values

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def append(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """Add rows; a column absent from ``rows`` gets zeros. Returns the new rows' indices."""
        count = len(next(iter(rows.values())))
        start = len(self)
        for name, column in self.columns.items():
            new = rows[name] if name in rows else np.zeros((count,) + column.shape[1:], column.dtype)
            self.columns[name] = np.concatenate([column, np.asarray(new, dtype=column.dtype)])
        return np.arange(start, start + count)

    def to_state(self) -> dict[str, Any]:
        return {name: {"dtype": column.dtype.str, "shape": list(column.shape), "values": column.ravel().tolist()} for name, column in self.columns.items()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Table":
        return cls({name: np.array(c["values"], dtype=c["dtype"]).reshape(c["shape"]) for name, c in state.items()})

    @classmethod
    def empty(cls, spec: dict[str, tuple[str, tuple[int, ...]]]) -> "Table":
        """A table with no rows: ``spec`` maps each column to its dtype and per-row shape."""
        return cls({name: np.zeros((0,) + shape, dtype) for name, (dtype, shape) in spec.items()})
