"""A small Bitrix24 REST client: one HTTP request per call, typed errors, batch with references.

Why our own client and not an SDK: the widget's budget is counted in HTTP requests
(a portal's leaky bucket is shared by every app and operator), so every request this
module sends is explicit: ``call`` and ``batch`` send exactly one, plus at most two
retries after ``QUERY_LIMIT_EXCEEDED`` and one repeat after a token refresh.

Tokens never appear in a URL (they travel in the JSON body), in a log line or in an
exception message: requests' own exceptions quote the URL, so they are never chained.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import quote

import requests

log = logging.getLogger(__name__)

DEFAULT_OAUTH_URL = "https://oauth.bitrix.info"
# Pauses before the retries after QUERY_LIMIT_EXCEEDED; the bucket drains 2 requests/s,
# so 0.5 s frees one slot and 1.5 s more frees three.
RETRY_PAUSES = (0.5, 1.5)
RETRY_BUDGET = 3.0  # seconds from the first attempt after which no retry starts
BATCH_MAX = 50


# -- errors -----------------------------------------------------------------------------

class B24Error(Exception):
    """An error answered by Bitrix24 (or met on the way to it)."""

    def __init__(self, code: str, description: str = "", status: int | None = None):
        self.code = code or ""
        self.description = description or ""
        self.status = status
        text = self.code or "B24_ERROR"
        if self.description:
            text += f": {self.description}"
        if status:
            text += f" (HTTP {status})"
        super().__init__(text)


class B24AuthError(B24Error):
    """The token is missing, invalid or expired (401)."""

    @property
    def expired(self) -> bool:
        """Tell whether a refresh may help (``expired_token``)."""
        return self.code.lower() == "expired_token"


class B24AccessDenied(B24Error):
    """The user or the app lacks a right or a scope."""


class B24NotFound(B24Error):
    """The record (or the smart process type) does not exist."""


class B24QueryLimit(B24Error):
    """The portal's request bucket is full; the request was refused before running."""


class B24Overload(B24Error):
    """REST is blocked for the portal or the method; retrying now only makes it worse."""


class B24PortalDeleted(B24Error):
    """The portal is deleted or closed."""


class B24Unavailable(B24Error):
    """Bitrix24 could not be reached, timed out, or answered something that is not REST."""


_AUTH_CODES = {"expired_token", "invalid_token", "no_auth_found", "invalid_grant", "invalid_client",
               "wrong_auth_type", "authorization_error"}
_ACCESS_CODES = {"insufficient_scope", "invalid_scope", "access_denied", "user_access_error",
                 "allowed_only_intranet_user", "error_access_denied", "payment_required"}
_OVERLOAD_CODES = {"overload_limit", "operation_time_limit"}
_UNAVAILABLE_CODES = {"internal_server_error", "error_unexpected_answer"}


def error_from(code: str, description: str = "", status: int | None = None) -> B24Error:
    """Build the typed error for a Bitrix24 error code (the code decides, not the HTTP status).

    The status alone misleads: ``OVERLOAD_LIMIT`` comes with 401, ``ACCESS_DENIED`` of
    crm.item.get with 400, and old crm.*.get methods answer ``error: ""`` with
    ``Not found`` / ``Access denied`` in the description only.
    """
    low = (code or "").lower()
    desc = (description or "").lower()
    if low == "query_limit_exceeded":
        return B24QueryLimit(code, description, status)
    if low in _OVERLOAD_CODES:
        return B24Overload(code, description, status)
    if low == "portal_deleted":
        return B24PortalDeleted(code, description, status)
    if low in _AUTH_CODES:
        return B24AuthError(code, description, status)
    if low in _ACCESS_CODES or (not low and "access denied" in desc):
        return B24AccessDenied(code, description, status)
    if low in ("not_found", "error_not_found", "entity_not_found") or (not low and "not found" in desc):
        return B24NotFound(code, description, status)
    if low in _UNAVAILABLE_CODES or (status is not None and status >= 500):
        return B24Unavailable(code, description, status)
    return B24Error(code, description, status)


