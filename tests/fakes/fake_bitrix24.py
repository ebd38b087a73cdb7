"""A fake Bitrix24 portal and OAuth server over real HTTP on 127.0.0.1, for tests and benchmarks.

    fake = FakeBitrix24(DATA).start()          # DATA: the demo data dict or its "crm" section
    pair = fake.issue_tokens(user_id=1)        # {"access_token", "refresh_token", ...}
    client = B24Client(fake.domain, pair["access_token"], scheme="http")
    ...
    fake.requests, fake.refused, fake.log      # REST HTTP requests, refused by the bucket, methods
    fake.stop()

What it models, and where the behaviour comes from:

* REST at ``/rest/<method>`` and ``/rest/<method>.json``; params from the query string, a JSON
  body or a form body (PHP bracket syntax); ``auth`` anywhere among them.
* ``batch`` exactly like the rest module's ``CRestProvider::methodsBatch`` and
  ``CRestUtil::processBatchElement`` (public PHP source): every command is split by
  ``parse_url``, its query by ``parse_str``; in every *value* each ``$result[..]..``,
  ``$next``, ``$total``, ``$time`` or ``$error`` reference is resolved by walking the keys
  while ``isset`` holds -- a missing or null key STOPS the walk and the partial value is
  used. A value that is exactly one reference is replaced by the referred value whatever
  its type, so ``filter[@id]=$result[item][item][contactIds]`` receives the whole array.
  A reference inside a longer string is replaced only by a string or a number, otherwise
  left as typed. Empty answer sections are ``[]``, not ``{}``; a batch counts as ONE
  request for the bucket; a batch inside a batch is refused.
* A leaky bucket per portal (default 50 burst, 2/s drain); a full bucket answers
  ``503 QUERY_LIMIT_EXCEEDED`` before running anything and counts the refusal.
* Switches: ``overload`` (``OVERLOAD_LIMIT``, 401 as documented among the system errors),
  ``portal_deleted`` (``PORTAL_DELETED``, 403), ``fail_next(...)`` (any error for the next
  N requests), ``garbage_next`` (an HTML 502 page), ``latency`` (seconds per request).
* Tokens: ``issue_tokens``, ``expire`` / ``expire_all`` (then ``401 expired_token``);
  unknown token ``401 invalid_token``; none ``401 NO_AUTH_FOUND``. ``/oauth/token/`` with
  ``grant_type=refresh_token`` issues a new pair and kills the old refresh token.
* Users with CRM rights: ``deny(user_id, entity_type_id, entity_id=None)``; reads of a
  denied item answer ``ACCESS_DENIED``, lists leave it out.
* Where the real answer is not documented it is a plausible guess, marked "guess" below;
  BitrixCrm is written so that its result does not depend on those guesses.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote_plus, urlsplit

LEAD, DEAL, CONTACT, COMPANY, QUOTE, SMART_INVOICE = 1, 2, 3, 4, 7, 31
OL_TYPES = {"lead": LEAD, "deal": DEAL, "contact": CONTACT, "company": COMPANY}
# Methods that our install code must call one by one (a public project reports that
# userfieldtype.add/.update answer ERROR_BATCH_METHOD_NOT_ALLOWED inside a batch).
NOT_IN_BATCH = {"batch", "userfieldtype.add", "userfieldtype.update"}


class FakeError(Exception):
    """An error answer: code, description, HTTP status."""

    def __init__(self, code: str, description: str = "", status: int = 400):
        super().__init__(code)
        self.code, self.description, self.status = code, description, status


# -- PHP-compatible helpers -------------------------------------------------------------

def _php_key(key: str) -> Any:
    """Give a key PHP's array-key type: canonical decimal strings become ints."""
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", key):
        return int(key)
    return key


def php_parse_str(query: str) -> dict:
    """Parse a query string the way PHP's parse_str does (a[b][]=1 nesting)."""
    result: dict = {}
    for part in query.split("&"):
        if not part:
            continue
        raw_key, _, raw_value = part.partition("=")
        key, value = unquote_plus(raw_key), unquote_plus(raw_value)
        m = re.match(r"^([^\[]*)((?:\[[^\]]*\])*)", key)
        base = m.group(1) if m else key
        if not base:
            continue
        base = base.replace(".", "_").replace(" ", "_")
        path = re.findall(r"\[([^\]]*)\]", m.group(2) if m else "")
        node = result
        keys = [base] + path
        for i, k in enumerate(keys):
            last = i == len(keys) - 1
            if k == "" and i > 0:
                ints = [x for x in node if isinstance(x, int)]
                k = max(ints) + 1 if ints else 0
            else:
                k = _php_key(k)
            if last:
                node[k] = value
            else:
                if not isinstance(node.get(k), dict):
                    node[k] = {}
                node = node[k]
    return result


