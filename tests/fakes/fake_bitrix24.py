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
* The Open Lines bridge (OPENLINES.md): ``imconnector.register/unregister/activate/status/
  connector.data.set/send.messages/send.status.delivery``, ``imopenlines.session.open``,
  ``imopenlines.dialog.get``, ``imopenlines.crm.chat.getLastId``, ``im.message.add`` into
  ``chat<CHAT_ID>``, the messenger field IM of ``crm.lead/contact/company.update``
  (``messenger_addresses``); chats keyed by the user code
  ``<connector>|<LINE>|<chat.id>|<user.id>``, no de-duplication of message ids, "hung" messages
  on an inactive line, a CRM tracker (CHAT_GROUP=N) with duplicate control by phone; a
  message's ``files[{url, name}]`` are downloaded at once, like Bitrix24 does (``status``,
  ``content`` on each recorded file); ``im.message.add`` into a chat (system notes). Test
  helpers: ``openline_chats``, ``messages_in``, ``delivered``, ``hung_messages``, ``line``,
  ``set_line_active``, ``set_line_error``, ``bind_chat_to_crm``, ``close_chat``, ``fire_event``
  (form-encoded like Bitrix24's events, never retried), ``operator_reply``; ``ol_counters``.
* Where the real answer is not documented it is a plausible guess, marked "guess" below;
  BitrixCrm is written so that its result does not depend on those guesses.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from tests.fakes.posting import post

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


def php_build_query(data: dict) -> str:
    """Encode nested dicts/lists the way PHP's http_build_query does (a[b][0]=1; true -> 1,
    false -> 0, None left out), as Bitrix24 encodes the events it posts."""
    from urllib.parse import quote_plus

    pairs: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif value is not None:
            text = ("1" if value else "0") if isinstance(value, bool) else str(value)
            pairs.append(f"{quote_plus(prefix)}={quote_plus(text)}")

    for key, value in data.items():
        walk(str(key), value)
    return "&".join(pairs)


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
        # Open Lines bridge (imconnector.*): see the "Open Lines" section below.
        self.connectors: dict[str, dict] = {}  # ID -> what imconnector.register recorded
        self.lines: dict[tuple[str, str], dict] = {}  # (connector, LINE) -> {"active", "data", "error"}
        self.application_token = "fake-application-token-0000000001"  # auth[application_token] of events
        self.event_timeout = 5.0  # how long fire_event waits for a handler (never retries, like Bitrix24)
        self.ol_counters: dict[str, int] = {"messages": 0, "hung": 0, "chats": 0, "leads": 0, "deliveries": 0,
                                            "events": 0, "operator_messages": 0, "updated": 0}
        self.ol_callers: list[tuple[str, int]] = []  # (method, user_id) of every imconnector/imopenlines call
        self.register_refusals: list[str] = []  # why imconnector.register answered result:false
        self.event_deliveries: list[dict] = []  # every POST fire_event made
        self._ol: dict[int, dict] = {}  # CHAT_ID -> Open Lines chat
        self._ol_by_code: dict[str, int] = {}
        self._hung: list[dict] = []
        self._delivered: list[dict] = []
        self._disk: dict[str, tuple[str, bytes]] = {}  # operator files served at /fake-disk/<token>/<name>
        self._ol_seq = {"chat": 1800, "message": 86000, "session": 500, "user": 1000, "handler": 0}
        # CRM timeline comments (crm.timeline.comment.*), in the order they were added.
        self.timeline: list[dict] = []
        self._timeline_seq = 7000
        # method -> how many answers to lose after the method did its work (a proxy's 502 on the way back)
        self.lose_answers: dict[str, int] = {}
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

    # -- Open Lines bridge: helpers for tests

    def openline_chats(self) -> list[dict]:
        """Every Open Lines chat the connector created, oldest first (copies; messages left out)."""
        with self._lock:
            return [self._chat_summary(c) for c in self._ol.values()]

    def openline_chat(self, chat_id: int | str) -> dict:
        """One Open Lines chat by CHAT_ID (a copy, without messages); KeyError when unknown."""
        with self._lock:
            return self._chat_summary(self._ol[int(chat_id)])

    def chat_by_user_code(self, user_code: str) -> dict | None:
        """The chat of a user code (``imol|`` prefix allowed), or None."""
        with self._lock:
            chat_id = self._ol_by_code.get(_strip_imol(user_code))
            return None if chat_id is None else self._chat_summary(self._ol[chat_id])

    def messenger_addresses(self, entity_type_id: int, entity_id: int) -> list[dict]:
        """The IM entries crm.*.update gave a record (copies)."""
        with self._lock:
            return [dict(e) for e in self.items[(entity_type_id, entity_id)].get("_im", [])]

    def messages_in(self, chat_id: int | str) -> list[dict]:
        """The messages recorded in a chat, oldest first, duplicates included (copies)."""
        with self._lock:
            return [dict(m) for m in self._ol[int(chat_id)]["messages"]]

    def hung_messages(self) -> list[dict]:
        """Messages send.messages accepted for a line that was not active (they reach no chat)."""
        with self._lock:
            return [dict(m) for m in self._hung]

    def delivered(self) -> list[dict]:
        """Every MESSAGES[] item of imconnector.send.status.delivery, in call order:
        {"connector", "line", "chat_id", "message_id", "external_ids", "chat_external_id", "date"}."""
        with self._lock:
            return [dict(d) for d in self._delivered]

    def line(self, connector: str, line: str | int) -> dict:
        """The state of one connector on one line: {"active", "data", "error"} (a copy)."""
        with self._lock:
            state = self.lines.get((connector, str(line)), {"active": False, "data": {}, "error": False})
            return {"active": state["active"], "data": dict(state["data"]), "error": state["error"]}

    def set_line_active(self, connector: str, line: str | int, active: bool) -> None:
        """Switch a line on or off as an administrator would in the contact center."""
        with self._lock:
            self._line_state(connector, line)["active"] = bool(active)

    def set_line_error(self, connector: str, line: str | int, error: bool = True) -> None:
        """Mark the connector on a line as failed (imconnector.status answers ERROR true, STATUS false)."""
        with self._lock:
            self._line_state(connector, line)["error"] = bool(error)

    def bind_chat_to_crm(self, chat_id: int | str, entity_type: str, entity_id: int) -> None:
        """Bind an Open Lines chat to a CRM record, as the CRM tracker or an operator does
        (no REST method does this); imopenlines.crm.chat.get then lists it."""
        with self._lock:
            chat = self._ol[int(chat_id)]
            self._bind(chat, entity_type.lower(), int(entity_id))

    def close_chat(self, chat_id: int | str) -> None:
        """Finish the chat's session: crm.chat.get with ACTIVE_ONLY=Y no longer lists it."""
        with self._lock:
            chat = self._ol[int(chat_id)]
            chat["active"] = False
            for entry in self.ol_chats:
                if entry.get("_ol") == chat["CHAT_ID"]:
                    entry["active"] = False

    def fire_event(self, event_name: str, data: dict, *, user_id: int = 1) -> list[dict]:
        """POST an event to every handler bound for it with event.bind, as Bitrix24 does: once
        (never retried), ``application/x-www-form-urlencoded`` with PHP bracket keys: ``event``,
        ``event_handler_id``, ``data[...]``, ``ts``, ``auth[...]`` (``application_token`` is
        ``self.application_token``; ``access_token`` a fresh token of ``user_id``). Nothing is sent
        while ``installed`` is false (events start after installFinish). Returns one record per
        handler: {"handler", "status" (None: no answer), "seconds", "body", "answer"}."""
        event = event_name.upper()
        with self._lock:
            if not self.installed:
                return []
            bound = [e for e in self.events if e["event"] == event]
            posts = []
            for binding in bound:
                pair = self.issue_tokens(user_id)
                fields = {
                    "event": event, "event_handler_id": binding.setdefault("_id", self._next("handler")),
                    "data": data, "ts": int(time.time()),
                    "auth": {"access_token": pair["access_token"], "expires": int(time.time()) + self.access_ttl,
                             "expires_in": self.access_ttl, "scope": pair["scope"], "domain": self.domain,
                             "server_endpoint": f"{self.url}/rest/", "status": "L",
                             "client_endpoint": f"{self.url}/rest/", "member_id": self.member_id,
                             "user_id": user_id, "application_token": self.application_token},
                }
                posts.append((binding["handler"], php_build_query(fields)))
            self.ol_counters["events"] += len(posts)
        results = []
        for handler, body in posts:  # outside the lock: the handler may call REST back
            results.append(self._post_form(handler, body))
        with self._lock:
            self.event_deliveries.extend(results)
        return results

    def operator_reply(self, chat: int | str | dict, text: str = "", user_id: int = 1, files=()) -> dict:
        """An operator writes in an Open Lines chat: record the message and fire
        ONIMCONNECTORMESSAGEADD with the BB-code signature ``[b]Имя Фамилия:[/b][br]text``
        (left out when the connector registered NEED_SIGNATURE=N). ``files``: dicts with
        ``name``, ``content`` (bytes) and optional ``mime``; each is served by the fake at a
        direct ``link`` (like Bitrix24's short-lived links). Returns {"chat_id", "message_id",
        "text", "files", "deliveries"}."""
        with self._lock:
            record = self._ol[int(chat["CHAT_ID"] if isinstance(chat, dict) else chat)]
            user = self.users[user_id]
            connector = self.connectors.get(record["connector"], {})
            signed = text
            if connector.get("NEED_SIGNATURE", True):
                name = " ".join(x for x in (user["NAME"], user["LAST_NAME"]) if x)
                signed = f"[b]{name}:[/b][br]{text}"
            out_files = []
            for f in files:
                token = secrets.token_hex(8)
                content = f.get("content", b"")
                mime = f.get("mime") or "application/octet-stream"
                self._disk[token] = (mime, content)
                kind = next((k for k in ("image", "video", "audio") if mime.startswith(k + "/")), "file")
                out_files.append({"name": f["name"], "type": kind, "mime": mime, "size": len(content),
                                  "link": f"{self.url}/fake-disk/{token}/{f['name']}"})
            message_id = self._next("message")
            record["messages"].append({"id": message_id, "author": "operator", "user_id": user_id,
                                       "external_id": None, "text": signed, "files": out_files,
                                       "date": int(time.time())})
            self.ol_counters["operator_messages"] += 1
            item: dict[str, Any] = {"im": {"chat_id": record["CHAT_ID"], "message_id": message_id},
                                    "message": {"user_id": user_id, "text": signed},
                                    "chat": {"id": record["chat_external_id"]}}
            if out_files:
                item["message"]["files"] = out_files
            data = {"CONNECTOR": record["connector"], "LINE": record["line"], "MESSAGES": [item]}
        deliveries = self.fire_event("ONIMCONNECTORMESSAGEADD", data, user_id=user_id)
        return {"chat_id": record["CHAT_ID"], "message_id": message_id, "text": signed, "files": out_files,
                "deliveries": deliveries}

    # -- Open Lines bridge: internals

    def _next(self, kind: str) -> int:
        self._ol_seq[kind] += 1
        return self._ol_seq[kind]

    def _line_state(self, connector: str, line: Any) -> dict:
        return self.lines.setdefault((connector, str(line)), {"active": False, "data": {}, "error": False})

    def _chat_summary(self, chat: dict) -> dict:
        out = {k: v for k, v in chat.items() if k != "messages"}
        out["user"] = dict(chat["user"])
        out["message_count"] = len(chat["messages"])
        return out

    def _bind(self, chat: dict, entity_type: str, entity_id: int) -> None:
        chat["crm"] = {"entity_type": entity_type, "entity_id": entity_id}
        self.ol_chats[:] = [e for e in self.ol_chats if e.get("_ol") != chat["CHAT_ID"]]
        self.add_chat(entity_type, entity_id, str(chat["CHAT_ID"]), chat["connector"],
                      self.connectors.get(chat["connector"], {}).get("NAME", chat["connector"]),
                      active=chat["active"])
        self.ol_chats[-1]["_ol"] = chat["CHAT_ID"]

    def _post_form(self, url: str, body: str) -> dict:
        return post(url, body.encode("utf-8"), {"Content-Type": "application/x-www-form-urlencoded",
                                                "User-Agent": "Bitrix24 Webhook Engine"},
                    self.event_timeout, handler=url, body=body)

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
                if self.lose_answers.get(method.lower(), 0) > 0:
                    self.lose_answers[method.lower()] -= 1
                    return 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>"
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
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in fake.events]


