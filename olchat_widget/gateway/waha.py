"""The WAHA gateway: WhatsApp lines of a self-hosted WAHA server over its HTTP API.

One :class:`WahaGateway` talks to one WAHA server through one
``requests.Session`` (pooled keep-alive connections, thread-safe for our use).
Every WAHA answer that is not a success becomes one of the typed errors of
:mod:`.base`, so the widget never sees HTTP codes or WAHA's error texts.
"""
from __future__ import annotations

import base64
import io
import json as jsonlib
import re
import uuid
from typing import Any, BinaryIO, Mapping, Sequence
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from .base import (DOCUMENT, FAILED, IMAGE, SCAN_QR_CODE, STARTING, STOPPED, VIDEO, VOICE, WORKING, ChatRef,
                   GatewayError, GatewayNotFound, GatewayRateLimited, GatewayTimeout, GatewayUnauthorized,
                   GatewayUnavailable, HistoryPage, Line, LineNotConnected, MediaInfo, MediaRefused, MediaTooLarge, Message, Presence,
                   SentMessage)
from .egress import EgressPolicy, OutboundAddressRefused, guarded_session, parse_base_url

# WAHA's numeric ack → the delivery state names the widget shows.
ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
_ACK_VALUES = frozenset(ACK_NAMES.values())

# Passkey states also wait for a person with the phone, like a QR scan; the
# widget knows only the five base states, so they are shown as "scan QR".
_STATE_ALIASES = {"PASSKEY_REQUIRED": SCAN_QR_CODE, "PASSKEY_CONFIRMATION_REQUIRED": SCAN_QR_CODE}
_NOT_CONNECTED = frozenset({SCAN_QR_CODE, STOPPED, STARTING, FAILED, *_STATE_ALIASES})

# How WAHA words WhatsApp's throttling (rate-overlimit, HTTP-like 429) and the
# reach-out timelock (error 463) inside its 500 answers.
_RATE_LIMIT_HINT = re.compile(r"rate-?overlimit|reach-?out|timelock|\b(?:429|463)\b", re.IGNORECASE)
# Parts of a WAHA 500 body that echo the request or the server's source
# (stack line numbers like ``:463:``), not WhatsApp's verdict.
_NOISE_KEYS = frozenset({"stack", "request", "version", "timestamp", "path", "url"})

# A message is found back by its full WAHA id; a pre-generated id is only its last part.
_SERIALISED_ID = re.compile(r"^(?:true|false)_")
_RECONCILE_SCAN = 50
_MEDIA_ENDPOINTS = {IMAGE: "sendImage", VOICE: "sendVoice", VIDEO: "sendVideo", DOCUMENT: "sendFile"}


