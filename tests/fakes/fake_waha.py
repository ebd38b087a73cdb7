"""A fake WAHA server over real HTTP on 127.0.0.1, for gateway tests and benchmarks.

It speaks the part of WAHA's API the widget uses, with WAHA's shapes (as in
the OpenAPI contract), and can be told at runtime to be slow or to fail in
the ways a real WAHA fails. Every request and answer is recorded, so tests
can validate all of them against the contract.

    with FakeWaha() as waha:
        gw = WahaGateway(waha.url, waha.api_key)
        waha.fail["send_text"] = "timeout"
        ...
        assert waha.count("send_text") == 1
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# Endpoint names used by the knobs, counters and log.
SESSIONS = "sessions"                # GET  /api/sessions
CHECK_EXISTS = "check_exists"        # GET  /api/contacts/check-exists
CHATS_OVERVIEW = "chats_overview"    # GET  /api/{session}/chats/overview
MESSAGES = "messages"                # GET  /api/{session}/chats/{chatId}/messages
MESSAGE = "message"                  # GET  /api/{session}/chats/{chatId}/messages/{messageId}
NEW_MESSAGE_ID = "new_message_id"    # GET  /api/{session}/new-message-id
SEND_TEXT = "send_text"              # POST /api/sendText
ENDPOINTS = (SESSIONS, CHECK_EXISTS, CHATS_OVERVIEW, MESSAGES, MESSAGE, NEW_MESSAGE_ID, SEND_TEXT)

# Failure modes: what a real WAHA (or the network in front of it) does.
FAIL_MODES = (
    "401",       # wrong API key
    "404",       # unknown session
    "422_qr",    # session needs a QR scan
    "500_rate",  # WhatsApp throttles the account (rate-overlimit)
    "500_lock",  # WhatsApp reach-out timelock (463)
    "500",       # an internal error that is not about limits
    "garbage",   # 200 with a body that is not JSON (a proxy's page)
    "drop",      # close the connection without an answer
    "timeout",   # do the work, then answer only after `timeout_sleep` seconds
)

ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
BASE_TIME = 1764000000


@dataclass
class Exchange:
    """One request the fake received and what it answered (status None: no answer)."""

    endpoint: str | None
    method: str
    path: str  # as received, still percent-encoded
    query: str
    headers: dict[str, str]
    body: bytes
    host_url: str
    fault: str | None = None  # the failure mode applied, if any
    status: int | None = None
    response_type: str = ""
    response_body: bytes = b""

    def json(self) -> Any:
        """Return the request body as JSON."""
        return json.loads(self.body) if self.body else None

    def params(self) -> dict[str, list[str]]:
        """Return the query parameters."""
        return parse_qs(self.query, keep_blank_values=True)


def wa_message(*, mid: str, chat_id: str, me_id: str, from_me: bool, body: str, timestamp: int,
               ack: int = 1) -> dict:
    """Build a message in WAHA's WAMessage shape."""
    return {
        "id": mid,
        "timestamp": timestamp,
        "from": me_id if from_me else chat_id,
        "fromMe": from_me,
        "source": "api" if from_me else "app",
        "to": chat_id if from_me else me_id,
        "participant": "",
        "body": body,
        "hasMedia": False,
        "mediaUrl": "",
        "ack": ack,
        "ackName": ACK_NAMES[ack],
    }


def default_sessions() -> dict[str, dict]:
    """Return the default sessions: two working lines (one under reach-out lock), one needing a QR, one stopped."""
    return {
        "sales": {"status": "WORKING", "me": {"id": "79111111111@c.us", "pushName": "Sales"}},
        "support": {"status": "WORKING", "me": {
            "id": "79222222222@c.us", "pushName": "Support",
            # WAHA ≥ 2026.7.2 (not yet in the 2026.7.1 contract, which allows extra fields).
            "reachoutTimelock": {"isActive": True, "timeEnforcementEnds": "2026-08-01T00:00:00Z",
                                 "enforcementType": "REACHOUT_TIMELOCK"}}},
        "newline": {"status": "SCAN_QR_CODE"},
        "old": {"status": "STOPPED"},
    }


def default_whatsapp() -> dict[str, str]:
    """Return the numbers that have WhatsApp, digits → the chat id WhatsApp gives them."""
    return {
        "79161234567": "79161234567@c.us",
        # Brazilian numbers registered before 2012 live without the 9th digit.
        "5511987654321": "551187654321@c.us",
        # An account known to this line only by its hidden id.
        "79035550000": "215589334122731@lid",
    }


