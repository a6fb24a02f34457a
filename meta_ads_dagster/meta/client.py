"""The Meta boundary: one abstract client resource; stub and live modes are its subclasses.

Assets and ops are typed on :class:`MetaAdsClient`, so which mode runs is decided in one place
(``resources.py``) from the settings. Every method speaks the Graph API's terms: ids are strings,
budgets are integer minor units of the account currency.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from dagster import ConfigurableResource


class MetaAdsClient(ConfigurableResource, ABC):
    """Reads one ad account as a snapshot document (SNAPSHOT.md) and applies writes to it."""

    @abstractmethod
    def sync_insights(self) -> None:
        """Bring the account's insights up to date before a cycle reads them."""

    @abstractmethod
    def fetch_snapshot(self) -> dict[str, Any]:
        """The account as a SNAPSHOT.md document (not yet validated: the engine's parser does it)."""

    @abstractmethod
    def update_budget(self, entity_type: str, entity_id: str, daily_budget_minor: int) -> dict[str, Any]:
        """Set the daily budget of a campaign (CBO) or ad set, in minor units."""

    @abstractmethod
    def pause(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        """Set a campaign, ad set or ad to PAUSED."""

    @abstractmethod
    def publish_winner_ad(self, winner_ad_id: str, loser_ad_ids: list[str]) -> dict[str, Any]:
        """End an A/B test as one unit: the winner stays ACTIVE, every loser is PAUSED."""

    @abstractmethod
    def create_new_ad_variant(self, ad_id: str) -> dict[str, Any]:
        """Create a new ad in the same ad set from a varied creative, PAUSED until approved."""
