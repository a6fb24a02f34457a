"""A fake Graph API server for the live Meta client's tests: one ad account, real HTTP, faults.

:class:`FakeGraphServer` serves ONE ad account from a SNAPSHOT.md document over real HTTP on
127.0.0.1 (a ``ThreadingHTTPServer`` on an ephemeral port, in a daemon thread). Point the real
facebook-business SDK at it by setting ``session.GRAPH = server.url`` on a ``FacebookSession``
instance. It never contacts any other host.

It speaks the Graph API the way the SDK (facebook-business 26.x) actually uses it:

* every top-level request carries ``access_token`` (and ``appsecret_proof`` when the session
  has an app secret) **in the query string**, also for POST (they are ``requests.Session``
  params); POST params are form-encoded in the body; dict/list/bool params are JSON-encoded;
* node reads/writes go to ``/vNN.N/<id>/`` *with a trailing slash* (``endpoint='/'``);
* edges are read by ``Cursor``: it adds ``summary=true``, and pages by re-sending the request
  with ``after=<paging.cursors.after>`` **only while ``paging.next`` is present** (it never
  follows the ``next`` URL itself);
* a batch is ``POST /vNN.N/`` with form field ``batch`` = JSON list of
  ``{method, relative_url, body?}`` (relative_url has no version prefix and no leading slash,
  GET params are in its query string, POST params in ``body``); the answer is a JSON list with,
  per item, ``{"code", "headers": [{"name", "value"}], "body": "<json string>"}`` or ``null``
  (a null item is put in the SDK's retry batch).

Endpoints (any ``/vNN.N`` prefix, or none): ``GET /act_<id>``; ``GET /act_<id>/{campaigns,
adsets,ads,adcreatives,insights}`` (paged); ``POST /act_<id>/insights`` (async report run);
``GET /<report_run_id>`` (advances ``report_status_sequence`` one step per poll);
``GET /<report_run_id>/insights`` (paged); ``GET|POST|DELETE /<object_id>`` for campaigns, ad sets,
ads and creatives (POST applies ``daily_budget``/``status``/``name``; DELETE sets DELETED). An ad
set's ``learning_stage_info`` is served when the document has one, and a budget change of more
than ``significant_edit_pct`` of the old budget restarts it, as Meta's significant edit would: on
the ad set, or on every ad set of a campaign whose budget changed (status ``LEARNING``,
``conversions`` 0, ``last_sig_edit_ts`` the document's ``as_of``);
``POST /act_<id>/adcreatives`` and ``POST /act_<id>/ads`` (new objects join the document);
``POST /<ad_id>/copies`` (a copy naming its ``source_ad_id`` joins the document);
``POST /`` with ``batch`` (at most 50 items, else error code 1).

Fault injection: ``server.inject(kind, match=None, times=1, **options)``; see :data:`FAULT_OPTIONS`
and :meth:`FakeGraphServer.inject`. Records for assertions: ``server.requests``,
``server.document``, ``server.report_runs``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

__all__ = [
    "FakeGraphServer",
    "Fault",
    "FAULT_OPTIONS",
    "DEFAULT_REPORT_STATUS_SEQUENCE",
    "DEFAULT_HTML_502",
    "MAX_BATCH_SIZE",
]

MAX_BATCH_SIZE = 50

#: (async_status, async_percent_completion) returned by successive polls of a report run; the
#: last entry sticks. Replace ``server.report_status_sequence`` to change it (e.g. a failed job).
DEFAULT_REPORT_STATUS_SEQUENCE: tuple[tuple[str, int], ...] = (
    ("Job Not Started", 0),
    ("Job Running", 50),
    ("Job Completed", 100),
)

#: Body of the ``html_502`` fault. It deliberately contains none of the substrings the SDK probes
#: with ``in`` on a non-JSON body ("error", "success", "data", "paging", "Service Unavailable").
DEFAULT_HTML_502 = (
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>502 Bad Gateway</title>"
    "</head><body><h1>Bad Gateway</h1><p>Sorry, something went wrong. We're working on it and "
    "we'll get it fixed as soon as we can.</p></body></html>\n"
)

_COMMON_OPTIONS = {"status", "message", "apply", "delay"}

#: Options each fault kind accepts (anything else is a TypeError, to catch typos).
FAULT_OPTIONS: dict[str, set[str]] = {
    # HTTP 400, code 17 (default) | 613 | 80004 | 80000 | 4, usage headers at >= pct.
    "rate_limit": _COMMON_OPTIONS | {"code", "subcode", "pct", "regain_minutes", "reset_seconds", "buc_type"},
    # HTTP 500 with a JSON error body (code 2, is_transient); `body` replaces the body verbatim.
    "server_error": _COMMON_OPTIONS | {"code", "subcode", "body"},
    # HTTP 502 with an HTML body (`body` to replace it).
    "html_502": _COMMON_OPTIONS | {"body"},
    # Apply the request (apply=True by default), then hang `seconds` and close without answering.
    "timeout": {"seconds", "apply"},
    # Close the connection without any response; nothing is applied (apply=False by default).
    "drop": {"apply"},
    # HTTP 400, code 100 (default) invalid parameter | 200 / 10 permission.
    "permanent": _COMMON_OPTIONS | {"code", "subcode"},
    # HTTP 400, code 190 invalid OAuth access token (subcode 463 expired by default).
    "token": _COMMON_OPTIONS | {"code", "subcode"},
    # Inside a batch: item #index fails with `code` (or is null with null=True, or answers `body`
    # verbatim, e.g. an HTML page); others succeed.
    "batch_item": {"index", "code", "subcode", "status", "message", "null", "apply", "body"},
}

_RATE_LIMIT_ERRORS = {
    4: ("(#4) Application request limit reached", 1504022),
    17: ("(#17) User request limit reached", 2446079),
    613: ("(#613) Calls to this api have exceeded the rate limit.", 1487742),
    80000: ("(#80000) There have been too many calls from this ad-account. Wait a bit and try again. "
            "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/"
            "rate-limiting#ads-insights.", 2446079),
    80004: ("(#80004) There have been too many calls to this ad-account. Wait a bit and try again. "
            "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/"
            "rate-limiting#ads-management.", 2446079),
}
_PERMANENT_ERRORS = {
    100: "(#100) Invalid parameter",
    200: "(#200) Permissions error",
    10: "(#10) Application does not have permission for this action",
}
_TOKEN_MESSAGES = {
    463: "Error validating access token: Session has expired on Tuesday, 24-Nov-26 10:00:00 PST. "
         "The current time is Wednesday, 25-Nov-26 02:30:00 PST.",
    460: "Error validating access token: The session has been invalidated because the user changed "
         "their password or Facebook has changed the session for security reasons.",
}
_WRITABLE_STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED", "DELETED")
_VERSION_PREFIX = re.compile(r"^/?v\d+\.\d+(?=/|$)")
_AUTH_PARAMS = ("access_token", "appsecret_proof")
_JSON_CT = "application/json; charset=UTF-8"
_COLLECTIONS = {"campaign": "campaigns", "adset": "adsets", "ad": "ads", "creative": "creatives"}


class _GraphError(Exception):
    def __init__(self, status: int, code: int, message: str, *, subcode: int | None = None,
                 type: str = "OAuthException", is_transient: bool | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.subcode, self.type, self.is_transient = subcode, type, is_transient


@dataclass
class Fault:
    """One queued fault. ``times=None`` means every matching request, forever."""

    kind: str
    match: Callable[[str, str, dict], bool] | re.Pattern | str | None
    times: int | None
    options: dict[str, Any]
    hits: int = 0

    def matches(self, method: str, path: str, params: dict) -> bool:
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match in path
        if isinstance(self.match, re.Pattern):
            return self.match.fullmatch(path) is not None
        return bool(self.match(method, path, params))

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclass
class _Response:
    status: int
    body: str  # JSON text, or raw text (HTML)
    content_type: str = _JSON_CT
    usage: dict[str, Any] | None = None  # usage headers to send instead of server.usage
    extra: dict[str, Any] = field(default_factory=dict)


def _encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"fakegraph:{index}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, index = text.partition(":")
        if prefix != "fakegraph":
            raise ValueError(cursor)
        return int(index)
    except (ValueError, UnicodeDecodeError):
        raise _GraphError(400, 100, "(#100) The after cursor is not valid", subcode=None) from None


def _decode_params(raw: dict[str, str]) -> dict[str, Any]:
    """JSON-decode values that are JSON objects or arrays (how the SDK encodes dicts/lists).
    Scalars stay the strings that were sent: ``"60000"``, ``"true"``, ``"PAUSED"``."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value[:1] in ("{", "["):
            try:
                out[key] = json.loads(value)
                continue
            except ValueError:
                pass
        out[key] = value
    return out


def _normalize_path(path: str) -> tuple[str, str | None]:
    """('/act_1/campaigns', 'v26.0') from '/v26.0/act_1/campaigns/' (version None when absent)."""
    if not path.startswith("/"):
        path = "/" + path
    match = _VERSION_PREFIX.match(path)
    version = None
    if match:
        version = match.group(0).lstrip("/")
        path = path[match.end():] or "/"
    path = "/" + "/".join(part for part in path.split("/") if part)
    return path, version


def _field_names(fields: Any) -> list[str] | None:
    """Top-level names of a Graph ``fields`` param ("id,creative{id,name},name" or a list)."""
    if fields is None or fields == "":
        return None
    if isinstance(fields, list):
        text = ",".join(str(f) for f in fields)
    else:
        text = str(fields)
    names, depth, current = [], 0, ""
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            names.append(current)
            current = ""
            continue
        if depth == 0 and char != "}":
            current += char
    names.append(current)
    return [re.split(r"[.{]", name.strip())[0] for name in names if name.strip()]


def _select(obj: dict, fields: Any, always: tuple[str, ...] = ("id",)) -> dict:
    names = _field_names(fields)
    if names is None:
        return copy.deepcopy(obj)
    keep = [*always, *names]
    return {k: copy.deepcopy(obj[k]) for k in obj if k in keep}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: a dropped/hung one is isolated
    server_version = "FakeGraph/1.0"
    sys_version = ""

    def do_GET(self):  # noqa: N802
        fake = self.server.fake
        try:
            fake._handle(self)
        except Exception:  # a bug in the fixture: answer loudly instead of looking like a drop
            fake._internal_errors.append(traceback.format_exc())
            data = json.dumps({"error": {"message": "fake Graph server internal error (see "
                                         "server.internal_errors)", "type": "FakeGraphBug", "code": -1}}).encode()
            try:
                self.send_response(500)
                self.send_header("Content-Type", _JSON_CT)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass

    do_POST = do_DELETE = do_GET  # noqa: N815

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs under concurrent clients (1 s retransmits)

    def handle_error(self, request, client_address):  # client went away (timeouts): not an error
        pass


class FakeGraphServer:
    """Serves one ad account (a SNAPSHOT.md document) as the Graph API, on 127.0.0.1:<port>.

    Args:
        document: the snapshot (dict, deep-copied) or a path to a JSON file.
        page_size: server-side maximum page size of edges (a request's ``limit`` can only lower it).
        api_version: version used when the server builds URLs (``paging.next``); any ``/vNN.N``
            prefix is accepted on requests.
        hang_seconds: how long a ``timeout`` fault hangs before closing (interrupted by close()).
        report_status_sequence: (async_status, async_percent_completion) per successive poll.
        business_id: key of the ``x-business-use-case-usage`` header.
        access_token: when set, any other token gets error 190; when None any token is accepted
            (a missing token is always error 104, as on Graph).
        app_secret: when set, ``appsecret_proof`` must be HMAC-SHA256(app_secret, access_token)
            (else error 100, as on Graph).
        usage: the three usage headers' payloads (see :meth:`default_usage`).
        new_creatives_approved: ``approved`` of creatives created through POST /act_<id>/adcreatives.
        significant_edit_pct: a budget change of more than this share restarts learning (see above).
        start: start serving immediately (default); else call :meth:`start`.
    """

    def __init__(
        self,
        document: dict | str | Path,
        *,
        page_size: int = 25,
        api_version: str = "v26.0",
        hang_seconds: float = 30.0,
        report_status_sequence: tuple[tuple[str, int], ...] | list = DEFAULT_REPORT_STATUS_SEQUENCE,
        business_id: str = "100200300400500",
        access_token: str | None = None,
        app_secret: str | None = None,
        usage: dict[str, Any] | None = None,
        new_creatives_approved: bool = False,
        significant_edit_pct: float = 0.20,
        start: bool = True,
    ):
        if isinstance(document, (str, Path)):
            document = json.loads(Path(document).read_text())
        self._doc: dict[str, Any] = copy.deepcopy(document)
        account_id = str(self._doc["account"]["id"])
        self.account_id = account_id if account_id.startswith("act_") else f"act_{account_id}"
        self.page_size = page_size
        self.api_version = api_version
        self.hang_seconds = hang_seconds
        self.report_status_sequence = list(report_status_sequence)
        self.business_id = business_id
        self.access_token = access_token
        self.app_secret = app_secret
        self.new_creatives_approved = new_creatives_approved
        self.significant_edit_pct = significant_edit_pct
        self.usage: dict[str, Any] = usage if usage is not None else self.default_usage(business_id)

        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._records: list[dict[str, Any]] = []
        self._internal_errors: list[str] = []
        self._faults: list[Fault] = []
        self._report_runs: dict[str, dict[str, Any]] = {}
        self._creative_extra: dict[str, dict[str, Any]] = {}
        self._seq = 0
        self._next_numeric_id = 1 + max(
            [int(o["id"]) for c in _COLLECTIONS.values() for o in self._doc.get(c) or []
             if str(o.get("id", "")).isdigit()] or [100000]
        )
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeGraphServer":
        if self._httpd is None:
            self._stop.clear()
            self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
            self._httpd.fake = self
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"fake-graph-{self.port}", daemon=True,
            )
            self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash): what ``FacebookSession.GRAPH`` expects."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop serving; wakes any hanging ``timeout`` fault at once. Idempotent."""
        self._stop.set()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeGraphServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "closed"
        return f"<FakeGraphServer {self.account_id} at {where}>"

    # ------------------------------------------------------------------ configuration

    @staticmethod
    def default_usage(business_id: str = "100200300400500") -> dict[str, Any]:
        """Low usage, in Meta's header formats (values are percentages, except the times)."""
        return {
            "x-app-usage": {"call_count": 1, "total_cputime": 1, "total_time": 1},
            "x-ad-account-usage": {"acc_id_util_pct": 1.0, "reset_time_duration": 0,
                                   "ads_api_access_tier": "standard_access"},
            "x-business-use-case-usage": {business_id: [{
                "type": "ads_management", "call_count": 1, "total_cputime": 1, "total_time": 1,
                "estimated_time_to_regain_access": 0, "ads_api_access_tier": "standard_access",
            }]},
        }

    def set_usage(self, pct: float, *, regain_minutes: int = 0, reset_seconds: int = 0) -> None:
        """Every usage percentage of the three headers to ``pct`` (sticky, for all responses)."""
        with self._lock:
            self.usage = self._usage_at(self.default_usage(self.business_id), pct,
                                        regain_minutes, reset_seconds, None)

    # ------------------------------------------------------------------ faults

    def inject(self, kind: str, *, match: Callable[[str, str, dict], bool] | re.Pattern | str | None = None,
               times: int | None = 1, **options: Any) -> Fault:
        """Queue a fault, consumed by the next ``times`` matching requests (None: forever).

        ``match``: None (any request), a substring of the normalized path (no version prefix,
        e.g. ``"/act_1/campaigns"``, ``"120001"``; a batch envelope's path is ``"/"``; beware
        ``"/act_1/ads"`` is also in ``"/act_1/adsets"``), a compiled regex that must match the whole
        path (``re.compile(r"/act_1/ads")``), or a callable ``(method, path, params) -> bool``. Faults are tried in queue order against
        every top-level request, then (for a batch) against each item; a fault that matches a
        batch envelope fails the whole batch (except ``batch_item``, which only matches
        envelopes and fails one item). In a batch item, ``timeout`` gives a ``null`` item after
        applying it and ``drop`` a ``null`` item without applying it.

        Common options (not for timeout/drop/batch_item): ``status`` (HTTP status),
        ``message``, ``apply`` (also execute the request, e.g. a write that lands although
        its answer is an error; default False), ``delay`` (seconds to wait before answering).

        Kinds and their own options:

        * ``rate_limit``: ``code`` 17 (default), 613, 80004, 80000 or 4 (subcode from Meta's
          docs, or ``subcode``); ``pct`` (100) shown in all three usage headers;
          ``regain_minutes`` (1) as ``estimated_time_to_regain_access``; ``reset_seconds`` (60)
          as ``reset_time_duration``; ``buc_type`` (ads_insights for insights paths, else
          ads_management). HTTP 400.
        * ``server_error``: HTTP 500, body ``{"error": {code 2, is_transient true, ...}}``
          (``code``, ``subcode``); ``body`` (dict or str) replaces the body verbatim, e.g. a
          JSON body without "error" that the SDK takes for a success.
        * ``html_502``: HTTP 502 with :data:`DEFAULT_HTML_502` (or ``body``).
        * ``timeout``: executes the request if ``apply`` (default True), then waits ``seconds``
          (default ``server.hang_seconds``; set the client timeout lower) and closes the
          connection without an answer.
        * ``drop``: closes the connection without an answer; not applied (unless ``apply``).
        * ``permanent``: ``code`` 100 (default), 200 or 10; ``subcode``. HTTP 400.
        * ``token``: code 190 (``subcode`` 463 by default, or 460). HTTP 400.
        * ``batch_item``: ``index`` (0) of the item that fails with ``code`` (100), ``subcode``,
          ``status`` (400), ``message``; ``null=True`` makes it a ``null`` entry instead; ``body``
          (text) is answered verbatim with ``status``; ``apply`` executes it anyway (default False).
        """
        if kind not in FAULT_OPTIONS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_OPTIONS)}")
        unknown = set(options) - FAULT_OPTIONS[kind]
        if unknown:
            raise TypeError(f"fault {kind!r} does not take {sorted(unknown)}; it takes {sorted(FAULT_OPTIONS[kind])}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        fault = Fault(kind, match, times, dict(options))
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def faults(self) -> list[Fault]:
        """Faults still queued (not yet exhausted)."""
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str, params: dict, *, envelope: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == "batch_item" and not envelope:
                    continue
                if not fault.matches(method, path, params):
                    continue
                fault.hits += 1
                if fault.exhausted:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ records

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every top-level request and every batch item, in order (copies). Keys: ``seq``
        (top-level request number, shared by a batch's items), ``method``, ``path`` (no version
        prefix, no trailing slash; ``"/"`` for a batch envelope), ``version`` ("v26.0" or None),
        ``params`` (query + form merged, JSON objects/arrays decoded, scalars as sent),
        ``batch_index`` (None for top-level requests), ``status`` (HTTP status or item code
        answered; None when no answer was given), ``fault`` (kind of the fault applied, or None),
        ``applied`` (the request was executed against the document)."""
        with self._lock:
            return copy.deepcopy(self._records)

    def find(self, method: str | None = None, path: str | None = None, *,
             batch_items: bool = True, top_level: bool = True) -> list[dict[str, Any]]:
        """Records filtered by method, exact normalized path (e.g. ``"/act_1/ads"``, ``"/120001"``)
        and kind (top-level requests / batch items)."""
        return [r for r in self.requests
                if (method is None or r["method"] == method)
                and (path is None or r["path"] == path)
                and (batch_items or r["batch_index"] is None)
                and (top_level or r["batch_index"] is not None)]

    def reset_requests(self) -> None:
        with self._lock:
            self._records.clear()

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of bugs inside the fixture itself (answered as HTTP 500, code -1)."""
        return list(self._internal_errors)

    @property
    def document(self) -> dict[str, Any]:
        """The served snapshot as it is now, after writes (a copy)."""
        with self._lock:
            return copy.deepcopy(self._doc)

    @document.setter
    def document(self, value: dict[str, Any]) -> None:
        with self._lock:
            self._doc = copy.deepcopy(value)

    @property
    def report_runs(self) -> list[dict[str, Any]]:
        """Every async report run: ``{"id", "params" (without access_token/appsecret_proof),
        "polls"}``, in creation order (copies)."""
        with self._lock:
            return copy.deepcopy(list(self._report_runs.values()))

    # ------------------------------------------------------------------ HTTP

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command
        split = urlsplit(handler.path)
        raw: dict[str, str] = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type", "")
        multipart = content_type.startswith("multipart/")
        if body and not multipart:
            raw.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        path, version = _normalize_path(split.path)
        params = _decode_params(raw)
        envelope = method == "POST" and path == "/" and "batch" in raw

        with self._lock:
            self._seq += 1
            record = {"seq": self._seq, "method": method, "path": path, "version": version,
                      "params": copy.deepcopy(params), "batch_index": None, "status": None,
                      "fault": None, "applied": False}
            self._records.append(record)
        context = {"version": version or self.api_version, "raw": raw, "seq": record["seq"]}
        fault = None
        if multipart:
            response = self._error_response(_GraphError(400, 100, "(#100) File uploads are not supported by the fake Graph server"))
        else:
            response = self._auth_error(params)  # checked first: a rejected token consumes no fault
        if response is None:
            fault = self._take_fault(method, path, params, envelope=envelope)
            if fault is not None:
                with self._lock:
                    record["fault"] = fault.kind
            response = self._execute(method, path, params, fault, context, record, envelope=envelope)

        if fault is not None and fault.kind in ("timeout", "drop"):
            if fault.kind == "timeout":
                seconds = fault.options.get("seconds")
                self._stop.wait(self.hang_seconds if seconds is None else seconds)
            handler.close_connection = True
            return  # no status line, no headers: the client sees the connection close

        delay = fault.options.get("delay") if fault is not None else None
        if delay:
            self._stop.wait(delay)
        with self._lock:
            record["status"] = response.status
        data = response.body.encode("utf-8")
        try:
            handler.send_response(response.status)
            for name, value in self._headers(response, context["version"]):
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # client already gone
            pass

    def _headers(self, response: _Response, version: str) -> list[tuple[str, str]]:
        with self._lock:
            usage = response.usage if response.usage is not None else self.usage
            seq = self._seq
        headers = [("Content-Type", response.content_type),
                   ("facebook-api-version", version),
                   ("x-fb-trace-id", self._trace_id(seq)),
                   ("x-fb-rev", "1020304050")]
        headers += [(name, json.dumps(value, separators=(",", ":"))) for name, value in usage.items()]
        headers += list(response.extra.items())
        return headers

    @staticmethod
    def _trace_id(seq: int) -> str:
        return "F" + base64.b64encode(hashlib.sha1(str(seq).encode()).digest()).decode()[:10].replace("/", "x").replace("+", "y")

    def _auth_error(self, params: dict) -> _Response | None:
        token = params.get("access_token")
        if not token:
            return self._error_response(_GraphError(
                400, 104, "An access token is required to request this resource."))
        if self.access_token is not None and token != self.access_token:
            return self._error_response(_GraphError(
                400, 190, "Invalid OAuth access token - Cannot parse access token"))
        if self.app_secret is not None:
            expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if params.get("appsecret_proof") != expected:
                return self._error_response(_GraphError(
                    400, 100, "Invalid appsecret_proof provided in the API argument", type="GraphMethodException"))
        return None

    # ------------------------------------------------------------------ execution

    def _execute(self, method: str, path: str, params: dict, fault: Fault | None, context: dict,
                 record: dict, *, envelope: bool) -> _Response:
        """Run one request (top-level or batch item) through routing and its fault, if any."""
        apply_default = fault is not None and fault.kind == "timeout"
        kind = fault.kind if fault is not None else None
        run = fault is None or kind == "batch_item" or fault.options.get("apply", apply_default)
        response = None
        if run:
            with self._lock:
                record["applied"] = True
                try:
                    if envelope:
                        response = self._batch(params, fault if kind == "batch_item" else None, context)
                    else:
                        response = self._json(200, self._route(method, path, params, context))
                except _GraphError as exc:
                    response = self._error_response(exc)
        if fault is None or kind in ("batch_item", "timeout", "drop"):
            return response if response is not None else self._json(200, {})
        return self._fault_response(fault, path)

    def _json(self, status: int, body: Any, usage: dict | None = None) -> _Response:
        return _Response(status, json.dumps(body, separators=(",", ":")), usage=usage)

    def _error_response(self, exc: _GraphError, usage: dict | None = None) -> _Response:
        error: dict[str, Any] = {"message": exc.message, "type": exc.type, "code": exc.code}
        if exc.subcode is not None:
            error["error_subcode"] = exc.subcode
        if exc.is_transient is not None:
            error["is_transient"] = exc.is_transient
        with self._lock:
            error["fbtrace_id"] = self._trace_id(self._seq)
        return self._json(exc.status, {"error": error}, usage)

    def _fault_response(self, fault: Fault, path: str) -> _Response:
        o = fault.options
        if fault.kind == "rate_limit":
            code = o.get("code", 17)
            message, subcode = _RATE_LIMIT_ERRORS.get(code, (f"(#{code}) User request limit reached", None))
            buc_type = o.get("buc_type") or ("ads_insights" if "insights" in path else "ads_management")
            with self._lock:
                usage = self._usage_at(self.usage, o.get("pct", 100), o.get("regain_minutes", 1),
                                       o.get("reset_seconds", 60), buc_type)
            return self._error_response(_GraphError(
                o.get("status", 400), code, o.get("message", message), subcode=o.get("subcode", subcode)), usage)
        if fault.kind == "server_error":
            if "body" in o:
                body = o["body"]
                text = body if isinstance(body, str) else json.dumps(body)
                return _Response(o.get("status", 500), text)
            return self._error_response(_GraphError(
                o.get("status", 500), o.get("code", 2),
                o.get("message", "An unexpected error has occurred. Please retry your request later."),
                subcode=o.get("subcode"), is_transient=True))
        if fault.kind == "html_502":
            return _Response(o.get("status", 502), o.get("body", DEFAULT_HTML_502), "text/html; charset=utf-8")
        if fault.kind == "permanent":
            code = o.get("code", 100)
            return self._error_response(_GraphError(
                o.get("status", 400), code, o.get("message", _PERMANENT_ERRORS.get(code, f"(#{code}) Invalid request")),
                subcode=o.get("subcode"), is_transient=False))
        if fault.kind == "token":
            subcode = o.get("subcode", 463)
            return self._error_response(_GraphError(
                o.get("status", 400), o.get("code", 190),
                o.get("message", _TOKEN_MESSAGES.get(subcode, "Invalid OAuth access token.")),
                subcode=subcode, is_transient=False))
        raise AssertionError(fault.kind)

    @staticmethod
    def _usage_at(base: dict, pct: float, regain_minutes: int, reset_seconds: int, buc_type: str | None) -> dict:
        usage = copy.deepcopy(base)
        app = usage.setdefault("x-app-usage", {})
        for key in ("call_count", "total_cputime", "total_time"):
            app[key] = max(app.get(key, 0), pct)
        acc = usage.setdefault("x-ad-account-usage", {})
        acc["acc_id_util_pct"] = max(acc.get("acc_id_util_pct", 0), pct)
        acc["reset_time_duration"] = max(acc.get("reset_time_duration", 0), reset_seconds)
        acc.setdefault("ads_api_access_tier", "standard_access")
        buc = usage.setdefault("x-business-use-case-usage", {})
        if not buc:
            buc["100200300400500"] = []
        for entries in buc.values():
            if buc_type is not None and not any(e.get("type") == buc_type for e in entries):
                entries.append({"type": buc_type, "ads_api_access_tier": "standard_access"})
            for entry in entries:
                if buc_type is None or entry.get("type") == buc_type:
                    for key in ("call_count", "total_cputime", "total_time"):
                        entry[key] = max(entry.get(key, 0), pct)
                    entry["estimated_time_to_regain_access"] = max(
                        entry.get("estimated_time_to_regain_access", 0), regain_minutes)
        return usage

    # ------------------------------------------------------------------ batch

    def _batch(self, params: dict, item_fault: Fault | None, context: dict) -> _Response:
        items = params.get("batch")
        if not isinstance(items, list):
            raise _GraphError(400, 100, "(#100) The parameter batch must be a JSON array")
        if len(items) > MAX_BATCH_SIZE:
            raise _GraphError(400, 1, f"(#1) Too many requests in batch message. Maximum batch size is {MAX_BATCH_SIZE}",
                              type="GraphBatchException")
        out: list[Any] = []
        for index, item in enumerate(items):
            out.append(self._batch_item(index, item, item_fault, context))
        return self._json(200, out)

    def _batch_item(self, index: int, item: Any, envelope_fault: Fault | None, context: dict) -> dict | None:
        if not isinstance(item, dict) or "relative_url" not in item:
            raise _GraphError(400, 100, f"(#100) Batch item {index} needs method and relative_url")
        method = str(item.get("method", "GET")).upper()
        split = urlsplit(str(item["relative_url"]))
        raw = dict(parse_qsl(split.query, keep_blank_values=True))
        if item.get("body"):
            raw.update(parse_qsl(str(item["body"]), keep_blank_values=True))
        path, version = _normalize_path(split.path)
        params = _decode_params(raw)
        record = {"seq": context["seq"], "method": method, "path": path, "version": version,
                  "params": copy.deepcopy(params), "batch_index": index, "status": None,
                  "fault": None, "applied": False}
        self._records.append(record)
        item_context = {**context, "version": version or context["version"], "raw": raw}

        targeted = envelope_fault is not None and envelope_fault.options.get("index", 0) == index
        if targeted:
            o = envelope_fault.options
            record["fault"] = "batch_item"
            if o.get("apply"):
                record["applied"] = True
                try:
                    self._route(method, path, params, item_context)
                except _GraphError:
                    pass
            if o.get("null"):
                return None
            code = o.get("code", 100)
            if "body" in o:
                response = _Response(o.get("status", 400), str(o["body"]), "text/html; charset=utf-8")
            else:
                if code in _RATE_LIMIT_ERRORS:
                    message, subcode = _RATE_LIMIT_ERRORS[code]
                    usage = self._usage_at(self.usage, 100, 1, 60, "ads_insights" if "insights" in path else "ads_management")
                else:
                    message, subcode, usage = _PERMANENT_ERRORS.get(code, f"(#{code}) Invalid request"), None, None
                response = self._error_response(_GraphError(
                    o.get("status", 400), code, o.get("message", message), subcode=o.get("subcode", subcode)), usage)
        else:
            fault = self._take_fault(method, path, params, envelope=False)
            if fault is not None:
                record["fault"] = fault.kind
            response = self._execute(method, path, params, fault, item_context, record, envelope=False)
            if fault is not None and fault.kind in ("timeout", "drop"):
                return None
        record["status"] = response.status
        usage = response.usage if response.usage is not None else self.usage
        headers = [{"name": "Content-Type", "value": response.content_type},
                   {"name": "facebook-api-version", "value": item_context["version"]}]
        headers += [{"name": name, "value": json.dumps(value, separators=(",", ":"))} for name, value in usage.items()]
        return {"code": response.status, "headers": headers, "body": response.body}

    # ------------------------------------------------------------------ routing (under the lock)

    def _unsupported(self, method: str, node: str) -> _GraphError:
        return _GraphError(
            400, 100,
            f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation. Please read the "
            "Graph API documentation at https://developers.facebook.com/docs/graph-api",
            subcode=33, type="GraphMethodException")

    def _nonexisting_edge(self, edge: str, node_type: str) -> _GraphError:
        return _GraphError(400, 100, f"(#100) Tried accessing nonexisting field ({edge}) on node type ({node_type})")

    def _route(self, method: str, path: str, params: dict, context: dict) -> Any:
        parts = [p for p in path.split("/") if p]
        if not parts or len(parts) > 2:
            raise self._unsupported(method, path.strip("/") or "/")
        node, edge = parts[0], (parts[1] if len(parts) == 2 else None)

        if node == self.account_id:
            return self._route_account(method, edge, params, context)
        if node in self._report_runs:
            run = self._report_runs[node]
            if edge is None and method == "GET":
                return self._poll_report(run, params)
            if edge == "insights" and method == "GET":
                status = self._report_state(run)[0]
                if status != "Job Completed":
                    raise _GraphError(400, 100, f"(#100) Report run {node} is not complete (async_status: {status})")
                if params.get("fields") in (None, "") and run["params"].get("fields"):
                    params = {**params, "fields": run["params"]["fields"]}  # the run's fields apply
                return self._page(self._insight_rows(run["params"]), params, context, path,
                                  always=("date_start", "date_stop", "country"))
            raise self._unsupported(method, node)
        found = self._find(node)
        if found is None:
            raise self._unsupported(method, node)
        kind, obj = found
        if kind == "ad" and edge == "copies" and method == "POST":
            return self._copy_ad(obj, params)
        if edge is not None:
            raise self._nonexisting_edge(edge, {"campaign": "Campaign", "adset": "AdSet", "ad": "Ad", "creative": "AdCreative"}[kind])
        if method == "GET":
            return _select(self._render(kind, obj), params.get("fields"))
        if method == "POST":
            self._update(kind, obj, params)
            return {"success": True}
        if method == "DELETE":
            if kind == "creative":
                raise self._unsupported(method, node)
            obj["status"] = "DELETED"
            return {"success": True}
        raise self._unsupported(method, node)

    def _route_account(self, method: str, edge: str | None, params: dict, context: dict) -> Any:
        account = self._doc["account"]
        if edge is None:
            if method != "GET":
                raise self._unsupported(method, self.account_id)
            body = {"id": self.account_id, "account_id": self.account_id[4:],
                    "currency": account.get("currency"), "timezone_name": account.get("timezone_name")}
            return _select(body, params.get("fields"))
        path = f"/{self.account_id}/{edge}"
        collections = {"campaigns": "campaign", "adsets": "adset", "ads": "ad", "adcreatives": "creative"}
        if edge in collections:
            kind = collections[edge]
            if method == "GET":
                rows = [self._render(kind, o) for o in self._doc.get(_COLLECTIONS[kind]) or []]
                return self._page(rows, params, context, path)
            if method == "POST" and edge == "adcreatives":
                return {"id": self._create_creative(params)}
            if method == "POST" and edge == "ads":
                return {"id": self._create_ad(params)}
            raise self._unsupported(method, self.account_id)
        if edge == "insights":
            if method == "GET":
                return self._page(self._insight_rows(params), params, context, path,
                                  always=("date_start", "date_stop", "country"))
            if method == "POST":
                run_id = self._new_id()
                self._report_runs[run_id] = {
                    "id": run_id, "polls": 0,
                    "params": {k: copy.deepcopy(v) for k, v in params.items() if k not in _AUTH_PARAMS},
                }
                return {"report_run_id": run_id}
        raise self._nonexisting_edge(edge, "AdAccount")

    def _find(self, object_id: str) -> tuple[str, dict] | None:
        for kind, collection in _COLLECTIONS.items():
            for obj in self._doc.get(collection) or []:
                if str(obj.get("id")) == object_id:
                    return kind, obj
        return None

    def _render(self, kind: str, obj: dict) -> dict:
        account_id = self.account_id[4:]
        if kind == "creative":
            row = {"id": str(obj["id"]), "account_id": account_id,
                   "name": obj.get("name", f"Creative {obj['id']}"),
                   "status": "ACTIVE" if obj.get("approved") else "IN_PROCESS"}
            row.update(copy.deepcopy(self._creative_extra.get(str(obj["id"]), {})))
            return row
        row = {"id": str(obj["id"]), "account_id": account_id}
        if kind == "adset":
            row["campaign_id"] = str(obj["campaign_id"])
        if kind == "ad":
            row["adset_id"] = str(obj["adset_id"])
            row["campaign_id"] = str(obj["campaign_id"])
        row.update({"name": obj.get("name", ""), "status": obj["status"],
                    "effective_status": obj["status"], "created_time": obj["created_time"]})
        if kind in ("campaign", "adset") and obj.get("daily_budget") is not None:
            row["daily_budget"] = str(obj["daily_budget"])
        if kind == "adset":
            row["targeting"] = copy.deepcopy(obj.get("targeting", {}))
            if obj.get("learning_stage_info") is not None:
                row["learning_stage_info"] = copy.deepcopy(obj["learning_stage_info"])
        if kind == "ad":
            row["creative"] = {"id": str(obj["creative"]["id"])}
            if obj.get("source_ad_id"):
                row["source_ad_id"] = str(obj["source_ad_id"])
        return row

    def _page(self, rows: list[dict], params: dict, context: dict, path: str,
              always: tuple[str, ...] = ("id",)) -> dict:
        try:
            limit = int(params.get("limit", self.page_size))
        except (TypeError, ValueError):
            raise _GraphError(400, 100, "(#100) Param limit must be an integer") from None
        size = max(1, min(limit, self.page_size))
        start = _decode_cursor(params["after"]) + 1 if params.get("after") else 0
        page = rows[start:start + size]
        body: dict[str, Any] = {"data": [_select(r, params.get("fields"), always) for r in page]}
        if page:
            paging: dict[str, Any] = {"cursors": {"before": _encode_cursor(start),
                                                  "after": _encode_cursor(start + len(page) - 1)}}
            if start + len(page) < len(rows):
                query = dict(context["raw"])
                query["after"] = paging["cursors"]["after"]
                query.pop("before", None)
                paging["next"] = f"{self.url}/{context['version']}{path}?{urlencode(query)}"
            if start > 0:
                query = dict(context["raw"])
                query.pop("after", None)
                query["before"] = paging["cursors"]["before"]
                paging["previous"] = f"{self.url}/{context['version']}{path}?{urlencode(query)}"
            body["paging"] = paging
        if str(params.get("summary", "")).lower() in ("true", "1", "total_count"):
            body["summary"] = {"total_count": len(rows)}
        return body

    # ---- insights

    def _today(self) -> dt.date:
        as_of = dt.datetime.fromisoformat(self._doc["as_of"])
        zone = self._doc["account"].get("timezone_name") or "UTC"
        return as_of.astimezone(ZoneInfo(zone)).date()

    def _insight_range(self, params: dict) -> tuple[str | None, str | None]:
        time_range = params.get("time_range")
        if isinstance(time_range, dict):
            return time_range.get("since"), time_range.get("until")
        preset = params.get("date_preset")
        if not preset:
            return None, None
        today = self._today()
        if preset == "today":
            return today.isoformat(), today.isoformat()
        if preset == "yesterday":
            day = today - dt.timedelta(days=1)
            return day.isoformat(), day.isoformat()
        match = re.fullmatch(r"last_(\d+)d", str(preset))
        if match:
            days = int(match.group(1))
            return (today - dt.timedelta(days=days)).isoformat(), (today - dt.timedelta(days=1)).isoformat()
        if preset == "this_month":
            return today.replace(day=1).isoformat(), today.isoformat()
        return None, None  # maximum, lifetime, others: everything

    def _insight_rows(self, params: dict) -> list[dict]:
        since, until = self._insight_range(params)
        rows = []
        for row in self._doc.get("insights") or []:
            if since is not None and row.get("date_start", "") < since:
                continue
            if until is not None and row.get("date_start", "") > until:
                continue
            rows.append(row)
        return rows

    def _report_state(self, run: dict) -> tuple[str, int]:
        sequence = self.report_status_sequence
        return tuple(sequence[max(0, min(run["polls"] - 1, len(sequence) - 1))])

    def _poll_report(self, run: dict, params: dict) -> dict:
        run["polls"] += 1
        status, pct = self._report_state(run)
        since, until = self._insight_range(run["params"])
        dates = sorted(r.get("date_start", "") for r in self._insight_rows(run["params"]))
        body = {"id": run["id"], "account_id": self.account_id[4:], "async_status": status,
                "async_percent_completion": pct, "is_running": status in ("Job Not Started", "Job Running", "Job Started"),
                "date_start": since or (dates[0] if dates else None), "date_stop": until or (dates[-1] if dates else None),
                "time_ref": 1764000000}
        if status == "Job Completed":
            body["time_completed"] = 1764000060
        return _select(body, params.get("fields"))

    # ---- writes

    def _new_id(self) -> str:
        new = str(self._next_numeric_id)
        self._next_numeric_id += 1
        return new

    def _update(self, kind: str, obj: dict, params: dict) -> None:
        changes: dict[str, Any] = {}
        if "daily_budget" in params:
            if kind not in ("campaign", "adset"):
                raise _GraphError(400, 100, "(#100) Param daily_budget is not valid for this object")
            text = str(params["daily_budget"])
            if not re.fullmatch(r"\d+", text) or int(text) <= 0:
                raise _GraphError(400, 100, "(#100) Param daily_budget must be a positive integer number of minor units",
                                  subcode=1885272)
            if kind == "adset":
                campaign = self._find(str(obj["campaign_id"]))
                if campaign is not None and campaign[1].get("daily_budget") is not None:
                    raise _GraphError(400, 100, "(#100) Invalid parameter: the ad set's campaign has a campaign "
                                                "budget; set the budget on the campaign", subcode=1885621)
            changes["daily_budget"] = str(int(text))
        if "status" in params:
            status = str(params["status"])
            if status not in _WRITABLE_STATUSES:
                raise _GraphError(400, 100, f"(#100) Param status must be one of {{{', '.join(_WRITABLE_STATUSES)}}}")
            if kind == "creative":
                raise _GraphError(400, 100, "(#100) Param status is not valid for an ad creative")
            changes["status"] = status
        if "name" in params:
            changes["name"] = str(params["name"])
        previous = obj.get("daily_budget")
        if "daily_budget" in changes and previous is not None:
            if abs(int(changes["daily_budget"]) - int(previous)) > self.significant_edit_pct * int(previous):
                self._restart_learning(kind, obj)
        obj.update(changes)

    def _restart_learning(self, kind: str, obj: dict) -> None:
        """A significant edit: the learning phase of the ad sets this budget pays for starts over."""
        adsets = [obj] if kind == "adset" else [a for a in self._doc["adsets"] if str(a["campaign_id"]) == str(obj["id"])]
        now = int(dt.datetime.fromisoformat(self._doc["as_of"]).timestamp())
        for adset in adsets:
            if adset.get("learning_stage_info") is not None:
                adset["learning_stage_info"] = {**adset["learning_stage_info"], "status": "LEARNING", "conversions": 0, "last_sig_edit_ts": now}

    def _create_creative(self, params: dict) -> str:
        creative_id = self._new_id()
        creative: dict[str, Any] = {"id": creative_id, "approved": bool(self.new_creatives_approved)}
        if "name" in params:
            creative["name"] = str(params["name"])
        self._doc.setdefault("creatives", []).append(creative)
        self._creative_extra[creative_id] = {
            k: copy.deepcopy(v) for k, v in params.items() if k not in (*_AUTH_PARAMS, "name", "id", "status", "account_id")
        }
        return creative_id

    def _copy_ad(self, source: dict, params: dict) -> dict:
        """POST /{ad_id}/copies: a copy of the ad (same creative) in its ad set, or ``adset_id``.
        Like Graph, the copy names its source (``source_ad_id``); its ``created_time`` is the
        served document's ``as_of`` (the server's "now")."""
        option = str(params.get("status_option", "PAUSED"))
        if option not in ("ACTIVE", "PAUSED", "INHERITED_FROM_SOURCE"):
            raise _GraphError(400, 100, "(#100) Param status_option must be one of {ACTIVE, PAUSED, INHERITED_FROM_SOURCE}")
        copy_id = self._new_id()
        self._doc["ads"].append({
            **copy.deepcopy(source), "id": copy_id, "source_ad_id": str(source["id"]),
            "adset_id": str(params.get("adset_id") or source["adset_id"]),
            "name": f"{source.get('name', '')} - Copy", "created_time": self._doc["as_of"],
            "status": source["status"] if option == "INHERITED_FROM_SOURCE" else option,
        })
        return {"copied_ad_id": copy_id, "ad_object_ids": [{"ad_object_type": "ad", "source_id": source["id"], "copied_id": copy_id}]}

    def _create_ad(self, params: dict) -> str:
        adset_id = str(params.get("adset_id", ""))
        found = self._find(adset_id)
        if not adset_id or found is None or found[0] != "adset":
            raise _GraphError(400, 100, f"(#100) Param adset_id must be an ad set of this account (got {adset_id!r})")
        creative = params.get("creative")
        creative_id = None
        if isinstance(creative, dict):
            creative_id = creative.get("creative_id") or creative.get("id")
        found_creative = self._find(str(creative_id)) if creative_id is not None else None
        if found_creative is None or found_creative[0] != "creative":
            raise _GraphError(400, 100, "(#100) Param creative must be {\"creative_id\": <an ad creative of this account>}")
        status = str(params.get("status", "ACTIVE"))
        if status not in _WRITABLE_STATUSES:
            raise _GraphError(400, 100, f"(#100) Param status must be one of {{{', '.join(_WRITABLE_STATUSES)}}}")
        ad_id = self._new_id()
        self._doc.setdefault("ads", []).append({
            "id": ad_id, "adset_id": adset_id, "campaign_id": str(found[1]["campaign_id"]),
            "name": str(params.get("name", "")), "status": status,
            "created_time": self._doc["as_of"], "creative": {"id": str(creative_id)},
        })
        return ad_id
