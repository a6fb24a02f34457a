"""A Meta client over the simulated market: reads are what the market reports now, writes go to it.

The engine's cycle runs on it exactly as on the stub or the live client. A write the market refuses
(:class:`~meta_ads_dagster.market.MarketRefused`: an unknown object, a budget below the minimum, a
fifth budget edit of an ad set within the hour) raises, so the cycle records it as a failed write,
as it would a Meta error.

Every write the market accepted is appended to :attr:`MarketMetaAdsClient.writes` in the stub's
write-log shape (``method``, its arguments, ``at``), which the independent guard-rail checker
(:mod:`meta_ads_dagster.audit.guard_rails`) and the simulation's action counts read.
"""

from __future__ import annotations

from typing import Any

from pydantic import PrivateAttr

from ..market import Market, MarketRefused
from ..meta.client import MetaAdsClient


class MarketMetaAdsClient(MetaAdsClient):
    _market: Market = PrivateAttr()
    _writes: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _refused: int = PrivateAttr(default=0)

    @classmethod
    def over(cls, market: Market) -> "MarketMetaAdsClient":
        """The client of ``market``'s ad account."""
        client = cls(account_id=market.params.account_id)
        client._market = market
        return client

    @property
    def writes(self) -> list[dict[str, Any]]:
        """The writes the market accepted, in order."""
        return self._writes

    @property
    def refused(self) -> int:
        """How many writes the market refused."""
        return self._refused

    def _send(self, method: str, write, **args: Any) -> dict[str, Any]:
        try:
            result = write()
        except MarketRefused:
            self._refused += 1
            raise
        self._writes.append({"method": method, "at": self._market.now.isoformat(), **args})
        return result

    def sync_insights(self) -> None:
        """Nothing to do: the simulation advances the market; its snapshot is always current."""

    def fetch_snapshot(self) -> dict[str, Any]:
        return self._market.snapshot()

    def update_budget(self, entity_type: str, entity_id: str, daily_budget_minor: int) -> dict[str, Any]:
        return self._send(
            "update_budget", lambda: self._market.update_budget(entity_type, entity_id, int(daily_budget_minor)),
            entity_type=entity_type, entity_id=entity_id, daily_budget=str(int(daily_budget_minor)),
        )

    def pause(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._send("pause", lambda: self._market.pause(entity_type, entity_id), entity_type=entity_type, entity_id=entity_id)

    def resume(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._send("resume", lambda: self._market.resume(entity_type, entity_id), entity_type=entity_type, entity_id=entity_id)

    def publish_winner_ad(self, winner_ad_id: str, loser_ad_ids: list[str]) -> dict[str, Any]:
        return self._send(
            "publish_winner_ad", lambda: self._market.publish_winner(winner_ad_id, list(loser_ad_ids)),
            winner_ad_id=winner_ad_id, loser_ad_ids=list(loser_ad_ids),
        )

    def create_new_ad_variant(self, ad_id: str) -> dict[str, Any]:
        return self._send("create_new_ad_variant", lambda: self._market.create_variant(ad_id), ad_id=ad_id)