def php_out(value: Any) -> Any:
    """Shape a PHP-array-like dict for json_encode: [] when empty, a list for keys 0..n-1."""
    if isinstance(value, dict):
        if not value:
            return []
        keys = list(value.keys())
        if all(isinstance(k, int) for k in keys) and keys == list(range(len(keys))):
            return [php_out(v) for v in value.values()]
        return {str(k): php_out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [php_out(v) for v in value]
    return value


def as_list(value: Any) -> list:
    """Read a PHP array param (dict with int keys, or a JSON list) as a list."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    return [value]


def _php_isset(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        k = key if key in node else _php_key(key)
        return k in node and node[k] is not None
    if isinstance(node, list):
        return key.isdigit() and int(key) < len(node) and node[int(key)] is not None
    if isinstance(node, str):
        return key.isdigit() and int(key) < len(node)
    return False


def _php_get(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node[key] if key in node else node[_php_key(key)]
    return node[int(key)]


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", value) is not None


_REF_RE = re.compile(r"\$(result|next|total|time|error)([^\s]*)", re.I)
_PATH_RE = re.compile(r"\[([^\]]+)\]")


def resolve_references(value: Any, sections: dict) -> Any:
    """Resolve $result[..] references in one batch param value, as CRestUtil::processBatchElement does."""
    if not isinstance(value, str):
        return value
    query: Any = value
    for match in list(_REF_RE.finditer(value)):
        path = _PATH_RE.findall(match.group(2))
        if not path:
            continue
        node = sections.get(match.group(1))  # PHP looks the name up as typed
        for key in path:
            if _php_isset(node, key):
                node = _php_get(node, key)
            else:
                break  # sic: the partial value is used
        if match.group(0) == query:
            query = node
        else:
            if _is_numeric(node):
                node = str(int(node)) if isinstance(node, float) and node.is_integer() else str(node)
            if not isinstance(node, str) or not isinstance(query, str):
                continue
            query = query.replace(match.group(0), node)
    return query


def resolve_structure(params: Any, sections: dict) -> Any:
    """Walk a parsed command query and resolve references in its values (keys are left alone)."""
    if isinstance(params, dict):
        return {k: resolve_structure(v, sections) for k, v in params.items()}
    return resolve_references(params, sections)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _ids(value: Any) -> list[int]:
    if value in (None, "", 0):
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if v not in (None, "", 0)]
    return [int(value)]


# -- the fake portal --------------------------------------------------------------------

class FakeBitrix24:
    """One fake portal (REST + its OAuth server) on 127.0.0.1."""

    def __init__(self, data: dict | None = None, *, client_id: str = "local.olchat0000000000.00000000",
                 client_secret: str = "fake-client-secret", member_id: str = "fake0member0id0000000000000000001",
                 burst: int = 50, drain_per_second: float = 2.0, access_ttl: int = 3600,
                 clock: Callable[[], float] = time.monotonic, installed: bool = True):
        self.client_id = client_id
        self.client_secret = client_secret
        self.member_id = member_id
        self.burst = burst
        self.drain_per_second = drain_per_second
        self.access_ttl = access_ttl
        self.clock = clock
        self.installed = installed
        # app.info's CODE; set it to act as if tokens came from another application of the portal.
        self.app_code: str | None = None
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # switches
        self.overload = False
        self.portal_deleted = False
        self.garbage_next = 0
        self.latency = 0.0
        self.lenient_ids = False  # guess-mode: cast a non-scalar id to 1 like PHP's (int)[1, 2]
        self._forced: list[FakeError] = []
        self._method_faults: list[dict] = []
        # bucket
        self.bucket_level = 0.0
        self._bucket_at = clock()
        # counters
        self.requests = 0  # REST HTTP requests received, refused ones included
        self.refused = 0  # refused by the bucket
        self.oauth_requests = 0
        self.log: list[str] = []  # method of every REST HTTP request
        self.calls: list[str] = []  # every method executed, commands inside batches included
        # tokens and users
        self._access: dict[str, dict] = {}
        self._refresh: dict[str, int] = {}
        self.users: dict[int, dict] = {}
        self.add_user(1, "Админ", "Порталов", admin=True)
        self.add_user(2, "Оператор", "Первый")
        # registrations made through REST, for tests to assert
        self.userfield_types: dict[str, dict] = {}
        self.placements: list[dict] = []
        self.events: list[dict] = []
        # CRM
        self.items: dict[tuple[int, int], dict] = {}
        self.ol_chats: list[dict] = []
        self._fm_seq = 100
        if data:
            self.load(data)

    # -- lifecycle

    def start(self) -> "FakeBitrix24":
        """Start serving on a free port; return self."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-bitrix24")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; later connections are refused."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        """Return the port served on."""
        assert self._server, "not started"
        return self._server.server_address[1]

    @property
    def domain(self) -> str:
        """Return the portal's domain as the app stores it: 127.0.0.1:PORT."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Return http://127.0.0.1:PORT (the portal and its OAuth server)."""
        return f"http://{self.domain}"

    oauth_url = url

    # -- switches and counters

    def reset_counters(self) -> None:
        """Zero the request counters and logs (the bucket keeps its level)."""
        with self._lock:
            self.requests = self.refused = self.oauth_requests = 0
            self.log.clear()
            self.calls.clear()

    def empty_bucket(self) -> None:
        """Drain the bucket completely."""
        with self._lock:
            self.bucket_level, self._bucket_at = 0.0, self.clock()

    def fill_bucket(self, level: float | None = None) -> None:
        """Fill the bucket to ``level`` (full by default)."""
        with self._lock:
            self.bucket_level = float(self.burst if level is None else level)
            self._bucket_at = self.clock()

    def fail_next(self, code: str, description: str = "", status: int = 400, count: int = 1) -> None:
        """Answer the next ``count`` REST requests with this error (after the bucket, before auth)."""
        with self._lock:
            self._forced += [FakeError(code, description, status)] * count

    def fail_method(self, method: str, code: str, description: str = "", status: int = 400, *,
                    count: int | None = None, match: Callable[[dict], bool] | None = None) -> None:
        """Make ``method`` answer this error (also inside batches), ``count`` times or always,
        for calls whose params satisfy ``match``."""
        with self._lock:
            self._method_faults.append({"method": method.lower(), "error": FakeError(code, description, status),
                                        "count": count, "match": match})

    # -- users and tokens

    def add_user(self, user_id: int, name: str, last_name: str = "", *, admin: bool = False) -> None:
        """Add (or replace) a portal user."""
        with self._lock:
            self.users[user_id] = {"ID": user_id, "NAME": name, "LAST_NAME": last_name, "ADMIN": admin,
                                   "denied": set()}

    def deny(self, user_id: int, entity_type_id: int, entity_id: int | None = None) -> None:
        """Take away a user's right to read an entity type (or one record of it)."""
        with self._lock:
            self.users[user_id]["denied"].add((entity_type_id, entity_id))

    def can_read(self, user_id: int, entity_type_id: int, entity_id: int) -> bool:
        """Tell whether the user may read this record."""
        denied = self.users[user_id]["denied"]
        return (entity_type_id, None) not in denied and (entity_type_id, entity_id) not in denied

    def issue_tokens(self, user_id: int = 1) -> dict:
        """Issue a fresh token pair for a user, shaped like the OAuth server's answer."""
        with self._lock:
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            self._access[access] = {"user_id": user_id, "expires_at": self.clock() + self.access_ttl}
            self._refresh[refresh] = user_id
            return {
                "access_token": access, "refresh_token": refresh, "expires_in": self.access_ttl,
                "scope": "crm,imopenlines,placement,user_brief", "member_id": self.member_id,
                "user_id": user_id, "status": "L",
                # As documented, "domain" is the OAuth server's; the portal is in client_endpoint.
                "domain": self.domain if self._server else "oauth.fake",
                "client_endpoint": f"{self.url}/rest/" if self._server else "",
                "server_endpoint": f"{self.url}/rest/" if self._server else "",
            }

    def expire(self, access_token: str) -> None:
        """Make one access token expired."""
        with self._lock:
            if access_token in self._access:
                self._access[access_token]["expires_at"] = 0.0

    def expire_all(self) -> None:
        """Make every access token expired."""
        with self._lock:
            for info in self._access.values():
                info["expires_at"] = 0.0

    def issued_access_tokens(self) -> list[str]:
        """Every access token this portal has handed out."""
        with self._lock:
            return list(self._access)

    def refresh_token_valid(self, refresh_token: str) -> bool:
        """Tell whether a refresh token would still be accepted."""
        return refresh_token in self._refresh

    # -- data

    def load(self, data: dict) -> None:
        """Load CRM records from the demo data format (whole file or its "crm" section)."""
        crm = data.get("crm", data)
        with self._lock:
            for c in crm.get("contacts", []):
                first, last = c.get("name", ""), c.get("last_name")
                if last is None:
                    first, _, last = (first or "").partition(" ")
                self.add_item(CONTACT, int(c["id"]), name=first, lastName=last,
                              companyIds=_ids(c.get("company_ids")) + _ids(c.get("company_id")),
                              phones=c.get("phones", []))
            for c in crm.get("companies", []):
                self.add_item(COMPANY, int(c["id"]), title=c.get("title") or c.get("name", ""),
                              contactIds=_ids(c.get("contact_ids")) or None, phones=c.get("phones", []))
            for c in crm.get("leads", []):
                self.add_item(LEAD, int(c["id"]), title=c.get("title", ""), name=c.get("name", ""),
                              lastName=c.get("last_name", ""), contactIds=_ids(c.get("contact_ids")),
                              companyId=c.get("company_id") or 0, phones=c.get("phones", []))
            for c in crm.get("deals", []):
                self.add_item(DEAL, int(c["id"]), title=c.get("title", ""), contactIds=_ids(c.get("contact_ids")),
                              companyId=c.get("company_id") or 0)
            sections = [("items", None), ("quotes", QUOTE), ("invoices", SMART_INVOICE),
                        ("smart_invoices", SMART_INVOICE)]
            for section, type_id in sections:
                for c in crm.get(section, []):
                    self.add_item(type_id or int(c["entity_type_id"]), int(c["id"]), title=c.get("title", ""),
                                  contactIds=_ids(c.get("contact_ids")), companyId=c.get("company_id"),
                                  phones=c.get("phones", []))
            for chat in crm.get("ol_chats", []):
                self.add_chat(chat["entity_type"], int(chat["entity_id"]), str(chat["chat_id"]),
                              chat.get("connector_id", "olchat_wa"), chat.get("connector_title", "WhatsApp"),
                              active=chat.get("active", True))

    def add_item(self, entity_type_id: int, item_id: int, *, phones=(), **fields) -> dict:
        """Add a CRM record; ``phones`` are strings or {"value", "type"} dicts, as people typed them."""
        with self._lock:
            fm = []
            for phone in phones or []:
                if isinstance(phone, dict):
                    value, kind = phone.get("value", ""), phone.get("type", "WORK")
                else:
                    value, kind = phone, "WORK"
                self._fm_seq += 1
                fm.append({"id": self._fm_seq, "valueType": kind, "value": str(value), "typeId": "PHONE"})
            record = {"id": item_id, "entityTypeId": entity_type_id, "_fm": fm}
            record.update({k: v for k, v in fields.items()})
            self.items[(entity_type_id, item_id)] = record
            return record

    def add_chat(self, entity_type: str, entity_id: int, chat_id: str, connector_id: str = "olchat_wa",
                 connector_title: str = "WhatsApp", *, active: bool = True) -> None:
        """Bind an Open Lines chat to a lead/deal/contact/company."""
        with self._lock:
            self.ol_chats.append({"entity_type": entity_type.lower(), "entity_id": entity_id, "CHAT_ID": chat_id,
                                  "CONNECTOR_ID": connector_id, "CONNECTOR_TITLE": connector_title,
                                  "active": active})

    def _contact_ids_of_company(self, company_id: int) -> list[int]:
        return [i for (t, i), r in sorted(self.items.items())
                if t == CONTACT and company_id in (r.get("companyIds") or [])]

    def item_view(self, record: dict, with_fm: bool = True) -> dict:
        """Render a record the way crm.item.get/list shows it (camelCase, fm, contactIds, companyId)."""
        t, i = record["entityTypeId"], record["id"]
        view: dict[str, Any] = {"id": i, "createdBy": 1, "updatedBy": 1, "assignedById": 1, "opened": "Y",
                                "createdTime": "2025-01-15T10:00:00+03:00",
                                "updatedTime": "2025-01-15T10:00:00+03:00"}
        if t in (LEAD, DEAL, QUOTE, SMART_INVOICE) or t >= 128:
            view["title"] = record.get("title") or ""
        if t in (LEAD, CONTACT):
            view["name"] = record.get("name") or ""
            view["lastName"] = record.get("lastName") or ""
        if t == COMPANY:
            view["title"] = record.get("title") or ""
        if t == CONTACT:
            companies = list(record.get("companyIds") or [])
            view["companyId"] = companies[0] if companies else 0
            view["companyIds"] = companies
        elif t == COMPANY:
            contacts = record.get("contactIds")
            view["contactIds"] = list(contacts) if contacts is not None else self._contact_ids_of_company(i)
        else:
            contacts = list(record.get("contactIds") or [])
            view["contactId"] = contacts[0] if contacts else 0
            view["contactIds"] = contacts
            # Smart processes / invoices without a client field keep null here (a guess that
            # exercises the "walk stops at null" path of references).
            view["companyId"] = record.get("companyId") if "companyId" in record else 0
        if t in (LEAD, CONTACT, COMPANY):
            view["hasPhone"] = "Y" if record["_fm"] else "N"
            if with_fm:
                view["fm"] = [dict(f) for f in record["_fm"]]
        view["entityTypeId"] = t
        return view

    # -- request handling (called by the HTTP handler)

    def handle_rest(self, method: str, params: dict) -> tuple[int, Any]:
        """Serve one REST HTTP request: status and JSON body (or raw bytes for garbage)."""
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            self.requests += 1
            self.log.append(method)
            try:
                if self.garbage_next > 0:
                    self.garbage_next -= 1
                    return 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                if self.portal_deleted:
                    raise FakeError("PORTAL_DELETED", "Portal was deleted", 403)
                if self.overload:
                    raise FakeError("OVERLOAD_LIMIT", "REST API is blocked due to overload.", 401)
                if not self._bucket_admit():
                    self.refused += 1
                    raise FakeError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503)
                if self._forced:
                    raise self._forced.pop(0)
                user_id = self._authenticate(params.pop("auth", None))
                started = time.time()
                if method == "batch":
                    result, extra = self._batch(user_id, params), {}
                else:
                    result, extra = self._dispatch(user_id, method, params)
                body = {"result": result}
                body.update(extra)
                body["time"] = self._time(started)
                return 200, body
            except FakeError as err:
                return err.status, {"error": err.code, "error_description": err.description}
            except Exception as exc:  # a bug in the fake must look like a portal error, not a hang-up
                return 500, {"error": "INTERNAL_SERVER_ERROR", "error_description": f"fake: {exc!r}"}

    def handle_oauth(self, params: dict) -> tuple[int, Any]:
        """Serve /oauth/token/: only grant_type=refresh_token."""
        with self._lock:
            self.oauth_requests += 1
            if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
                return 401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
            if params.get("grant_type") != "refresh_token":
                return 400, {"error": "invalid_request", "error_description": "Unsupported grant_type"}
            user_id = self._refresh.pop(str(params.get("refresh_token") or ""), None)
            if user_id is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid grant"}
            return 200, self.issue_tokens(user_id)

    # -- internals

    @staticmethod
    def _time(started: float) -> dict:
        finish = time.time()
        return {"start": started, "finish": finish, "duration": finish - started, "processing": finish - started,
                "date_start": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started)),
                "date_finish": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(finish)), "operating": 0}

    def _bucket_admit(self) -> bool:
        now = self.clock()
        self.bucket_level = max(0.0, self.bucket_level - (now - self._bucket_at) * self.drain_per_second)
        self._bucket_at = now
        if self.bucket_level + 1 > self.burst:
            return False
        self.bucket_level += 1
        return True

    def _authenticate(self, token: Any) -> int:
        if not token:
            raise FakeError("NO_AUTH_FOUND", "Wrong authorization data", 401)
        info = self._access.get(str(token))
        if info is None:
            raise FakeError("invalid_token", "The access token provided is invalid.", 401)
        if info["expires_at"] <= self.clock():
            raise FakeError("expired_token", "The access token provided has expired.", 401)
        return info["user_id"]

    def _batch(self, user_id: int, params: dict) -> dict:
        halt = str(params.get("halt", params.get("HALT", "0"))).lower() in ("1", "true", "y")
        cmd = params.get("cmd", params.get("CMD")) or {}
        if isinstance(cmd, list):
            cmd = dict(enumerate(cmd))
        sections: dict[str, dict] = {"result": {}, "next": {}, "total": {}, "time": {}, "error": {}}
        for count, (key, call) in enumerate(cmd.items()):
            if not isinstance(call, str):
                continue
            try:
                if count >= 50:
                    raise FakeError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
                path, _, query = call.partition("?")
                method = path.strip().lower()
                if method in NOT_IN_BATCH:
                    raise FakeError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
                sub_params = resolve_structure(php_parse_str(query), sections)
                started = time.time()
                result, extra = self._dispatch(user_id, method, sub_params)
                sections["result"][key] = result
                if "total" in extra:
                    sections["total"][key] = extra["total"]
                if "next" in extra:
                    sections["next"][key] = extra["next"]
                sections["time"][key] = self._time(started)
            except FakeError as err:
                sections["error"][key] = {"error": err.code, "error_description": err.description}
                if halt:
                    break
        return {"result": php_out(sections["result"]), "result_error": php_out(sections["error"]),
                "result_total": php_out(sections["total"]), "result_next": php_out(sections["next"]),
                "result_time": php_out(sections["time"])}

    def _dispatch(self, user_id: int, method: str, params: dict) -> tuple[Any, dict]:
        method = method.lower()
        self.calls.append(method)
        for fault in self._method_faults:
            if fault["method"] == method and fault["count"] != 0 and (fault["match"] is None or fault["match"](params)):
                if fault["count"] is not None:
                    fault["count"] -= 1
                raise fault["error"]
        handler = _METHODS.get(method)
        if handler is None:
            raise FakeError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
        answer = handler(self, user_id, params)
        if isinstance(answer, tuple):
            return answer
        return answer, {}

    def _require_admin(self, user_id: int) -> None:
        if not self.users[user_id]["ADMIN"]:
            raise FakeError("ACCESS_DENIED", "Access denied!", 403)

    def _entity_type(self, params: dict) -> int:
        t = _int_or_none(params.get("entityTypeId", params.get("ENTITYTYPEID")))
        known = {k[0] for k in self.items} | {LEAD, DEAL, CONTACT, COMPANY, QUOTE, SMART_INVOICE}
        if t is None or t not in known:
            raise FakeError("NOT_FOUND", "Smart process not found", 400)
        return t

    def _item_id(self, value: Any) -> int:
        item_id = _int_or_none(value)
        if item_id is None:
            if self.lenient_ids and isinstance(value, (dict, list)):
                return 1 if value else 0  # PHP: (int)[] == 0, (int)[x, ...] == 1
            # guess: the exact code for a non-scalar id is undocumented
            raise FakeError("INVALID_ARG_VALUE", "Invalid value of parameter 'id'", 400)
        return item_id