# -- query strings for batch commands ---------------------------------------------------

# '$', '[' and ']' stay readable so that '$result[key][FIELD]' references reach Bitrix24
# as typed (it URL-decodes the command with parse_str before resolving them anyway);
# everything that means something to a query string ('&', '=', '+', '#', '%', ...) is escaped.
_VALUE_SAFE = "$[]"
_KEY_SAFE = "[]@"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):  # PHP's http_build_query spells booleans 1 and 0
        return "1" if value else "0"
    return str(value)


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if value is None:  # http_build_query drops nulls
        return
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    else:
        out.append((prefix, _scalar(value)))
        return
    if not items:
        # A query string cannot say "empty array": PHP would drop the key and a filter
        # like filter[@id]=[] would silently turn into "no filter at all".
        raise ValueError(f"empty array for {prefix!r} cannot be sent in a batch command")
    for key, sub in items:
        _flatten(f"{prefix}[{key}]", sub, out)


def build_query(params: Mapping[str, Any] | None) -> str:
    """Encode params like PHP's http_build_query (nested arrays as a[b][0]=...)."""
    pairs: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        _flatten(str(key), value, pairs)
    return "&".join(f"{quote(k, safe=_KEY_SAFE)}={quote(v, safe=_VALUE_SAFE)}" for k, v in pairs)


def build_command(method: str, params: Mapping[str, Any] | None = None) -> str:
    """Build one batch command string ``method?query``."""
    query = build_query(params)
    return f"{method}?{query}" if query else method


# -- results ----------------------------------------------------------------------------