def default_chats() -> dict[tuple[str, str], list[dict]]:
    """Return the chats: 25 messages with +79161234567 on 'sales', one with the Brazilian number."""
    me = "79111111111@c.us"
    chat = "79161234567@c.us"
    long_chat = [
        wa_message(mid=f"{'true' if n % 2 else 'false'}_{chat}_SEED{n:04d}", chat_id=chat, me_id=me,
                   from_me=bool(n % 2), body=f"message {n}", timestamp=BASE_TIME + n * 60,
                   ack=(n % 5) if n % 2 else 3)
        for n in range(25)
    ]
    br = "551187654321@c.us"
    return {
        ("sales", chat): long_chat,
        ("sales", br): [wa_message(mid=f"false_{br}_SEEDBR", chat_id=br, me_id=me, from_me=False,
                                   body="olá", timestamp=BASE_TIME)],
    }


class _Server(ThreadingHTTPServer):
    # Handlers asleep in "timeout" mode must not hold up stop().
    daemon_threads = True
    block_on_close = False
    fake: "FakeWaha"


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive like a real WAHA (Node), so the client's pooled connections are exercised.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write: separate small writes meet the
    # client's delayed ACK and cost ~40 ms per request.
    wbufsize = 1 << 16
    server: _Server

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class FakeWaha:
    """A WAHA look-alike with runtime knobs: ``delay``, ``delays``, ``fail``, ``timeout_sleep``."""

    def __init__(self, api_key: str | None = "fake-waha-key", *, sessions: dict[str, dict] | None = None,
                 whatsapp: dict[str, str] | None = None, chats: dict[tuple[str, str], list[dict]] | None = None,
                 timeout_sleep: float = 1.5):
        self.api_key = api_key
        self.sessions = default_sessions() if sessions is None else sessions
        self.whatsapp = default_whatsapp() if whatsapp is None else whatsapp
        self.chats = default_chats() if chats is None else chats
        self.delay = 0.0                      # seconds before every answer
        self.delays: dict[str, float] = {}    # per endpoint, overrides `delay`
        self.fail: dict[str, str] = {}        # endpoint (or "*") → failure mode
        self.timeout_sleep = timeout_sleep    # how late a "timeout" answer comes
        self._calls: Counter[str] = Counter()
        self._log: list[Exchange] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeWaha":
        """Start serving on a free port of 127.0.0.1."""
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.fake = self
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="fake-waha", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeWaha":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:54321."""
        if self._server is None:
            raise RuntimeError("FakeWaha is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------ knobs and records

    def count(self, endpoint: str) -> int:
        """Return how many requests reached ``endpoint``."""
        with self._lock:
            return self._calls[endpoint]

    @property
    def calls(self) -> dict[str, int]:
        """Return a copy of the per-endpoint counters."""
        with self._lock:
            return dict(self._calls)

    def exchanges(self, endpoint: str | None = None) -> list[Exchange]:
        """Return the recorded exchanges, all or of one endpoint."""
        with self._lock:
            return [e for e in self._log if endpoint is None or e.endpoint == endpoint]

    def reset(self) -> None:
        """Forget counters and records and clear every failure knob."""
        with self._lock:
            self._calls.clear()
            self._log.clear()
        self.fail.clear()
        self.delays.clear()
        self.delay = 0.0

    def messages(self, session: str, chat_id: str) -> list[dict]:
        """Return the stored messages of a chat, oldest first."""
        with self._lock:
            return list(self.chats.get((session, chat_id), []))

    # ------------------------------------------------------------ HTTP

    def _handle(self, h: _Handler) -> None:
        """Answer one request: record, delay, fail as told or serve."""
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        endpoint, args = _route(h.command, segments)
        ex = Exchange(endpoint=endpoint, method=h.command, path=parts.path, query=parts.query,
                      headers=dict(h.headers.items()), body=body, host_url=self.url)
        with self._lock:
            self._calls[endpoint or "unknown"] += 1
            self._log.append(ex)
        pause = self.delays.get(endpoint or "", self.delay)
        if pause:
            time.sleep(pause)
        mode = self.fail.get(endpoint or "") or self.fail.get("*")
        ex.fault = mode
        if mode == "drop":
            h.close_connection = True  # hang up without a word
            return
        if mode in ("401", "404", "422_qr", "500_rate", "500_lock", "500", "garbage"):
            status, payload = _forced(mode, args.get("session") or _session_param(parts.query, body))
        elif self.api_key and h.headers.get("X-Api-Key") != self.api_key:
            status, payload = 401, {"message": "Unauthorized", "statusCode": 401}
        elif endpoint is None:
            status, payload = 404, {"statusCode": 404, "message": f"Cannot {h.command} {parts.path}",
                                    "error": "Not Found"}
        else:
            query = parse_qs(parts.query, keep_blank_values=True)
            status, payload = getattr(self, "_" + endpoint)(args, query, body)
        if mode == "timeout":
            time.sleep(self.timeout_sleep)
        if isinstance(payload, (bytes, str)):
            data, ctype = (payload.encode() if isinstance(payload, str) else payload), "text/html; charset=utf-8"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json; charset=utf-8"
        ex.status, ex.response_type, ex.response_body = status, ctype, data
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            h.close_connection = True  # the client gave up waiting

    # ------------------------------------------------------------ WAHA behaviour

    def _working(self, name: str | None) -> tuple[int, dict] | None:
        """Return WAHA's error for a session that is unknown or not WORKING, else None."""
        session = self.sessions.get(name or "")
        if session is None:
            return 404, {"statusCode": 404, "error": "Not Found",
                         "message": f"We didn't find a session with name '{name}'. "
                                    f"Please start it first by using POST /api/sessions/{name}/start request"}
        if session["status"] != "WORKING":
            return 422, {"error": "Session status is not as expected. Try again later or restart the session",
                         "session": name, "status": session["status"], "expected": ["WORKING"]}
        return None

    def _me(self, name: str) -> str:
        return self.sessions[name].get("me", {}).get("id", "")

    def _sessions(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        show_all = query.get("all", ["false"])[0] == "true"
        out = []
        for name, s in self.sessions.items():
            if s["status"] == "STOPPED" and not show_all:
                continue
            item = {"name": name, "status": s["status"], "presence": {}, "timestamps": {"activity": BASE_TIME},
                    "config": {}, "engine": {"engine": "WEBJS"}}
            if s["status"] == "WORKING" and s.get("me"):
                item["me"] = s["me"]
            out.append(item)
        return 200, out

    def _check_exists(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        phone = query.get("phone", [""])[0]
        name = query.get("session", ["default"])[0]
        if not phone:
            return 400, {"statusCode": 400, "message": ["phone should not be empty"], "error": "Bad Request"}
        refused = self._working(name)
        if refused:
            return refused
        chat_id = self.whatsapp.get(phone)
        return 200, ({"numberExists": True, "chatId": chat_id} if chat_id else {"numberExists": False})

    def _chats_overview(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        name = args["session"]
        refused = self._working(name)
        if refused:
            return refused
        ids = {i for v in query.get("ids", []) for i in v.split(",") if i}
        limit = int(float(query.get("limit", ["20"])[0]))
        offset = int(float(query.get("offset", ["0"])[0]))
        with self._lock:
            found = [(cid, msgs) for (s, cid), msgs in self.chats.items()
                     if s == name and msgs and (not ids or cid in ids)]
        found.sort(key=lambda c: c[1][-1]["timestamp"], reverse=True)
        return 200, [{"id": cid, "name": cid.split("@")[0], "picture": f"https://pps.example/{cid.split('@')[0]}.jpg",
                      "lastMessage": msgs[-1], "_chat": {"id": cid}}
                     for cid, msgs in found[offset:offset + limit]]

    def _messages(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        name = args["session"]
        refused = self._working(name)
        if refused:
            return refused
        limit = int(float(query.get("limit", ["10"])[0]))
        offset = int(float(query.get("offset", ["0"])[0]))
        with self._lock:
            msgs = list(self.chats.get((name, args["chatId"]), []))
        if "filter.fromMe" in query:
            want = query["filter.fromMe"][0] == "true"
            msgs = [m for m in msgs if m["fromMe"] == want]
        if query.get("sortOrder", ["desc"])[0] != "asc":
            msgs.reverse()  # WAHA's default: newest first
        return 200, msgs[offset:offset + limit]

    def _message(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        name = args["session"]
        refused = self._working(name)
        if refused:
            return refused
        with self._lock:
            for m in self.chats.get((name, args["chatId"]), []):
                if m["id"] == args["messageId"]:
                    return 200, m
        return 404, {"statusCode": 404, "message": "Message not found", "error": "Not Found"}

    def _new_message_id(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        refused = self._working(args["session"])
        if refused:
            return refused
        return 200, {"id": "3EB0" + secrets.token_hex(8).upper()}

    def _send_text(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        try:
            req = json.loads(body or b"null")
        except ValueError:
            return 400, {"statusCode": 400, "message": "Unexpected token in JSON", "error": "Bad Request"}
        if not isinstance(req, dict) or not all(isinstance(req.get(k), str) for k in ("session", "chatId", "text")):
            return 400, {"statusCode": 400, "message": ["session, chatId and text are required"],
                         "error": "Bad Request"}
        name = req["session"]
        refused = self._working(name)
        if refused:
            return refused
        chat_id = req["chatId"]
        mid = f"true_{chat_id}_{req.get('id') or '3EB0' + secrets.token_hex(8).upper()}"
        with self._lock:
            chat = self.chats.setdefault((name, chat_id), [])
            # WhatsApp keeps one message per id: sending an id again is not a second message.
            for m in chat:
                if m["id"] == mid:
                    return 201, m
            msg = wa_message(mid=mid, chat_id=chat_id, me_id=self._me(name), from_me=True, body=req["text"],
                             timestamp=int(time.time()), ack=1)
            chat.append(msg)
        return 201, msg


def _route(method: str, seg: list[str]) -> tuple[str | None, dict[str, str]]:
    """Map a method and decoded path segments onto an endpoint and its path parameters."""
    if not seg or seg[0] != "api":
        return None, {}
    rest = seg[1:]
    if method == "GET" and rest == ["sessions"]:
        return SESSIONS, {}
    if method == "GET" and rest == ["contacts", "check-exists"]:
        return CHECK_EXISTS, {}
    if method == "POST" and rest == ["sendText"]:
        return SEND_TEXT, {}
    if method == "GET" and len(rest) == 2 and rest[1] == "new-message-id":
        return NEW_MESSAGE_ID, {"session": rest[0]}
    if method == "GET" and len(rest) == 3 and rest[1:] == ["chats", "overview"]:
        return CHATS_OVERVIEW, {"session": rest[0]}
    if method == "GET" and len(rest) == 4 and rest[1] == "chats" and rest[3] == "messages":
        return MESSAGES, {"session": rest[0], "chatId": rest[2]}
    if method == "GET" and len(rest) == 5 and rest[1] == "chats" and rest[3] == "messages":
        return MESSAGE, {"session": rest[0], "chatId": rest[2], "messageId": rest[4]}
    return None, {}


def _session_param(query: str, body: bytes) -> str:
    """Find the session a request is about when it is not in the path."""
    q = parse_qs(query).get("session")
    if q:
        return q[0]
    try:
        return str(json.loads(body).get("session", "default"))
    except (ValueError, AttributeError):
        return "default"


def _forced(mode: str, session: str) -> tuple[int, Any]:
    """Return the answer of a failure mode, in WAHA's words."""
    if mode == "401":
        return 401, {"message": "Unauthorized", "statusCode": 401}
    if mode == "404":
        return 404, {"statusCode": 404, "error": "Not Found",
                     "message": f"We didn't find a session with name '{session}'. "
                                f"Please start it first by using POST /api/sessions/{session}/start request"}
    if mode == "422_qr":
        return 422, {"error": "Session status is not as expected. Try again later or restart the session",
                     "session": session, "status": "SCAN_QR_CODE", "expected": ["WORKING"]}
    if mode == "500_rate":
        return 500, _exception("rate-overlimit", {"code": 429})
    if mode == "500_lock":
        return 500, _exception("Error: server returned error 463 (reachout timelocked)", {"code": 463})
    if mode == "500":
        # A stack line ":463:" must not be read as the reach-out timelock.
        return 500, _exception("Evaluation failed: TypeError: Cannot read properties of undefined", {})
    return 200, "<html><body><h1>Welcome to nginx!</h1></body></html>"


def _exception(message: str, data: dict) -> dict:
    """Build WAHA's 500 body around an exception message."""
    return {"statusCode": 500, "timestamp": "2026-07-20T10:00:00.000Z",
            "exception": {"message": message, "name": "Error", "data": data,
                          "stack": f"Error: {message}\n    at Object.send (/app/dist/core/engine.js:463:15)"},
            "request": {"path": "/api/sendText", "method": "POST", "query": {}},
            "version": {"version": "2026.7.1", "engine": "WEBJS", "tier": "CORE"}}