# -- REST methods -----------------------------------------------------------------------

def _crm_item_get(fake: FakeBitrix24, user_id: int, params: dict):
    t = fake._entity_type(params)
    item_id = fake._item_id(params.get("id", params.get("ID")))
    record = fake.items.get((t, item_id))
    if record is None:
        raise FakeError("NOT_FOUND", "Element not found", 400)
    if not fake.can_read(user_id, t, item_id):
        raise FakeError("ACCESS_DENIED", "You do not have permission to view this item", 400)
    return {"item": fake.item_view(record)}


def _crm_item_list(fake: FakeBitrix24, user_id: int, params: dict):
    t = fake._entity_type(params)
    flt = params.get("filter") or {}
    if not isinstance(flt, dict):
        raise FakeError("INVALID_ARG_VALUE", "Invalid filter", 400)
    select = as_list(params["select"]) if params.get("select") not in (None, "", []) else ["*"]
    full = select == ["*"]  # documented: fm arrives only when select is omitted or ["*"]
    records = [r for (tt, _), r in sorted(fake.items.items()) if tt == t]
    for key, value in flt.items():
        key = str(key)
        if key in ("@id", "=id", "id", "@ID", "=ID", "ID"):
            if isinstance(value, (dict, list)):
                wanted = {_int_or_none(v) for v in as_list(value)}  # empty IN matches nothing (guess)
            else:
                wanted = {_int_or_none(value)}
            records = [r for r in records if r["id"] in wanted]
        elif key in ("!@id", "!=id", "!id"):
            unwanted = {_int_or_none(v) for v in as_list(value)}
            records = [r for r in records if r["id"] not in unwanted]
        else:
            field = key.lstrip("=@")
            wanted_values = {str(v) for v in as_list(value)}
            records = [r for r in records if str(fake.item_view(r, False).get(field)) in wanted_values]
    records = [r for r in records if fake.can_read(user_id, t, r["id"])]
    start = max(0, _int_or_none(params.get("start")) or 0)
    page = records[start:start + 50]
    views = []
    for record in page:
        view = fake.item_view(record, with_fm=full)
        if not full:
            view = {k: v for k, v in view.items() if k in select or k == "id"}
        views.append(view)
    extra: dict[str, Any] = {"total": len(records)}
    if start + 50 < len(records):
        extra["next"] = start + 50
    return {"items": views}, extra