class WahaGateway:
    """Serve the :class:`~.base.Gateway` questions from one WAHA server."""

    def __init__(self, base_url: str, api_key: str | None, *, sessions: Sequence[str] | None = None,
                 names: Mapping[str, str] | None = None, connect_timeout: float = 3.05, read_timeout: float = 10.0,
                 session: requests.Session | None = None, policy: EgressPolicy | None = None):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        # Kept in the configured order: that is the order the admin chose the lines in.
        self.sessions: tuple[str, ...] | None = tuple(dict.fromkeys(sessions)) if sessions else None
        self.names = dict(names or {})
        self.timeout = (connect_timeout, read_timeout)
        # With a policy (a URL a portal admin chose) the URL is checked here and
        # every connection's address at connect time; the refusal is raised by
        # the first call, like any other way of not reaching the server.
        self._refusal: OutboundAddressRefused | None = None
        if policy is not None:
            if session is not None:
                raise TypeError("a policy builds its own session")
            try:
                parse_base_url(self.base_url)
            except OutboundAddressRefused as exc:
                self._refusal = exc
            session = guarded_session(policy)
        if session is None:
            session = requests.Session()
            # No transport-level retries at all: a retried POST /api/sendText can
            # send the message twice; the outbox decides what happens after a failure.
            adapter = HTTPAdapter(max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._http = session

    def __repr__(self) -> str:
        # The API key stays out of reprs, and so out of tracebacks and logs.
        return f"WahaGateway({self.base_url!r}, sessions={self.sessions!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # ------------------------------------------------------------ Gateway

    def list_lines(self) -> list[Line]:
        """Return this portal's lines with their state, own number and reach-out restriction."""
        # all=true: WAHA hides STOPPED sessions by default, but a stopped line
        # is still the portal's line and the widget must say it is stopped.
        data = self._call("GET", "/api/sessions", op="sessions", params={"all": "true"})
        if not isinstance(data, list):
            raise GatewayUnavailable("WAHA sessions: unexpected answer")
        found = {item["name"]: item for item in data if isinstance(item, dict) and isinstance(item.get("name"), str)}
        # A configured session that WAHA no longer has is not listed: there is nothing to show about it.
        wanted = self.sessions if self.sessions is not None else tuple(found)
        return [self._line(found[name]) for name in wanted if name in found]

    def check_exists(self, line_id: str, phone: str) -> Presence:
        """Ask WhatsApp whether ``phone`` has an account, through line ``line_id``."""
        self._own(line_id)
        digits = re.sub(r"\D", "", phone or "")
        if not digits:
            raise GatewayError(f"not a phone number: {phone!r}", line_id=line_id)
        data = self._call("GET", "/api/contacts/check-exists", op="check-exists", line_id=line_id,
                          params={"phone": digits, "session": line_id})
        if not isinstance(data, dict) or not isinstance(data.get("numberExists"), bool):
            raise GatewayUnavailable("WAHA check-exists: unexpected answer", line_id=line_id)
        if not data["numberExists"]:
            return Presence(False, None)
        chat_id = data.get("chatId")
        # The returned chat id is the truth (Brazilian 9th digit, @lid accounts);
        # engines that leave it out mean the plain digits.
        return Presence(True, chat_id if isinstance(chat_id, str) and chat_id else f"{digits}@c.us")

    def find_chat(self, line_id: str, chat_id: str) -> ChatRef | None:
        """Return the existing chat ``chat_id`` on the line, or None when there is none."""
        self._own(line_id)
        data = self._call("GET", self._path(line_id, "chats", "overview"), op="chats/overview", line_id=line_id,
                          params={"ids": chat_id, "limit": 1})
        if not isinstance(data, list):
            raise GatewayUnavailable("WAHA chats/overview: unexpected answer", line_id=line_id)
        for item in data:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                name = item.get("name")
                # WAHA may merge a @c.us chat with its @lid twin and answer with either id.
                return ChatRef(chat_id=item["id"], name=name if isinstance(name, str) and name else None)
        return None

    def history(self, line_id: str, chat_id: str, *, limit: int = 20, offset: int = 0) -> HistoryPage:
        """Return one page of the chat, oldest first, ``offset`` messages back from the newest."""
        self._own(line_id)
        limit, offset = max(int(limit), 1), max(int(offset), 0)
        data = self._call("GET", self._path(line_id, "chats", chat_id, "messages"), op="messages", line_id=line_id,
                          params={"limit": limit, "offset": offset, "downloadMedia": "false"})
        if not isinstance(data, list):
            raise GatewayUnavailable("WAHA messages: unexpected answer", line_id=line_id)
        # WAHA pages newest first; the widget draws oldest first. Reverse, then
        # sort by time (stable) in case an engine hands the page over unordered.
        messages = sorted((_message(m) for m in reversed(data) if isinstance(m, dict)), key=lambda m: m.timestamp)
        # Offset paging has no total: a full page means older messages may follow.
        return HistoryPage(messages=messages, has_more=len(data) >= limit, offset=offset)

    def new_message_id(self, line_id: str) -> str:
        """Return a fresh message id from WAHA, to be sent with (and found back by) a send."""
        self._own(line_id)
        data = self._call("GET", self._path(line_id, "new-message-id"), op="new-message-id", line_id=line_id)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise GatewayUnavailable("WAHA new-message-id: unexpected answer", line_id=line_id)
        return data["id"]

    def send_text(self, line_id: str, chat_id: str, text: str, *, message_id: str) -> SentMessage:
        """Send ``text`` to ``chat_id`` once, under the pre-generated ``message_id``."""
        self._own(line_id)
        body = {"session": line_id, "chatId": chat_id, "text": text}
        if message_id:
            body["id"] = message_id
        data = self._call("POST", "/api/sendText", op="sendText", line_id=line_id, json=body, sending=True)
        if not isinstance(data, dict):
            # It was accepted (2xx), so it went out; only the receipt is unreadable.
            return SentMessage(id=message_id)
        stamp = data.get("timestamp")
        return SentMessage(id=data["id"] if isinstance(data.get("id"), str) and data["id"] else message_id,
                           timestamp=int(stamp) if isinstance(stamp, (int, float)) else None, ack=_ack(data))

    def find_message(self, line_id: str, chat_id: str, message_id: str) -> Message | None:
        """Return the message sent under ``message_id`` in the chat, or None when WhatsApp has none."""
        self._own(line_id)
        full_id = message_id if _SERIALISED_ID.match(message_id) else f"true_{chat_id}_{message_id}"
        data = self._call("GET", self._path(line_id, "chats", chat_id, "messages", full_id), op="message",
                          line_id=line_id, params={"downloadMedia": "false"}, missing_ok=True)
        if isinstance(data, dict):
            return _message(data)
        if full_id == message_id:
            return None
        # Engines differ in how they serialise our own ids (e.g. a trailing
        # "_out"), so before saying "never sent" — which leads to a resend —
        # look for the raw id among the latest own messages.
        recent = self._call("GET", self._path(line_id, "chats", chat_id, "messages"), op="messages",
                            line_id=line_id, params={"limit": _RECONCILE_SCAN, "offset": 0,
                                                     "downloadMedia": "false", "filter.fromMe": "true"})
        for item in recent if isinstance(recent, list) else ():
            if isinstance(item, dict) and isinstance(item.get("id"), str) and message_id in item["id"].split("_"):
                return _message(item)
        return None

    # ------------------------------------------------------------ media (the Open Lines bridge)

    def send_media(self, line_id: str, chat_id: str, kind: str, *, data: bytes | BinaryIO, mimetype: str,
                   filename: str, caption: str = "") -> SentMessage:
        """Send a file through sendImage / sendVoice / sendVideo / sendFile, the bytes inline (base64).

        The file goes inline rather than as a URL for WAHA to fetch: the operator's
        link is short-lived and needs no WAHA → our app route. ``data`` may be a
        file: its base64 is encoded while the request body is written
        (:class:`InlineFileBody`), so a 100 MB document is never a 133 MB string
        in the worker. The media endpoints take no pre-generated id (see the
        contract), so the outbox never resends a file whose outcome is unknown.
        """
        self._own(line_id)
        if kind not in _MEDIA_ENDPOINTS:
            raise GatewayError(f"unknown media kind {kind!r}", line_id=line_id)
        source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        file = {"mimetype": mimetype or "application/octet-stream", "filename": filename or "file"}
        body: dict[str, Any] = {"session": line_id, "chatId": chat_id, "file": file}
        if kind in (VOICE, VIDEO):
            body["convert"] = True  # WhatsApp plays only OGG/Opus voice and H.264 video: WAHA converts
        if caption and kind != VOICE:  # a voice message has no caption
            body["caption"] = caption
        endpoint = _MEDIA_ENDPOINTS[kind]
        answer = self._call("POST", f"/api/{endpoint}", op=endpoint, line_id=line_id,
                            data=InlineFileBody(body, source), sending=True)
        return SentMessage(id=_sent_id(answer) if isinstance(answer, dict) else "", ack=None)

    def media_of(self, line_id: str, chat_id: str, message_id: str) -> MediaInfo:
        """Ask WAHA for one message with its media downloaded: the file's type, name and a fresh URL.

        The history is read without media (downloadMedia=false, fast); a file
        is described only when someone looks at it, and its URL (WAHA deletes
        files after WHATSAPP_FILES_LIFETIME) is fresh each time.
        """
        self._own(line_id)
        data = self._call("GET", self._path(line_id, "chats", chat_id, "messages", message_id), op="message",
                          line_id=line_id, params={"downloadMedia": "true"})
        media = _media(data) if isinstance(data, dict) else None
        if media is None or not media.url:
            raise GatewayNotFound("WAHA message: no media to download", line_id=line_id)
        return media

    def download_media(self, line_id: str, url: str, sink: BinaryIO, *, max_bytes: int) -> str:
        """Stream a received file (``media.url``) into ``sink``, at most ``max_bytes``; return its MIME type.

        The URL comes in a webhook; it is fetched, with our API key, only when it
        points at this very server's file store — any other address is refused
        (the key must never go elsewhere, and a webhook must not make us fetch
        arbitrary addresses).
        """
        self._own(line_id)
        if not self._serves(url):
            raise MediaRefused("the media URL is not on this WAHA server", line_id=line_id)
        if self._refusal is not None:
            raise OutboundAddressRefused(str(self._refusal), kind=self._refusal.kind)
        headers = {"Accept": "*/*"}
        if self._api_key:
            headers["X-Api-Key"] = self._api_key
        try:
            with self._http.get(url, headers=headers, timeout=self.timeout, stream=True,
                                allow_redirects=False) as resp:
                if resp.status_code in (401, 403):
                    raise GatewayUnauthorized("WAHA file: API key refused", line_id=line_id)
                if resp.status_code == 404:
                    raise GatewayNotFound("WAHA file: gone (deleted after WHATSAPP_FILES_LIFETIME)", line_id=line_id)
                if resp.status_code != 200:
                    raise GatewayUnavailable(f"WAHA file: HTTP {resp.status_code}", line_id=line_id)
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise MediaTooLarge(f"WAHA file: {declared} bytes", line_id=line_id)
                size = 0
                for chunk in resp.iter_content(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(f"WAHA file: over {max_bytes} bytes", line_id=line_id)
                    sink.write(chunk)
                return (resp.headers.get("Content-Type") or "application/octet-stream").split(";")[0].strip()
        except requests.Timeout as exc:
            raise GatewayUnavailable("WAHA file: no answer in time", line_id=line_id) from exc
        except requests.RequestException as exc:
            raise GatewayUnavailable("WAHA file: cannot reach the server", line_id=line_id) from exc

    def _serves(self, url: str) -> bool:
        """Tell whether ``url`` is a file of this server: same scheme, host and port, under /api/files/."""
        try:
            ours, theirs = urlsplit(self.base_url), urlsplit(url)
            our_port, their_port = ours.port, theirs.port
        except ValueError:
            return False
        default = {"http": 80, "https": 443}
        if theirs.scheme != ours.scheme or theirs.username or theirs.password or theirs.fragment:
            return False
        if (theirs.hostname or "").lower() != (ours.hostname or "").lower():
            return False
        if (their_port or default.get(theirs.scheme)) != (our_port or default.get(ours.scheme)):
            return False
        path = theirs.path
        # No way out of the file store: no dot segments, backslashes or encoded ones.
        if ".." in path or "\\" in path or any(bad in path.lower() for bad in ("%2e", "%2f", "%5c")):
            return False
        base = ours.path.rstrip("/")
        return path.startswith(base + "/api/files/") or path.startswith("/api/files/")

    # ------------------------------------------------------------ webhooks (the Open Lines bridge)

    def set_webhook(self, line_id: str, hook: Mapping[str, Any]) -> bool:
        """Make ``hook`` the session's webhook to its URL, keeping every other webhook and setting.

        WAHA replaces a session's whole config on PUT (and restarts a running
        session to apply it), so the config is read first, only the webhook
        with our URL is replaced, and nothing is written when it is already
        there as wanted. Returns whether the session's config changed.
        """
        self._own(line_id)
        path = self._path("sessions", line_id)
        info = self._call("GET", path, op="session", line_id=line_id)
        if not isinstance(info, dict):
            raise GatewayUnavailable("WAHA session: unexpected answer", line_id=line_id)
        config = dict(info["config"]) if isinstance(info.get("config"), dict) else {}
        hooks = config.get("webhooks") if isinstance(config.get("webhooks"), list) else []
        wanted = dict(hook)
        others = [h for h in hooks if not (isinstance(h, dict) and h.get("url") == wanted["url"])]
        if len(others) == len(hooks) - 1 and wanted in hooks:
            return False
        config["webhooks"] = others + [wanted]
        self._call("PUT", path, op="session update", line_id=line_id, json={"config": config})
        return True

    # ------------------------------------------------------------ HTTP

    def _own(self, line_id: str) -> None:
        """Refuse a session that is not one of this portal's lines (one WAHA serves many portals)."""
        if self.sessions is not None and line_id not in self.sessions:
            raise GatewayNotFound(f"line {line_id!r} is not connected to this portal", line_id=line_id)

    @staticmethod
    def _path(*parts: str) -> str:
        # Chat ids carry '@' (and message ids '_' and '@'): encode every part whole.
        return "/api/" + "/".join(quote(str(p), safe="") for p in parts)

    def _call(self, method: str, path: str, *, op: str, line_id: str | None = None, params: dict | None = None,
              json: Any = None, data: Any = None, sending: bool = False, missing_ok: bool = False) -> Any:
        """Make one request and return its JSON, or raise the typed error for its failure."""
        if self._refusal is not None:
            raise OutboundAddressRefused(str(self._refusal), kind=self._refusal.kind)
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["X-Api-Key"] = self._api_key
        try:
            resp = self._http.request(method, self.base_url + path, params=params, json=json, data=data,
                                      headers=headers,
                                      timeout=self.timeout, allow_redirects=False)
        except requests.Timeout as exc:
            raise GatewayTimeout(f"WAHA {op}: no answer in time", line_id=line_id) from exc
        except requests.ConnectionError as exc:
            if sending and not _never_sent(exc):
                # The request may have reached WAHA before the connection broke:
                # same uncertainty as a timeout, so the outbox reconciles instead of resending.
                raise GatewayTimeout(f"WAHA {op}: connection lost, outcome unknown", line_id=line_id) from exc
            raise GatewayUnavailable(f"WAHA {op}: cannot reach the server", line_id=line_id) from exc
        except requests.RequestException as exc:
            raise GatewayUnavailable(f"WAHA {op}: request failed", line_id=line_id) from exc
        with resp:
            status = resp.status_code
            try:
                body = resp.json()
            except ValueError:
                body = None
                text = resp.text[:2000]
            else:
                text = ""
        if 200 <= status < 300:
            if body is None:
                raise GatewayUnavailable(f"WAHA {op}: answer is not JSON (HTTP {status})", line_id=line_id)
            return body
        where = f"WAHA {op}: HTTP {status}"
        if status in (401, 403):
            raise GatewayUnauthorized(f"{where}: API key refused", line_id=line_id)
        if status == 404:
            if missing_ok and not _mentions_session(body):
                return None
            raise GatewayNotFound(where, line_id=line_id)
        if status == 422:
            state = _session_state(body)
            if state in _NOT_CONNECTED:
                state = _STATE_ALIASES.get(state, state)
                raise LineNotConnected(f"{where}: line is {state}", line_id=line_id, status=state)
            raise GatewayError(f"{where}: request refused", line_id=line_id)
        if status == 429 or (status >= 500 and _mentions_rate_limit(body, text)):
            raise GatewayRateLimited(f"{where}: WhatsApp limits this account", line_id=line_id)
        if status >= 500 or 300 <= status < 400:
            # 3xx too: a redirect (say http → https) means the configured URL is not WAHA's API.
            raise GatewayUnavailable(where, line_id=line_id)
        raise GatewayError(f"{where}: request refused", line_id=line_id)

    def _line(self, item: dict) -> Line:
        """Build a Line from one WAHA session."""
        name = item["name"]
        me = item.get("me") if isinstance(item.get("me"), dict) else {}
        return Line(id=name, name=self.names.get(name) or name, phone=_phone_of(me.get("id")),
                    status=_state(item.get("status")), reachout_restricted=_reachout_locked(me.get("reachoutTimelock")))


# ---------------------------------------------------------------- parsing


def line_state(value: Any) -> str:
    """The widget's line state for a WAHA session status (as a session.status webhook gives it)."""
    return _state(value)


def _state(value: Any) -> str:
    """Map a WAHA session status onto the widget's five line states."""
    if value == WORKING or value in _NOT_CONNECTED:
        return _STATE_ALIASES.get(value, value)
    # A state this adapter does not know yet can't send: show it as failed.
    return FAILED


def _phone_of(wa_id: Any) -> str | None:
    """Turn ``79111111111@c.us`` (or ``…:12@s.whatsapp.net``) into ``+79111111111``."""
    if not isinstance(wa_id, str) or "@" not in wa_id:
        return None
    user, server = wa_id.split("@", 1)
    user = user.split(":", 1)[0]  # device suffix
    # @lid ids are opaque account ids, not phone numbers.
    if server not in ("c.us", "s.whatsapp.net") or not user.isdigit():
        return None
    return "+" + user


def _reachout_locked(value: Any) -> bool:
    """Read ``me.reachoutTimelock`` (WAHA ≥ 2026.7.2): a flag or ``{"isActive": …}``."""
    # The contract file (2026.7.1) predates the field, so both plausible shapes are read.
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return bool(value.get("isActive", value.get("active", False)))
    return False


def _ack(item: dict) -> str | None:
    """Return the delivery state name of a WAHA message."""
    name = item.get("ackName")
    if isinstance(name, str) and name.upper() in _ACK_VALUES:
        return name.upper()
    ack = item.get("ack")
    if isinstance(ack, (int, float)) and not isinstance(ack, bool):
        return ACK_NAMES.get(int(ack))
    return None


def _message(item: dict) -> Message:
    """Build a Message from a WAHA message."""
    from_me = item.get("fromMe") is True
    stamp = item.get("timestamp")
    body = item.get("body")
    has_media = item.get("hasMedia") is True
    return Message(id=str(item.get("id") or ""), from_me=from_me, text=body if isinstance(body, str) else "",
                   timestamp=int(stamp) if isinstance(stamp, (int, float)) else 0,
                   # Delivery state only means something for what we sent.
                   ack=_ack(item) if from_me else None, has_media=has_media,
                   media=_media(item) if has_media else None)


def _media(item: dict) -> MediaInfo | None:
    """Read ``media {url, mimetype, filename}`` of a WAHA message; None when WAHA did not describe the file."""
    media = item.get("media")
    if not isinstance(media, dict):
        return None
    mimetype, filename, url = media.get("mimetype"), media.get("filename"), media.get("url") or item.get("mediaUrl")
    if not isinstance(mimetype, str) or not mimetype:
        return None
    return MediaInfo(mimetype=mimetype.split(";")[0].strip().lower()[:128],
                     filename=filename[:200] if isinstance(filename, str) else "",
                     url=url[:2000] if isinstance(url, str) else "")


class InlineFileBody:
    """A WAHA send's JSON body with the file's base64 ``data`` encoded while it is read.

    requests sends any object with ``read`` and ``__len__`` as a body of that
    Content-Length, reading it block by block: the worker holds one block of
    the file (and its base64) at a time, never the whole file or its text.
    """

    # A multiple of 3: the base64 of consecutive blocks joins into the base64 of the whole.
    BLOCK = 3 * 64 * 1024

    def __init__(self, body: dict, source: BinaryIO):
        marker = uuid.uuid4().hex  # stands for the data in the JSON text, split out again below
        payload = dict(body, file=dict(body["file"], data=marker))
        head, tail = jsonlib.dumps(payload, ensure_ascii=False).encode("utf-8").split(marker.encode(), 1)
        start = source.tell()
        size = source.seek(0, io.SEEK_END) - start
        source.seek(start)
        self._parts = [head, tail]
        self._source = source
        self._length = len(head) + 4 * ((size + 2) // 3) + len(tail)
        self._buffer, self._pos = memoryview(b""), 0
        self._stage = 0  # 0: head, 1: file, 2: tail, 3: done

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        want = self._length if size is None or size < 0 else size
        if self._pos >= len(self._buffer):
            self._buffer, self._pos = self._next(), 0
        out = self._buffer[self._pos:self._pos + want]
        self._pos += len(out)
        return bytes(out)

    def _next(self) -> memoryview:
        """The next piece of the body: the JSON head, base64 blocks of the file, the JSON tail, then nothing."""
        if self._stage == 0:
            self._stage = 1
            return memoryview(self._parts[0])
        if self._stage == 1:
            block = self._source.read(self.BLOCK)
            while block and len(block) < self.BLOCK:  # a short read is not the end unless nothing more comes
                more = self._source.read(self.BLOCK - len(block))
                if not more:
                    break
                block += more
            if block:
                return memoryview(base64.b64encode(block))
            self._stage = 2
        if self._stage == 2:
            self._stage = 3
            return memoryview(self._parts[1])
        return memoryview(b"")


def _sent_id(answer: dict) -> str:
    """The WhatsApp id in a send's answer, wherever the engine puts it (WEBJS id, NOWEB key.id, GOWS _data)."""
    found = answer.get("id")
    if isinstance(found, dict):  # WEBJS: {"fromMe", "remote", "id", "_serialized"}
        found = found.get("_serialized") or found.get("id")
    if not isinstance(found, str) or not found:
        key = answer.get("key")
        found = key.get("id") if isinstance(key, dict) else None
    if not isinstance(found, str) or not found:
        data = answer.get("_data")
        info = data.get("Info") if isinstance(data, dict) else None
        found = info.get("ID") if isinstance(info, dict) else None
    return found if isinstance(found, str) else ""


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Tell whether the connection failed before the request could leave (refused, DNS)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _session_state(body: Any) -> str | None:
    """Find the session status in a WAHA 422 body."""
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("message"), body.get("exception")):
        if isinstance(holder, dict) and isinstance(holder.get("status"), str):
            return holder["status"]
    return None


def _mentions_session(body: Any) -> bool:
    """Tell a 404 about the session (unknown line) from one about the message."""
    return any("session" in text.lower() for text in _texts(body))


def _mentions_rate_limit(body: Any, text: str) -> bool:
    """Tell whether a 5xx body is WhatsApp throttling or the reach-out timelock."""
    if body is None:
        return bool(_RATE_LIMIT_HINT.search(text))
    return any(_RATE_LIMIT_HINT.search(t) for t in _texts(body)) or any(n in (429, 463) for n in _numbers(body, True))


def _texts(node: Any) -> list[str]:
    """Collect the strings of a JSON body, leaving out echoes and stack traces."""
    out: list[str] = []
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in _NOISE_KEYS:
                out.extend(_texts(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(_texts(value))
    return out


def _numbers(node: Any, top: bool = False) -> list[int]:
    """Collect the integer codes of a JSON body (besides its own HTTP status)."""
    out: list[int] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NOISE_KEYS or (top and key == "statusCode"):
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                out.append(value)
            else:
                out.extend(_numbers(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(_numbers(value))
    return out
