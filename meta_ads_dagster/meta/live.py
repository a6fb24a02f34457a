"""Live mode: the Marketing API through the facebook-business SDK, hardened like a production client.

What the SDK does not do, and this module adds (facts about facebook-business 26.0.3):

- It decides success from the body only: an HTTP 500 with a JSON body comes back as a success and
  an HTML 502 as a success whose parsing fails later. :class:`GuardedGraphApi` checks the HTTP status
  of every response itself.
- It has no retries: transient errors (codes 1, 2, 4, 17, 32, 341, 613, 80000–80008, HTTP 5xx,
  timeouts and dropped connections) are retried with exponential backoff and jitter, a bounded number
  of times. A *write* that timed out or lost its connection after being sent is never re-sent: its
  outcome is unknown, and the next cycle reads the entity instead. A write that is not idempotent
  (``POST /{ad_id}/copies``: each one makes another ad) is sent at most once: any answer that leaves
  open whether Meta applied it (5xx, a rate limit, a timeout, an unparseable body) makes it unknown.
- It trusts any body: an HTML page (or a JSON body of the wrong shape) with HTTP 200 passes as a
  success and crashes later (a batch: ``'str' object has no attribute 'get'``). Every answer must
  parse as JSON, and a batch's as one entry per request: else a read is retried, and a write,
  which may have been applied, is unknown.
- It parses no usage headers: ``x-business-use-case-usage``, ``x-ad-account-usage`` and
  ``x-app-usage`` are read on every response, and the client pauses before the next call when any
  usage reaches ``usage_pause_pct``, for as long as Meta's ``estimated_time_to_regain_access`` says.
- The SDK's ``init`` class method, with its default crash logging switched on, installs a global
  excepthook that posts crash reports to Meta: this module never calls it and builds the session
  itself (``FacebookSession`` + ``FacebookAdsApi(session)``).
- Errors carry the request; the access token and appsecret_proof are scrubbed from every message
  this module raises or returns, and never logged.

Insights: the async report's pages are read through :meth:`GuardedGraphApi.call` as the SDK's
Cursor reads them, but each page's rows go into pyarrow columns (``engine/columnar.py``) instead of
an ``AdsInsights`` object and a dict per row: ``fetch_account`` parses the account with those
columns. The pages' bodies are kept; where the columns cannot vouch for the rows (a value of
another type, a field the SDK would read its own way, a value the parser rejects), the rows are
made from them as the Cursor made them, and parsed as before, with the same messages.

Learning phase: the ad set read asks for ``learning_stage_info`` too (no extra call). Around the
budget writes of one ``apply_writes`` the ad sets' ``learning_stage_info`` is read once before and
once after (two paged reads, only when a budget is written), and each budget write's result (the
ledger's ``output_snapshot``) says, for every ad set its budget reaches, the status and
``last_sig_edit_ts`` before and after, and whether the write restarted learning (``reset``).

Sleeping and the clock are injectable, so tests drive backoff and throttling without waiting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import requests
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.adobjects.adsinsights import AdsInsights
from facebook_business.adobjects.objectparser import ObjectParser
from facebook_business.api import FacebookAdsApi, FacebookResponse
from facebook_business.exceptions import FacebookError, FacebookRequestError
from facebook_business.session import FacebookSession
from pydantic import PrivateAttr

from ..engine import columnar
from ..engine.snapshot import AccountSnapshot, parse_snapshot, parse_with_insights_fields
from .client import MetaAdsClient, Write, WriteOutcome

API_VERSION = "v26.0"  # the one place the Graph API version is pinned
DEFAULT_GRAPH_URL = "https://graph.facebook.com"
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, *range(80000, 80009)})
AUTH_CODES = frozenset({190})
USAGE_HEADERS = ("x-business-use-case-usage", "x-ad-account-usage", "x-app-usage")
MAX_BATCH = 50  # Graph API limit per batch request
INSIGHTS_LOOKBACK_DAYS = 28  # Meta restates conversions for up to 28 days
# Pinned explicitly (Meta's default changes; 7d_view/28d_view are deprecated).
ATTRIBUTION_WINDOWS = ["7d_click", "1d_view"]
INSIGHT_FIELDS = ["ad_id", "adset_id", "campaign_id", "date_start", "date_stop", "spend", "impressions", "clicks", "actions", "action_values"]
REPORT_DONE, REPORT_FAILED = "Job Completed", ("Job Failed", "Job Skipped")
BUDGET_WRITES = ("scale_up", "scale_down")
ADSET_FIELDS = ["id", "campaign_id", "name", "status", "created_time", "daily_budget", "targeting", "learning_stage_info"]
# The SDK sends access_token and appsecret_proof in the query string of every request, and urllib3
# logs each request's URL at DEBUG: these loggers get a filter that redacts both values.
HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")
_SECRET_PARAMS = re.compile(r"((?:access_token|appsecret_proof)=)[^&\s\"']+")


class RedactQuerySecrets(logging.Filter):
    """Replace access_token=… and appsecret_proof=… in a log record's message with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_PARAMS.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_http_logs() -> None:
    """Install :class:`RedactQuerySecrets` on urllib3's URL-logging loggers (once per process)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
            logger.addFilter(RedactQuerySecrets())


class MetaApiError(RuntimeError):
    """Meta refused a request (permanent): message and code as Meta gave them."""

    def __init__(self, message: str, code: int | None = None, subcode: int | None = None):
        super().__init__(f"Meta error {code}{f'/{subcode}' if subcode else ''}: {message}")
        self.code, self.subcode = code, subcode


class MetaAuthError(MetaApiError):
    """The access token is invalid or expired (code 190): nothing more may be sent this cycle."""


class MetaTransientError(MetaApiError):
    """A transient failure that outlived its retries."""


class OutcomeUnknown(RuntimeError):
    """A write was sent but no usable answer came back: it may or may not have been applied."""


def unparseable(response: FacebookResponse, params: dict | None) -> str | None:
    """What is wrong with an answer that is not what Graph sends (None when it is): a body that is
    not JSON, or, for a batch, anything but a list with one entry (an object or null) per request."""
    body = response.json()  # the SDK hands back the raw text when the body is not JSON
    if not isinstance(body, (dict, list)):
        return f"unparseable answer (HTTP {response.status()}): {str(body)[:60]!r}"
    batch = (params or {}).get("batch")
    if isinstance(batch, list) and not (
        isinstance(body, list) and len(body) == len(batch) and all(item is None or isinstance(item, dict) for item in body)
    ):
        return f"unparseable answer to a batch of {len(batch)} (HTTP {response.status()}): {json.dumps(body)[:60]}"
    return None


@dataclass
class Usage:
    """The highest usage percentage seen in the last response's headers, and how long to wait."""

    pct: float = 0.0
    regain_seconds: float = 0.0