def _crm_deal_get(fake: FakeBitrix24, user_id: int, params: dict):
    item_id = _int_or_none(params.get("id", params.get("ID")))
    record = fake.items.get((DEAL, item_id or 0))
    if record is None:
        raise FakeError("", "Not found", 400)  # old crm.*.get methods answer an empty code
    if not fake.can_read(user_id, DEAL, record["id"]):
        raise FakeError("", "Access denied.", 400)
    contacts = list(record.get("contactIds") or [])
    return {"ID": str(record["id"]), "TITLE": record.get("title") or "",
            "COMPANY_ID": str(record.get("companyId") or 0), "CONTACT_ID": str(contacts[0]) if contacts else None,
            "CATEGORY_ID": "0", "STAGE_ID": "NEW", "ASSIGNED_BY_ID": "1", "OPENED": "Y"}


def _crm_deal_contact_items_get(fake: FakeBitrix24, user_id: int, params: dict):
    item_id = _int_or_none(params.get("id", params.get("ID")))
    record = fake.items.get((DEAL, item_id or 0))
    if record is None:
        raise FakeError("", "Not found", 400)
    if not fake.can_read(user_id, DEAL, record["id"]):
        raise FakeError("", "Access denied.", 400)
    return [{"CONTACT_ID": cid, "SORT": 10 * (n + 1), "ROLE_ID": 0, "IS_PRIMARY": "Y" if n == 0 else "N"}
            for n, cid in enumerate(record.get("contactIds") or [])]


