"""Stub mode: serves an account snapshot instead of calling Meta, and keeps its state between runs.

The stub starts from ``META_STUB_SNAPSHOT`` (a SNAPSHOT.md file, or a directory holding one
``act_<digits>.json`` per account) or, when that is unset, from the deterministic demo account
(``demo.py``). Its state, under ``state_dir``, is a base written once plus a journal of what
happened since, so the second cycle sees the first one's budget changes, pauses and cooldowns
while a write touches nothing but one appended line:

- ``stub_<account>.json``: the head, a few lines naming the state's source and its base;
- ``stub_<account>/<base>.document.json``: the account as the base started, a SNAPSHOT.md document
  (a copy of the source file's bytes, or the demo account);
- ``stub_<account>/<base>.structure.json``: the same without its insights (campaigns, ad sets,
  ads, ...), with the recorded calls from before the base, if any;
- ``stub_<account>/<base>.insights.parquet``: the insights rows as the engine's parser read them
  (its frame), so that a cycle's read is one Parquet file, not 1.6 M JSON rows;
- ``stub_<account>/<base>.journal.jsonl``: every call recorded since, one a line, appended.

The state now is the base with the journal replayed over it, each line by the same code that made
the change. A client keeps what it replayed and reads only the lines added since (a process reads
the base once). A base is written when the state starts (from its source, or when the source
changed) and never changed: the clock's passing of midnight is a count of days the insights have
moved, applied as they are served. A state stored before the journal (one ``stub_<account>.json``
holding the account, with its insights inside or in ``stub_<account>.insights.jsonl``) is read and
becomes a base of this form the first time it is read.

Where the state starts from: a document is validated by the engine's parser before anything is
stored, so a rejected file never reaches ``state_dir`` (a stored one would fail every later cycle
with the same error, whatever file the variable named next). The state records its source (the
file's path and a SHA-256 of its content, hashed again only when the file's size, time or inode
changed); when ``sync_insights`` (the start of a cycle) finds the account's source changed since,
it starts over from the new one and logs a warning saying so. Starting over is what deleting the
state file did by hand, and is safe: the ledger keeps every row (cooldowns and already-sent writes
still hold), and the next cycle's ``reconcile`` settles open writes against the account as the
new file has it. A new source the parser rejects leaves the state as it is.
Every write, and every ``sync_insights``, is appended to ``writes`` (the journal). Several clients
may share one state (a cycle and a ``meta-ads rollback`` in another process, two threads): every
read looks at the state afresh under the file lock and every change is a read-modify-write under
it (the journal's new lines read, then one appended), so no client ever works on a stale copy.

Time: the stub's clock is the snapshot's ``as_of``. Each ``sync_insights`` after the first one
advances it by ``clock_step_minutes`` (the cycle interval), as if the cycles ran on schedule, so
a replay is reproducible and a 24 h cooldown can be tested without waiting a day. When the clock
passes midnight (account time) the insights history moves forward by the same days.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import get_dagster_logger
from pydantic import PrivateAttr

from ..engine.snapshot import AccountSnapshot, SnapshotError, decode_snapshot, load_snapshot_file, no_cycle_collection, parse_snapshot
from .client import MetaAdsClient, Write
from ..settings import DEMO_ACCOUNT_ID
from ..store.filelock import file_lock
from .demo import demo_snapshot


# A Python logger whose records Dagster also puts in the run's event log (a restart shows in the UI).
logger = get_dagster_logger(__name__)

FORMAT = 2  # the head's "format": a base and its journal (1: the whole account in the state file)
COLLECTIONS = {"campaign": "campaigns", "adset": "adsets", "ad": "ads"}
STATUS_SET_BY = {"pause": "PAUSED", "resume": "ACTIVE"}


class StubWriteError(RuntimeError):
    """The stub was told (``fail_writes_for``) to refuse a write to this entity."""


class StubCrash(BaseException):
    """The process "dies" right after a write reached the account (``crash_after_write_for``).

    A BaseException, like a KeyboardInterrupt: no ``except Exception`` on the way catches it, so
    the ledger is left exactly as a killed process would leave it.
    """


@dataclass
class NewBase:
    """A state's start, validated, not yet stored: what :meth:`StubMetaAdsClient._install` writes."""

    source: dict[str, Any] | None
    structure: dict[str, Any]  # the document without its insights
    # The document: its bytes, or the source file whose bytes were validated (copied), or a file
    # written for this base in its folder (moved: ``written``).
    document: Path | bytes
    parsed: AccountSnapshot | None  # the parser's reading of the document (None: it refused it)
    rows: list[dict[str, Any]] | None = None  # its insights rows, when they are at hand
    syncs: int = 0
    writes: list[dict[str, Any]] = field(default_factory=list)  # recorded before this base
    written: bool = False


