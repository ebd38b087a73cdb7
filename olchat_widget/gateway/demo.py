"""The demo gateway: lines, WhatsApp numbers and chats from the demo data file.

It behaves like a real gateway where the widget can tell: a line that is not
WORKING refuses checks and sends, history pages come newest-first from the
store, a pre-generated message id is kept. It can be told to be slow or to
fail, so tests and benchmarks exercise timeouts and errors without a network.
"""
from __future__ import annotations

import itertools
import threading
import time
import uuid

from ..clock import unix_now
from ..phones import normalise
from .base import (WORKING, ChatRef, GatewayNotFound, GatewayRateLimited, GatewayTimeout, GatewayUnauthorized,
                   GatewayUnavailable, HistoryPage, Line, LineNotConnected, MediaInfo, MediaTooLarge, Message,
                   Presence, SentMessage)
from .demo_media import DEMO_FILES

# The demo keeps sent files in its process's memory: a cap, so a demo can't be made to eat it.
DEMO_FILE_CAP = 20 * 1024 * 1024

_FAILURES = {
    "unavailable": GatewayUnavailable,
    "timeout": GatewayTimeout,
    "unauthorized": GatewayUnauthorized,
    "rate_limited": GatewayRateLimited,
}


def chat_id_for(phone: str) -> str:
    return phone.lstrip("+") + "@c.us"


