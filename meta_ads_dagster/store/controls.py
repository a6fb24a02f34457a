"""The operator's stored controls per ad account: the mode (suggest | auto) and the kill switch
(paused | running), the seed's /toggle-mode, /stop and /start, kept in the app database.

Every change is a row of its own, with who made it and when, and rows are never updated: the
newest row of an account and control is its state, the older ones its history. Where nothing is
stored the environment's default applies (META_AUTO_MODE; running). A change takes effect on
the account's next cycle: a cycle reads its account's controls once, where its settings are
resolved (:func:`cycle_settings`), so every step of one cycle works under the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from ..settings import Settings
from .ledger import Ledger, automation_controls_table

t = automation_controls_table.c

MODE, AUTOMATION = "mode", "automation"
PAUSED, RUNNING = "paused", "running"
VALUES = {MODE: ("suggest", "auto"), AUTOMATION: (PAUSED, RUNNING)}
NAME_MAX = 64  # changed_by's column


class ControlError(ValueError):
    """A control change that cannot be stored; the message names the field. Nothing was written."""


@dataclass(frozen=True)
class Change:
    """One stored change of one account's control."""

    account_id: str
    control: str
    value: str
    changed_by: str
    changed_at: datetime

    def as_dict(self) -> dict:
        return {"account": self.account_id, "control": self.control, "value": self.value,
                "changed_by": self.changed_by, "changed_at": self.changed_at.isoformat()}

    def describe(self) -> str:
        return f"{self.changed_by} at {self.changed_at:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class Controls:
    """An account's stored controls; None where nothing is stored (the environment's default)."""

    mode: Change | None = None
    automation: Change | None = None

    @property
    def paused(self) -> Change | None:
        """The stored pause in force, if any."""
        return self.automation if self.automation is not None and self.automation.value == PAUSED else None

    def running_since(self, since: datetime | None) -> datetime | None:
        """Since when this account's automation has been running, given that the schedule has
        been since ``since`` (None: not running): None while paused, else the later of ``since``
        and the last resume. What the overdue-cycle alert counts from."""
        if since is None or self.automation is None:
            return since
        return None if self.paused is not None else max(since, self.automation.changed_at)

    def mode_or(self, default: str) -> str:
        """The stored mode, else ``default`` (META_AUTO_MODE)."""
        return self.mode.value if self.mode is not None else default

    def apply(self, settings: Settings) -> Settings:
        """``settings`` (already the account's, ``Settings.for_account``) under these controls."""
        pause = self.paused
        return settings.with_controls(
            self.mode_or(None),
            f"automation paused by {pause.describe()} (meta-ads pause-automation)" if pause is not None else None,
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _change(row) -> Change:
    return Change(row.account_id, row.control, row.value, row.changed_by, _utc(row.changed_at))


def _who(name: str | None) -> str:
    who = (name or "").strip()
    if not who:
        raise ControlError("by: a name is required (--by NAME)")
    if len(who) > NAME_MAX or not who.isprintable():
        raise ControlError(f"by: a name of at most {NAME_MAX} printable characters on one line is required")
    return who


def current(ledger: Ledger, accounts: Iterable[str] | None = None) -> dict[str, Controls]:
    """Account → its stored controls (accounts with nothing stored are left out)."""
    newest = sa.select(sa.func.max(t.row_id)).group_by(t.account_id, t.control)
    query = sa.select(automation_controls_table).where(t.row_id.in_(newest))
    if accounts is not None:
        query = query.where(t.account_id.in_(list(accounts)))
    found: dict[str, dict[str, Change]] = {}
    with ledger.engine.connect() as conn:
        for row in conn.execute(query):
            found.setdefault(row.account_id, {})[row.control] = _change(row)
    return {account: Controls(controls.get(MODE), controls.get(AUTOMATION)) for account, controls in found.items()}


def history(ledger: Ledger, account: str | None = None, limit: int | None = None) -> list[Change]:
    """The stored changes, newest first (of one account when given)."""
    query = sa.select(automation_controls_table).order_by(t.row_id.desc()).limit(limit)
    if account:
        query = query.where(t.account_id == account)
    with ledger.engine.connect() as conn:
        return [_change(row) for row in conn.execute(query)]


def record(ledger: Ledger, accounts: Iterable[str], control: str, value: str, by: str, now: datetime | None = None) -> list[Change]:
    """Store ``control`` = ``value`` for each of ``accounts``, by ``by``, in one transaction (all
    or none). A change to the value already in force is recorded too: the person said so, and
    a stored value no longer follows the environment's default."""
    if control not in VALUES:
        raise ControlError(f"control: must be one of {', '.join(VALUES)}, got {control!r}")
    if value not in VALUES[control]:
        raise ControlError(f"{control}: must be one of {', '.join(VALUES[control])}, got {value!r}")
    who = _who(by)
    targets = list(dict.fromkeys(accounts))
    if not targets:
        raise ControlError("account: name at least one ad account")
    at = _utc(now or datetime.now(timezone.utc))
    changes = [Change(account, control, value, who, at) for account in targets]
    with ledger.engine.begin() as conn:
        conn.execute(automation_controls_table.insert(), [
            {"account_id": c.account_id, "control": c.control, "value": c.value, "changed_by": c.changed_by, "changed_at": c.changed_at}
            for c in changes
        ])
    return changes


def current_in(database_url: str, accounts: Iterable[str]) -> dict[str, Controls]:
    """:func:`current` of the app database at ``database_url``, opened for this read only (the
    schedule's ticks and the alert sensors, which hold no ledger of their own)."""
    ledger = Ledger(database_url)
    try:
        return current(ledger, accounts)
    finally:
        ledger.dispose()


def cycle_settings(ledger: Ledger, settings: Settings, account: str) -> Settings:
    """The settings one cycle of ``account`` works under: its META_ACCOUNTS_FILE overrides, then
    the operator's stored mode and kill switch. Read once per cycle, as it starts."""
    return current(ledger, [account]).get(account, Controls()).apply(settings.for_account(account))