# -- Open Lines bridge (imconnector.*, imopenlines.session/dialog) ------------------------
#
# From the REST docs (bitrix24/b24restdocs, api-reference/imopenlines/imconnector/) and the
# project's OPENLINES.md. These methods work only with the application's OAuth tokens; every
# token of this fake is one, so any valid token is accepted and the caller is recorded in
# ``ol_callers``. Marked "guess" where the real answer is not documented.

_CONNECTOR_ID_RE = re.compile(r"[a-z0-9_]+")
_NAME_MAX = 25


def _strip_imol(code: str) -> str:
    code = str(code or "")
    return code[len("imol|"):] if code.startswith("imol|") else code


def _yes(value: Any, default: bool) -> bool:
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().upper() not in ("N", "0", "FALSE", "NO")


def _ol_args(fake: FakeBitrix24, user_id: int, method: str, params: dict, *required: str) -> dict:
    fake.ol_callers.append((method, user_id))
    p = _upper(params)
    for arg in required:
        if p.get(arg) in (None, "", [], {}):
            raise FakeError(arg, f"Argument '{arg}' is null or empty", 400)
    return p


def _known_connector(fake: FakeBitrix24, connector: Any) -> str:
    connector = str(connector)
    if connector not in fake.connectors:
        raise FakeError("IMCONNECTOR_NO_CORRECT_PROVIDER", "Could not find a suitable provider for the connector", 400)
    return connector