class DemoGateway:
    def __init__(self, data: dict, *, delay: float = 0.0, check_delay: float | None = None,
                 fail: str = "", fail_as: str = "unavailable"):
        self.delay = delay
        self.check_delay = delay if check_delay is None or check_delay < 0 else check_delay
        self.fail = {op.strip() for op in fail.split(",") if op.strip()}
        self.fail_as = fail_as
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # "demo:<message id>" → (MIME type, file name, bytes): the demo's file store.
        self.files: dict[str, tuple[str, str, bytes]] = {}
        self.lines = {
            str(line["id"]): Line(
                id=str(line["id"]),
                name=str(line.get("name") or line["id"]),
                phone=normalise(str(line.get("phone") or "")).e164,
                status=str(line.get("status") or WORKING),
                reachout_restricted=bool(line.get("reachout_restricted", False)),
            )
            for line in data.get("lines", [])
        }
        self.whatsapp = {e.e164 for e in map(normalise, map(str, data.get("whatsapp", []))) if e.e164}
        # (line id, chat id) -> messages, oldest first
        self.chats: dict[tuple[str, str], list[Message]] = {}
        for chat in data.get("chats", []):
            phone = normalise(str(chat.get("phone", ""))).e164
            if not phone:
                continue
            messages = [self._keep_demo_file(self._message(m), m.get("media")) for m in chat.get("messages", [])]
            generated = int(chat.get("generate") or 0)
            if generated:
                first = messages[0].timestamp if messages else 1764000000
                messages = [
                    Message(id=f"gen-{phone}-{n}", from_me=n % 3 == 0, text=f"Сообщение {n + 1}",
                            timestamp=first - (generated - n) * 600, ack="READ" if n % 3 == 0 else None)
                    for n in range(generated)
                ] + messages
            self.chats[(str(chat.get("line", "")), chat_id_for(phone))] = sorted(messages, key=lambda m: m.timestamp)

    @staticmethod
    def _message(m: dict) -> Message:
        from_me = bool(m.get("from_me"))
        return Message(id=str(m.get("id") or uuid.uuid4().hex), from_me=from_me, text=str(m.get("text", "")),
                       timestamp=int(m.get("timestamp") or 0), ack=m.get("ack") or ("SERVER" if from_me else None),
                       has_media=bool(m.get("has_media", False)))

    def _keep_demo_file(self, message: Message, media) -> Message:
        """A demo message naming a made-up file ("photo", "voice", "document") gets that file."""
        if media not in DEMO_FILES:
            return message
        mimetype, filename, make = DEMO_FILES[media]
        url = "demo:" + message.id
        self.files[url] = (mimetype, filename, make())
        return Message(id=message.id, from_me=message.from_me, text=message.text, timestamp=message.timestamp,
                       ack=message.ack, has_media=True, media=MediaInfo(mimetype, filename, url))

    # -- behaviour knobs

    def _enter(self, op: str, delay: float | None = None) -> None:
        with self._lock:
            self.calls[op] = self.calls.get(op, 0) + 1
        pause = self.delay if delay is None else delay
        if pause:
            time.sleep(pause)
        if op in self.fail or "all" in self.fail:
            raise _FAILURES.get(self.fail_as, GatewayUnavailable)(f"demo gateway told to fail: {op}")

    def _working_line(self, line_id: str) -> Line:
        line = self.lines.get(line_id)
        if line is None:
            raise GatewayNotFound(f"no line {line_id}", line_id=line_id)
        if line.status != WORKING:
            raise LineNotConnected(f"line {line_id} is {line.status}", line_id=line_id, status=line.status)
        return line

    # -- Gateway

    def list_lines(self) -> list[Line]:
        self._enter("list_lines")
        return list(self.lines.values())

    def check_exists(self, line_id: str, phone: str) -> Presence:
        self._enter("check_exists", self.check_delay)
        self._working_line(line_id)
        if phone in self.whatsapp:
            return Presence(True, chat_id_for(phone))
        return Presence(False, None)

    def find_chat(self, line_id: str, chat_id: str) -> ChatRef | None:
        self._enter("find_chat")
        self._working_line(line_id)
        return ChatRef(chat_id) if (line_id, chat_id) in self.chats else None

    def history(self, line_id: str, chat_id: str, *, limit: int = 20, offset: int = 0) -> HistoryPage:
        self._enter("history")
        self._working_line(line_id)
        messages = self.chats.get((line_id, chat_id), [])
        end = max(len(messages) - offset, 0)
        start = max(end - limit, 0)
        return HistoryPage(messages=list(messages[start:end]), has_more=start > 0, offset=offset)

    def new_message_id(self, line_id: str) -> str:
        self._working_line(line_id)
        return f"true_{line_id}_{uuid.uuid4().hex[:20].upper()}"

    def send_text(self, line_id: str, chat_id: str, text: str, *, message_id: str) -> SentMessage:
        self._enter("send_text")
        self._working_line(line_id)
        now = unix_now()  # the app's clock: a pinned hour shows in the history too
        with self._lock:
            chat = self.chats.setdefault((line_id, chat_id), [])
            # WhatsApp keeps one message per id: a repeated id is not a second message.
            if not any(m.id == message_id for m in chat):
                chat.append(Message(id=message_id, from_me=True, text=text, timestamp=now, ack="SERVER"))
        return SentMessage(id=message_id, timestamp=now, ack="SERVER")

    def send_media(self, line_id: str, chat_id: str, kind: str, *, data, mimetype: str, filename: str,
                   caption: str = "") -> SentMessage:
        """Keep a sent file as a message with media; its file stays in the demo's store for the history."""
        self._enter("send_media")
        self._working_line(line_id)
        content = data if isinstance(data, (bytes, bytearray)) else data.read(DEMO_FILE_CAP + 1)
        if len(content) > DEMO_FILE_CAP:
            raise MediaTooLarge("the demo gateway keeps files up to 20 MB", line_id=line_id)
        now = unix_now()
        message_id = f"true_{chat_id}_{uuid.uuid4().hex[:20].upper()}"
        url = "demo:" + message_id
        with self._lock:
            self.files[url] = (mimetype, filename, bytes(content))
            self.chats.setdefault((line_id, chat_id), []).append(
                Message(id=message_id, from_me=True, text=caption, timestamp=now, ack="SERVER", has_media=True,
                        media=MediaInfo(mimetype, filename, url)))
        return SentMessage(id=message_id, timestamp=now, ack="SERVER")

    def media_of(self, line_id: str, chat_id: str, message_id: str) -> MediaInfo:
        self._enter("media_of")
        for m in self.chats.get((line_id, chat_id), []):
            if m.id == message_id and m.media is not None:
                return m.media
        raise GatewayNotFound("no such file in the demo chat", line_id=line_id)

    def download_media(self, line_id: str, url: str, sink, *, max_bytes: int) -> str:
        """Write a file of the demo's store (a demo message's, or one sent through the demo)."""
        self._enter("download_media")
        found = self.files.get(url)
        if found is None:
            raise GatewayNotFound("the demo gateway has no such file", line_id=line_id)
        if len(found[2]) > max_bytes:
            raise MediaTooLarge("demo file over the cap", line_id=line_id)
        sink.write(found[2])
        return found[0]

    def client_writes(self, line_id: str, chat_id: str, text: str) -> Message:
        """A client writes to the line (the demo's «Написать от клиента»): the message is in the chat now."""
        self._working_line(line_id)
        message = Message(id=f"false_{chat_id}_{uuid.uuid4().hex[:20].upper()}", from_me=False, text=text,
                          timestamp=unix_now())
        with self._lock:
            self.chats.setdefault((line_id, chat_id), []).append(message)
        return message

    def find_message(self, line_id: str, chat_id: str, message_id: str) -> Message | None:
        self._enter("find_message")
        for m in self.chats.get((line_id, chat_id), []):
            if m.id == message_id:
                return m
        return None