def _imopenlines_crm_chat_get(fake: FakeBitrix24, user_id: int, params: dict):
    kind = params.get("CRM_ENTITY_TYPE")
    if not kind or not isinstance(kind, str):
        raise FakeError("ERROR_ARGUMENT", "Argument CRM_ENTITY_TYPE is null or empty", 400)
    kind = kind.lower()
    if kind not in OL_TYPES:
        raise FakeError("ERROR_ARGUMENT", "The value of an argument CRM_ENTITY_TYPE is invalid", 400)
    raw = params.get("CRM_ENTITY")
    if raw in (None, "", 0, "0"):
        raise FakeError("ERROR_ARGUMENT", "Argument CRM_ENTITY is null or empty", 400)
    entity_id = _int_or_none(raw)
    if entity_id is None:
        if fake.lenient_ids and isinstance(raw, (dict, list)):
            entity_id = 1 if raw else 0
        else:
            raise FakeError("ERROR_ARGUMENT", "The value of an argument CRM_ENTITY has an invalid type", 400)
    t = OL_TYPES[kind]
    if (t, entity_id) in fake.items and not fake.can_read(user_id, t, entity_id):
        raise FakeError("ACCESS_DENIED", "Access denied! You dont have access to this action", 403)
    active_only = str(params.get("ACTIVE_ONLY", "Y")).upper() != "N"
    return [{k: c[k] for k in ("CHAT_ID", "CONNECTOR_ID", "CONNECTOR_TITLE")} for c in fake.ol_chats
            if c["entity_type"] == kind and c["entity_id"] == entity_id and (c["active"] or not active_only)]