def _imconnector_register(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imconnector.register", params)
    icon = p.get("ICON") if isinstance(p.get("ICON"), dict) else {}
    reason = None
    if not p.get("ID") or not _CONNECTOR_ID_RE.fullmatch(str(p["ID"])):
        reason = "ID: lower case letters, digits and _ only"
    elif not p.get("NAME"):
        reason = "NAME is empty"
    elif not icon.get("DATA_IMAGE"):
        reason = "ICON[DATA_IMAGE] is empty"
    elif not p.get("PLACEMENT_HANDLER"):
        reason = "PLACEMENT_HANDLER is empty"
    if reason:  # OPENLINES.md: register's errors come as HTTP 200 with result false
        fake.register_refusals.append(reason)
        return False
    fake.connectors[str(p["ID"])] = {
        "ID": str(p["ID"]), "NAME": str(p["NAME"]), "ICON": dict(icon),
        "ICON_DISABLED": dict(p["ICON_DISABLED"]) if isinstance(p.get("ICON_DISABLED"), dict) else None,
        "PLACEMENT_HANDLER": str(p["PLACEMENT_HANDLER"]),
        "CHAT_GROUP": _yes(p.get("CHAT_GROUP"), True),  # documented default: Y
        "NEED_SIGNATURE": _yes(p.get("NEED_SIGNATURE"), True),
        "COMMENT": p.get("COMMENT") or "", "registered_by": user_id,
    }
    return True


def _imconnector_unregister(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imconnector.unregister", params, "ID")
    if fake.connectors.pop(str(p["ID"]), None) is None:
        return False  # guess
    for key in [k for k in fake.lines if k[0] == str(p["ID"])]:
        fake.lines[key]["active"] = False
    return True


def _imconnector_activate(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imconnector.activate", params, "CONNECTOR", "LINE")
    connector = _known_connector(fake, p["CONNECTOR"])
    fake._line_state(connector, p["LINE"])["active"] = _yes(p.get("ACTIVE"), False)
    return True


def _imconnector_status(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imconnector.status", params, "CONNECTOR", "LINE")
    connector = _known_connector(fake, p["CONNECTOR"])
    state = fake._line_state(connector, p["LINE"])
    return {"LINE": str(p["LINE"]), "CONNECTOR": connector, "ERROR": state["error"], "CONFIGURED": state["active"],
            "STATUS": state["active"] and not state["error"]}


def _imconnector_connector_data_set(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imconnector.connector.data.set", params, "CONNECTOR", "LINE", "DATA")
    connector = _known_connector(fake, p["CONNECTOR"])
    if not isinstance(p["DATA"], dict):
        raise FakeError("DATA", "The value of an argument 'DATA' must be of type array", 400)  # guess
    fake._line_state(connector, p["LINE"])["data"] = dict(p["DATA"])  # the whole object is replaced
    return True


def _person_name_ok(value: Any) -> bool:
    text = "" if value is None else str(value)
    return len(text) <= _NAME_MAX and all(ch.isalpha() or ch in " -'" for ch in text)


def _imconnector_send_messages(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imconnector.send.messages", params, "CONNECTOR", "LINE", "MESSAGES")
    connector = _known_connector(fake, p["CONNECTOR"])
    line = str(p["LINE"])
    if not isinstance(p["MESSAGES"], (dict, list)):
        raise FakeError("MESSAGES", "The value of an argument 'MESSAGES' must be of type array", 400)
    items = as_list(p["MESSAGES"])
    for item in items:  # validate everything before recording anything
        if not isinstance(item, dict) or not all(isinstance(item.get(k), dict) for k in ("user", "message", "chat")):
            raise FakeError("100", "The incorrect structure of a message inside the MESSAGES parameter.", 400)
        user, message, chat = item["user"], item["message"], item["chat"]
        if user.get("id") in (None, "") or not _person_name_ok(user.get("name")) or \
                not _person_name_ok(user.get("last_name")):
            raise FakeError("IMCONNECTOR_NOT_ALL_THE_REQUIRED_DATA", "Not all required data has been provided "
                            "(user: id required; name and last_name letters, spaces, hyphens, apostrophes, "
                            f"at most {_NAME_MAX} characters)", 400)
        if message.get("id") in (None, "") or chat.get("id") in (None, "") or \
                (message.get("text") in (None, "") and not message.get("files")):
            raise FakeError("IMCONNECTOR_NOT_ALL_THE_REQUIRED_DATA",
                            "Not all required data has been provided (message id, text or files; chat id)", 400)
    state = fake._line_state(connector, line)
    results = []
    for item in items:
        user, message, chat_part = item["user"], item["message"], item["chat"]
        files = [_download({"url": str(f.get("url", "")), "name": str(f.get("name", ""))})
                 for f in as_list(message.get("files") or []) if isinstance(f, dict)]
        entry = {"author": "employee" if message.get("user_id") not in (None, "", 0, "0") else "client",
                 "user_id": _int_or_none(message.get("user_id")), "external_id": str(message["id"]),
                 "text": message.get("text") or "", "files": files, "date": _int_or_none(message.get("date")),
                 "external_user": dict(user), "chat_external_id": str(chat_part["id"]),
                 "received": time.monotonic()}  # when it reached the portal, for the bridge benchmark
        fake.ol_counters["messages"] += 1
        if not state["active"]:  # accepted, but it hangs: no chat, no session (guess: no session in the answer)
            fake.ol_counters["hung"] += 1
            fake._hung.append(dict(entry, connector=connector, line=line))
            results.append({"SUCCESS": True, "ERRORS": [], "user": None, "chat": {"id": str(chat_part["id"])},
                            "message": {"id": str(message["id"])}})
            continue
        code = f"{connector}|{line}|{chat_part['id']}|{user['id']}"
        chat_id = fake._ol_by_code.get(code)
        if chat_id is None:
            chat_id = fake._next("chat")
            fake.ol_counters["chats"] += 1
            record = {"CHAT_ID": chat_id, "user_code": code, "connector": connector, "line": line,
                      "chat_external_id": str(chat_part["id"]), "user_external_id": str(user["id"]),
                      "user": dict(user), "chat_user_id": fake._next("user"), "session_id": fake._next("session"),
                      "active": True, "crm": None, "lead_created": None, "messages": []}
            fake._ol[chat_id] = record
            fake._ol_by_code[code] = chat_id
            if not fake.connectors[connector]["CHAT_GROUP"] and message.get("disable_crm") != "Y":
                _crm_tracker(fake, record)
        record = fake._ol[chat_id]
        if not record["active"]:  # a finished session: the next message opens a new one
            record["active"], record["session_id"] = True, fake._next("session")
            for e in fake.ol_chats:
                if e.get("_ol") == chat_id:
                    e["active"] = True
        im_id = fake._next("message")
        record["messages"].append(dict(entry, id=im_id))  # sic: a repeated message.id is a second message
        results.append({"SUCCESS": True, "ERRORS": [], "user": record["chat_user_id"],
                        "chat": {"id": record["chat_external_id"]}, "message": {"id": str(message["id"])},
                        "session": {"ID": record["session_id"], "CHAT_ID": chat_id}})
    return {"SUCCESS": True, "ERRORS": [], "DATA": {"RESULT": results}}


def _download(file: dict) -> dict:
    """Bitrix24 fetches a message's file URL itself (and keeps the copy): so does the fake, at once.

    Adds ``status`` (HTTP status, None when nothing answered) and ``content`` (the bytes, on 200)."""
    file.update(status=None, content=None)
    try:
        with urllib.request.urlopen(urllib.request.Request(file["url"], method="GET"), timeout=5) as answer:
            file["status"], file["content"] = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        file["status"] = err.code
    except (OSError, ValueError):
        pass
    return file


def _imconnector_update_messages(fake: FakeBitrix24, user_id: int, params: dict):
    """imconnector.update.messages (CustomConnectors::updateMessages): the messages of MESSAGES[] found by
    the chat's user code and their external ``message.id`` get the new text. Guess at the answer (the docs
    show none): send.messages' shape, SUCCESS false with an error for a message the chat does not hold."""
    p = _ol_args(fake, user_id, "imconnector.update.messages", params, "CONNECTOR", "LINE", "MESSAGES")
    connector = _known_connector(fake, p["CONNECTOR"])
    line = str(p["LINE"])
    results = []
    for item in as_list(p["MESSAGES"]):
        user, message, chat = (item.get(k) if isinstance(item, dict) else None for k in ("user", "message", "chat"))
        if not all(isinstance(x, dict) for x in (user, message, chat)) or message.get("id") in (None, ""):
            raise FakeError("100", "The incorrect structure of a message inside the MESSAGES parameter.", 400)
        chat_id = fake._ol_by_code.get(f"{connector}|{line}|{chat.get('id')}|{user.get('id')}")
        found = [m for m in fake._ol[chat_id]["messages"] if m.get("external_id") == str(message["id"])] \
            if chat_id is not None else []
        for m in found:
            m["text"] = message.get("text") or m["text"]
            m["updated"] = m.get("updated", 0) + 1
        fake.ol_counters["updated"] += len(found)
        results.append({"SUCCESS": bool(found), "ERRORS": [] if found else ["MESSAGE_NOT_FOUND"],
                        "message": {"id": str(message["id"])}})
    return {"SUCCESS": True, "ERRORS": [], "DATA": {"RESULT": results}}


def _crm_tracker(fake: FakeBitrix24, chat: dict) -> None:
    """CHAT_GROUP=N: attach the new chat to the record whose messenger field (IM, OPENLINE) holds the chat's
    ``imol|<user code>`` -- where Bitrix24 keeps which client a chat is (crm.lead.get shows such an IM entry;
    that the tracker looks it up first is a guess) -- else to the one open lead with the client's phone,
    else create a lead."""
    address = "imol|" + chat["user_code"]
    for (t, i), record in sorted(fake.items.items()):
        if t in (LEAD, CONTACT, COMPANY) and any(im["VALUE"] == address for im in record.get("_im", [])):
            fake._bind(chat, {LEAD: "lead", CONTACT: "contact", COMPANY: "company"}[t], i)
            return
    digits = re.sub(r"\D", "", str(chat["user"].get("phone") or ""))
    if digits:
        leads = [r for (t, _), r in sorted(fake.items.items())
                 if t == LEAD and any(re.sub(r"\D", "", f["value"]) == digits for f in r["_fm"])]
        if len(leads) == 1:
            fake._bind(chat, "lead", leads[0]["id"])
            return
    lead_id = max([i for (t, i) in fake.items if t == LEAD] or [0]) + 1
    user = chat["user"]
    name = " ".join(str(x) for x in (user.get("name"), user.get("last_name")) if x)
    fake.add_item(LEAD, lead_id, title=f"{name or chat['user_external_id']} - Открытая линия", name=user.get("name") or "",
                  lastName=user.get("last_name") or "", phones=[str(user["phone"])] if user.get("phone") else [])
    fake.ol_counters["leads"] += 1
    chat["lead_created"] = lead_id
    fake._bind(chat, "lead", lead_id)


def _imconnector_send_status_delivery(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imconnector.send.status.delivery", params, "CONNECTOR", "LINE", "MESSAGES")
    connector = _known_connector(fake, p["CONNECTOR"])
    items = as_list(p["MESSAGES"]) if isinstance(p["MESSAGES"], (dict, list)) else None
    if not items or not all(isinstance(i, dict) and isinstance(i.get("im"), dict) and
                            isinstance(i.get("message"), dict) and isinstance(i.get("chat"), dict) for i in items):
        raise FakeError("100", "The incorrect structure of a message inside the MESSAGES parameter.", 400)  # guess
    for item in items:
        if not isinstance(item["message"].get("id"), (dict, list)) or not as_list(item["message"]["id"]):
            # documented: "It is an array, not a single value, even if there is only one ID" (error text: guess)
            raise FakeError("IMCONNECTOR_NOT_ALL_THE_REQUIRED_DATA",
                            "Not all required data has been provided (message[id] must be an array)", 400)
    for item in items:
        fake.ol_counters["deliveries"] += 1
        fake._delivered.append({"connector": connector, "line": str(p["LINE"]),
                                "chat_id": _int_or_none(item["im"].get("chat_id")),
                                "message_id": _int_or_none(item["im"].get("message_id")),
                                "external_ids": [str(x) for x in as_list(item["message"]["id"])],
                                "chat_external_id": str(item["chat"].get("id", "")),
                                "date": item["message"].get("date")})
    return {"SUCCESS": True, "DATA": {"RESULT": [{"SUCCESS": True} for _ in items]}}  # guess at the shape


def _imopenlines_session_open(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imopenlines.session.open", params, "USER_CODE")
    chat_id = fake._ol_by_code.get(_strip_imol(p["USER_CODE"]))
    if chat_id is None:
        raise FakeError("ACCESS_DENIED", "Access denied", 403)  # guess: the real one is undocumented here
    return {"chatId": str(chat_id)}


def _imopenlines_dialog_get(fake: FakeBitrix24, user_id: int, params: dict):
    p = _ol_args(fake, user_id, "imopenlines.dialog.get", params)
    chat_id = None
    if p.get("CHAT_ID") not in (None, ""):
        chat_id = _int_or_none(p["CHAT_ID"])
    elif p.get("DIALOG_ID") not in (None, ""):
        m = re.fullmatch(r"chat(\d+)", str(p["DIALOG_ID"]))
        chat_id = int(m.group(1)) if m else -1
    elif p.get("USER_CODE") not in (None, ""):
        chat_id = fake._ol_by_code.get(_strip_imol(p["USER_CODE"]), -1)
    elif p.get("SESSION_ID") not in (None, ""):
        sid = _int_or_none(p["SESSION_ID"])
        chat_id = next((c["CHAT_ID"] for c in fake._ol.values() if c["session_id"] == sid), -1)
    else:
        raise FakeError("DIALOG_ID_EMPTY", "Dialog ID can't be empty", 400)
    chat = fake._ol.get(chat_id or -1)
    if chat is None:
        raise FakeError("ACCESS_ERROR", "You don't have access to this chat", 403)
    crm = chat["crm"]
    user = chat["user"]
    name = " ".join(str(x) for x in (user.get("name"), user.get("last_name")) if x) or chat["user_external_id"]
    return {"avatar": "", "color": "#4ba984", "date_create": "2025-01-15T10:00:00+03:00",
            "dialog_id": f"chat{chat['CHAT_ID']}",
            "entity_data_1": (f"Y|{crm['entity_type'].upper()}|{crm['entity_id']}|N|N|{chat['session_id']}|0|0|0|"
                              if crm else f"N|NONE|0|N|N|{chat['session_id']}|0|0|0|"),
            "entity_data_2": "", "entity_data_3": "", "entity_id": chat["user_code"], "entity_type": "LINES",
            "extranet": False, "id": chat["CHAT_ID"], "manager_list": [], "message_type": "L",
            "name": f"{name} - {fake.connectors.get(chat['connector'], {}).get('NAME', chat['connector'])}",
            "owner": 0, "type": "lines"}


def _crm_entity_update(entity_type_id: int) -> Callable:
    """crm.lead/contact/company.update (id, fields): only the messenger field IM is modelled here --
    entries without an ID are added (the multifield rule of the old crm.* methods), others left."""
    def update(fake: FakeBitrix24, user_id: int, params: dict):
        record = fake.items.get((entity_type_id, _int_or_none(params.get("id")) or 0))
        if record is None:
            raise FakeError("", "Not found", 400)
        if not fake.can_read(user_id, entity_type_id, record["id"]):
            raise FakeError("", "Access denied.", 400)
        fields = params.get("fields") if isinstance(params.get("fields"), dict) else {}
        for entry in as_list(fields.get("IM") or []):
            if isinstance(entry, dict) and entry.get("VALUE") and not entry.get("ID"):
                fake._fm_seq += 1
                record.setdefault("_im", []).append({"ID": fake._fm_seq, "VALUE": str(entry["VALUE"]),
                                                     "VALUE_TYPE": str(entry.get("VALUE_TYPE") or "OTHER"),
                                                     "TYPE_ID": "IM"})
        return True
    return update


def _im_message_add(fake: FakeBitrix24, user_id: int, params: dict):
    """im.message.add (api-reference/chats/messages/im-message-add.md) into an Open Lines chat ``chat<CHAT_ID>``;
    other dialogs are not modelled. SYSTEM=Y records a system message."""
    p = _upper(params)
    fake.ol_callers.append(("im.message.add", user_id))
    dialog = str(p.get("DIALOG_ID") or "")
    if not dialog:
        raise FakeError("CHAT_ID_EMPTY", "Recipient chat identifier is not specified when sending a message in a chat",
                        400)
    if p.get("MESSAGE") in (None, "") and not p.get("ATTACH"):
        raise FakeError("MESSAGE_EMPTY", "Message text is not provided", 400)
    m = re.fullmatch(r"chat(\d+)", dialog)
    chat = fake._ol.get(int(m.group(1))) if m else None
    if chat is None:
        raise FakeError("ACCESS_ERROR", "Insufficient permissions to send a message", 400)
    message_id = fake._next("message")
    chat["messages"].append({"id": message_id, "author": "system" if _yes(p.get("SYSTEM"), False) else "user",
                             "user_id": user_id, "external_id": None, "text": str(p["MESSAGE"]), "files": [],
                             "date": int(time.time())})
    return message_id


def _imopenlines_crm_chat_get_last_id(fake: FakeBitrix24, user_id: int, params: dict):
    chats = _imopenlines_crm_chat_get(fake, user_id, dict(params, ACTIVE_ONLY="N"))
    if not chats:
        raise FakeError("NOT_FOUND", "Could not find CRM entity", 400)  # guess
    return max(int(c["CHAT_ID"]) for c in chats)


_TIMELINE_TYPES = {"lead": LEAD, "deal": DEAL, "contact": CONTACT, "company": COMPANY}


def _timeline_owner(fake: FakeBitrix24, user_id: int, source: dict) -> tuple[str, int]:
    """ENTITY_TYPE/ENTITY_ID of a timeline call: lead, deal, contact, company, dynamic_<type> (smart processes)."""
    kind = str(source.get("ENTITY_TYPE") or "").lower()
    entity_id = _int_or_none(source.get("ENTITY_ID"))
    type_id = _TIMELINE_TYPES.get(kind)
    if type_id is None and kind.startswith("dynamic_"):
        type_id = _int_or_none(kind[len("dynamic_"):])
    if type_id is None or entity_id is None:
        raise FakeError("ERROR_ARGUMENT", "ENTITY_TYPE and ENTITY_ID are required", 400)  # guess: code undocumented
    if (type_id, entity_id) not in fake.items:
        raise FakeError("NOT_FOUND", "Not found", 400)
    if not fake.can_read(user_id, type_id, entity_id):
        raise FakeError("ACCESS_DENIED", "Access denied", 403)
    return kind, entity_id


def _crm_timeline_comment_add(fake: FakeBitrix24, user_id: int, params: dict):
    """crm.timeline.comment.add(fields): ENTITY_ID, ENTITY_TYPE, COMMENT, AUTHOR_ID; answers the new ID.
    Since crm 23.100.0 only the lower-case ``fields`` key is accepted."""
    fields = params.get("fields")
    if not isinstance(fields, dict):
        raise FakeError("ERROR_ARGUMENT", "Parameter 'fields' is required", 400)
    kind, entity_id = _timeline_owner(fake, user_id, fields)
    if str(fields.get("COMMENT") or "").strip() == "":
        raise FakeError("ERROR_ARGUMENT", "COMMENT is empty", 400)
    fake._timeline_seq += 1
    fake.timeline.append({"ID": fake._timeline_seq, "ENTITY_TYPE": kind, "ENTITY_ID": entity_id,
                          "COMMENT": str(fields["COMMENT"]),
                          "AUTHOR_ID": _int_or_none(fields.get("AUTHOR_ID")) or user_id, "CALLER": user_id})
    return fake._timeline_seq


def _crm_timeline_comment_list(fake: FakeBitrix24, user_id: int, params: dict):
    """crm.timeline.comment.list(filter{ENTITY_ID, ENTITY_TYPE}, select, order): one page of 50."""
    filt = params.get("filter") if isinstance(params.get("filter"), dict) else {}
    kind, entity_id = _timeline_owner(fake, user_id, filt)
    rows = [c for c in fake.timeline if c["ENTITY_TYPE"] == kind and c["ENTITY_ID"] == entity_id]
    order = params.get("order") if isinstance(params.get("order"), dict) else {}
    if str(order.get("ID", "ASC")).upper() == "DESC":
        rows = rows[::-1]
    page = [{"ID": str(c["ID"]), "ENTITY_ID": str(c["ENTITY_ID"]), "ENTITY_TYPE": c["ENTITY_TYPE"],
             "COMMENT": c["COMMENT"], "AUTHOR_ID": str(c["AUTHOR_ID"])} for c in rows[:50]]
    extra = {"total": len(rows)}
    if len(rows) > 50:
        extra["next"] = 50
    return page, extra


def _crm_timeline_comment_update(fake: FakeBitrix24, user_id: int, params: dict):
    """crm.timeline.comment.update(id, fields{COMMENT, FILES}): answers true. Lower-case ``fields`` only."""
    fields = params.get("fields")
    comment_id = _int_or_none(params.get("id"))
    if not isinstance(fields, dict) or comment_id is None:
        raise FakeError("ERROR_ARGUMENT", "Parameters 'id' and 'fields' are required", 400)
    found = next((c for c in fake.timeline if c["ID"] == comment_id), None)
    if found is None:
        raise FakeError("NOT_FOUND", "Not found", 400)
    _timeline_owner(fake, user_id, found)  # the caller must still see the card
    if "COMMENT" in fields:
        found["COMMENT"] = str(fields["COMMENT"])
        found["UPDATES"] = found.get("UPDATES", 0) + 1
    return True


_METHODS: dict[str, Callable] = {
    "crm.timeline.comment.add": _crm_timeline_comment_add,
    "crm.timeline.comment.update": _crm_timeline_comment_update,
    "crm.timeline.comment.list": _crm_timeline_comment_list,
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
    "imconnector.register": _imconnector_register,
    "imconnector.unregister": _imconnector_unregister,
    "imconnector.activate": _imconnector_activate,
    "imconnector.status": _imconnector_status,
    "imconnector.connector.data.set": _imconnector_connector_data_set,
    "imconnector.send.messages": _imconnector_send_messages,
    "imconnector.update.messages": _imconnector_update_messages,
    "imconnector.send.status.delivery": _imconnector_send_status_delivery,
    "imopenlines.session.open": _imopenlines_session_open,
    "imopenlines.dialog.get": _imopenlines_dialog_get,
    "imopenlines.crm.chat.getlastid": _imopenlines_crm_chat_get_last_id,
    "im.message.add": _im_message_add,
    "crm.lead.update": _crm_entity_update(LEAD),
    "crm.contact.update": _crm_entity_update(CONTACT),
    "crm.company.update": _crm_entity_update(COMPANY),
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
        elif path.startswith("/fake-disk/"):
            token = path.split("/")[2]
            found = self.fake._disk.get(token)
            if found is None:
                return self._send(404, {"error": "NOT_FOUND", "error_description": "No such file"})
            return self._send_raw(200, found[0], found[1])
        elif path.rstrip("/") == "/oauth/token":
            status, body = self.fake.handle_oauth({k: v for k, v in parse_qsl(parts.query)} | params)
        else:
            status, body = 404, {"error": "NOT_FOUND", "error_description": "No such path"}
        self._send(status, body)

    def _send_raw(self, status: int, ctype: str, data: bytes):
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to tell it

    def _send(self, status: int, body: Any):
        if isinstance(body, bytes):
            data, ctype = body, "text/html; charset=utf-8"
        else:
            data, ctype = json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8"
        self._send_raw(status, ctype, data)
