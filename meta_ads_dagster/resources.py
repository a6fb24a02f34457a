"""Resources, chosen in one place from the settings."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar, InitResourceContext, ResourceDefinition
from pydantic import PrivateAttr

from .alerts.notifier import Notifier
from .io_manager import ParquetFilesystemIOManager
from .jobs import ACCOUNT_TAG, AUTO_MODE_TAG, CYCLE_JOB_NAME
from .meta.client import MetaAdsClient
from .meta.live import LiveMetaAdsClient
from .meta.market import MarketDemoMetaAdsClient
from .meta.stub import StubMetaAdsClient
from .settings import Settings, SettingsError, dagster_home
from .store import controls
from .store.ledger import Ledger


class LedgerResource(ConfigurableResource):
    """The app tables (action ledger) at ``database_url`` (META_ADS_DATABASE_URL)."""

    database_url: str
    _ledger: Ledger | None = PrivateAttr(default=None)

    def open(self) -> Ledger:
        """One ledger (one connection pool) per resource instance, disposed at its teardown
        (the end of the step, or of the run under the in-process executor)."""
        if self._ledger is None:
            self._ledger = Ledger(self.database_url)
        return self._ledger

    def teardown_after_execution(self, context) -> None:
        if self._ledger is not None:
            self._ledger.dispose()
            self._ledger = None


def meta_client(settings: Settings) -> MetaAdsClient:
    """The Meta client for META_API_MODE: the stub, or the live Graph API client.

    Live secrets are ``EnvVar``s: resolved when a run starts (a missing one fails that run with
    its name, before anything is read or written), masked in the UI, never stored in run config.
    The client serves the whole code location; each cycle run binds it to its partition's account
    (``MetaAdsClient.for_account``).
    """
    if settings.meta_api_mode == "live":
        return LiveMetaAdsClient(
            access_token=EnvVar("META_ACCESS_TOKEN"),
            app_id=EnvVar("META_APP_ID"),
            app_secret=EnvVar("META_APP_SECRET"),
            graph_url=settings.meta_graph_url,
        )
    if not settings.meta_stub_snapshot and settings.meta_stub_demo == "market":
        return MarketDemoMetaAdsClient(state_dir=str(dagster_home() / "stub_state"), clock_step_minutes=settings.meta_cycle_interval_minutes)
    return StubMetaAdsClient(
        state_dir=str(dagster_home() / "stub_state"),
        snapshot_path=settings.meta_stub_snapshot,
        clock_step_minutes=settings.meta_cycle_interval_minutes,
    )


def run_settings(settings: Settings) -> ResourceDefinition:
    """The ``settings`` resource: ``settings`` as loaded, except in a cycle run, which gets its
    account's (``store.controls.cycle_settings``: the META_ACCOUNTS_FILE overrides, then the mode
    and kill switch an operator stored). Read once, as the run starts, so every step of one cycle
    works under the same mode, and a change made meanwhile takes effect on the next cycle. The
    run's ``meta/auto_mode`` tag is set to the mode it runs in."""

    def resolve(context: InitResourceContext) -> Settings:
        run = context.dagster_run
        account = run.tags.get(ACCOUNT_TAG) if run is not None and run.job_name == CYCLE_JOB_NAME else None
        if account is None:
            return settings
        resolved = controls.cycle_settings(context.resources.ledger.open(), settings, account)
        if run.tags.get(AUTO_MODE_TAG) != resolved.meta_auto_mode:
            context.instance.add_run_tags(run.run_id, {AUTO_MODE_TAG: resolved.meta_auto_mode})
        if resolved.stop_reason:
            context.log.warning(f"{resolved.stop_reason}: this cycle evaluates and records, and writes nothing")
        return resolved

    return ResourceDefinition(
        resource_fn=resolve, required_resource_keys={"ledger"},
        description="The settings; a cycle run's are its account's, under the mode and kill switch an operator stored.",
    )


def notifier(settings: Settings) -> Notifier:
    """The alert channels: the log always; the webhook when META_ALERT_WEBHOOK_URL is set; email
    when META_ALERT_SMTP_HOST (with its sender and recipients) is.

    The webhook URL and the SMTP password are secrets, so they are ``EnvVar``s like the live
    client's: resolved when a sensor evaluates, masked in the UI. Only whether the URL is set, and
    its scheme, are read here (a mistyped one should stop the location loading, not every alert)."""
    webhook = os.environ.get("META_ALERT_WEBHOOK_URL")
    if webhook and not webhook.startswith(("http://", "https://")):
        raise SettingsError("META_ALERT_WEBHOOK_URL: must be an http:// or https:// address")
    email = {}
    if settings.meta_alert_smtp_host:
        email = {
            "smtp_host": settings.meta_alert_smtp_host,
            "smtp_port": settings.meta_alert_smtp_port,
            "smtp_from": settings.meta_alert_smtp_from,
            "smtp_to": settings.alert_email_recipients,
            "smtp_user": settings.meta_alert_smtp_user,
            "smtp_starttls": settings.meta_alert_smtp_starttls,
        }
        if settings.meta_alert_smtp_user:
            email["smtp_password"] = EnvVar("META_ALERT_SMTP_PASSWORD")
    return Notifier(webhook_url=EnvVar("META_ALERT_WEBHOOK_URL") if webhook else None, **email)


def build_resources(settings: Settings) -> dict:
    return {
        "settings": run_settings(settings),
        "meta_client": meta_client(settings),
        "ledger": LedgerResource(database_url=settings.database_url()),
        "notifier": notifier(settings),
        # Step values under the instance's storage directory, frames as Parquet (io_manager.py).
        "io_manager": ParquetFilesystemIOManager(),
    }
