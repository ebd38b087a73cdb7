"""Files across the Open Lines bridge, both ways.

Client → Open Lines: WAHA's webhook names the file by ``media.url`` and WAHA
deletes it after WHATSAPP_FILES_LIFETIME (180 s by default), so the delivery
job downloads it first thing — through the line's gateway, with its API key,
only from that gateway's own server — keeps it (:class:`BridgeFile`) and hands
Bitrix24 an expiring signed URL of ours (``GET /bridge/files/<token>``). A
download that fails is tried again by the job's retries; then the message goes
with a note instead of the file, so the client's words are never lost.

Open Lines → client: each file of an operator's message is a part of its own,
sent once through the outbox under ``ol:<Bitrix24 id>:<n>`` (the text keeps
``ol:<Bitrix24 id>``), so a retried job skips what went already. A file link is
fetched only from the portal's own domain.
"""
from __future__ import annotations

import json
import mimetypes
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import requests
from flask import Blueprint, abort, current_app, has_request_context, request

from ..crypto import Box
from ..gateway.base import GatewayError, GatewayNotFound, MediaRefused, MediaTooLarge
from ..media import SPOOL as _SPOOL, file_answer, kind_of, link_box, safe_name
from ..models import BridgeFile, BridgeMessage, Portal, db, utcnow

bp = Blueprint("bridge_media", __name__)

# Part outcomes kept on an outbound row: a retried job neither repeats them nor tells the operator twice.
REFUSED, TOO_LARGE, LINK_FAILED, UNCONFIRMED = "foreign_link", "too_large", "link_failed", "unconfirmed"


# ---------------------------------------------------------------- client → Open Lines


def describe(payload: dict) -> dict | None:
    """What an inbound row keeps of a WAHA message's media: where to fetch it, and where we are seen from."""
    if not payload.get("hasMedia"):
        return None
    media = payload.get("media") if isinstance(payload.get("media"), dict) else {}
    url = media.get("url") or payload.get("mediaUrl")
    # No URL: WAHA could not fetch it from WhatsApp (media.error) or keeps no files (WHATSAPP_DOWNLOAD_MEDIA).
    return {"url": url[:2000] if isinstance(url, str) else "",
            "mimetype": str(media.get("mimetype") or "")[:128],
            "filename": str(media.get("filename") or "")[:200],
            # Bitrix24 fetches our URL itself: without OLCHAT_PUBLIC_URL, the address WAHA reached us at.
            "base": request.url_root if has_request_context() else ""}


def settle_inbound(portal: Portal, rows: list[BridgeMessage]) -> tuple[list[BridgeMessage], list[BridgeMessage]]:
    """Download the files of claimed rows, oldest first; return (rows ready to deliver, rows to try later).

    Order is kept: once one file must wait for a retry, the rows after it wait too.
    """
    tries = current_app.config["OLCHAT_MEDIA_TRIES"]
    for n, row in enumerate(rows):
        part = json.loads(row.payload)
        if not part.get("has_media") or part.get("file_id") or part.get("file_note"):
            continue
        try:
            part.update(_download(portal, row, part.get("media") or {}))
        except GatewayError as exc:
            if row.attempts < tries:
                return rows[:n], rows[n:]  # the gateway is down or busy: the job's retry tries again
            current_app.logger.warning("bridge: file of %s not received after %s tries: %s",
                                       row.source_id, row.attempts, exc.reason)
            part["file_note"] = "failed"
        row.payload = json.dumps(part, ensure_ascii=False)
        db.session.commit()
    return rows, []


def _download(portal: Portal, row: BridgeMessage, media: dict) -> dict:
    """Fetch and keep one file; return what the row records (file_id, or file_note when it is gone for good)."""
    from ..runtime import gateway_for

    kept = db.session.scalar(db.select(BridgeFile.id).filter_by(portal_id=portal.id, message_id=row.source_id))
    if kept is not None:
        return {"file_id": kept}  # a consumer died after keeping it
    if not media.get("url"):
        return {"file_note": "failed"}  # WAHA could not fetch it from WhatsApp (media.error)
    cap = current_app.config["OLCHAT_MEDIA_MAX_BYTES"]
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as sink:
        try:
            mime = gateway_for(portal).download_media(row.line_id, media["url"], sink, max_bytes=cap)
        except MediaTooLarge:
            return {"file_note": "too_large"}
        except (GatewayNotFound, MediaRefused) as exc:
            # Gone (the lifetime passed) or not our server's address: no retry brings it back.
            current_app.logger.warning("bridge: file of %s not received: %s", row.source_id, exc.reason)
            return {"file_note": "failed"}
        size = sink.tell()
        sink.seek(0)
        mime = (media.get("mimetype") or mime or "application/octet-stream").split(";")[0].strip()[:128]
        kept = BridgeFile(portal_id=portal.id, message_id=row.source_id[:255], mime=mime, size=size,
                          name=safe_name(media.get("filename"), mime), data=sink.read())
    db.session.add(kept)
    db.session.commit()
    return {"file_id": kept.id}




