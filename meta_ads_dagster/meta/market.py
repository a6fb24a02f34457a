"""Meta clients over the simulated market (``meta_ads_dagster/market``): reads are what the market
reports now, writes go to it.

- :class:`MarketMetaAdsClient` holds a market in memory: ``meta-ads simulate`` advances it between
  cycles and runs the engine's real cycle on it.
- :class:`MarketDemoMetaAdsClient` is stub mode's **living demo account**: the market is kept in a
  state file under ``state_dir``, and each cycle's ``sync_insights`` advances it by one interval,
  so every ``meta-ads cycle`` (or scheduled run) sees an account that moved since the last one and
  reacts to what the earlier cycles did.

A write the market refuses (:class:`~meta_ads_dagster.market.MarketRefused`: an unknown object, a
budget below the minimum, a fifth budget edit of an ad set within the hour) raises, so the cycle
records it as a failed write, as it would a Meta error. Every write the market accepted is
appended to ``writes`` in the stub's write-log shape (``method``, its arguments, ``at``): the
independent guard-rail checker and the simulation's action counts read it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import get_dagster_logger
from pydantic import PrivateAttr

from ..market import Market, MarketParams, MarketRefused
from ..market.model import STATE_VERSION
from ..store.filelock import file_lock
from .client import MetaAdsClient, Write


class MarketMetaAdsClient(MetaAdsClient):
    """The client of one in-memory market (:meth:`over`)."""

    _market: Market | None = PrivateAttr(default=None)
    _writes: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _refused: int = PrivateAttr(default=0)

    @classmethod
    def over(cls, market: Market) -> "MarketMetaAdsClient":
        """The client of ``market``'s ad account."""
        client = cls(account_id=market.params.account_id)
        client._market = market
        return client

    @property
    def market(self) -> Market:
        if self._market is None:
            raise RuntimeError("this client has no market (MarketMetaAdsClient.over)")
        return self._market

    @property
    def writes(self) -> list[dict[str, Any]]:
        """The writes the market accepted, in order."""
        return self._writes

    @property
    def refused(self) -> int:
        """How many writes the market refused."""
        return self._refused

    @contextmanager
    def _session(self, changes: bool = True) -> Iterator[Market]:
        """The market for one write (``changes``) or read; the demo client loads it, and saves it
        after a write, around this."""
        yield self.market

    def _send(self, method: str, write: Callable[[Market], dict[str, Any]], **args: Any) -> dict[str, Any]:
        with self._session() as market:
            try:
                result = write(market)
            except MarketRefused:
                self._refused += 1
                raise
            self._writes.append({"method": method, "at": market.now.isoformat(), **args})
            return result

    def sync_insights(self) -> None:
        """Nothing to do: the simulation advances the market; its snapshot is always current."""

    def fetch_snapshot(self) -> dict[str, Any]:
        with self._session(changes=False) as market:
            return market.snapshot()

    def update_budget(self, entity_type: str, entity_id: str, daily_budget_minor: int) -> dict[str, Any]:
        return self._send(
            "update_budget", lambda m: m.update_budget(entity_type, entity_id, int(daily_budget_minor)),
            entity_type=entity_type, entity_id=entity_id, daily_budget=str(int(daily_budget_minor)),
        )

    def check_write(self, write: Write) -> None:
        if write.type in ("scale_up", "scale_down"):
            with self._session(changes=False) as market:
                market.check_budget(write.entity_type, write.entity_id, int(write.new_budget_minor))

    def pause(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._send("pause", lambda m: m.pause(entity_type, entity_id), entity_type=entity_type, entity_id=entity_id)

    def resume(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._send("resume", lambda m: m.resume(entity_type, entity_id), entity_type=entity_type, entity_id=entity_id)

    def publish_winner_ad(self, winner_ad_id: str, loser_ad_ids: list[str]) -> dict[str, Any]:
        return self._send(
            "publish_winner_ad", lambda m: m.publish_winner(winner_ad_id, list(loser_ad_ids)),
            winner_ad_id=winner_ad_id, loser_ad_ids=list(loser_ad_ids),
        )

    def create_new_ad_variant(self, ad_id: str, status: str = "PAUSED") -> dict[str, Any]:
        return self._send("create_new_ad_variant", lambda m: m.create_variant(ad_id, status), ad_id=ad_id, status=status)


# How big the living demo account is: enough campaigns for winners, losers, an A/B test and a
# young campaign to show up at once, small enough that a cycle stays quick.
DEMO_CAMPAIGNS = 12


class MarketDemoMetaAdsClient(MarketMetaAdsClient):
    """Stub mode's living demo: one market per account, saved in ``state_dir`` between processes.

    The market of ``act_<digits>`` is seeded by its digits, so each demo account is its own,
    reproducible account. The first ``sync_insights`` serves the market as it starts; each later
    one advances it by ``clock_step_minutes`` (the cycle interval), as if the cycles ran on
    schedule. Every read or write loads the state file afresh and every change is a
    read-modify-write under a file lock (a cycle and a ``meta-ads rollback`` may share it).
    """

    state_dir: str
    clock_step_minutes: int = 30
    campaigns: int = DEMO_CAMPAIGNS

    def _state_file(self) -> Path:
        return Path(self.state_dir) / f"market_{self.account_id}.json"

    def _new_state(self) -> dict[str, Any]:
        if not re.fullmatch(r"act_\d+", self.account_id):
            raise ValueError(f"the living demo needs an account id act_<digits>, got {self.account_id!r}")
        seed = int(self.account_id.removeprefix("act_"))
        # The market delivers in steps of the cycle interval, so each cycle advances it by one step.
        params = MarketParams(account_id=self.account_id, step_minutes=self.clock_step_minutes)
        market = Market(self.campaigns, seed=seed, params=params)
        return {"syncs": 0, "writes": [], "market": market.to_state()}

    def _start_over(self, held: str) -> dict[str, Any]:
        get_dagster_logger(__name__).warning(f"living demo: {self._state_file()} holds {held}: starting the demo account over")
        return self._new_state()

    @contextmanager
    def _stored(self, changes: bool = True) -> Iterator[dict[str, Any]]:
        """The state file's content for one read-modify-write under its lock, saved after the block
        when it ``changes`` or is new (written then renamed: a crash never leaves half a file)."""
        path = self._state_file()
        with file_lock(path.with_name(path.name + ".lock")):
            stored = json.loads(path.read_text()) if path.exists() else None
            state = stored or self._new_state()
            if state["market"].get("version") != STATE_VERSION:
                # Saved by an older version of the market model, which this one cannot continue.
                state = self._start_over(f"a market saved by an older model (state version {state['market'].get('version')})")
            elif state["market"]["params"]["step_minutes"] != self.clock_step_minutes:
                # Its intervals are not the cycle's any more: it could not move one cycle at a time.
                state = self._start_over(
                    f"a market of {state['market']['params']['step_minutes']}-minute intervals, the cycle's are {self.clock_step_minutes}"
                )
            yield state
            if not changes and state is stored:
                return  # a read of the stored account: nothing to write back
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
                json.dump(state, handle)
            os.replace(handle.name, path)

    @contextmanager
    def _session(self, changes: bool = True) -> Iterator[Market]:
        with self._stored(changes) as state:
            market = Market.from_state(state["market"])
            self._writes = state["writes"]  # _send appends to the stored log, saved with the market
            yield market
            if changes:
                state["market"] = market.to_state()

    @property
    def writes(self) -> list[dict[str, Any]]:
        path = self._state_file()
        return json.loads(path.read_text())["writes"] if path.exists() else []

    def sync_insights(self) -> None:
        with self._stored() as state:
            if state["syncs"]:
                market = Market.from_state(state["market"])
                market.advance(self.clock_step_minutes)
                state["market"] = market.to_state()
            state["syncs"] += 1