def _app_info(fake: FakeBitrix24, user_id: int, params: dict):
    return {"ID": 7, "CODE": fake.app_code or fake.client_id, "VERSION": 1, "STATUS": "L", "INSTALLED": fake.installed,
            "PAYMENT_EXPIRED": "N", "DAYS": None, "LANGUAGE_ID": "ru", "LICENSE": "ru_pro100",
            "LICENSE_TYPE": "pro100", "LICENSE_FAMILY": "pro"}


def _user_current(fake: FakeBitrix24, user_id: int, params: dict):
    user = fake.users[user_id]
    return {"ID": str(user_id), "ACTIVE": True, "NAME": user["NAME"], "LAST_NAME": user["LAST_NAME"],
            "EMAIL": f"user{user_id}@example.test", "IS_ONLINE": "Y", "UF_DEPARTMENT": [1]}


def _user_admin(fake: FakeBitrix24, user_id: int, params: dict):
    return bool(fake.users[user_id]["ADMIN"])


def _profile(fake: FakeBitrix24, user_id: int, params: dict):
    user = fake.users[user_id]
    return {"ID": str(user_id), "ADMIN": bool(user["ADMIN"]), "NAME": user["NAME"], "LAST_NAME": user["LAST_NAME"],
            "PERSONAL_GENDER": "", "TIME_ZONE": ""}


