"""One settings object for the whole project, read from the seeds' environment variable names.

Every field maps to the upper-case environment variable of the same name (``max_daily_change_pct``
reads ``MAX_DAILY_CHANGE_PCT``). Percentages are fractions (0.20 = 20 %). An invalid value stops
the program with :class:`SettingsError`, whose message names the variable, before anything runs.

Secrets (the live client's token and app secret) are deliberately *not* here: they only travel
through ``dagster.EnvVar`` so the Dagster UI masks them.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .input_rules import AD_ACCOUNT_ID, ad_account_id, echo, shown, utf8_text

logger = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A setting (environment variable) has an invalid value; the message names the variable."""


# Upper bounds that keep every number a real limit: a value past them is a typo or an attempt to
# switch a guard rail off (``inf``, 1e999 and NaN are refused everywhere by ``allow_inf_nan``).
MONEY_MAX = 1e9  # account currency, major units
HOURS_MAX = 24 * 365
COUNT_MAX = 1_000_000
# HARD_STOP_ROAS must stay below the hold band (decisions.ROAS_LOW, where budget cuts start):
# a hard stop at or above it would pause campaigns the rules consider worth keeping.
HOLD_BAND_LOW = 1.5


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, allow_inf_nan=False)
    _overrides: dict[str, dict] = PrivateAttr(default_factory=dict)
    # Who stopped the autonomous system, when an operator did (``with_controls``); not a variable.
    _paused_by: str | None = PrivateAttr(default=None)

    # --- where the account comes from and how the cycle runs -----------------------------------
    meta_api_mode: Literal["stub", "live"] = "stub"
    meta_auto_mode: Literal["suggest", "auto"] = "suggest"
    # The seed's kill switch: false stops the autonomous system (schedule ticks skip, a manual
    # cycle evaluates and records but writes nothing).
    meta_auto_enabled: bool = True
    meta_cycle_enabled: bool = True
    meta_cycle_auto_start: bool = True
    meta_cycle_interval_minutes: int = Field(30, gt=0, le=60)
    # The seed's name for the interval, in seconds; when set it must agree with the minutes.
    meta_auto_interval_seconds: int | None = Field(None, gt=0, le=3600)
    meta_ad_account_ids: str = ""
    meta_stub_snapshot: str | None = None
    # With no META_STUB_SNAPSHOT: the living demo (an account on the simulated market that moves
    # with every cycle) or the static demo (one fixed document that exercises every rule at once).
    meta_stub_demo: Literal["market", "static"] = "market"
    meta_ads_database_url: str | None = None
    # Graph API base URL: Meta's by default; a company proxy, or the fake server in tests.
    meta_graph_url: str = "https://graph.facebook.com"
    # Per-account overrides of the guard rails: a YAML (or JSON) file, e.g.
    #   act_1001: {MAX_DAILY_SPEND_USD: 5000, MAX_ACTIONS_PER_TICK: 5}
    meta_accounts_file: str | None = None

    # --- policy: how far one cycle may move a budget --------------------------------------------
    max_daily_change_pct: float = Field(0.20, gt=0, le=1)
    max_auto_change_pct: float = Field(0.10, gt=0, le=1)
    # > 0 and < 1: at 0 no ROAS is ever below it, at 1 no confidence ever reaches it (the hard stop
    # would be off); below the hold band, where cuts start.
    hard_stop_roas: float = Field(0.9, gt=0, lt=HOLD_BAND_LOW)
    hard_stop_confidence: float = Field(0.70, ge=0, lt=1)
    min_spain_percentage: float = Field(0.35, ge=0, le=1)
    max_single_country_pct: float = Field(0.70, gt=0, le=1)
    # The seed's "48h cooldown between creative changes": hours since the ad's last creative variant.
    creative_embargo_hours: float = Field(48, ge=0, le=HOURS_MAX)
    # Meta's significant-edit threshold as assumed here: a budget change larger than this restarts
    # an ad set's learning phase. Meta publishes no number; 20 % is the practitioners' rule. Raises
    # are sized to stay within it, less what the entity's budget changed in the last 24 h.
    significant_edit_pct: float = Field(0.20, gt=0, le=1)
    # Hold raises (not cuts, pauses or hard stops) while an ad set they reach is in Meta's learning
    # phase (learning_stage_info.status LEARNING). Off by default: on the simulated market it lost
    # money on balance (BENCHMARKS.md, "Learning-phase hold").
    learning_phase_hold: bool = False
    # Propose reallocations (budget moved from a campaign's weakest ad set to its strongest, total
    # unchanged) and resumes (of what the engine's own hard stop paused, once its matured ROAS
    # recovered); both are always queued for a person (engine/reallocate.py). Off by default: on
    # the simulated market reallocating did not earn and no resume ever fired (BENCHMARKS.md,
    # "Reallocate and resume").
    reallocate_proposals: bool = False
    resume_proposals: bool = False

    # --- safety: hard limits no proposal may cross ------------------------------------------------
    min_impressions: int = Field(1000, ge=0, le=1_000_000_000)
    min_spend_usd: float = Field(100, ge=0, le=MONEY_MAX)
    min_age_hours: float = Field(48, ge=0, le=HOURS_MAX)
    max_daily_spend_usd: float = Field(10_000, gt=0, le=MONEY_MAX)
    max_campaign_budget_usd: float = Field(5_000, gt=0, le=MONEY_MAX)
    max_actions_per_tick: int = Field(50, ge=0, le=COUNT_MAX)
    max_campaigns_per_tick: int = Field(100, gt=0, le=COUNT_MAX)
    require_human_approval_creatives: bool = True
    # How a creative variant is created once it may be (approved by a person, or automatically when
    # REQUIRE_HUMAN_APPROVAL_CREATIVES is off): ACTIVE runs it as soon as Meta's review approves its
    # creative (a new ad restarts its ad set's learning phase); PAUSED leaves it for a person to
    # vary and resume. PAUSED by default: Meta's copy keeps the source's creative, so an unchanged
    # copy put live would only restart its ad set's learning; on the simulated market, which gives a
    # variant a fresh creative, the gated variants that ran earned +0.26 % (BENCHMARKS.md,
    # "Creative variants that run"): ACTIVE is for an account whose person varies the creative.
    creative_variant_status: Literal["ACTIVE", "PAUSED"] = "PAUSED"
    # The blocking check insights_are_fresh: hours since the end of the newest insights row's day
    # (a row of today counts as 0); 24 means yesterday's full day must be there.
    max_insights_age_hours: float = Field(24, gt=0, le=HOURS_MAX)

    # --- approvals and the audit ledger --------------------------------------------------------------
    approval_ttl_hours: float = Field(24, gt=0, le=HOURS_MAX)  # a queued action not decided by then expires
    approval_min_budget_change_usd: float = Field(500, gt=0, le=MONEY_MAX)  # larger changes always need a person
    mass_pause_limit: int = Field(10, ge=0, le=COUNT_MAX)  # more pauses than this in one cycle need a person
    audit_retention_days: int = Field(90, gt=0, le=3650)  # the daily purge drops older ledger rows

    # --- alerts (alerts/): where they go; every alert is logged whatever is set here -------------
    # The Dagster UI's address as a person opens it: each alert links to its run there.
    dagster_ui_url: str = "http://localhost:3000"
    # Email: sent through this SMTP server when host, from and to are all set (the password is a
    # secret: META_ALERT_SMTP_PASSWORD, read through dagster.EnvVar only). The webhook URL is a
    # secret too (a Slack webhook URL is its own credential): META_ALERT_WEBHOOK_URL, EnvVar only.
    meta_alert_smtp_host: str | None = None
    meta_alert_smtp_port: int = Field(587, gt=0, le=65535)
    meta_alert_smtp_from: str | None = None
    meta_alert_smtp_to: str | None = None  # comma list
    meta_alert_smtp_user: str | None = None
    meta_alert_smtp_starttls: bool = True

    @field_validator("meta_cycle_interval_minutes")
    @classmethod
    def _divides_an_hour(cls, minutes: int) -> int:
        # The schedule is a cron "*/N": only divisors of 60 give evenly spaced cycles.
        if 60 % minutes:
            raise ValueError("must divide 60 (e.g. 5, 10, 15, 20, 30, 60) so cycles are evenly spaced")
        return minutes

    @field_validator("meta_auto_interval_seconds")
    @classmethod
    def _whole_minutes_dividing_an_hour(cls, seconds: int | None) -> int | None:
        if seconds is not None and (seconds % 60 or 3600 % seconds):
            raise ValueError("must be a whole number of minutes that divides an hour (e.g. 300, 900, 1800, 3600)")
        return seconds

    @model_validator(mode="after")
    def _one_interval(self) -> "Settings":
        """META_AUTO_INTERVAL_SECONDS (the seed's) and META_CYCLE_INTERVAL_MINUTES name one interval."""
        seconds = self.meta_auto_interval_seconds
        if seconds is None:
            return self
        if "meta_cycle_interval_minutes" in self.model_fields_set and self.meta_cycle_interval_minutes * 60 != seconds:
            raise ValueError(
                f"META_AUTO_INTERVAL_SECONDS ({seconds}) and META_CYCLE_INTERVAL_MINUTES "
                f"({self.meta_cycle_interval_minutes}) disagree: set one of them"
            )
        object.__setattr__(self, "meta_cycle_interval_minutes", seconds // 60)
        return self

    @field_validator("meta_ad_account_ids")
    @classmethod
    def _account_ids_shape(cls, raw: str) -> str:
        for account_id in _split_ids(raw):
            ad_account_id(account_id)
        return raw

    @model_validator(mode="after")
    def _account_overrides_are_valid(self) -> "Settings":
        """Load META_ACCOUNTS_FILE now, so a bad override stops the program before anything runs."""
        self._overrides = _read_account_overrides(self) if self.meta_accounts_file else {}
        return self

    @field_validator("dagster_ui_url")
    @classmethod
    def _web_address(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
            raise ValueError("must be an http:// or https:// address (the Dagster UI's, e.g. http://localhost:3000)")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _smtp_complete(self) -> "Settings":
        """Email needs a server, a sender and at least one recipient: half of them is a typo that
        would silently send nothing."""
        smtp = {"META_ALERT_SMTP_HOST": self.meta_alert_smtp_host, "META_ALERT_SMTP_FROM": self.meta_alert_smtp_from,
                "META_ALERT_SMTP_TO": self.meta_alert_smtp_to and ",".join(self.alert_email_recipients)}
        missing = [name for name, value in smtp.items() if not value]
        if 0 < len(missing) < len(smtp):
            raise ValueError(f"alert email needs {', '.join(missing)} too (or unset {', '.join(sorted(set(smtp) - set(missing)))})")
        return self

    @model_validator(mode="after")
    def _auto_not_looser_than_suggest(self) -> "Settings":
        if self.max_auto_change_pct > self.max_daily_change_pct:
            raise ValueError(
                "MAX_AUTO_CHANGE_PCT must not exceed MAX_DAILY_CHANGE_PCT: "
                "auto mode is never allowed to move a budget further than a human-approved change"
            )
        return self

    # --- derived values -------------------------------------------------------------------------
    @property
    def is_auto(self) -> bool:
        return self.meta_auto_mode == "auto"

    @property
    def stop_reason(self) -> str | None:
        """Why the autonomous system writes nothing now (the kill switch), None while it runs:
        META_AUTO_ENABLED=false, or a pause an operator stored (``meta-ads pause-automation``)."""
        if not self.meta_auto_enabled:
            return "META_AUTO_ENABLED is false"
        return self._paused_by

    @property
    def budget_change_limit(self) -> float:
        """The largest budget change one cycle may propose in the current mode."""
        return self.max_auto_change_pct if self.is_auto else self.max_daily_change_pct

    @property
    def alert_email_recipients(self) -> list[str]:
        """META_ALERT_SMTP_TO as a list of addresses."""
        return _split_ids(self.meta_alert_smtp_to or "")

    @property
    def account_ids(self) -> list[str]:
        """META_AD_ACCOUNT_IDS in the Graph API's form (``act_<digits>``), without repeats."""
        return list(dict.fromkeys(ad_account_id(i) for i in _split_ids(self.meta_ad_account_ids)))

    def cycle_accounts(self) -> list[str]:
        """The ad accounts the cycle runs for, one Dagster partition each.

        META_AD_ACCOUNT_IDS when set. Otherwise, in stub mode, what META_STUB_SNAPSHOT holds (the
        file's account, or one ``act_<digits>.json`` per account in a directory), or the demo
        account. Live mode needs META_AD_ACCOUNT_IDS. Reads the stub's files, so it is called once,
        when the definitions are built, not on every ``load_settings``.
        """
        accounts = self._configured_accounts()
        unknown = sorted(set(self._overrides) - set(accounts))
        if unknown:
            # Most likely a typo: the account it was meant for would run under the defaults.
            raise SettingsError(
                f"META_ACCOUNTS_FILE {self.meta_accounts_file}: {', '.join(unknown)} is not a configured account "
                f"({', '.join(accounts)})"
            )
        return accounts

    def _configured_accounts(self) -> list[str]:
        ids = self.account_ids
        if self.meta_api_mode == "live":
            if not ids:
                raise SettingsError("META_AD_ACCOUNT_IDS: live mode needs at least one ad account id (act_<digits>)")
            return ids
        if not self.meta_stub_snapshot:
            return ids or [DEMO_ACCOUNT_ID]
        path = Path(self.meta_stub_snapshot)
        if path.is_dir():
            served = sorted(f.stem for f in path.glob("act_*.json") if AD_ACCOUNT_ID.fullmatch(f.stem))
            missing = [i for i in ids if i not in served]
            if missing or not served:
                raise SettingsError(
                    f"META_STUB_SNAPSHOT: directory {path} has no snapshot for {', '.join(missing) or 'any account'} "
                    "(expected one act_<digits>.json per account)"
                )
            return ids or served
        held = _snapshot_account_id(path)
        if ids and ids != [held]:
            raise SettingsError(
                f"META_STUB_SNAPSHOT: {path} holds account {held}, but META_AD_ACCOUNT_IDS lists {', '.join(ids)}; "
                "for several accounts point it at a directory with one act_<digits>.json per account"
            )
        return [held]

    @property
    def cycle_max_runtime(self) -> timedelta:
        """How long one cycle may run: five sixths of the interval (25 of 30 minutes), so run
        monitoring fails a stuck cycle, and its account lock counts as abandoned, before the
        account's next cycle is due."""
        return timedelta(minutes=self.meta_cycle_interval_minutes * 5 / 6)

    @property
    def cycle_cron(self) -> str:
        minutes = self.meta_cycle_interval_minutes
        return "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"

    def database_url(self) -> str:
        """App tables: META_ADS_DATABASE_URL, else a SQLite file beside Dagster's own storage."""
        if self.meta_ads_database_url:
            return self.meta_ads_database_url
        return f"sqlite:///{dagster_home() / 'meta_ads.sqlite'}"

    def for_account(self, account_id: str) -> "Settings":
        """These settings with ``account_id``'s overrides from META_ACCOUNTS_FILE applied."""
        overrides = self._overrides.get(account_id)
        if not overrides:
            return self
        return _validated(self.model_dump() | {"meta_accounts_file": None} | overrides)

    def account_overrides(self, account_id: str) -> dict:
        """``account_id``'s META_ACCOUNTS_FILE overrides (field name → value; empty when none)."""
        return dict(self._overrides.get(account_id, {}))

    def with_mode(self, mode: str) -> "Settings":
        """The same settings in another mode (used by ``meta-ads plan --mode``)."""
        return _validated(self.model_dump() | {"meta_auto_mode": mode})

    def with_controls(self, mode: str | None, paused_by: str | None) -> "Settings":
        """These settings under an operator's stored controls (``store/controls.py``): ``mode``,
        when given, replaces META_AUTO_MODE; ``paused_by`` (who paused, when), when given, stops
        the autonomous system as META_AUTO_ENABLED=false does. Neither can undo the environment's
        kill switch."""
        resolved = self if mode is None or mode == self.meta_auto_mode else self.with_mode(mode)
        if paused_by is None:
            return resolved
        resolved = resolved.model_copy()  # the private attribute is the copy's own
        resolved._paused_by = paused_by
        return resolved


# What an account may override: the guard rails and approval rules, not the mode or wiring.
OVERRIDABLE = frozenset(
    {
        "max_daily_change_pct", "max_auto_change_pct", "hard_stop_roas", "hard_stop_confidence", "min_spain_percentage",
        "max_single_country_pct", "creative_embargo_hours", "min_impressions", "min_spend_usd", "min_age_hours",
        "max_daily_spend_usd", "max_campaign_budget_usd", "max_actions_per_tick", "max_campaigns_per_tick",
        "require_human_approval_creatives", "approval_ttl_hours", "approval_min_budget_change_usd", "mass_pause_limit",
        "max_insights_age_hours",
        "significant_edit_pct", "learning_phase_hold", "reallocate_proposals", "resume_proposals",
        "creative_variant_status",
    }
)


class _AccountsFileLoader(yaml.SafeLoader):
    """YAML for META_ACCOUNTS_FILE, refusing what would make the file mean something else than it
    shows: anchors and aliases (a 600-byte "billion laughs" file expands to gigabytes), a key
    given twice (YAML keeps the last one silently), and a key that is not a plain value. Keys are
    kept as written, so ``01001`` is not read as octal 513 nor ``1_001`` as 1001."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (& and *) are not allowed", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        mapping = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value", key_node.start_mark)
            if key_node.value in mapping:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {shown(key_node.value)}", key_node.start_mark)
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line saying what and where (PyYAML's own message spans lines and quotes the file)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"not valid YAML at line {mark.line + 1} column {mark.column + 1}: {exc.problem or exc.context}"
    return "not valid YAML: " + " ".join(str(exc).split())


def _read_account_overrides(settings: "Settings") -> dict[str, dict]:
    """account id → overrides (field names), each checked by building that account's settings."""
    path = Path(settings.meta_accounts_file)
    try:
        text = utf8_text(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"META_ACCOUNTS_FILE: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # not UTF-8
        raise ValueError(f"META_ACCOUNTS_FILE {path}: {exc}") from None
    try:
        document = yaml.load(text, Loader=_AccountsFileLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"META_ACCOUNTS_FILE {path}: {_yaml_problem(exc)}") from None
    except ValueError as exc:  # a value YAML resolves but cannot build, such as the date 2026-13-45
        raise ValueError(f"META_ACCOUNTS_FILE {path}: not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested lists and mappings recursively
        raise ValueError(f"META_ACCOUNTS_FILE {path}: not valid YAML: nested too deep to read") from None
    if document is None:  # an empty file
        document = {}
    if not isinstance(document, dict):
        raise ValueError(f"META_ACCOUNTS_FILE {path}: must map ad account ids to overrides")
    overrides, written_as = {}, {}
    for account_id, values in document.items():
        where = f"META_ACCOUNTS_FILE {path}: {shown(account_id)}"
        try:
            key = ad_account_id(account_id)
        except ValueError:
            raise ValueError(f"{where}: not an ad account id (act_<digits>)") from None
        if key in overrides:
            raise ValueError(f"META_ACCOUNTS_FILE {path}: {shown(written_as[key])} and {shown(account_id)} are the same account {key}")
        if not isinstance(values, dict):
            raise ValueError(f"{where}: must map variables to values")
        fields, names = {}, {}
        for name, value in values.items():
            field = name.lower()
            if field in fields:
                raise ValueError(f"{where}: {shown(names[field])} and {shown(name)} are the same variable")
            fields[field], names[field] = value, name
        unknown = sorted(shown(name.upper()) for name in set(fields) - OVERRIDABLE)
        if unknown:
            raise ValueError(f"{where}: {', '.join(unknown)} cannot be set per account (only guard rails and approval rules)")
        try:
            Settings(**(settings.model_dump() | {"meta_accounts_file": None} | fields))
        except ValidationError as exc:
            problem = exc.errors()[0]
            variable = ".".join(str(part) for part in problem["loc"]).upper() or "settings"
            raise ValueError(f"{where}.{variable}: {problem['msg']} (got {echo(problem.get('input'))})") from None
        overrides[key], written_as[key] = fields, account_id
    return overrides


DEMO_ACCOUNT_ID = "act_1001"  # the stub's deterministic demo account (meta/demo.py)


def _snapshot_account_id(path: Path) -> str:
    """``account.id`` of a snapshot file, or a SettingsError naming META_STUB_SNAPSHOT.

    The file is read by the snapshot loader and its account id checked by the parser's rule, so
    a broken file gets the same answer here as from ``meta-ads plan``."""
    # Imported here: the engine imports this module.
    from .engine.snapshot import SnapshotError

    try:
        stat = path.stat()
        return _file_account_id(path, stat.st_size, stat.st_mtime_ns, stat.st_ino)
    except OSError as exc:
        raise SettingsError(f"META_STUB_SNAPSHOT: cannot read {path}: {exc.strerror}") from None
    except SnapshotError as exc:
        raise SettingsError(f"META_STUB_SNAPSHOT: {path}: {exc}") from None


@lru_cache(maxsize=8)
def _file_account_id(path: Path, size: int, mtime_ns: int, inode: int) -> str:
    """The account id in one version of a file (its size, time and inode): the settings are
    loaded more than once per process, and decoding a large account's file takes seconds."""
    from .engine.snapshot import snapshot_file_account_id

    return snapshot_file_account_id(path)


def dagster_home() -> Path:
    """DAGSTER_HOME, or ./.dagster_home (what ``meta-ads cycle`` creates) when unset."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()


def _split_ids(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _validated(values: dict | None = None) -> Settings:
    try:
        return Settings(**(values or {}))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["loc"]:
                variable = ".".join(str(part) for part in error["loc"]).upper()
                problems.append(f"{variable}: {message} (got {echo(error.get('input'))})")
            else:  # a check across variables: its message names them
                problems.append(message)
        raise SettingsError("invalid setting(s): " + "; ".join(problems)) from None


# Variables of ours that are not settings fields: the live client's and the alerts' secrets (read
# through dagster.EnvVar only) and the test suite's PostgreSQL and browser switches.
OTHER_VARIABLES = frozenset(
    {"META_ACCESS_TOKEN", "META_APP_ID", "META_APP_SECRET", "META_ALERT_WEBHOOK_URL", "META_ALERT_SMTP_PASSWORD",
     "META_ADS_TEST_POSTGRES_URL", "META_ADS_REQUIRE_POSTGRES", "META_ADS_REQUIRE_BROWSER"}
)
OUR_PREFIXES = ("META_", "MAX_", "MIN_", "HARD_STOP_")
_warned: set[str] = set()


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """Environment variables that look like ours (META_*, MAX_*, MIN_*, HARD_STOP_*) but are not:
    most likely a typo that would silently leave a guard rail at its default."""
    known = {name.upper() for name in Settings.model_fields} | OTHER_VARIABLES
    names = (environ if environ is not None else os.environ).keys()
    return sorted(name for name in names if name.upper().startswith(OUR_PREFIXES) and name.upper() not in known)


def load_settings(**overrides) -> Settings:
    """Read the settings from the environment; keyword overrides win (tests, CLI flags).

    An unknown variable that looks like one of ours is reported once per process as a warning
    (logger ``meta_ads_dagster.settings``; printed to stderr when nothing configured logging)."""
    for name in unknown_variables():
        if name not in _warned:
            _warned.add(name)
            logger.warning(f"warning: unknown setting {name} ignored (not one of meta_ads_dagster's variables; a typo?)")
    return _validated(overrides)
