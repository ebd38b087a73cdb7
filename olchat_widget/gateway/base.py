"""The WhatsApp gateway interface the widget talks to.

Every gateway (the embedded demo, WAHA, later Green-API or Evolution) answers
the same five questions and fails with the same few typed errors, so the
widget never looks at error strings or HTTP codes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, Sequence

# Line (session) states, as the gateway reports them.
WORKING = "WORKING"
SCAN_QR_CODE = "SCAN_QR_CODE"
STARTING = "STARTING"
STOPPED = "STOPPED"
FAILED = "FAILED"
LINE_STATES = (WORKING, SCAN_QR_CODE, STARTING, STOPPED, FAILED)


@dataclass(frozen=True)
class Line:
    """A connected WhatsApp account (a gateway session)."""

    id: str
    name: str
    phone: str | None = None  # the line's own number, E.164
    status: str = WORKING
    # WhatsApp restricts writing to new contacts on this account (reach-out timelock).
    reachout_restricted: bool = False

    @property
    def can_send(self) -> bool:
        return self.status == WORKING


@dataclass(frozen=True)
class Presence:
    """The answer to "does this number have WhatsApp"."""

    exists: bool
    chat_id: str | None = None  # the gateway's chat id; may differ from the digits


@dataclass(frozen=True)
class ChatRef:
    """An existing chat with a number on a line."""

    chat_id: str
    name: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    """A message's file as the gateway describes it; ``url`` is on the gateway's own file store (may expire)."""

    mimetype: str = ""
    filename: str = ""
    url: str = ""


@dataclass(frozen=True)
class Message:
    id: str
    from_me: bool
    text: str
    timestamp: int  # unix seconds
    # Delivery state of own messages: PENDING, SERVER, DEVICE, READ, PLAYED, ERROR.
    ack: str | None = None
    has_media: bool = False
    # What the gateway said of the file (None: it has media but did not describe it, see media_of).
    media: MediaInfo | None = None


@dataclass(frozen=True)
class HistoryPage:
    """One page of a chat, oldest first; ``has_more`` when older pages exist."""

    messages: Sequence[Message]
    has_more: bool
    offset: int = 0  # offset (from the newest message) of this page
    extra: dict = field(default_factory=dict)


# What a file is sent as (WAHA's sendImage, sendVoice, sendVideo, sendFile).
IMAGE, VOICE, VIDEO, DOCUMENT = "image", "voice", "video", "file"
MEDIA_KINDS = (IMAGE, VOICE, VIDEO, DOCUMENT)


@dataclass(frozen=True)
class SentMessage:
    id: str
    timestamp: int | None = None
    ack: str | None = None


# ---------------------------------------------------------------- errors


class GatewayError(Exception):
    """Base of every gateway failure; ``reason`` is a stable code for the UI."""

    reason = "gateway_error"

    def __init__(self, message: str = "", *, line_id: str | None = None, status: str | None = None):
        super().__init__(message or self.reason)
        self.line_id = line_id
        self.status = status


class LineNotConnected(GatewayError):
    """The line needs a QR scan, is stopped, starting or failed."""

    reason = "line_not_connected"


class GatewayUnauthorized(GatewayError):
    """The gateway refused our API key."""

    reason = "unauthorized"


class GatewayRateLimited(GatewayError):
    """WhatsApp throttles or restricts this account (rate-overlimit, reach-out lock)."""

    reason = "rate_limited"


class GatewayUnavailable(GatewayError):
    """The gateway cannot be reached, timed out or answered garbage."""

    reason = "unavailable"


class GatewayTimeout(GatewayUnavailable):
    """The gateway did not answer in time; a send may or may not have gone out."""

    reason = "timeout"


class GatewayNotFound(GatewayError):
    """Unknown line, chat or message."""

    reason = "not_found"


class MediaTooLarge(GatewayError):
    """A file is larger than we accept to carry."""

    reason = "too_large"


class MediaRefused(GatewayError):
    """A file address we will not fetch (another server than the line's, a foreign host)."""

    reason = "refused"


class BudgetExhausted(GatewayError):
    """The line's daily budget of number checks is spent (anti-ban guard)."""

    reason = "budget"


# ---------------------------------------------------------------- interface


class Gateway(Protocol):
    """What the widget asks of a WhatsApp gateway.

    Phones are E.164 strings (``+79161234567``); line ids are the gateway's
    session names. Every method may raise a :class:`GatewayError` subclass.
    """

    def list_lines(self) -> list[Line]: ...

    def check_exists(self, line_id: str, phone: str) -> Presence: ...

    def find_chat(self, line_id: str, chat_id: str) -> ChatRef | None: ...

    def history(self, line_id: str, chat_id: str, *, limit: int = 20, offset: int = 0) -> HistoryPage: ...

    def new_message_id(self, line_id: str) -> str: ...

    def send_text(self, line_id: str, chat_id: str, text: str, *, message_id: str) -> SentMessage: ...

    def find_message(self, line_id: str, chat_id: str, message_id: str) -> Message | None: ...

    # The Open Lines bridge: files both ways.

    def send_media(self, line_id: str, chat_id: str, kind: str, *, data: bytes | BinaryIO, mimetype: str,
                   filename: str, caption: str = "") -> SentMessage:
        """Send a file as ``kind`` (IMAGE, VOICE, VIDEO, DOCUMENT); no pre-generated id (see outbox).

        ``data`` is the bytes or a binary file open at its start (read to its end, never held whole).
        """
        ...

    def media_of(self, line_id: str, chat_id: str, message_id: str) -> MediaInfo:
        """Describe a message's file with a fresh URL to download it from (GatewayNotFound: none)."""
        ...

    def download_media(self, line_id: str, url: str, sink: BinaryIO, *, max_bytes: int) -> str:
        """Write a received file (the ``media.url`` of a message) into ``sink``; return its MIME type.

        Raises GatewayNotFound when the file is gone, MediaTooLarge past ``max_bytes``.
        """
        ...


class NoLines:
    """The gateway of a portal that connected no WhatsApp server: no lines, nothing to reach.

    A real portal is never handed another tenant's gateway (the demo one or the
    deployment's) just because it has none of its own.
    """

    def list_lines(self) -> list[Line]:
        return []

    def _none(self, line_id: str, *args, **kwargs):
        raise GatewayNotFound("no WhatsApp lines are connected", line_id=line_id)

    check_exists = find_chat = history = new_message_id = send_text = find_message = _none
    send_media = download_media = media_of = _none