def parse_usage(headers: dict[str, str] | None) -> Usage:
    """Read Meta's three usage headers (JSON strings); missing or malformed headers count as 0."""
    usage = Usage()
    for name, raw in (headers or {}).items():
        if name.lower() not in USAGE_HEADERS:
            continue
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            continue
        entries = [entry for per_business in value.values() for entry in per_business] if name.lower() == USAGE_HEADERS[0] else [value]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            for key in ("call_count", "total_cputime", "total_time", "acc_id_util_pct"):
                usage.pct = max(usage.pct, float(entry.get(key) or 0))
            usage.regain_seconds = max(
                usage.regain_seconds,
                60.0 * float(entry.get("estimated_time_to_regain_access") or 0),
                float(entry.get("reset_time_duration") or 0) if float(entry.get("acc_id_util_pct") or 0) >= 100 else 0.0,
            )
    return usage


class GuardedGraphApi(FacebookAdsApi):
    """The SDK's API object with HTTP status checks, retries with backoff, and usage pacing.

    Every SDK call (cursors, report runs, batches) goes through :meth:`call`, so all of them get it.
    """

    def __init__(
        self,
        session: FacebookSession,
        *,
        max_tries: int,
        base_delay: float,
        max_delay: float,
        usage_pause_pct: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        rng: random.Random,
        scrub: Callable[[str], str],
    ):
        super().__init__(session, api_version=API_VERSION)
        self.max_tries, self.base_delay, self.max_delay = max_tries, base_delay, max_delay
        self.usage_pause_pct = usage_pause_pct
        self.sleep, self.clock, self.rng, self.scrub = sleep, clock, rng, scrub
        self.calls = 0  # HTTP requests actually sent (batches count once)
        self.errors = 0  # of them, answered with an error, a 5xx or no usable answer (timeout, dropped, unparseable)
        self.retries = 0  # of them, sent again after a transient fault
        self.paused_until = 0.0

    def backoff(self, attempt: int, floor: float = 0.0) -> float:
        """Exponential backoff with ±50 % jitter, never shorter than ``floor`` (Meta's own estimate)."""
        delay = min(self.max_delay, self.base_delay * 2**attempt) * self.rng.uniform(0.5, 1.5)
        return max(delay, floor)

    def _observe(self, headers) -> Usage:
        usage = parse_usage(dict(headers or {}))
        if usage.pct >= self.usage_pause_pct:
            self.paused_until = max(self.paused_until, self.clock() + max(usage.regain_seconds, self.base_delay))
        return usage

    def _pace(self) -> None:
        wait = self.paused_until - self.clock()
        if wait > 0:
            self.sleep(wait)

    def call(self, method, path, params=None, headers=None, files=None, url_override=None, api_version=None, *, once=False):
        """The SDK's call, checked and retried. ``once``: a write that must never be applied twice;
        an answer that leaves open whether it was (5xx, rate limit) raises OutcomeUnknown instead of
        being retried, like a timeout on any write."""
        for attempt in range(self.max_tries):
            self._pace()
            self.calls += 1
            last = attempt == self.max_tries - 1
            try:
                response: FacebookResponse = super().call(method, path, params, headers, files, url_override, api_version)
            except FacebookRequestError as exc:
                self.errors += 1
                usage = self._observe(exc.http_headers())
                code = exc.api_error_code()
                if code in AUTH_CODES:
                    raise MetaAuthError(self.scrub(exc.api_error_message() or "invalid access token"), code, exc.api_error_subcode()) from None
                transient = code in TRANSIENT_CODES or (exc.http_status() or 0) >= 500 or exc.api_transient_error()
                if not transient:
                    raise MetaApiError(self.scrub(exc.api_error_message() or "request failed"), code, exc.api_error_subcode()) from None
                error = MetaTransientError(self.scrub(exc.api_error_message() or "transient error"), code, exc.api_error_subcode())
                if once:  # Meta may have applied it before the error (seen: a copy, then a 500 or code 17)
                    raise OutcomeUnknown(str(error)) from None
                if last:
                    raise error from None
                self.retries += 1
                self.sleep(self.backoff(attempt, usage.regain_seconds))
                continue
            except (requests.Timeout, requests.ConnectionError) as exc:
                self.errors += 1
                if method != "GET":
                    # Sent, maybe applied, no answer: re-sending could apply a budget change twice.
                    raise OutcomeUnknown(self.scrub(f"{type(exc).__name__}: {exc}")) from None
                if last:
                    raise MetaTransientError(self.scrub(f"{type(exc).__name__} after {self.max_tries} tries: {exc}")) from None
                self.retries += 1
                self.sleep(self.backoff(attempt))
                continue
            self._observe(response.headers())
            status = response.status() or 0
            # The SDK counts a 5xx with a JSON (or HTML) body as a success, and any body with a 200.
            if status >= 500:
                fault = f"HTTP {status}"
                # A budget or status sent again sets the same value: harmless, so it is retried.
                unknown = once
            elif (fault := unparseable(response, params)) is None:
                return response
            else:
                # Something between here and Meta answered: a write went out and may have landed.
                unknown = method != "GET"
            self.errors += 1
            if unknown:
                raise OutcomeUnknown(self.scrub(fault))
            if last:
                raise MetaTransientError(self.scrub(f"{fault} after {self.max_tries} tries"))
            self.retries += 1
            self.sleep(self.backoff(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises


def learning_log(write: Write, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
    """For each ad set a budget write reaches (an ad set: itself; a campaign: its ad sets), its
    learning status and ``last_sig_edit_ts`` before and after the write, and ``reset``: whether
    the write restarted its learning (a newer ``last_sig_edit_ts``)."""
    if "error" in before or "error" in after:
        return {"error": before.get("error") or after.get("error")}
    reached = [
        adset for adset, info in after.items()
        if (write.entity_type == "adset" and adset == write.entity_id) or (write.entity_type == "campaign" and info["campaign_id"] == write.entity_id)
    ]

    def stage(info: dict[str, Any] | None) -> dict[str, Any]:
        return {"status": (info or {}).get("status"), "last_sig_edit_ts": (info or {}).get("last_sig_edit_ts")}

    rows = []
    for adset in sorted(reached):
        was, now = stage(before.get(adset)), stage(after[adset])
        reset = now["last_sig_edit_ts"] is not None and now["last_sig_edit_ts"] != was["last_sig_edit_ts"]
        rows.append({"adset_id": adset, "before": was, "after": now, "reset": reset})
    return rows


@dataclass(frozen=True)
class InsightsReport:
    """An insights report as read, page by page: each page's body as Graph sent it, and the rows'
    fields as pyarrow columns (``columnar.read_page``) when every page could be read so."""

    bodies: tuple[str, ...]
    fields: dict[str, pa.Array] | None

    def rows(self, api: FacebookAdsApi) -> list[dict[str, Any]]:
        """The rows as the SDK's Cursor hands them out: its parser's AdsInsights of each page,
        exported (made only when a parse needs them as dicts)."""
        parser = ObjectParser(api=api, target_class=AdsInsights)
        return [row.export_all_data() for body in self.bodies for row in parser.parse_multiple(json.loads(body))]


def read_report(api: FacebookAdsApi, report_id: str, page_size: int) -> InsightsReport:
    """The rows of a finished report run, page by page through ``api.call`` (so with its checks,
    retries and pacing), in the requests the SDK's Cursor sends: ``limit``, then ``after`` the
    page's cursor while the page has a ``paging.next``; a page after the first without rows ends
    the read, as it ends the Cursor's.

    Each page's rows go into columns without a dict per row. Where that cannot vouch for a page
    (``columnar.read_page`` is None), the page is decoded and parsed by the SDK's own parser, which
    raises what the Cursor raised, and the report keeps no columns: its rows are then the SDK's
    (:meth:`InsightsReport.rows`)."""
    parser = ObjectParser(api=api, target_class=AdsInsights)
    params: dict[str, Any] = {"limit": page_size}
    bodies: list[str] = []
    pages: list[dict[str, pa.Array]] | None = []
    while True:
        response = api.call("GET", (report_id, "insights"), params=params)
        bodies.append(response.body())
        # Once a page has no columns the report has none: the later pages are the SDK's alone to read.
        page = columnar.read_page(bodies[-1].encode()) if pages is not None else None
        fields, paging = page or (None, None)
        after = ((paging or {}).get("cursors") or {}).get("after")
        if (paging or {}).get("next") is not None and after is not None:
            follows, count = True, len(fields["ad_id"])  # the Cursor reads on from this very cursor
        else:
            # The Cursor's own reading of the page: its paging (a "next" that is null still leads
            # on) and its rows (the SDK's parser raises where the Cursor raised).
            decoded = response.json()
            follows = "paging" in decoded and "cursors" in decoded["paging"] and "after" in decoded["paging"]["cursors"] and "next" in decoded["paging"]
            after = decoded["paging"]["cursors"]["after"] if follows else None
            count = len(fields["ad_id"]) if fields is not None else len(parser.parse_multiple(decoded))
        if fields is None:
            pages = None
        else:
            pages.append(fields)
        if not follows or (count == 0 and len(bodies) > 1):
            break
        params = {"limit": page_size, "after": after}
    fields = None if pages is None else {name: pa.concat_arrays([page[name] for page in pages]) for name in pages[0]}
    return InsightsReport(tuple(bodies), fields)


class LiveMetaAdsClient(MetaAdsClient):
    """One ad account through the Graph API. Secrets come from ``dagster.EnvVar`` (see resources.py)."""

    access_token: str
    app_id: str
    app_secret: str
    graph_url: str = DEFAULT_GRAPH_URL
    request_timeout_seconds: float = 60.0
    max_tries: int = 5
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 60.0
    usage_pause_pct: float = 90.0
    report_poll_seconds: float = 5.0
    report_max_polls: int = 120
    page_size: int = 500

    _api: GuardedGraphApi | None = PrivateAttr(default=None)
    _sleep: Callable[[float], None] = PrivateAttr(default=time.sleep)
    _clock: Callable[[], float] = PrivateAttr(default=time.time)
    _rng: random.Random = PrivateAttr(default_factory=random.Random)
    _insights: InsightsReport | None = PrivateAttr(default=None)
    _as_of: datetime | None = PrivateAttr(default=None)  # when the insights were read
    _account: dict[str, Any] | None = PrivateAttr(default=None)

    # --- plumbing -----------------------------------------------------------------------------------
    def use_clock(self, sleep: Callable[[float], None], clock: Callable[[], float], seed: int = 0) -> "LiveMetaAdsClient":
        """Inject sleeping, the clock and the jitter seed (tests: no real waiting)."""
        self._sleep, self._clock, self._rng = sleep, clock, random.Random(seed)
        self._api = None
        return self

    def scrub(self, text: str) -> str:
        """Remove the token (and the appsecret_proof derived from it) from any text."""
        for secret in (self.access_token, getattr(self._api._session, "appsecret_proof", None) if self._api else None):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _check_configured(self) -> None:
        missing = [
            variable
            for variable, value in (
                ("META_ACCESS_TOKEN", self.access_token), ("META_APP_ID", self.app_id),
                ("META_APP_SECRET", self.app_secret), ("META_AD_ACCOUNT_IDS", self.account_id),
            )
            if not str(value or "").strip()
        ]
        if missing:
            raise MetaAuthError(f"live mode needs {', '.join(missing)} (set and non-empty)")

    @property
    def api(self) -> GuardedGraphApi:
        if self._api is None:
            self._check_configured()
            redact_http_logs()
            session = FacebookSession(self.app_id, self.app_secret, self.access_token, timeout=self.request_timeout_seconds)
            session.GRAPH = self.graph_url.rstrip("/")  # on the instance: never a global change
            self._api = GuardedGraphApi(
                session,
                max_tries=self.max_tries, base_delay=self.base_delay_seconds, max_delay=self.max_delay_seconds,
                usage_pause_pct=self.usage_pause_pct, sleep=self._sleep, clock=self._clock, rng=self._rng, scrub=self.scrub,
            )
        return self._api

    def request_counts(self) -> dict[str, int]:
        api = self._api
        return {"api_calls": api.calls, "api_errors": api.errors, "api_retries": api.retries} if api else super().request_counts()

    @property
    def act_id(self) -> str:
        return self.account_id if self.account_id.startswith("act_") else f"act_{self.account_id}"

    def _account_object(self) -> AdAccount:
        return AdAccount(self.act_id, api=self.api)

    def _read_all(self, edge: str, fields: list[str]) -> list[dict[str, Any]]:
        cursor = getattr(self._account_object(), edge)(fields=fields, params={"limit": self.page_size})
        return [row.export_all_data() for row in cursor]

    def _account_info(self) -> dict[str, Any]:
        if self._account is None:
            self._account = self._account_object().api_get(fields=["id", "currency", "timezone_name"]).export_all_data()
        return self._account

    # --- reading ------------------------------------------------------------------------------------
    def sync_insights(self) -> None:
        """Run one async insights report (AdReportRun) over the 28-day lookback and keep its rows."""
        account = self._account_info()
        self._as_of = datetime.fromtimestamp(self._clock(), timezone.utc)
        today = self._as_of.astimezone(ZoneInfo(account["timezone_name"])).date()
        params = {
            "level": "ad",
            "time_increment": 1,
            "breakdowns": ["country"],
            "time_range": {"since": (today - timedelta(days=INSIGHTS_LOOKBACK_DAYS - 1)).isoformat(), "until": today.isoformat()},
            "action_attribution_windows": ATTRIBUTION_WINDOWS,
            "limit": self.page_size,
        }
        report: AdReportRun = self._account_object().get_insights(fields=INSIGHT_FIELDS, params=params, is_async=True)
        for _ in range(self.report_max_polls):
            report = report.api_get(fields=[AdReportRun.Field.async_status, AdReportRun.Field.async_percent_completion])
            status = report[AdReportRun.Field.async_status]
            if status == REPORT_DONE:
                break
            if status in REPORT_FAILED:
                raise MetaApiError(f"insights report {report.get_id()} ended as {status!r}")
            self._sleep(self.report_poll_seconds)
        else:
            raise MetaTransientError(f"insights report {report.get_id()} not done after {self.report_max_polls} polls")
        self._insights = read_report(self.api, report.get_id(), self.page_size)

    def fetch_snapshot(self) -> dict[str, Any]:
        """The account as a SNAPSHOT.md document, for the same parser the stub's snapshots go through."""
        return self._structure() | {"insights": self._insights.rows(self.api)}

    def fetch_account(self) -> AccountSnapshot:
        """:meth:`fetch_snapshot` parsed, its insights from the report's columns: no dict per row.
        Where the columns cannot vouch for the rows, the document is parsed with the SDK's rows
        (the same structure: nothing is read twice), whose parse names what is wrong."""
        structure = self._structure()
        if self._insights.fields is not None:
            snapshot = parse_with_insights_fields(structure, dict(self._insights.fields))  # a copy: it is emptied
            if snapshot is not None:
                return snapshot
        return parse_snapshot(structure | {"insights": self._insights.rows(self.api)})

    def _structure(self) -> dict[str, Any]:
        """The document but its insights (synced first if they are not yet)."""
        if self._insights is None:
            self.sync_insights()
        account = self._account_info()
        creatives = self._read_all("get_ad_creatives", ["id", "status"])
        return {
            "as_of": self._as_of.isoformat(),
            "account": {"id": self.act_id, "currency": account["currency"], "timezone_name": account["timezone_name"]},
            "campaigns": self._read_all("get_campaigns", ["id", "name", "status", "created_time", "daily_budget"]),
            "adsets": self._read_all("get_ad_sets", ADSET_FIELDS),
            "ads": self._read_all("get_ads", ["id", "adset_id", "campaign_id", "name", "status", "created_time", "creative", "source_ad_id"]),
            # Meta has no "approved" flag on a creative: one still in review (IN_PROCESS) or
            # with issues is not approved.
            "creatives": [{"id": c["id"], "approved": c.get("status") == "ACTIVE"} for c in creatives],
        }

    # --- writing ------------------------------------------------------------------------------------
    def _graph_writes(self, write: Write) -> list[tuple[str, dict[str, Any]]]:
        """The Graph requests (object id, params) that carry out one write, as one unit."""
        if write.type in ("scale_up", "scale_down"):
            return [(write.entity_id, {"daily_budget": int(write.new_budget_minor)})]
        if write.type == "pause":
            return [(write.entity_id, {"status": "PAUSED"})]
        if write.type == "resume":
            return [(write.entity_id, {"status": "ACTIVE"})]
        if write.type == "publish_winner":
            return [(write.entity_id, {"status": "ACTIVE"})] + [(ad, {"status": "PAUSED"}) for ad in write.loser_ad_ids]
        raise ValueError(f"action {write.action_id}: type {write.type!r} is not a batchable write")

    def apply_writes(self, writes: list[Write]) -> list[WriteOutcome]:
        """Budget and status writes as Graph batches of ≤ 50 requests; variants one by one.

        A per-item failure fails that action only. Publishing an A/B winner is several requests and
        one unit: if any of them fails for good, the losers it already paused are set ACTIVE again,
        so the test is never left half-decided. Transient item failures are retried in the next
        batch (bounded); a batch (or item) whose answer never came, or came unparseable, marks its
        actions unknown, never re-sent.
        """
        # A reallocation's legs go one by one, all or none by compensation (MetaAdsClient.apply_unit).
        units = {o.action_id: o for unit in dict.fromkeys(w.unit_id for w in writes if w.unit_id)
                 for o in self.apply_unit([w for w in writes if w.unit_id == unit])}
        if units:
            rest = self.apply_writes([w for w in writes if not w.unit_id]) if any(not w.unit_id for w in writes) else []
            outcomes = units | {o.action_id: o for o in rest}
            return [outcomes[w.action_id] for w in writes]
        budget_writes = [w for w in writes if w.type in BUDGET_WRITES]
        learning_before = self._learning_stages() if budget_writes else {}
        units = {w.action_id: self._graph_writes(w) for w in writes if w.type != "create_variant"}
        items = [(action_id, object_id, params) for action_id, requests_ in units.items() for object_id, params in requests_]
        done: set[int] = set()
        errors: dict[str, str] = {}
        unknown: dict[str, str] = {}
        pending = list(range(len(items)))
        for attempt in range(self.max_tries):
            retry: list[int] = []
            for start in range(0, len(pending), MAX_BATCH):
                chunk = [i for i in pending[start:start + MAX_BATCH] if items[i][0] not in errors and items[i][0] not in unknown]
                try:
                    retry += self._send_batch(items, chunk, done, errors, unknown)
                except MetaAuthError as exc:
                    # Nothing more may be sent with this token: fail everything not yet done.
                    for i in pending[start:]:
                        errors.setdefault(items[i][0], str(exc))
                    retry = []
                    break
                except OutcomeUnknown as exc:
                    for i in chunk:
                        unknown.setdefault(items[i][0], str(exc))
                except MetaApiError as exc:
                    for i in chunk:
                        errors.setdefault(items[i][0], str(exc))
            pending = [i for i in retry if items[i][0] not in errors and items[i][0] not in unknown]
            if not pending:
                break
            if attempt < self.max_tries - 1:
                self._sleep(self.api.backoff(attempt))
        for i in pending:
            errors.setdefault(items[i][0], "transient error persisted after retries")
        self._undo_partial_units(items, done, errors)

        outcomes = {}
        for action_id, requests_ in units.items():
            if action_id in unknown:
                outcomes[action_id] = WriteOutcome(action_id, "unknown", error=unknown[action_id])
            elif action_id in errors:
                outcomes[action_id] = WriteOutcome(action_id, "failed", error=errors[action_id])
            else:
                outcomes[action_id] = WriteOutcome(action_id, "executed", {"requests": [{"id": o, **p} for o, p in requests_]})
        for write in writes:
            if write.type == "create_variant":
                outcomes[write.action_id] = self._single(write)
        landed = [w for w in budget_writes if outcomes[w.action_id].status == "executed"]
        if landed:
            learning_after = self._learning_stages()
            for write in landed:
                outcome = outcomes[write.action_id]
                outcomes[write.action_id] = dataclasses.replace(
                    outcome, result={**(outcome.result or {}), "learning_stage": learning_log(write, learning_before, learning_after)}
                )
        return [outcomes[w.action_id] for w in writes]

    def _learning_stages(self) -> dict[str, Any]:
        """Ad set id → its campaign and ``learning_stage_info`` now; ``{"error": ...}`` when the
        read fails (it only feeds the log: a budget write never waits on it)."""
        try:
            rows = self._read_all("get_ad_sets", ["id", "campaign_id", "learning_stage_info"])
        except (MetaApiError, FacebookError) as exc:
            return {"error": self.scrub(str(exc))}
        return {str(row["id"]): {"campaign_id": str(row.get("campaign_id")), **(row.get("learning_stage_info") or {})} for row in rows}

    def _send_batch(self, items, chunk: list[int], done: set[int], errors: dict[str, str], unknown: dict[str, str]) -> list[int]:
        """One Graph batch; returns the positions to try again (transient, or left unanswered)."""
        if not chunk:
            return []
        answered: set[int] = set()
        retry: list[int] = []
        batch = self.api.new_batch()
        for i in chunk:
            action_id, object_id, params = items[i]

            def succeeded(response: FacebookResponse, i=i) -> None:
                answered.add(i)
                if (fault := unparseable(response, None)) is not None:  # the SDK calls any 200 a success
                    unknown.setdefault(items[i][0], self.scrub(fault))
                else:
                    done.add(i)

            def failed(response: FacebookResponse, i=i) -> None:
                answered.add(i)
                body = response.json() if isinstance(response.json(), dict) else {}
                error = body.get("error") or {}
                code = error.get("code")
                if code in TRANSIENT_CODES or (response.status() or 0) >= 500:
                    retry.append(i)
                else:
                    message = self.scrub(str(error.get("message") or "request failed"))
                    errors.setdefault(items[i][0], str(MetaApiError(message, code, error.get("error_subcode"))))

            batch.add("POST", (object_id,), params=params, success=succeeded, failure=failed)
        batch.execute()
        return retry + [i for i in chunk if i not in answered]

    def _undo_partial_units(self, items, done: set[int], errors: dict[str, str]) -> None:
        """Re-activate losers already paused by an A/B unit that failed (best effort, reported)."""
        undo = [i for i in done if items[i][0] in errors and items[i][2].get("status") == "PAUSED"]
        for i in undo:
            action_id, object_id, _ = items[i]
            try:
                self._post((object_id,), {"status": "ACTIVE"})
                errors[action_id] += f"; ad {object_id} set ACTIVE again so the test stays whole"
            except (MetaApiError, OutcomeUnknown) as exc:
                errors[action_id] += f"; could not re-activate ad {object_id}: {exc}"

    def _single(self, write: Write) -> WriteOutcome:
        try:
            return WriteOutcome(write.action_id, "executed", self.apply_write(write))
        except OutcomeUnknown as exc:
            return WriteOutcome(write.action_id, "unknown", error=str(exc))
        except (MetaApiError, FacebookError, ValueError) as exc:
            return WriteOutcome(write.action_id, "failed", error=self.scrub(str(exc)))

    def _post(self, path: tuple[str, ...], params: dict[str, Any], once: bool = False) -> dict[str, Any]:
        response = self.api.call("POST", path, params=params, once=once)
        body = response.json()
        return body if isinstance(body, dict) else {"response": body}

    def update_budget(self, entity_type: str, entity_id: str, daily_budget_minor: int) -> dict[str, Any]:
        return self._post((entity_id,), {"daily_budget": int(daily_budget_minor)})

    def pause(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._post((entity_id,), {"status": "PAUSED"})

    def resume(self, entity_type: str, entity_id: str) -> dict[str, Any]:
        return self._post((entity_id,), {"status": "ACTIVE"})

    def publish_winner_ad(self, winner_ad_id: str, loser_ad_ids: list[str]) -> dict[str, Any]:
        outcome = self.apply_writes([Write("publish", "publish_winner", "ad", winner_ad_id, loser_ad_ids=tuple(loser_ad_ids))])[0]
        if outcome.status != "executed":
            raise MetaApiError(outcome.error or "publish failed")
        return outcome.result or {}

    def create_new_ad_variant(self, ad_id: str, status: str = "PAUSED") -> dict[str, Any]:
        """A copy of the ad in its ad set (Graph's ``/{ad_id}/copies``), ``status_option`` ACTIVE
        (it delivers once Meta has reviewed it) or PAUSED.

        The Marketing API cannot write new titles or pick new music: a PAUSED copy is the variant's
        starting point for a person to vary and resume. Each call makes another ad, so it is sent
        once (see :meth:`GuardedGraphApi.call`); when its outcome is unknown the next cycle finds
        the copy by its ``source_ad_id`` and creation time.
        """
        body = self._post((ad_id, "copies"), {"status_option": status}, once=True)
        return {"new_ad_id": body.get("copied_ad_id"), "source_ad_id": ad_id, "status": status}