class StubMetaAdsClient(MetaAdsClient):
    state_dir: str
    # A SNAPSHOT.md file (its one account), or a directory with one act_<digits>.json per account.
    snapshot_path: str | None = None
    clock_step_minutes: int = 30
    # Fault injection for tests: writes to these entity ids raise, as a Meta error would;
    # writes to crash_after_write_for land, then the "process dies" (StubCrash).
    fail_writes_for: list[str] = []
    crash_after_write_for: list[str] = []

    # The state as this client last read it: {"source", "base", "snapshot" (the document without
    # its insights), "syncs", "writes", "days" (how far the insights moved since the base)}.
    _state: dict[str, Any] | None = PrivateAttr(default=None)
    _journal_at: int = PrivateAttr(default=0)  # bytes of the base's journal replayed into _state
    _index: dict[str, dict[Any, dict[str, Any]]] | None = PrivateAttr(default=None)  # collection → id → row of _state
    _in_change: bool = PrivateAttr(default=False)
    _changes: int = PrivateAttr(default=0)  # journal lines replayed into _state that changed the account
    # The base's parsed insights frame (base id, frame or None), read once per base.
    _frame: tuple[str, pd.DataFrame | None] | None = PrivateAttr(default=None)
    # The account as this client last parsed it, with the (base, changes) it was parsed at.
    _parsed: tuple[tuple[str, int], AccountSnapshot] | None = PrivateAttr(default=None)
    # Insights rows as last served (base id, days moved, rows); never changed in place (a fetched
    # document shares the list).
    _rows: tuple[str, int, list[dict[str, Any]]] | None = PrivateAttr(default=None)

    # --- where the state lives -----------------------------------------------------------------------
    def _name(self) -> str:
        if self.account_id:
            return self.account_id
        if self.snapshot_path:
            return Path(self.snapshot_path).stem
        return DEMO_ACCOUNT_ID

    def _state_file(self) -> Path:
        """The head: the state's source and base."""
        return Path(self.state_dir) / f"stub_{self._name()}.json"

    def _base_folder(self) -> Path:
        return Path(self.state_dir) / f"stub_{self._name()}"

    def _base_file(self, base: str, kind: str) -> Path:
        return self._base_folder() / f"{base}.{kind}"

    def _legacy_insights_file(self) -> Path:
        """Where a state stored before the journal kept its insights rows (format 1)."""
        path = self._state_file()
        return path.with_name(f"{path.stem}.insights.jsonl")

    def _lock(self):
        path = self._state_file()
        return file_lock(path.with_name(path.name + ".lock"))

    # --- the source --------------------------------------------------------------------------------
    def _source_path(self) -> Path | None:
        if not self.snapshot_path:
            return None
        path = Path(self.snapshot_path)
        if path.is_dir():
            if not self.account_id:
                raise ValueError(f"stub: {path} holds one snapshot per account; this client has no account (for_account)")
            path = path / f"{self.account_id}.json"
        return path

    def _source(self, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        """The account's source as a state records it: the snapshot file's path and a SHA-256 of
        its content (both None for the demo account), and its ``stamp`` (size, modification time,
        inode). When the file's stamp is the one ``recorded``, its recorded hash is taken as it is:
        the file was not written since (the rule make and git go by)."""
        path = self._source_path()
        if path is None:
            return {"path": None, "sha256": None}
        try:
            stat = path.stat()
            resolved = str(path.resolve())
            stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
            if recorded and recorded.get("path") == resolved and recorded.get("stamp") == stamp:
                return recorded
            digest = _sha256(path)
        except OSError as exc:
            raise SnapshotError(f"stub snapshot {path}: cannot read it: {exc.strerror}") from None
        return {"path": resolved, "sha256": digest, "stamp": stamp}

    def _new_base(self, source: dict[str, Any] | None = None, attempts: int = 3) -> NewBase:
        """A state that starts from the source as it is now (``source``: as just hashed), whose
        document the engine's parser accepted (a SnapshotError naming the file otherwise): only a
        valid account is ever stored.

        A file is read by the fast path (engine/columnar.py: pyarrow, no dict per insights row),
        then its structure by the standard decoder; all over again if it was written meanwhile."""
        path = self._source_path()
        source = source or self._source()
        where = source["path"] or "demo account"
        try:
            if path is None:
                document = demo_snapshot(self.account_id or DEMO_ACCOUNT_ID)
                snapshot = parse_snapshot(document)
                structure = {key: value for key, value in document.items() if key != "insights"}
                base = NewBase(source, structure, json.dumps(document).encode(), snapshot, document.get("insights", []))
            else:
                with no_cycle_collection():
                    snapshot = load_snapshot_file(path)
                    structure = _structure_of(path)
                if self._source(source) is not source:  # written while it was read
                    if attempts > 1:
                        return self._new_base(None, attempts - 1)
                    raise SnapshotError("it changes while it is read")
                base = NewBase(source, structure, path, snapshot)
            held = snapshot.account_id
            if self.account_id and held != self.account_id:
                # The state file is named after this account: another account's data would be
                # stored (and served) under its name.
                raise SnapshotError(f"account.id: the snapshot is of {held}, not of {self.account_id}")
        except SnapshotError as exc:
            raise SnapshotError(f"stub snapshot {where}: {exc}") from None
        except OSError as exc:
            raise SnapshotError(f"stub snapshot {where}: cannot read it: {exc.strerror}") from None
        return base

    # --- the state: a base and its journal ------------------------------------------------------------
    def load_state(self) -> dict[str, Any]:
        """The account as the state holds it now (another client may have changed it); inside a
        change, the copy being changed. Without its insights (``_insights_rows``). A new account's
        state is made from its source, validated before anything is stored."""
        if self._state is None or not self._in_change:
            new = None if self._state_file().exists() else self._new_base()
            with self._lock():
                self._read_state(new)
        return self._state

    def _read_state(self, new: NewBase | None = None) -> None:
        """Bring this client's state up to the stored one (under the lock): the base when it is
        another one than the client's, then the journal's lines it has not replayed yet."""
        path = self._state_file()
        if not path.exists():
            self._install(new or self._new_base())
            return
        head = json.loads(path.read_text())
        if head.get("format") != FORMAT:
            head = self._migrate(head)
        if self._state is None or self._state["base"] != head["base"]:
            with no_cycle_collection():
                stored = json.loads(self._base_file(head["base"], "structure.json").read_text())
            self._state = {
                "source": head.get("source"), "base": head["base"], "snapshot": stored["snapshot"], "syncs": stored["syncs"],
                "writes": stored["writes"], "days": 0,
            }
            self._journal_at, self._changes, self._index = 0, 0, None
        self._state["source"] = head.get("source")
        self._replay()

    def _replay(self) -> None:
        journal = self._base_file(self._state["base"], "journal.jsonl")
        try:
            with journal.open("rb") as file:
                if os.fstat(file.fileno()).st_size < self._journal_at:
                    raise RuntimeError(f"stub: {journal} is shorter than what this client read of it")
                file.seek(self._journal_at)
                tail = file.read()
        except FileNotFoundError:
            return
        # A line without its newline is one a crash cut short: not part of the state (the next
        # change writes over it).
        end = tail.rfind(b"\n") + 1
        for line in tail[:end].splitlines():
            self._apply(json.loads(line))
        self._journal_at += end

    def _install(self, new: NewBase) -> None:
        """Store ``new`` as the state (under the lock) and make it this client's: its base files,
        then the head naming it (a crash in between leaves the state as it was); the files of the
        bases before it go."""
        base = uuid.uuid4().hex
        folder = self._base_folder()
        folder.mkdir(parents=True, exist_ok=True)
        document = self._base_file(base, "document.json")
        if new.written:
            os.replace(new.document, document)
        elif isinstance(new.document, Path):
            _copy_atomically(new.document, document)
            if self._source(new.source) is not new.source:
                document.unlink()
                raise SnapshotError(f"stub snapshot {new.source['path']}: changed while it was read; it is read again at the next sync")
        else:
            _write_atomically(document, new.document)
        stored = {"snapshot": new.structure, "syncs": new.syncs, "writes": new.writes}
        _write_atomically(self._base_file(base, "structure.json"), _compact(stored).encode())
        if new.parsed is not None:
            _write_frame_atomically(new.parsed.insights, self._base_file(base, "insights.parquet"))
        _write_atomically(self._state_file(), json.dumps({"format": FORMAT, "source": new.source, "base": base}).encode())
        for path in folder.iterdir():
            if not path.name.startswith(f"{base}."):
                path.unlink(missing_ok=True)
        self._legacy_insights_file().unlink(missing_ok=True)
        self._state = {"source": new.source, "base": base, "snapshot": new.structure, "syncs": new.syncs, "writes": list(new.writes), "days": 0}
        self._journal_at, self._changes, self._index = 0, 0, None
        # Its own frame object (the data shared, copied on write): the parse below is handed out.
        self._frame = (base, None if new.parsed is None else new.parsed.insights.copy(deep=False))
        self._parsed = None if new.parsed is None else ((base, 0), new.parsed)
        self._rows = (base, 0, new.rows) if new.rows is not None else None

    def _migrate(self, stored: dict[str, Any]) -> dict[str, Any]:
        """A state stored before the journal (under the lock): the account (its insights inside,
        or in the insights file beside it since the split), the clock, the recorded calls. It
        becomes the base of a state of this form as it is, writes and clock included."""
        snapshot = stored["snapshot"]
        structure = {key: value for key, value in snapshot.items() if key != "insights"}
        folder = self._base_folder()
        folder.mkdir(parents=True, exist_ok=True)
        rows = snapshot.get("insights")
        with tempfile.NamedTemporaryFile("wb", dir=folder, delete=False, suffix=".tmp") as handle:
            if rows is not None:
                handle.write(json.dumps(structure | {"insights": rows}).encode())
            else:  # one row a line: the document is the structure with the lines as its insights
                handle.write(f"{json.dumps(structure)[:-1]}{', ' if structure else ''}\"insights\": [".encode())
                handle.write(self._legacy_insights_file().read_bytes().strip().replace(b"\n", b","))
                handle.write(b"]}")
        document = Path(handle.name)
        try:
            with no_cycle_collection():
                parsed = load_snapshot_file(document)
        except SnapshotError:
            parsed = None  # stored before the stub validated: its fetch says what is wrong
        new = NewBase(stored.get("source"), structure, document, parsed, rows, stored["syncs"], stored["writes"], written=True)
        self._install(new)
        return json.loads(self._state_file().read_text())

    @contextmanager
    def _change(self) -> Iterator[dict[str, Any]]:
        """One read-modify-write of the state, holding its lock (see the module docstring)."""
        if not self._state_file().exists():
            self.load_state()  # a new account's state: validated before the lock is taken
        with self._lock():
            self._read_state()  # fresh, under the lock
            self._in_change = True
            try:
                yield self._state
            finally:
                self._in_change = False

    def _commit(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append ``entry`` to the journal and apply it (inside a change)."""
        line = (_compact(entry) + "\n").encode()
        with self._base_file(self._state["base"], "journal.jsonl").open("ab") as journal:
            if journal.tell() != self._journal_at:
                journal.truncate(self._journal_at)  # a line a crash cut short
            journal.write(line)
        self._journal_at += len(line)
        self._apply(entry)
        return entry

    def _apply(self, entry: dict[str, Any]) -> None:
        """What a recorded call did to the account: the one place a change is made, for a write
        as it happens and for its journal line read back."""
        state, method = self._state, entry["method"]
        snapshot = state["snapshot"]
        if method == "sync_insights":
            before, after = snapshot["as_of"], entry["at"]
            if after != before:
                # The stub's world moves with its clock: past midnight the insights history moves
                # forward too, so "yesterday" always has data (an empty day would read as a spike down).
                zone = ZoneInfo(snapshot["account"]["timezone_name"])
                state["days"] += (_local_date(after, zone) - _local_date(before, zone)).days
                snapshot["as_of"] = after
                self._changes += 1
            state["syncs"] += 1
        elif method == "update_budget":
            self._row(entry["entity_type"], entry["entity_id"])["daily_budget"] = entry["daily_budget"]
        elif method in STATUS_SET_BY:
            self._row(entry["entity_type"], entry["entity_id"])["status"] = STATUS_SET_BY[method]
        elif method == "publish_winner_ad":
            winner, losers = self._row("ad", entry["winner_ad_id"]), [self._row("ad", ad_id) for ad_id in entry["loser_ad_ids"]]
            winner["status"] = "ACTIVE"
            for loser in losers:
                loser["status"] = "PAUSED"
        elif method == "create_new_ad_variant":
            ad_id = entry["ad_id"]
            source = self._row("ad", ad_id)
            serial = sum(1 for w in state["writes"] if w["method"] == "create_new_ad_variant") + 1
            new_ad = {
                **source,
                "id": entry["new_ad_id"],
                "source_ad_id": ad_id,
                "name": f"{source.get('name', ad_id)} (variant {serial})",
                "status": entry["status"],
                "created_time": entry["at"],
                "creative": {"id": entry["creative_id"]},
            }
            snapshot["ads"].append(new_ad)
            snapshot.setdefault("creatives", []).append({"id": entry["creative_id"], "approved": False})
            self._rows_of("ads").setdefault(new_ad["id"], new_ad)
        if method != "sync_insights":
            self._changes += 1
        state["writes"].append(entry)

    def _rows_of(self, collection: str) -> dict[Any, dict[str, Any]]:
        if self._index is None:
            self._index = {}
        if collection not in self._index:
            rows: dict[Any, dict[str, Any]] = {}
            for row in self._state["snapshot"][collection]:
                rows.setdefault(row["id"], row)  # the first of a repeated id, as a scan finds it
            self._index[collection] = rows
        return self._index[collection]

    def _row(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        """The entity's row in the state as this client holds it (no read: the journal's replay)."""
        row = self._rows_of(COLLECTIONS[entity_type]).get(entity_id)
        if row is None:
            raise KeyError(f"{entity_type} {entity_id} does not exist in the stub account")
        return row

    def _find(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        """The entity's row in the state now (inside a change: the state being changed)."""
        self.load_state()
        return self._row(entity_type, entity_id)

    @property
    def writes(self) -> list[dict[str, Any]]:
        return self.load_state()["writes"]

    def _record(self, method: str, **args: Any) -> dict[str, Any]:
        entry = self._commit({"method": method, "at": self._state["snapshot"]["as_of"], **args})
        touched = {args.get("entity_id"), args.get("winner_ad_id"), args.get("ad_id")}
        if touched & set(self.crash_after_write_for):
            raise StubCrash(f"stub crashed after {method} {sorted(t for t in touched if t)} (fault injection)")
        return entry

    def _check_fault(self, *entity_ids: str) -> None:
        for entity_id in entity_ids:
            if entity_id in self.fail_writes_for:
                raise StubWriteError(f"stub refused the write to {entity_id} (fault injection)")

    # --- what is served ------------------------------------------------------------------------------
    def _insights_rows(self) -> list[dict[str, Any]]:
        """The insights rows of the state last loaded: the base's, moved by the days the clock
        passed since. Rows once served are never changed: moved rows are new ones."""
        state = self._state
        base, days = state["base"], state["days"]
        if self._rows is None or self._rows[0] != base:
            with self._lock():
                data = self._base_file(base, "document.json").read_bytes()
            with no_cycle_collection():
                self._rows = (base, 0, decode_snapshot(data).get("insights") or [])
            del data
        _, moved, rows = self._rows
        if moved != days:
            shift = timedelta(days=days - moved)
            dates = {day: (date.fromisoformat(day) + shift).isoformat() for day in {row["date_start"] for row in rows}}
            rows = [row | {"date_start": dates[row["date_start"]], "date_stop": dates[row["date_start"]]} for row in rows]
            self._rows = (base, days, rows)
        return rows

    def _insights_frame(self) -> pd.DataFrame | None:
        """The base's insights as the parser's frame (None where the base has none: a state
        stored before the stub validated)."""
        base = self._state["base"]
        if self._frame is None or self._frame[0] != base:
            from ..io_manager import read_frame

            try:
                with no_cycle_collection():
                    frame = read_frame(self._base_file(base, "insights.parquet"))
            except FileNotFoundError:
                frame = None
            self._frame = (base, frame)
        return self._frame[1]

    # --- the client API ----------------------------------------------------------------------------
    def sync_insights(self) -> None:
        recorded = self.load_state().get("source")
        source = self._source(recorded)
        # A changed source is validated before the lock is taken: one the parser rejects leaves
        # state_dir as it was.
        fresh = None if _same_source(recorded, source) else self._new_base(source)
        with self._change() as state:
            source = fresh.source if fresh is not None else source
            if not _same_source(state.get("source"), source):  # looked at again under the lock
                self._start_over(state, fresh or self._new_base(source))
            elif state["source"] != source:  # the same content, written again: its new stamp saves a hash
                _write_atomically(self._state_file(), json.dumps({"format": FORMAT, "source": source, "base": state["base"]}).encode())
                state["source"] = source
            self._sync_insights()

    def _start_over(self, old: dict[str, Any], new: NewBase) -> None:
        def shown(source: dict[str, str | None] | None) -> str:
            if source is None:  # a state stored before states recorded their source
                return "an unrecorded source"
            return f"{source['path']} (sha256 {source['sha256'][:12]})" if source["path"] else "the demo account"

        logger.warning(
            f"stub: the snapshot changed since {self._state_file()} was made from "
            f"{shown(old.get('source'))}: starting over from {shown(new.source)} (its clock and its "
            f"{len(old['writes'])} recorded calls are dropped; the ledger keeps its rows)"
        )
        self._install(new)

    def _sync_insights(self) -> None:
        state = self.load_state()
        as_of = state["snapshot"]["as_of"]
        if state["syncs"]:
            as_of = (pd.Timestamp(as_of) + pd.Timedelta(minutes=self.clock_step_minutes)).isoformat()
        self._commit({"method": "sync_insights", "at": as_of})

    def fetch_snapshot(self) -> dict[str, Any]:
        """The account now. The insights rows are shared with this client's memory (copying 1.6 M
        rows would cost more than the cycle's decisions): a caller reads them, never changes them."""
        state = self.load_state()
        # A copy through the C codec, a fraction of deepcopy's time: the caller may change it.
        return json.loads(json.dumps(state["snapshot"])) | {"insights": self._insights_rows()}

    def fetch_account(self) -> AccountSnapshot:
        """:meth:`fetch_snapshot` parsed: the account's structure as it is now, with the insights
        as the parser read them when the base was made (moved by the days passed since), not
        1.6 M rows decoded again; the parse that validated a new base, when nothing changed since.
        Where that cannot vouch for the result (the base has no parsed insights, or the structure
        is refused), the document is parsed as any client's, which names what is wrong. It reads
        the state's files, not :meth:`fetch_snapshot`: a subclass serving another document
        overrides both."""
        state = self.load_state()
        parsed, self._parsed = self._parsed, None  # handed out once: the caller may change its frames
        if parsed is not None and parsed[0] == (state["base"], self._changes):
            return parsed[1]
        frame = self._insights_frame()
        if frame is not None:
            days = state["days"]
            # A new frame (its columns shared, copied on write): the caller may change it.
            insights = frame.assign(date=frame["date"] + pd.Timedelta(days=days)) if days else frame.copy(deep=False)
            try:
                return parse_snapshot(state["snapshot"], insights)
            except SnapshotError:
                pass  # the whole document's parse says what is wrong, and where
        return super().fetch_account()

    def check_write(self, write: Write) -> None:
        if write.type in ("scale_up", "scale_down"):
            self._check_fault(write.entity_id)
            if self._find(write.entity_type, write.entity_id).get("daily_budget") is None:
                raise ValueError(f"{write.entity_type} {write.entity_id} has no daily budget")

    def update_budget(self, entity_type: str, entity_id: str, daily_budget_minor: int) -> dict[str, Any]:
        self._check_fault(entity_id)
        with self._change():
            previous = self._find(entity_type, entity_id).get("daily_budget")
            return self._record(
                "update_budget", entity_type=entity_type, entity_id=entity_id, previous=previous, daily_budget=str(int(daily_budget_minor)),
            )

    def _set_status(self, method: str, entity_type: str, entity_id: str) -> dict[str, Any]:
        self._check_fault(entity_id)
        with self._change():
            previous = self._find(entity_type, entity_id)["status"]
            return self._record(method, entity_type=entity_type, entity_id=entity_id, previous=previous)

    def pause(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._set_status("pause", entity_type, entity_id)

    def resume(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._set_status("resume", entity_type, entity_id)

    def publish_winner_ad(self, winner_ad_id: str, loser_ad_ids: list[str]) -> dict[str, Any]:
        # One unit: check every ad (and every fault) before changing any of them.
        self._check_fault(winner_ad_id, *loser_ad_ids)
        with self._change():
            for ad_id in (winner_ad_id, *loser_ad_ids):
                self._find("ad", ad_id)
            return self._record("publish_winner_ad", winner_ad_id=winner_ad_id, loser_ad_ids=list(loser_ad_ids))

    def create_new_ad_variant(self, ad_id: str, status: str = "PAUSED") -> dict[str, Any]:
        self._check_fault(ad_id)
        with self._change() as state:
            source = self._find("ad", ad_id)
            serial = sum(1 for w in state["writes"] if w["method"] == "create_new_ad_variant") + 1
            creative_id = f"{source['creative']['id']}9{serial:03d}"
            return self._record("create_new_ad_variant", ad_id=ad_id, new_ad_id=f"{ad_id}9{serial:03d}", creative_id=creative_id, status=status)


def _same_source(recorded: dict[str, Any] | None, source: dict[str, Any]) -> bool:
    """Whether a state made from ``recorded`` is of ``source``: the same file and content."""
    return recorded is not None and (recorded.get("path"), recorded.get("sha256")) == (source["path"], source["sha256"])


def _local_date(moment: str, zone: ZoneInfo) -> date:
    return datetime.fromisoformat(moment).astimezone(zone).date()


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


# An insights row, as the standard decoder's hook tells it from the structure's objects.
_ROW = object()


def _structure_of(path: Path) -> dict[str, Any]:
    """The document in the file at ``path`` without its insights, as the standard decoder gives
    it, without a dict per insights row: the decoder's hook drops every object with an ``ad_id``
    and a ``date_start`` (a row); if any such object was not one of the rows, the document is
    decoded whole. The file is one the parser accepted (UTF-8 JSON, an object with an insights
    list); should the standard decoder refuse it all the same, its SnapshotError says why."""
    with path.open(encoding="utf-8", newline="") as file:
        text = file.read()
    dropped = 0

    def pairs(items: list[tuple[str, Any]]) -> Any:
        nonlocal dropped
        value = dict(items)
        if "ad_id" in value and "date_start" in value:
            dropped += 1
            return _ROW
        return value

    try:
        document = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        rows = document.pop("insights", None)
        if isinstance(rows, list) and sum(row is _ROW for row in rows) == dropped:
            return document
    document = decode_snapshot(text)
    document.pop("insights", None)
    return document


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _write_atomically(path: Path, data: bytes) -> None:
    # Write then rename: a crash never leaves a half-written file.
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(data)
    os.replace(handle.name, path)


def _copy_atomically(source: Path, path: Path) -> None:
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as handle:
        pass
    shutil.copyfile(source, handle.name)
    os.replace(handle.name, path)


def _write_frame_atomically(frame: pd.DataFrame, path: Path) -> None:
    from ..io_manager import write_frame

    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as handle:
        pass
    if not write_frame(frame, Path(handle.name)):
        os.unlink(handle.name)
        raise RuntimeError(f"stub: the insights frame cannot be stored as Parquet ({list(frame.columns)})")
    os.replace(handle.name, path)
