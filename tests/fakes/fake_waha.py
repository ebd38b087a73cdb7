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

Webhooks (the Open Lines bridge): the app sets ``config.webhooks[]`` with ``PUT /api/sessions/{name}``
or ``POST /api/sessions``; ``post_event``, ``client_writes``, ``phone_writes``, ``ack`` and
``session_status`` POST signed envelopes to them (and to ``set_global_webhook``'s URL);
``echo_sends = "before" | "after"`` posts the ``message.any`` echo of every send through the API.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import mimetypes
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.posting import post

# Endpoint names used by the knobs, counters and log.
SESSIONS = "sessions"                # GET  /api/sessions
CHECK_EXISTS = "check_exists"        # GET  /api/contacts/check-exists
CHATS_OVERVIEW = "chats_overview"    # GET  /api/{session}/chats/overview
MESSAGES = "messages"                # GET  /api/{session}/chats/{chatId}/messages
MESSAGE = "message"                  # GET  /api/{session}/chats/{chatId}/messages/{messageId}
NEW_MESSAGE_ID = "new_message_id"    # GET  /api/{session}/new-message-id
SEND_TEXT = "send_text"              # POST /api/sendText
ENDPOINTS = (SESSIONS, CHECK_EXISTS, CHATS_OVERVIEW, MESSAGES, MESSAGE, NEW_MESSAGE_ID, SEND_TEXT)
# What the Open Lines bridge uses besides (kept apart: ENDPOINTS is what the widget's adapter asks).
SESSION_CREATE = "session_create"    # POST /api/sessions
SESSION_GET = "session_get"          # GET  /api/sessions/{session}
SESSION_UPDATE = "session_update"    # PUT  /api/sessions/{session}
FILE = "file"                        # GET  /api/files/{session}/{filename} (received media; needs the key)
SEND_IMAGE = "send_image"            # POST /api/sendImage
SEND_FILE = "send_file"              # POST /api/sendFile
SEND_VIDEO = "send_video"            # POST /api/sendVideo
SEND_VOICE = "send_voice"            # POST /api/sendVoice
BRIDGE_ENDPOINTS = (SESSION_CREATE, SESSION_GET, SESSION_UPDATE, FILE, SEND_IMAGE, SEND_FILE, SEND_VIDEO, SEND_VOICE)
SEND_MEDIA = {"sendImage": SEND_IMAGE, "sendFile": SEND_FILE, "sendVideo": SEND_VIDEO, "sendVoice": SEND_VOICE}
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"

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

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up mid-answer is normal here
            super().handle_error(request, client_address)


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
        # Webhooks (events the fake posts to the app)
        self.now: Callable[[], float] = time.time  # event timestamps and the media files' lifetime
        self.files_lifetime = 180.0                # WHATSAPP_FILES_LIFETIME: received media is deleted after it
        self.global_webhook: dict | None = None    # WHATSAPP_HOOK_URL / _EVENTS / _HMAC_KEY, see set_global_webhook
        self.echo_sends: str | None = None         # "before" / "after" the send's answer: post its message.any echo
        self.webhook_timeout = 5.0
        self.webhook_log: list[dict] = []          # every webhook POST made
        self._files: dict[tuple[str, str], tuple[str, bytes, float]] = {}
        # Every file's content, also after its lifetime: downloadMedia=true fetches it again from "WhatsApp".
        self._contents: dict[tuple[str, str], tuple[str, bytes]] = {}
        self._tls = threading.local()
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
            self._tls.after = []
            status, payload = getattr(self, "_" + endpoint)(args, query, body)
        if mode == "timeout":
            time.sleep(self.timeout_sleep)
        if isinstance(payload, _Raw):
            data, ctype = payload.data, payload.ctype
        elif isinstance(payload, (bytes, str)):
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
        for hook in getattr(self._tls, "after", ()):  # work WAHA does after answering (echo webhooks)
            hook()
        self._tls.after = []

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
                    "config": s.get("config") or {}, "engine": {"engine": "WEBJS"}}
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
        return 200, [self._with_media(name, m, query) for m in msgs[offset:offset + limit]]

    def _message(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        name = args["session"]
        refused = self._working(name)
        if refused:
            return refused
        with self._lock:
            found = next((m for m in self.chats.get((name, args["chatId"]), []) if m["id"] == args["messageId"]), None)
        if found is not None:
            return 200, self._with_media(name, found, query)
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
        self._echo(name, msg)
        return 201, msg

    # ------------------------------------------------------------ sessions and their webhooks

    def _bad_request(self, *messages: str) -> tuple[int, dict]:
        return 400, {"statusCode": 400, "message": list(messages), "error": "Bad Request"}

    def _check_config(self, config: Any) -> list[str]:
        if config is None:
            return []
        if not isinstance(config, dict):
            return ["config must be an object"]
        problems = []
        hooks = config.get("webhooks", [])
        if not isinstance(hooks, list):
            return ["config.webhooks must be an array"]
        for n, hook in enumerate(hooks):
            if not isinstance(hook, dict) or not isinstance(hook.get("url"), str) or not hook["url"]:
                problems.append(f"config.webhooks.{n}.url must be a string")
            elif not isinstance(hook.get("events"), list) or not all(isinstance(e, str) for e in hook["events"]):
                problems.append(f"config.webhooks.{n}.events must be an array of event names")
        return problems

    def _session_dto(self, name: str) -> dict:
        s = self.sessions[name]
        return {"name": name, "status": s["status"], "config": s.get("config") or {}}

    def _session_request(self, body: bytes) -> tuple[dict | None, tuple[int, Any] | None]:
        """The JSON of a session create/update and its config checked, or the 400 to answer."""
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return None, self._bad_request("Unexpected token in JSON")
        if not isinstance(req, dict):
            return None, self._bad_request("body must be an object")
        problems = self._check_config(req.get("config"))
        return (None, self._bad_request(*problems)) if problems else (req, None)

    def _session_create(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        req, refused = self._session_request(body)
        if refused:
            return refused
        name = str(req.get("name") or "default")
        with self._lock:
            if name in self.sessions:
                return 422, {"statusCode": 422, "error": "Unprocessable Entity",
                             "message": f"Session '{name}' already exists. Use PUT to update it."}
            self.sessions[name] = {"status": "STARTING" if req.get("start", True) else "STOPPED",
                                   "config": req.get("config") or {}}
            return 201, self._session_dto(name)

    def _session_get(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        name = args["session"]
        if name not in self.sessions:
            return self._working(name)
        s = self.sessions[name]
        info = {"name": name, "status": s["status"], "presence": {}, "timestamps": {"activity": BASE_TIME},
                "config": s.get("config") or {}, "engine": {"engine": "WEBJS"}}
        if s["status"] == "WORKING" and s.get("me"):
            info["me"] = s["me"]
        return 200, info

    def _session_update(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        name = args["session"]
        if name not in self.sessions:
            return self._working(name)
        req, refused = self._session_request(body)
        if refused:
            return refused
        with self._lock:
            self.sessions[name]["config"] = req.get("config") or {}  # the whole config is replaced
            return 200, self._session_dto(name)

    def session_config(self, session: str) -> dict:
        """The config the app set for a session (PUT/POST /api/sessions), {} when none."""
        with self._lock:
            return json.loads(json.dumps(self.sessions[session].get("config") or {}))

    def webhooks(self, session: str) -> list[dict]:
        """The session's ``config.webhooks[]`` as the app set them: url, events, hmac{key}, retries, customHeaders."""
        return self.session_config(session).get("webhooks") or []

    def set_global_webhook(self, url: str | None, events=("message", "session.status"),
                           hmac_key: str | None = None) -> None:
        """Set (or with url=None clear) the global webhook, as WHATSAPP_HOOK_URL, WHATSAPP_HOOK_EVENTS
        and WHATSAPP_HOOK_HMAC_KEY would: it gets every session's subscribed events."""
        self.global_webhook = None if url is None else {"url": url, "events": list(events),
                                                        "hmac": {"key": hmac_key} if hmac_key else None}

    # ------------------------------------------------------------ posting events

    def post_event(self, session: str, event: str, payload: dict) -> list[dict]:
        """POST the envelope {id: evt_…, timestamp (ms), event, session, metadata, me, payload, engine,
        environment} to every webhook of the session subscribed to ``event`` (or "*"), then to the
        global one. Headers: X-Webhook-Request-Id, X-Webhook-Timestamp (ms), customHeaders and, with
        a key, X-Webhook-Hmac (hex HMAC-SHA512 of the raw body) + X-Webhook-Hmac-Algorithm: sha512.
        No retries. Returns one record per POST: {"url", "event", "status" (None: no answer),
        "seconds", "headers", "body" (raw bytes sent), "envelope", "answer"}."""
        with self._lock:
            s = self.sessions.get(session, {})
            hooks = list((s.get("config") or {}).get("webhooks") or [])
            metadata = (s.get("config") or {}).get("metadata") or {}
            me = s.get("me")
        if self.global_webhook:
            hooks.append(self.global_webhook)
        results = []
        for hook in hooks:
            events = hook.get("events") or []
            if event not in events and "*" not in events:
                continue
            ms = int(self.now() * 1000)
            envelope = {"id": "evt_" + _ulid(ms), "timestamp": ms, "event": event, "session": session,
                        "metadata": metadata, "me": me, "payload": payload, "engine": "WEBJS",
                        "environment": {"version": "2026.7.1", "engine": "WEBJS", "tier": "CORE",
                                        "browser": "/usr/bin/chromium", "platform": "linux/x64",
                                        "worker": {"id": None}}}
            if me is None:
                del envelope["me"]
            raw = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
            headers = {"Content-Type": "application/json", "X-Webhook-Request-Id": "req_" + _ulid(ms),
                       "X-Webhook-Timestamp": str(ms)}
            for extra in hook.get("customHeaders") or []:
                headers[extra["name"]] = extra["value"]
            key = (hook.get("hmac") or {}).get("key")
            if key:
                headers["X-Webhook-Hmac"] = hmac.new(key.encode("utf-8"), raw, hashlib.sha512).hexdigest()
                headers["X-Webhook-Hmac-Algorithm"] = "sha512"
            results.append(self._post_json(hook["url"], event, raw, headers, envelope))
        with self._lock:
            self.webhook_log.extend(results)
        return results

    def _post_json(self, url: str, event: str, raw: bytes, headers: dict, envelope: dict) -> dict:
        return post(url, raw, headers, self.webhook_timeout, url=url, event=event, headers=headers, body=raw,
                    envelope=envelope)

    def _chat_of(self, phone_digits: str) -> str:
        digits = "".join(ch for ch in str(phone_digits) if ch.isdigit())
        return self.whatsapp.get(digits) or f"{digits}@c.us"

    def _store_file(self, session: str, mid: str, media: dict) -> dict:
        mimetype = media.get("mimetype") or "application/octet-stream"
        filename = media.get("filename")
        ext = (filename.rsplit(".", 1)[-1] if filename and "." in filename
               else (mimetypes.guess_extension(mimetype.split(";")[0]) or ".bin").lstrip("."))
        stored = f"{mid}.{ext}"
        content = bytes(media.get("content", b""))
        with self._lock:
            self._files[(session, stored)] = (mimetype, content, self.now())
            self._contents[(session, stored)] = (mimetype, content)
        return {"url": f"{self.url}/api/files/{session}/{stored}", "mimetype": mimetype, "filename": filename,
                "error": None}

    def _with_media(self, session: str, msg: dict, query: dict) -> dict:
        """A message as WAHA answers it: without ``media`` for downloadMedia=false, else with the file
        downloaded again (a fresh lifetime) when it has one."""
        if not msg.get("hasMedia"):
            return msg
        if query.get("downloadMedia", ["true"])[0] == "false":
            return dict({k: v for k, v in msg.items() if k != "media"}, mediaUrl="")
        media = msg.get("media") or {}
        stored = (media.get("url") or "").rsplit("/", 1)[-1]
        with self._lock:
            kept = self._contents.get((session, stored))
            if kept is not None:
                self._files[(session, stored)] = (kept[0], kept[1], self.now())
        # The contract types filename and error as string and object: WAHA leaves out what it lacks.
        return dict(msg, media={k: v for k, v in media.items() if v is not None})

    def _written(self, session: str, phone_digits: str, text: str, media: dict | None, *, from_me: bool,
                 msg_id: str | None) -> dict:
        chat_id = self._chat_of(phone_digits)
        mid = f"{'true' if from_me else 'false'}_{chat_id}_{msg_id or '3EB0' + secrets.token_hex(8).upper()}"
        msg = wa_message(mid=mid, chat_id=chat_id, me_id=self._me(session) if session in self.sessions else "",
                         from_me=from_me, body=text, timestamp=int(self.now()), ack=1 if from_me else 3)
        msg["source"] = "app"
        if media is not None:
            msg["hasMedia"] = True
            msg["media"] = self._store_file(session, mid, media)
            msg["mediaUrl"] = msg["media"]["url"]
        with self._lock:
            self.chats.setdefault((session, chat_id), []).append(msg)
        return msg

    def client_writes(self, session: str, phone_digits: str, text: str = "", media: dict | None = None, *,
                      msg_id: str | None = None) -> dict:
        """The client writes to the line: store the message in the chat and post ``message`` and
        ``message.any`` (each to its subscribers). ``media``: {"content": bytes, "mimetype",
        "filename"?}; its ``media.url`` is served by this fake at /api/files/{session}/{file}, needs
        the API key, and is gone after ``files_lifetime`` seconds. Returns {"id", "payload",
        "deliveries"}."""
        msg = self._written(session, phone_digits, text, media, from_me=False, msg_id=msg_id)
        deliveries = self.post_event(session, "message", msg) + self.post_event(session, "message.any", msg)
        return {"id": msg["id"], "payload": msg, "deliveries": deliveries}

    def phone_writes(self, session: str, phone_digits: str, text: str = "", media: dict | None = None, *,
                     msg_id: str | None = None) -> dict:
        """Someone types on the line's phone: fromMe true, source "app", only ``message.any``.
        Returns {"id", "payload", "deliveries"}."""
        msg = self._written(session, phone_digits, text, media, from_me=True, msg_id=msg_id)
        return {"id": msg["id"], "payload": msg, "deliveries": self.post_event(session, "message.any", msg)}

    def ack(self, session: str, message_id: str, ack: int) -> list[dict]:
        """Post ``message.ack`` for a message (and store the new ack on it when the fake has it).
        ack: -1 ERROR, 0 PENDING, 1 SERVER, 2 DEVICE, 3 READ, 4 PLAYED. Returns the deliveries."""
        from_me = message_id.startswith("true_")
        chat_id = message_id.split("_", 1)[1].rsplit("_", 1)[0] if message_id.count("_") >= 2 else ""
        me = self._me(session) if session in self.sessions else ""
        with self._lock:
            for m in self.chats.get((session, chat_id), []):
                if m["id"] == message_id:
                    m["ack"], m["ackName"] = ack, ACK_NAMES[ack]
        payload = {"id": message_id, "from": me if from_me else chat_id, "to": chat_id if from_me else me,
                   "participant": None, "fromMe": from_me, "ack": ack, "ackName": ACK_NAMES[ack], "_data": {}}
        return self.post_event(session, "message.ack", payload)

    def session_status(self, session: str, status: str) -> list[dict]:
        """Change a session's status and post ``session.status``. Returns the deliveries."""
        with self._lock:
            self.sessions.setdefault(session, {})["status"] = status
        ms = int(self.now() * 1000)
        return self.post_event(session, "session.status", {"name": session, "status": status,
                                                           "statuses": [{"status": status, "timestamp": ms}]})

    def expire_files(self) -> None:
        """Delete every received media file now (as WAHA does after WHATSAPP_FILES_LIFETIME)."""
        with self._lock:
            self._files.clear()

    def _echo(self, session: str, msg: dict) -> None:
        """As a real WAHA subscribed to message.any: post the echo of a message sent through the API."""
        if not self.echo_sends:
            return
        echo = dict(msg, source="api", fromMe=True)

        def post() -> None:
            self.post_event(session, "message.any", echo)

        if self.echo_sends == "before":
            post()
        else:
            self._tls.after.append(post)

    def _file(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        with self._lock:
            found = self._files.get((args["session"], args["filename"]))
            if found and self.now() - found[2] >= self.files_lifetime:
                del self._files[(args["session"], args["filename"])]
                found = None
        if found is None:
            return 404, {"statusCode": 404, "message": "File not found", "error": "Not Found"}
        return 200, _Raw(found[1], found[0])

    def _send_image(self, args: dict, query: dict, body: bytes) -> tuple[int, Any]:
        """sendImage / sendFile / sendVideo / sendVoice: {session, chatId, file{url|data, mimetype,
        filename}, caption?}; the message is stored like sendText's (with hasMedia)."""
        try:
            req = json.loads(body or b"null")
        except ValueError:
            return self._bad_request("Unexpected token in JSON")
        if not isinstance(req, dict) or not all(isinstance(req.get(k), str) for k in ("session", "chatId")) or \
                not isinstance(req.get("file"), dict) or not (req["file"].get("url") or req["file"].get("data")):
            return self._bad_request("session, chatId and file (url or data) are required")
        name = req["session"]
        refused = self._working(name)
        if refused:
            return refused
        chat_id = req["chatId"]
        mid = f"true_{chat_id}_{req.get('id') or '3EB0' + secrets.token_hex(8).upper()}"
        f = req["file"]
        with self._lock:
            chat = self.chats.setdefault((name, chat_id), [])
            for m in chat:
                if m["id"] == mid:
                    return 201, m
            msg = wa_message(mid=mid, chat_id=chat_id, me_id=self._me(name), from_me=True,
                             body=req.get("caption") or "", timestamp=int(time.time()), ack=1)
            msg["hasMedia"] = True
            msg["media"] = {"url": f.get("url") or "", "mimetype": f.get("mimetype") or "",
                            "filename": f.get("filename"), "error": None}
            chat.append(msg)
        if f.get("data"):
            # WAHA keeps what it sent in its file store too: the chat's history shows it back.
            msg["media"] = self._store_file(name, mid, {"content": base64.b64decode(f["data"]),
                                                        "mimetype": f.get("mimetype"), "filename": f.get("filename")})
            msg["mediaUrl"] = msg["media"]["url"]
        self._echo(name, msg)
        return 201, msg

    _send_file = _send_video = _send_voice = _send_image


class _Raw:
    """A non-JSON answer body (a media file)."""

    def __init__(self, data: bytes, ctype: str):
        self.data, self.ctype = data, ctype


def _ulid(ms: int) -> str:
    """A lower-case ULID: 10 characters of time, 16 random (Crockford base32)."""
    head = "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
    return head + "".join(secrets.choice(_CROCKFORD) for _ in range(16))


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
    if method == "POST" and len(rest) == 1 and rest[0] in SEND_MEDIA:
        return SEND_MEDIA[rest[0]], {"kind": rest[0]}
    if method == "POST" and rest == ["sessions"]:
        return SESSION_CREATE, {}
    if method in ("GET", "PUT") and len(rest) == 2 and rest[0] == "sessions" and rest[1] not in ("start", "stop"):
        return (SESSION_GET if method == "GET" else SESSION_UPDATE), {"session": rest[1]}
    if method == "GET" and len(rest) == 3 and rest[0] == "files":
        return FILE, {"session": rest[1], "filename": rest[2]}
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