def _section(value: Any) -> dict:
    """Turn a batch answer section into a dict (PHP sends an empty one as [] and a list for 0..n keys)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


@dataclass
class BatchResult:
    """Results and errors of one batch, by command key."""

    result: dict = field(default_factory=dict)
    errors: dict[str, B24Error] = field(default_factory=dict)
    total: dict = field(default_factory=dict)
    next: dict = field(default_factory=dict)

    def ok(self, key: str) -> bool:
        """Tell whether command ``key`` ran and succeeded."""
        return key in self.result and key not in self.errors

    def get(self, key: str, default: Any = None) -> Any:
        """Return the result of command ``key`` or ``default``."""
        return self.result.get(key, default)

    def unwrap(self, key: str) -> Any:
        """Return the result of command ``key`` or raise its typed error."""
        if key in self.errors:
            raise self.errors[key]
        if key not in self.result:
            raise B24Error("NOT_RUN", f"batch command {key!r} did not run")
        return self.result[key]


# -- the client -------------------------------------------------------------------------

class B24Client:
    """Calls one portal's REST API with one access token."""

    def __init__(self, domain: str, access_token: str, *, scheme: str = "https",
                 connect_timeout: float = 3.05, read_timeout: float = 10.0,
                 session: requests.Session | None = None,
                 on_expired: Callable[[], str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 retry_pauses: tuple[float, ...] = RETRY_PAUSES, retry_budget: float = RETRY_BUDGET,
                 before_request: Callable[[], Any] | None = None):
        if scheme not in ("https", "http"):
            raise ValueError("scheme must be https or http")
        self.domain = domain.strip().rstrip("/")
        self.scheme = scheme
        self._token = access_token
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or requests.Session()
        self.on_expired = on_expired
        self.sleep = sleep
        self.retry_pauses = tuple(retry_pauses)
        self.retry_budget = retry_budget
        self.requests_sent = 0  # HTTP requests this client sent, for tests and figures
        # Called before every HTTP request: the shared REST bucket waits here (b24/bucket.py).
        self.before_request = before_request
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token
        return f"B24Client({self.scheme}://{self.domain})"

    @property
    def access_token(self) -> str:
        """Return the token in use (it changes after a refresh)."""
        return self._token

    def url(self, method: str) -> str:
        """Return the REST address of ``method``."""
        return f"{self.scheme}://{self.domain}/rest/{method}.json"

    # -- calls

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``method`` and return its ``result``."""
        return self.call_raw(method, params).get("result")

    def call_raw(self, method: str, params: Mapping[str, Any] | None = None) -> dict:
        """Call ``method`` and return the whole answer (result, total, next, time)."""
        try:
            return self._send(method, params)
        except B24AuthError as exc:
            if not (exc.expired and self.on_expired):
                raise
        # One refresh, one repeat: a second expired_token means the new pair is bad too.
        new_token = self.on_expired()
        if not new_token:
            raise B24AuthError("expired_token", "the token could not be renewed", 401)
        with self._lock:
            self._token = new_token
        return self._send(method, params)

    def batch(self, cmds: Mapping[str, str | tuple[str, Mapping[str, Any] | None]],
              halt: bool = False) -> BatchResult:
        """Run up to 50 commands in one request; ``$result[key][FIELD]`` may refer to earlier ones."""
        if not cmds:
            return BatchResult()
        if len(cmds) > BATCH_MAX:
            raise ValueError(f"a batch holds at most {BATCH_MAX} commands")
        encoded = {}
        for key, cmd in cmds.items():
            if isinstance(cmd, str):
                encoded[str(key)] = cmd
            else:
                method, params = cmd
                encoded[str(key)] = build_command(method, params)
        answer = self.call_raw("batch", {"halt": 1 if halt else 0, "cmd": encoded})
        body = answer.get("result") or {}
        if not isinstance(body, dict):
            raise B24Unavailable("ERROR_UNEXPECTED_ANSWER", "batch answered without sections")
        errors = {}
        for key, err in _section(body.get("result_error")).items():
            if isinstance(err, dict):
                errors[key] = error_from(str(err.get("error", "")), str(err.get("error_description", "")))
            else:
                errors[key] = B24Error(str(err))
        return BatchResult(result=_section(body.get("result")), errors=errors,
                           total=_section(body.get("result_total")), next=_section(body.get("result_next")))

    # -- transport

    def _send(self, method: str, params: Mapping[str, Any] | None) -> dict:
        started = time.monotonic()
        pauses = list(self.retry_pauses)
        while True:
            try:
                return self._post_once(method, params)
            except B24QueryLimit:
                # Refused before running, so repeating is safe; but only within the budget,
                # a person is waiting for the card.
                if not pauses or time.monotonic() - started + pauses[0] > self.retry_budget:
                    raise
                pause = pauses.pop(0)
                log.info("b24 %s %s: QUERY_LIMIT_EXCEEDED, retry in %.1fs", self.domain, method, pause)
                self.sleep(pause)

    def _post_once(self, method: str, params: Mapping[str, Any] | None) -> dict:
        if self.before_request is not None:
            self.before_request()
        body = dict(params or {})
        body["auth"] = self._token
        self.requests_sent += 1
        try:
            resp = self.session.post(self.url(method), json=body, timeout=self.timeout,
                                     headers={"Accept": "application/json"})
        except requests.Timeout:
            raise B24Unavailable("TIMEOUT", f"{self.domain} did not answer in time") from None
        except requests.RequestException as exc:
            # Only the class name: requests' message quotes the URL.
            raise B24Unavailable("CONNECTION_ERROR", f"{self.domain}: {type(exc).__name__}") from None
        status = resp.status_code
        try:
            data = resp.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error") is not None and "result" not in data:
            err = error_from(str(data.get("error") or ""), str(data.get("error_description") or ""), status)
            log.info("b24 %s %s: %s", self.domain, method, err)
            raise err
        if not isinstance(data, dict):
            raise B24Unavailable("ERROR_UNEXPECTED_ANSWER", f"{self.domain} answered HTTP {status} without JSON",
                                 status)
        if status >= 500:
            raise B24Unavailable("INTERNAL_SERVER_ERROR", f"HTTP {status}", status)
        if status >= 400:
            raise error_from(f"HTTP_{status}", "", status)
        return data


# -- OAuth and token checks -------------------------------------------------------------

def refresh_tokens(oauth_url: str, client_id: str, client_secret: str, refresh_token: str, *,
                   timeout: float = 10.0, session: requests.Session | None = None) -> dict:
    """Exchange a refresh token for a new pair at the OAuth server; the old refresh token dies.

    Mind the answer: ``domain`` there is the OAuth server's, the portal is in
    ``client_endpoint`` (``https://<portal>/rest/``).
    """
    url = f"{oauth_url.rstrip('/')}/oauth/token/"
    params = {"grant_type": "refresh_token", "client_id": client_id, "client_secret": client_secret,
              "refresh_token": refresh_token}
    http = session or requests
    try:
        resp = http.get(url, params=params, timeout=timeout, headers={"Accept": "application/json"})
    except requests.Timeout:
        raise B24Unavailable("TIMEOUT", "the OAuth server did not answer in time") from None
    except requests.RequestException as exc:
        raise B24Unavailable("CONNECTION_ERROR", f"OAuth server: {type(exc).__name__}") from None
    try:
        data = resp.json()
    except ValueError:
        raise B24Unavailable("ERROR_UNEXPECTED_ANSWER", f"OAuth server answered HTTP {resp.status_code}",
                             resp.status_code) from None
    if not isinstance(data, dict):
        raise B24Unavailable("ERROR_UNEXPECTED_ANSWER", "OAuth server answered a non-object", resp.status_code)
    if data.get("error"):
        err = error_from(str(data["error"]), str(data.get("error_description") or ""), resp.status_code)
        if type(err) is B24Error:  # any other refusal of a refresh is an auth failure for us
            err = B24AuthError(err.code, err.description, err.status)
        raise err
    if resp.status_code >= 400 or not data.get("access_token") or not data.get("refresh_token"):
        raise B24Unavailable("ERROR_UNEXPECTED_ANSWER", f"OAuth server answered HTTP {resp.status_code}",
                             resp.status_code)
    return data


def verify_user_token(domain: str, access_token: str, *, scheme: str = "https", timeout: float = 10.0,
                      session: requests.Session | None = None) -> dict:
    """Check a user's token on the portal with ONE request and say who the user is.

    One batch of ``app.info`` (proves it is a token of an installed app, gives its CODE)
    and ``profile`` (ID, NAME, LAST_NAME and ADMIN in one method, scope ``basic``).
    Neither returns member_id on a portal (see app.info's documented fields), so
    ``member_id`` is None unless a portal adds it; the tenant check is that the token
    works on the *stored* domain of that member.
    """
    client = B24Client(domain, access_token, scheme=scheme, connect_timeout=min(3.05, timeout),
                       read_timeout=timeout, session=session)
    res = client.batch({"app": ("app.info", None), "me": ("profile", None)})
    app = res.unwrap("app") or {}
    me = res.unwrap("me") or {}
    if not isinstance(me, dict) or not me.get("ID"):
        raise B24AuthError("NO_USER", "the token belongs to no user", 401)
    name = " ".join(str(p) for p in (me.get("NAME"), me.get("LAST_NAME")) if p).strip()
    return {
        "member_id": (app.get("member_id") or app.get("MEMBER_ID")) if isinstance(app, dict) else None,
        "user_id": int(me["ID"]),
        "user_name": name,
        "is_admin": bool(me.get("ADMIN")),
        "app_code": app.get("CODE") if isinstance(app, dict) else None,
        "app_installed": bool(app.get("INSTALLED")) if isinstance(app, dict) else False,
    }


_DOMAIN_RE = re.compile(r"^https?://([^/]+)/")


def domain_of_endpoint(client_endpoint: str) -> str | None:
    """Return the portal host from a ``client_endpoint`` like ``https://x.bitrix24.ru/rest/``."""
    m = _DOMAIN_RE.match(client_endpoint or "")
    return m.group(1) if m else None