def dress(message: dict, part: dict, portal_id: int) -> dict:
    """Put a kept file (or the note that it could not be received) into a send.messages message."""
    if not part.get("has_media"):
        return message
    caption = part.get("text") or ""
    if part.get("file_id"):
        kept = db.session.get(BridgeFile, part["file_id"])
        if kept is not None and kept.portal_id == portal_id:
            message["files"] = [{"url": file_url(portal_id, kept.id, (part.get("media") or {}).get("base")),
                                 "name": kept.name}]
            if caption:
                message["text"] = caption
            else:
                message.pop("text", None)
            return message
    why = " (больше {} МБ)".format(current_app.config["OLCHAT_MEDIA_MAX_BYTES"] // (1024 * 1024)) \
        if part.get("file_note") == "too_large" else ""
    note = f"[Клиент отправил файл, но получить его не удалось{why}]"
    message["text"] = f"{caption}\n{note}" if caption else note
    return message


def _box() -> Box:
    # A key of its own: a file token can never be replayed as a widget token or a stored secret.
    return link_box("bridge-file")


def file_token(portal_id: int, file_id: int) -> str:
    return _box().seal_json({"p": portal_id, "f": file_id})


def file_url(portal_id: int, file_id: int, base: str | None) -> str:
    """Bitrix24's way to our kept file: signed for this portal and file, valid OLCHAT_MEDIA_URL_TTL."""
    root = current_app.config["OLCHAT_PUBLIC_URL"] or base or ""
    return urljoin(root.rstrip("/") + "/", "bridge/files/" + file_token(portal_id, file_id))


@bp.get("/bridge/files/<token>")
def serve_file(token: str):
    """A kept file for whoever holds a valid signed URL (Bitrix24 downloading it); else 404, nothing else."""
    opened = _box().open_json(token, ttl=current_app.config["OLCHAT_MEDIA_URL_TTL"]) if len(token) < 1000 else None
    if not opened or not isinstance(opened.get("p"), int) or not isinstance(opened.get("f"), int):
        abort(404)
    kept = db.session.scalar(db.select(BridgeFile).filter_by(id=opened["f"], portal_id=opened["p"]))
    if kept is None:
        abort(404)
    # An attachment in a sandbox: a client's HTML or SVG must never run on our origin.
    return file_answer(kept.data, kept.mime, kept.name)


def forget_old_files() -> int:
    """Delete kept files no signed URL can reach any more; return how many."""
    older = utcnow() - timedelta(seconds=current_app.config["OLCHAT_MEDIA_URL_TTL"]) - timedelta(hours=1)
    gone = db.session.execute(db.delete(BridgeFile).where(BridgeFile.created_at < older)).rowcount
    db.session.commit()
    return gone


# ---------------------------------------------------------------- Open Lines → client


class LinkError(Exception):
    """An operator's file that can't be fetched; ``outcome`` says why, ``final`` whether a retry may help."""

    def __init__(self, outcome: str, final: bool):
        super().__init__(outcome)
        self.outcome, self.final = outcome, final


def link_allowed(portal: Portal, link: str) -> bool:
    """Tell whether a file link is on the portal's own domain (the egress rule for Bitrix24's links)."""
    try:
        parts = urlsplit(link or "")
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("https", current_app.config["OLCHAT_B24_SCHEME"]) or parts.username or parts.password:
        return False
    host = (parts.hostname or "").lower()
    domain = (portal.domain or "").lower()
    return bool(host) and (f"{host}:{port}" if port else host) == domain


def fetch_link(portal: Portal, link: str) -> bytes:
    """Stream an operator's file from the portal, size-capped; raise LinkError."""
    from ..runtime import http_session

    cap = current_app.config["OLCHAT_MEDIA_MAX_BYTES"]
    session = http_session(("b24-files", portal.id))
    for _hop in range(4):
        if not link_allowed(portal, link):
            raise LinkError(REFUSED, final=True)
        try:
            with session.get(link, stream=True, allow_redirects=False,
                             timeout=(3.05, current_app.config["OLCHAT_B24_TIMEOUT"])) as resp:
                if resp.is_redirect:
                    # Followed only while it stays on the portal (checked at the top of the loop).
                    link = urljoin(link, resp.headers.get("Location", ""))
                    continue
                if resp.status_code in (403, 404, 410):
                    raise LinkError(LINK_FAILED, final=True)  # the short-lived link has expired
                if resp.status_code != 200:
                    raise LinkError(LINK_FAILED, final=False)
                with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as sink:
                    size = 0
                    for chunk in resp.iter_content(1 << 16):
                        size += len(chunk)
                        if size > cap:
                            raise LinkError(TOO_LARGE, final=True)
                        sink.write(chunk)
                    sink.seek(0)
                    return sink.read()
        except requests.RequestException as exc:
            raise LinkError(LINK_FAILED, final=False) from exc
    raise LinkError(LINK_FAILED, final=True)  # a redirect loop


@dataclass
class Sent:
    """What became of an operator message's parts."""

    ids: list[str] = field(default_factory=list)  # WhatsApp ids of the parts that went, in order
    failure: str | None = None  # a gateway reason that stopped the rest (line not connected...)
    retry: bool = False  # something may still go on the job's retry


def send_parts(portal: Portal, row: BridgeMessage, text: str, files: list[dict], *, last_try: bool,
               tell) -> Sent:
    """Send the text, then each file, once each; ``tell(reason, file_name)`` informs the operator."""
    from ..gateway.outbox import FAILED, PENDING, SENT, OutgoingFile, send_once, sent_before
    from ..runtime import gateway_for

    gateway = gateway_for(portal)
    part = json.loads(row.payload)
    done: dict = part.setdefault("parts", {})  # part number → outcome of a file that did not go
    again = () if last_try else ("unavailable",)
    result = Sent()
    common = dict(portal_id=portal.id, user_id=None, line_id=row.line_id, phone="+" + row.client,
                  chat_id=f"{row.client}@c.us", resend_failed=again)
    pieces = ([(0, None)] if text else []) + list(enumerate(files, 1))
    for n, file in pieces:
        key = (f"ol:{row.source_id}" if n == 0 else f"ol:{row.source_id}:{n}")[:64]
        if str(n) in done:
            continue
        before = sent_before(portal.id, key)
        if before is not None:
            result.ids.append(before.message_id or key)
            continue
        if file is None:
            sent = send_once(gateway, key=key, text=text, **common)
        else:
            name = str(file.get("name") or "файл")[:200]
            try:
                data = fetch_link(portal, str(file.get("link") or ""))
            except LinkError as exc:
                if not exc.final and not last_try:
                    result.retry = True
                    return result
                done[str(n)] = exc.outcome
                _save(row, part)
                tell(exc.outcome, name)
                continue
            mime = str(file.get("mime") or mimetypes.guess_type(name)[0] or "application/octet-stream")
            sent = send_once(gateway, key=key, text=f"[{kind_of(mime)}] {name}",
                             media=OutgoingFile(kind=kind_of(mime), data=data, mimetype=mime, filename=name),
                             **common)
        if sent.status == SENT:
            result.ids.append(sent.message_id or key)  # an engine that names no id: the part's own key
        elif sent.status == FAILED:
            if sent.error in again:
                result.retry = True
            else:
                result.failure = sent.error or "unavailable"
            return result
        elif file is None or sent.status == PENDING:
            # Unknown text: the outbox reconciles it on the retry. Pending: another consumer has it in hand.
            raise RuntimeError(f"send {sent.status}: retried later")
        else:
            # A file's unknown outcome can't be looked up (no pre-generated id): never sent twice on a guess.
            done[str(n)] = UNCONFIRMED
            _save(row, part)
            tell(UNCONFIRMED, name)
    return result


def _save(row: BridgeMessage, part: dict) -> None:
    row.payload = json.dumps(part, ensure_ascii=False)
    db.session.commit()