def _upper(params: dict) -> dict:
    return {str(k).upper(): v for k, v in params.items()}


def _userfieldtype_add(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    p = _upper(params)
    type_id = str(p.get("USER_TYPE_ID") or "").lower()
    if not type_id:
        raise FakeError("ERROR_ARGUMENT", "Argument 'USER_TYPE_ID' is null or empty", 400)
    if not p.get("HANDLER"):
        raise FakeError("ERROR_ARGUMENT", "Argument 'HANDLER' is null or empty", 400)
    taken = type_id in fake.userfield_types or any(
        t["HANDLER"] == p["HANDLER"] for t in fake.userfield_types.values())
    if taken:
        raise FakeError("ERROR_CORE", "Unable to set placement handler: Handler already binded", 400)
    options = p.get("OPTIONS") if isinstance(p.get("OPTIONS"), dict) else {}
    fake.userfield_types[type_id] = {"USER_TYPE_ID": type_id, "HANDLER": p["HANDLER"],
                                     "TITLE": p.get("TITLE") or type_id, "DESCRIPTION": p.get("DESCRIPTION") or "",
                                     "OPTIONS": {"height": int(options["height"])} if options.get("height") else {}}
    return True


def _userfieldtype_list(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    rows = [{k: t[k] for k in ("USER_TYPE_ID", "HANDLER", "TITLE", "DESCRIPTION")}
            for t in fake.userfield_types.values()]
    return rows, {"total": len(rows)}


def _userfieldtype_update(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    p = _upper(params)
    type_id = str(p.get("USER_TYPE_ID") or "").lower()
    if not type_id:
        raise FakeError("ERROR_ARGUMENT", "Argument 'USER_TYPE_ID' is null or empty", 400)
    changes = {k: p[k] for k in ("HANDLER", "TITLE", "DESCRIPTION") if p.get(k)}
    if isinstance(p.get("OPTIONS"), dict):
        changes["OPTIONS"] = {"height": int(p["OPTIONS"]["height"])} if p["OPTIONS"].get("height") else {}
    if not changes:
        raise FakeError("ERROR_ARGUMENT", "Argument 'HANDLER|TITLE|DESCRIPTION' is null or empty", 400)
    if type_id not in fake.userfield_types:
        raise FakeError("ERROR_NOT_FOUND", "User Field Type not found", 400)
    fake.userfield_types[type_id].update(changes)
    return True


def _userfieldtype_delete(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    type_id = str(_upper(params).get("USER_TYPE_ID") or "").lower()
    if fake.userfield_types.pop(type_id, None) is None:
        raise FakeError("ERROR_NOT_FOUND", "User Field Type not found", 400)
    return True


def _placement_bind(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    p = _upper(params)
    for arg in ("PLACEMENT", "HANDLER"):
        if not p.get(arg):
            raise FakeError("ERROR_ARGUMENT", f"Argument '{arg}' is null or empty", 400)
    if any(b["placement"] == p["PLACEMENT"] and b["handler"] == p["HANDLER"] for b in fake.placements):
        raise FakeError("ERROR_CORE", "Unable to set placement handler: Handler already binded", 400)
    fake.placements.append({"placement": p["PLACEMENT"], "handler": p["HANDLER"], "title": p.get("TITLE") or "",
                            "description": p.get("DESCRIPTION") or "", "options": p.get("OPTIONS") or {}})
    return True


def _placement_unbind(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    p = _upper(params)
    if not p.get("PLACEMENT"):
        raise FakeError("ERROR_ARGUMENT", "Argument 'PLACEMENT' is null or empty", 400)
    keep = [b for b in fake.placements
            if not (b["placement"] == p["PLACEMENT"] and (not p.get("HANDLER") or b["handler"] == p["HANDLER"]))]
    count = len(fake.placements) - len(keep)
    fake.placements[:] = keep
    return {"count": count}


def _placement_get(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    return [dict(b) for b in fake.placements]


def _event_bind(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    p = _upper(params)
    for arg in ("EVENT", "HANDLER"):
        if not p.get(arg):
            raise FakeError("ERROR_ARGUMENT", f"Argument '{arg}' is null or empty", 400)
    event = str(p["EVENT"]).upper()
    if any(e["event"] == event and e["handler"] == p["HANDLER"] for e in fake.events):
        raise FakeError("ERROR_CORE", "Handler already binded", 400)  # guess at the wording
    fake.events.append({"event": event, "handler": p["HANDLER"], "auth_type": p.get("AUTH_TYPE", 0),
                        "event_type": p.get("EVENT_TYPE", "online")})
    return True


def _event_unbind(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    p = _upper(params)
    event = str(p.get("EVENT") or "").upper()
    keep = [e for e in fake.events if not (e["event"] == event and (not p.get("HANDLER") or
                                                                     e["handler"] == p["HANDLER"]))]
    count = len(fake.events) - len(keep)
    fake.events[:] = keep
    return {"count": count}


def _event_get(fake: FakeBitrix24, user_id: int, params: dict):
    fake._require_admin(user_id)
    return [dict(e) for e in fake.events]


_METHODS: dict[str, Callable] = {
    "crm.item.get": _crm_item_get,
    "crm.item.list": _crm_item_list,
    "crm.deal.get": _crm_deal_get,
    "crm.deal.contact.items.get": _crm_deal_contact_items_get,
    "imopenlines.crm.chat.get": _imopenlines_crm_chat_get,
    "app.info": _app_info,
    "user.current": _user_current,
    "user.admin": _user_admin,
    "profile": _profile,
    "userfieldtype.add": _userfieldtype_add,
    "userfieldtype.list": _userfieldtype_list,
    "userfieldtype.update": _userfieldtype_update,
    "userfieldtype.delete": _userfieldtype_delete,
    "placement.bind": _placement_bind,
    "placement.unbind": _placement_unbind,
    "placement.get": _placement_get,
    "placement.list": _placement_get,
    "event.bind": _event_bind,
    "event.unbind": _event_unbind,
    "event.get": _event_get,
}


# -- HTTP -------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    fake: FakeBitrix24
    server_version = "FakeBitrix24/1.0"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _params(self, query: str) -> dict:
        params = php_parse_str(query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if raw:
            ctype = (self.headers.get("Content-Type") or "").lower()
            text = raw.decode("utf-8", "replace")
            if "json" in ctype or text.lstrip().startswith("{"):
                try:
                    body = json.loads(text)
                except ValueError:
                    raise FakeError("INVALID_REQUEST", "Invalid JSON", 400) from None
                if isinstance(body, dict):
                    params.update(body)
            else:
                params.update(php_parse_str(text))
        return params

    def _serve(self):
        parts = urlsplit(self.path)
        path = parts.path
        try:
            params = self._params(parts.query)
        except FakeError as err:
            return self._send(err.status, {"error": err.code, "error_description": err.description})
        if path.startswith("/rest/"):
            method = path[len("/rest/"):].strip("/")
            if method.endswith(".json"):
                method = method[:-5]
            status, body = self.fake.handle_rest(method, params)
        elif path.rstrip("/") == "/oauth/token":
            status, body = self.fake.handle_oauth({k: v for k, v in parse_qsl(parts.query)} | params)
        else:
            status, body = 404, {"error": "NOT_FOUND", "error_description": "No such path"}
        self._send(status, body)

    def _send(self, status: int, body: Any):
        if isinstance(body, bytes):
            data, ctype = body, "text/html; charset=utf-8"
        else:
            data, ctype = json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to tell it
