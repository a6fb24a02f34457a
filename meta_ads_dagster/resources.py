"""Resources, chosen in one place from the settings."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from .meta.client import MetaAdsClient
from .meta.stub import StubMetaAdsClient
from .settings import Settings, SettingsError
from .store.ledger import Ledger


class LedgerResource(ConfigurableResource):
    """The app tables (action ledger) at ``database_url`` (META_ADS_DATABASE_URL)."""

    database_url: str
    _ledger: Ledger | None = PrivateAttr(default=None)

    def open(self) -> Ledger:
        """One ledger (one connection pool) per step, disposed when the step ends."""
        if self._ledger is None:
            self._ledger = Ledger(self.database_url)
        return self._ledger

    def teardown_after_execution(self, context) -> None:
        if self._ledger is not None:
            self._ledger.dispose()
            self._ledger = None


def dagster_home() -> Path:
    """DAGSTER_HOME, or ./.dagster_home (what ``meta-ads cycle`` creates) when unset."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home")


def meta_client(settings: Settings) -> MetaAdsClient:
    if settings.meta_api_mode == "live":
        raise SettingsError(
            "META_API_MODE: live mode is not available in this version (the live client is being built); "
            "use META_API_MODE=stub"
        )
    accounts = settings.account_ids
    return StubMetaAdsClient(
        state_dir=str(dagster_home() / "stub_state"),
        snapshot_path=settings.meta_stub_snapshot,
        account_id=accounts[0] if accounts else None,
        clock_step_minutes=settings.meta_cycle_interval_minutes,
    )


def build_resources(settings: Settings) -> dict:
    return {
        "settings": settings,
        "meta_client": meta_client(settings),
        "ledger": LedgerResource(database_url=settings.database_url()),
    }
