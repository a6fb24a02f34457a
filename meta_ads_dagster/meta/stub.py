"""Stub mode: serves an account snapshot instead of calling Meta, and keeps its state between runs.

The stub starts from ``META_STUB_SNAPSHOT`` (a SNAPSHOT.md file, or a directory holding one
``act_<digits>.json`` per account) or, when that is unset, from the deterministic demo account
(``demo.py``). Its state lives in two files per account under ``state_dir``, so the second cycle
sees the first one's budget changes, pauses and cooldowns: ``stub_<account>.json`` (the account's
structure, clock and recorded calls: small, rewritten by every write) and
``stub_<account>.insights.jsonl`` (the insights rows, one a line: the bulk of a large account,
rewritten only when they change, once a day when the clock passes midnight). The state names the
version of the insights it goes with; a client keeps the rows it last read and reads the file again
only when that version changes. A state file from before the split holds the insights itself:
they are read from it and get their own file at the next save.

Where the state starts from: a document is validated by the engine's parser before anything is
stored, so a rejected file never reaches ``state_dir`` (a stored one would fail every later cycle
with the same error, whatever file the variable named next). The state records its source (the
file's path and a SHA-256 of its content); when ``sync_insights`` (the start of a cycle) finds
the account's source changed since, it starts over from the new one and logs a warning saying
so. Starting over is what deleting the state file did by hand, and is safe: the ledger keeps
every row (cooldowns and already-sent writes still hold), and the next cycle's ``reconcile``
settles open writes against the account as the new file has it. A new source the parser rejects
leaves the state as it is.
Every write, and every ``sync_insights``, is appended to ``writes`` in that file. Several clients
may share one state (a cycle and a ``meta-ads rollback`` in another process, two threads): every
read loads the state file afresh under the file lock (the two files change together) and every
change is a read-modify-write under it, so no client ever overwrites another one's changes with a
stale copy.

Time: the stub's clock is the snapshot's ``as_of``. Each ``sync_insights`` after the first one
advances it by ``clock_step_minutes`` (the cycle interval), as if the cycles ran on schedule, so
a replay is reproducible and a 24 h cooldown can be tested without waiting a day. When the clock
passes midnight (account time) the insights history moves forward by the same days.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import get_dagster_logger
from pydantic import PrivateAttr

from ..engine.snapshot import AccountSnapshot, SnapshotError, decode_snapshot, no_cycle_collection, parse_snapshot, parse_with_insights_file
from .client import MetaAdsClient, Write
from ..settings import DEMO_ACCOUNT_ID
from ..store.filelock import file_lock
from .demo import demo_snapshot


# A Python logger whose records Dagster also puts in the run's event log (a restart shows in the UI).
logger = get_dagster_logger(__name__)


class StubWriteError(RuntimeError):
    """The stub was told (``fail_writes_for``) to refuse a write to this entity."""


class StubCrash(BaseException):
    """The process "dies" right after a write reached the account (``crash_after_write_for``).

    A BaseException, like a KeyboardInterrupt: no ``except Exception`` on the way catches it, so
    the ledger is left exactly as a killed process would leave it.
    """


class StubMetaAdsClient(MetaAdsClient):
    state_dir: str
    # A SNAPSHOT.md file (its one account), or a directory with one act_<digits>.json per account.
    snapshot_path: str | None = None
    clock_step_minutes: int = 30
    # Fault injection for tests: writes to these entity ids raise, as a Meta error would;
    # writes to crash_after_write_for land, then the "process dies" (StubCrash).
    fail_writes_for: list[str] = []
    crash_after_write_for: list[str] = []

    _state: dict[str, Any] | None = PrivateAttr(default=None)
    _in_change: bool = PrivateAttr(default=False)
    # The insights rows of the state's "insights_version" (None: not in their file yet), as this
    # client last read or wrote them; never changed in place (a fetched document shares the list).
    _insights: tuple[str | None, list[dict[str, Any]]] | None = PrivateAttr(default=None)
    _insights_changed: bool = PrivateAttr(default=False)

    # --- state ------------------------------------------------------------------------------------
    def _source(self) -> tuple[dict[str, str | None], bytes | None]:
        """The account's source as its state records it (the snapshot file's path and a hash of
        its content; both None for the demo account), and the file's bytes."""
        if not self.snapshot_path:
            return {"path": None, "sha256": None}, None
        path = Path(self.snapshot_path)
        if path.is_dir():
            if not self.account_id:
                raise ValueError(f"stub: {path} holds one snapshot per account; this client has no account (for_account)")
            path = path / f"{self.account_id}.json"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"stub snapshot {path}: cannot read it: {exc.strerror}") from None
        return {"path": str(path.resolve()), "sha256": hashlib.sha256(data).hexdigest()}, data

    def _new_state(self, source: dict[str, str | None], data: bytes | None) -> dict[str, Any]:
        """A state that starts from ``source``, whose document the engine's parser accepted (a
        SnapshotError naming the file otherwise): only a valid account is ever stored."""
        try:
            document = demo_snapshot(self.account_id or DEMO_ACCOUNT_ID) if data is None else decode_snapshot(data)
            held = parse_snapshot(document).account_id
            if self.account_id and held != self.account_id:
                # The state file is named after this account: another account's data would be
                # stored (and served) under its name.
                raise SnapshotError(f"account.id: the snapshot is of {held}, not of {self.account_id}")
        except SnapshotError as exc:
            raise SnapshotError(f"stub snapshot {source['path'] or 'demo account'}: {exc}") from None
        return {"source": source, "snapshot": document, "syncs": 0, "writes": []}

    def _state_file(self) -> Path:
        if self.account_id:
            name = self.account_id
        elif self.snapshot_path:
            name = Path(self.snapshot_path).stem
        else:
            name = DEMO_ACCOUNT_ID
        return Path(self.state_dir) / f"stub_{name}.json"

    def _insights_file(self) -> Path:
        path = self._state_file()
        return path.with_name(f"{path.stem}.insights.jsonl")

    def _lock(self):
        path = self._state_file()
        return file_lock(path.with_name(path.name + ".lock"))

    def load_state(self) -> dict[str, Any]:
        """The account as the state file holds it now (another client may have changed it);
        inside a change, the copy being changed. Without its insights (``_insights_rows``)."""
        if self._state is None or not self._in_change:
            if self._state_file().exists():
                with self._lock():
                    self._read_state()
            elif self._state is None:
                self._adopt(self._new_state(*self._source()))
        return self._state

    def _read_state(self) -> None:
        path = self._state_file()
        if path.exists():
            with no_cycle_collection():
                self._adopt(json.loads(path.read_text()))
        elif self._state is None:
            self._adopt(self._new_state(*self._source()))

    def _adopt(self, state: dict[str, Any]) -> None:
        """Make ``state`` this client's. One that holds its insights rows (a new state, or a file
        stored before they had their own) hands them over, to be written to their file."""
        if "insights" in state["snapshot"]:
            state.pop("insights_version", None)
            self._insights, self._insights_changed = (None, state["snapshot"].pop("insights") or []), True
        self._state = state

    def _insights_rows(self) -> list[dict[str, Any]]:
        """The insights rows of the state last loaded: the ones in memory while they are that
        version, else read from their file."""
        version = self._state.get("insights_version")
        if self._insights is None or self._insights[0] != version:
            text = self._insights_file().read_text().strip()
            # One row a line, no raw newline inside a row (JSON escapes them): one decode for all.
            with no_cycle_collection():
                rows = json.loads(f"[{text.replace(chr(10), ',')}]")
            self._insights, self._insights_changed = (version, rows), False
        return self._insights[1]

    @contextmanager
    def _change(self) -> Iterator[dict[str, Any]]:
        """One read-modify-write of the state, holding its lock (see the module docstring)."""
        with self._lock():
            self._read_state()  # fresh, under the lock
            self._in_change = True
            try:
                yield self._state
            finally:
                self._in_change = False

    def _save(self) -> None:
        """Write the state; its insights too when they are not in their file as they are now.
        The insights file goes first: the state file names its version once it is in place."""
        path = self._state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._insights_changed:
            version, rows = uuid.uuid4().hex, self._insights[1]
            compact = json.JSONEncoder(separators=(",", ":")).encode  # 1.6 M rows: no spaces to write and read
            _write_atomically(self._insights_file(), "\n".join(map(compact, rows)))
            self._insights, self._insights_changed = (version, rows), False
            self._state["insights_version"] = version
        _write_atomically(path, json.dumps(self._state))

    @property
    def writes(self) -> list[dict[str, Any]]:
        return self.load_state()["writes"]

    def _record(self, method: str, **args: Any) -> dict[str, Any]:
        state = self.load_state()
        entry = {"method": method, "at": state["snapshot"]["as_of"], **args}
        state["writes"].append(entry)
        self._save()
        touched = {args.get("entity_id"), args.get("winner_ad_id"), args.get("ad_id")}
        if touched & set(self.crash_after_write_for):
            raise StubCrash(f"stub crashed after {method} {sorted(t for t in touched if t)} (fault injection)")
        return entry

    def _find(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        collection = {"campaign": "campaigns", "adset": "adsets", "ad": "ads"}[entity_type]
        for row in self.load_state()["snapshot"][collection]:
            if row["id"] == entity_id:
                return row
        raise KeyError(f"{entity_type} {entity_id} does not exist in the stub account")

    def _check_fault(self, *entity_ids: str) -> None:
        for entity_id in entity_ids:
            if entity_id in self.fail_writes_for:
                raise StubWriteError(f"stub refused the write to {entity_id} (fault injection)")

    # --- the client API ----------------------------------------------------------------------------
    def sync_insights(self) -> None:
        source, data = self._source()
        # A changed source is validated before the lock is taken: one the parser rejects leaves
        # state_dir as it was (no state, not even a lock file, for a new account).
        fresh = None if self.load_state().get("source") == source else self._new_state(source, data)
        with self._change() as state:
            if state.get("source") != source:  # looked at again under the lock
                self._start_over(state, fresh or self._new_state(source, data))
            self._sync_insights()

    def _start_over(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        def shown(source: dict[str, str | None] | None) -> str:
            if source is None:  # a state stored before states recorded their source
                return "an unrecorded source"
            return f"{source['path']} (sha256 {source['sha256'][:12]})" if source["path"] else "the demo account"

        logger.warning(
            f"stub: the snapshot changed since {self._state_file()} was made from "
            f"{shown(old.get('source'))}: starting over from {shown(new['source'])} (its clock and its "
            f"{len(old['writes'])} recorded calls are dropped; the ledger keeps its rows)"
        )
        self._adopt(new)

    def _sync_insights(self) -> None:
        state = self.load_state()
        snapshot = state["snapshot"]
        if state["syncs"]:
            before = pd.Timestamp(snapshot["as_of"])
            after = before + pd.Timedelta(minutes=self.clock_step_minutes)
            snapshot["as_of"] = after.isoformat()
            zone = snapshot["account"]["timezone_name"]
            days = (after.tz_convert(zone).normalize() - before.tz_convert(zone).normalize()).days
            if days:
                # The stub's world moves with its clock: past midnight the insights history moves
                # forward too, so "yesterday" always has data (an empty day would read as a spike down).
                # New rows, not changed ones: a document fetched before keeps the rows it was given.
                rows = self._insights_rows()
                moved = {
                    day: (date.fromisoformat(day) + timedelta(days=days)).isoformat()
                    for day in {row["date_start"] for row in rows}
                }
                rows = [row | {"date_start": moved[row["date_start"]], "date_stop": moved[row["date_start"]]} for row in rows]
                self._insights, self._insights_changed = (None, rows), True
        state["syncs"] += 1
        self._record("sync_insights")

    def fetch_snapshot(self) -> dict[str, Any]:
        """The account now. The insights rows are shared with this client's memory (copying 1.6 M
        rows would cost more than the cycle's decisions): a caller reads them, never changes them."""
        state = self.load_state()
        # A copy through the C codec, a fraction of deepcopy's time: the caller may change it.
        return json.loads(json.dumps(state["snapshot"])) | {"insights": self._insights_rows()}

    def fetch_account(self) -> AccountSnapshot:
        """:meth:`fetch_snapshot` parsed. While the insights file holds this state's rows, pyarrow
        reads them from it into columns (no dict per row, no copy of them); otherwise, or where
        that cannot vouch for the rows, the document is parsed as any client's. It reads the
        state's files, not :meth:`fetch_snapshot`: a subclass serving another document overrides both."""
        state = self.load_state()
        if state.get("insights_version") is not None and not self._insights_changed:
            with no_cycle_collection():
                snapshot = parse_with_insights_file(state["snapshot"], self._insights_file())
            if snapshot is not None:
                return snapshot
        return super().fetch_account()

    def check_write(self, write: Write) -> None:
        if write.type in ("scale_up", "scale_down"):
            self._check_fault(write.entity_id)
            if self._find(write.entity_type, write.entity_id).get("daily_budget") is None:
                raise ValueError(f"{write.entity_type} {write.entity_id} has no daily budget")

    def update_budget(self, entity_type: str, entity_id: str, daily_budget_minor: int) -> dict[str, Any]:
        self._check_fault(entity_id)
        with self._change():
            row = self._find(entity_type, entity_id)
            previous = row.get("daily_budget")
            row["daily_budget"] = str(int(daily_budget_minor))
            return self._record("update_budget", entity_type=entity_type, entity_id=entity_id, previous=previous, daily_budget=row["daily_budget"])

    def _set_status(self, method: str, entity_type: str, entity_id: str, status: str) -> dict[str, Any]:
        self._check_fault(entity_id)
        with self._change():
            row = self._find(entity_type, entity_id)
            previous = row["status"]
            row["status"] = status
            return self._record(method, entity_type=entity_type, entity_id=entity_id, previous=previous)

    def pause(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._set_status("pause", entity_type, entity_id, "PAUSED")

    def resume(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._set_status("resume", entity_type, entity_id, "ACTIVE")

    def publish_winner_ad(self, winner_ad_id: str, loser_ad_ids: list[str]) -> dict[str, Any]:
        # One unit: check every ad (and every fault) before changing any of them.
        self._check_fault(winner_ad_id, *loser_ad_ids)
        with self._change():
            winner, losers = self._find("ad", winner_ad_id), [self._find("ad", ad_id) for ad_id in loser_ad_ids]
            winner["status"] = "ACTIVE"
            for loser in losers:
                loser["status"] = "PAUSED"
            return self._record("publish_winner_ad", winner_ad_id=winner_ad_id, loser_ad_ids=list(loser_ad_ids))

    def create_new_ad_variant(self, ad_id: str, status: str = "PAUSED") -> dict[str, Any]:
        self._check_fault(ad_id)
        with self._change():
            return self._create_new_ad_variant(ad_id, status)

    def _create_new_ad_variant(self, ad_id: str, status: str) -> dict[str, Any]:
        source = self._find("ad", ad_id)
        snapshot = self.load_state()["snapshot"]
        serial = sum(1 for w in self.writes if w["method"] == "create_new_ad_variant") + 1
        creative_id = f"{source['creative']['id']}9{serial:03d}"
        new_ad = {
            **source,
            "id": f"{ad_id}9{serial:03d}",
            "source_ad_id": ad_id,
            "name": f"{source.get('name', ad_id)} (variant {serial})",
            "status": status,
            "created_time": snapshot["as_of"],
            "creative": {"id": creative_id},
        }
        snapshot["ads"].append(new_ad)
        snapshot.setdefault("creatives", []).append({"id": creative_id, "approved": False})
        return self._record("create_new_ad_variant", ad_id=ad_id, new_ad_id=new_ad["id"], creative_id=creative_id, status=status)


def _write_atomically(path: Path, text: str) -> None:
    # Write then rename: a crash never leaves a half-written file.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)
