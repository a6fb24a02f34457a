"""The Meta boundary: one abstract client resource; stub and live modes are its subclasses.

Assets and ops are typed on :class:`MetaAdsClient`, so which mode runs is decided in one place
(``resources.py``) from the settings. Every method speaks the Graph API's terms: ids are strings,
budgets are integer minor units of the account currency.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from dagster import ConfigurableResource

from ..engine.snapshot import AccountSnapshot, parse_snapshot


@dataclass(frozen=True)
class Write:
    """One action to apply: what ``apply_writes`` receives (budgets in minor units)."""

    action_id: str
    type: str
    entity_type: str
    entity_id: str
    new_budget_minor: int | None = None
    loser_ad_ids: tuple[str, ...] = ()
    unit_id: str | None = None  # a reallocation's legs share it: written all or none
    prior_budget_minor: int | None = None  # the budget before the write (a failed unit's compensation)
    variant_status: str = "PAUSED"  # a create_variant's new ad: ACTIVE (runs once Meta's review passes) or PAUSED


@dataclass(frozen=True)
class WriteOutcome:
    """What became of one write. ``unknown``: sent, but no answer came back (e.g. a timeout), so
    it may or may not have landed; it is never re-sent blindly, the next cycle reads the entity."""

    action_id: str
    status: Literal["executed", "failed", "unknown"]
    result: dict[str, Any] | None = None
    error: str | None = None


class MetaAdsClient(ConfigurableResource, ABC):
    """Reads one ad account as a snapshot document (SNAPSHOT.md) and applies writes to it.

    The resource is configured once for the code location; each cycle run works on its
    partition's account through :meth:`for_account`.
    """

    account_id: str = ""  # act_<digits>; empty on the location-wide resource until a run binds it

    def for_account(self, account_id: str) -> "MetaAdsClient":
        """A client like this one for ``account_id`` (this very client when it already is).

        A new instance, not a changed copy: nothing one account's client read or cached (the live
        client's insights, the stub's state) can leak into another account's cycle.
        """
        if account_id == self.account_id:
            return self
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**(fields | {"account_id": account_id}))

    def request_counts(self) -> dict[str, int]:
        """What this client's requests to the Graph API came to so far: ``api_calls`` sent,
        ``api_errors`` (answered with an error, a 5xx, or no usable answer) and ``api_retries``
        (sent again after a transient fault). Zero for a client that sends none (the stub)."""
        return {"api_calls": 0, "api_errors": 0, "api_retries": 0}

    @abstractmethod
    def sync_insights(self) -> None:
        """Bring the account's insights up to date before a cycle reads them."""

    @abstractmethod
    def fetch_snapshot(self) -> dict[str, Any]:
        """The account as a SNAPSHOT.md document (not yet validated: the engine's parser does it)."""

    def fetch_account(self) -> AccountSnapshot:
        """The account now, parsed by the engine's parser (SnapshotError if it breaks the format).
        A client that can hand its insights on as columns overrides this (the stub, the live client)."""
        return parse_snapshot(self.fetch_snapshot())

    @abstractmethod
    def update_budget(self, entity_type: str, entity_id: str, daily_budget_minor: int) -> dict[str, Any]:
        """Set the daily budget of a campaign (CBO) or ad set, in minor units."""

    @abstractmethod
    def pause(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        """Set a campaign, ad set or ad to PAUSED."""

    @abstractmethod
    def resume(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        """Set a campaign, ad set or ad to ACTIVE (only ever a rollback's restore)."""

    @abstractmethod
    def publish_winner_ad(self, winner_ad_id: str, loser_ad_ids: list[str]) -> dict[str, Any]:
        """End an A/B test as one unit: the winner stays ACTIVE, every loser is PAUSED."""

    @abstractmethod
    def create_new_ad_variant(self, ad_id: str, status: str = "PAUSED") -> dict[str, Any]:
        """Create a new ad in the same ad set from a varied creative, with ``status`` ACTIVE (it
        delivers once Meta's review approves it) or PAUSED (it waits for a person to resume it)."""

    def apply_write(self, write: Write) -> dict[str, Any]:
        """One write through the single-object methods above."""
        if write.type in ("scale_up", "scale_down"):
            return self.update_budget(write.entity_type, write.entity_id, int(write.new_budget_minor))
        if write.type == "pause":
            return self.pause(write.entity_type, write.entity_id)
        if write.type == "resume":
            return self.resume(write.entity_type, write.entity_id)
        if write.type == "publish_winner":
            return self.publish_winner_ad(write.entity_id, list(write.loser_ad_ids))
        if write.type == "create_variant":
            return self.create_new_ad_variant(write.entity_id, write.variant_status)
        raise ValueError(f"action {write.action_id}: type {write.type!r} cannot be executed automatically")

    def check_write(self, write: Write) -> None:
        """Raise (ValueError) if ``write`` would be refused, without writing anything: what a
        reallocation's legs all pass before the first is written. Clients that know their account
        (the stub, the market) check it; the live client cannot ask Meta beforehand."""

    def apply_writes(self, writes: list[Write]) -> list[WriteOutcome]:
        """Apply writes in order, one outcome each; a failure fails that write only, except a
        reallocation's legs (:meth:`apply_unit`).

        Clients that can group writes (the live client's Graph batches) override this.
        """
        outcomes = {}
        for unit in dict.fromkeys(w.unit_id for w in writes if w.unit_id):
            outcomes.update({o.action_id: o for o in self.apply_unit([w for w in writes if w.unit_id == unit])})
        for write in writes:
            if write.unit_id:
                continue
            try:
                outcomes[write.action_id] = WriteOutcome(write.action_id, "executed", self.apply_write(write))
            except Exception as exc:  # a failed write fails this action only
                outcomes[write.action_id] = WriteOutcome(write.action_id, "failed", error=f"{type(exc).__name__}: {exc}")
        return [outcomes[w.action_id] for w in writes]

    def apply_unit(self, legs: list[Write]) -> list[WriteOutcome]:
        """One reallocation, all or none: every leg is checked first (:meth:`check_write`), so a
        client that knows its account refuses the unit before writing anything; then the legs are
        written in order, and when one fails the legs already written are written back to their
        prior budget (compensation: Meta has no transactions), each leg's outcome saying so."""
        try:
            for leg in legs:
                self.check_write(leg)
        except Exception as exc:
            why = f"reallocation not written (all or none): leg {leg.entity_type} {leg.entity_id} would be refused: {type(exc).__name__}: {exc}"
            return [WriteOutcome(leg.action_id, "failed", error=why) for leg in legs]
        done: list[tuple[Write, dict[str, Any]]] = []
        for leg in legs:
            try:
                done.append((leg, self.apply_write(leg)))
            except Exception as exc:
                return self._compensate(legs, done, leg, f"{type(exc).__name__}: {exc}")
        return [WriteOutcome(leg.action_id, "executed", {**result, "unit_id": leg.unit_id}) for leg, result in done]

    def _compensate(self, legs: list[Write], done: list[tuple[Write, dict[str, Any]]], failed: Write, error: str) -> list[WriteOutcome]:
        undone = []
        for leg, _ in done:
            try:
                self.update_budget(leg.entity_type, leg.entity_id, int(leg.prior_budget_minor))
                undone.append(f"{leg.entity_type} {leg.entity_id} written back to {leg.prior_budget_minor}")
            except Exception as exc:  # reported: a person must look at a half-done reallocation
                undone.append(f"could not write {leg.entity_type} {leg.entity_id} back: {type(exc).__name__}: {exc}")
        why = f"reallocation failed at leg {failed.entity_type} {failed.entity_id} ({error})" + (
            f"; compensation: {'; '.join(undone)}" if undone else "; no leg had been written")
        result = {"unit_id": failed.unit_id, "compensation": undone}
        return [WriteOutcome(leg.action_id, "failed", result, error=why) for leg in legs]
