"""Files in the widget: attaching one (or a voice recording) in the send form, and media in the history.

Sending: ``POST /widget/send-file`` (multipart; its own body limit) checks the
file by its bytes, keeps it under the form's key (:mod:`.uploads`) and sends
it once through the outbox, from the disk.

The history: a message's file is fetched from the line's gateway by our app
(WAHA wants its API key) behind a short-lived signed link bound to portal,
line, chat and message (``GET /media/<token>``), so ``<img>``, ``<audio>`` and
``<video>`` load it without the widget token. A forged, expired or foreign
link is a 404 and nothing else.
"""
from __future__ import annotations

import tempfile
import uuid

from cachetools import TTLCache
from flask import Blueprint, abort, current_app, g, request, url_for

from ..auth import widget_required
from ..gateway.base import GatewayError, GatewayNotFound, MediaInfo, MediaRefused, MediaTooLarge
from ..gateway.outbox import FAILED, SENT, UNKNOWN, OutgoingFile, send_once
from ..i18n import t
from ..media import file_answer, link_box, remove_quietly
from ..models import OutgoingMessage, Portal, db
from ..runtime import gateway_for
from ..web import fragment
from . import service, uploads
from .views import MAX_TEXT, PostedForm, _publish, _record_in_timeline, _with_name, posted_form, text_length

bp = Blueprint("widget_media", __name__)

_PURPOSE = "widget-media"
_INFO_TTL = 60  # seconds a file's description (and its gateway URL) is reused between the probe and the file


@bp.url_value_preprocessor
def _upload_limit(endpoint, values) -> None:
    # Before any hook reads the form: only this route takes a body this large.
    if endpoint == "widget_media.send_file":
        request.max_content_length = uploads.UPLOAD_BODY_LIMIT


@bp.app_context_processor
def _media_helpers() -> dict:
    return {"media_urls": media_urls, "media_view": media_view, "upload_limits": {
        "photo": uploads.LIMITS[uploads.IMAGE], "document": uploads.LIMITS[uploads.DOCUMENT]}}


@bp.context_processor
def _limits() -> dict:
    return {"max_text": MAX_TEXT}  # the send form's counter, as the widget blueprint gives it


# ---------------------------------------------------------------- sending a file


@bp.post("/widget/send-file")
@widget_required
def send_file():
    """Send the attached file (or recording) once per form key, with the text as its caption."""
    posted = posted_form(uploads.valid_key)
    if not isinstance(posted, PostedForm):
        return posted
    entity_type, entity_id, key, row, line, chat_id = posted.target
    # The form's boxes (publish, the employee's name, the timeline record) apply to a file as to a text.
    publish, options = posted.publish, posted.options
    caption = request.form.get("text", "")

    def form(notice, *, key=key, waiting=None, confirm=False, keep_text=True, trigger=None):
        return fragment("widget/_compose.html", trigger=trigger, entity_type=entity_type, entity_id=entity_id,
                        row=row, line=line, key=key, text=caption if keep_text else "", notice=notice,
                        confirm=confirm, publish=publish, held=_shown(waiting), **options,
                        template_id=None, unresolved=())

    waiting = uploads.held(g.portal.id, key, g.user.id)
    upload = request.files.get("file")
    # A form whose send already went (a retry after a lost answer) needs no new copy of the file.
    settled = db.session.scalar(db.select(OutgoingMessage.status).filter_by(portal_id=g.portal.id,
                                                                             idempotency_key=key))
    if waiting is None and upload is not None and upload.filename and settled is None:
        try:
            mime, kind, name, size = uploads.inspect(upload.stream, upload.filename,
                                                     voice=request.form.get("voice") == "1")
        except uploads.FileRefused as refused:
            return form({"kind": "error", "text": t(refused.reason, **refused.args_)})
        waiting = uploads.hold(g.portal.id, g.user.id, key, upload.stream, name=name, mime=mime, kind=kind,
                               size=size)
    if waiting is None and settled is None:
        return form({"kind": "error", "text": t("file_missing")})
    if text_length(caption) > MAX_TEXT:
        return form({"kind": "error", "text": t("too_long", n=MAX_TEXT)}, waiting=waiting,
                    keep_text=len(caption) <= 2 * MAX_TEXT)
    if not line.can_send:
        return form({"kind": "error", "text": t("err_line_body", state=t("state_" + line.status))}, waiting=waiting)
    if row.time.light == "red" and request.form.get("confirm") != "1":
        # The file waits on the server meanwhile: «Всё равно отправить» sends it without a second upload.
        return form({"kind": "warning", "text": t("red_zone_confirm", time=row.time.text)}, waiting=waiting,
                    confirm=True)

    if request.form.get("show_name_offered") == "1":
        service.remember_show_name(g.portal, g.user.id, options["show_name"])
    sent_caption = _with_name(caption).rstrip() if options["show_name"] else caption
    message = _send(waiting, key, row, line, chat_id, sent_caption)
    if message.status == SENT:
        uploads.release(g.portal.id, key)
        service.create_chat(g.portal, line.id, row.e164, chat_id)
        if publish:
            _publish(message)  # the Open Lines chat gets the caption, or the file's kind and name
        if options["timeline"]:
            attached = f"[{waiting.name}]" if waiting is not None else ""
            _record_in_timeline(message, "\n".join(filter(None, (caption, attached))), entity_type, entity_id,
                                row, line)
        return form({"kind": "ok", "text": t("sent")}, key=uuid.uuid4().hex, keep_text=False,
                    trigger={"olchat-message-sent": {"line": line.id, "phone": row.e164}})
    if message.status == UNKNOWN:
        # A file has no id to look it up by: never sent again on a guess (see outbox); the operator checks.
        uploads.release(g.portal.id, key)
        return form({"kind": "warning", "text": t("file_send_unknown")}, key=uuid.uuid4().hex)
    if message.status == FAILED:
        reason = {"line_not_connected": "err_line_body", "unauthorized": "err_gateway_auth_body",
                  "rate_limited": "err_rate_body", "too_large": "file_gateway_too_large"}.get(
            message.error or "", "send_gateway_down")
        fresh = uuid.uuid4().hex
        # WhatsApp never had it: the file waits for the form's next key, «Отправить» tries again.
        waiting = uploads.move(g.portal.id, waiting, fresh) if waiting is not None else None
        return form({"kind": "error", "text": t("file_not_sent") + ". " + t(reason, state=t("state_FAILED"))},
                    key=fresh, waiting=waiting)
    return form({"kind": "warning", "text": t("err_busy_body")}, waiting=waiting)


def _send(waiting, key: str, row, line, chat_id: str, caption: str):
    """The outbox send of the waiting file; without one, the result of the send that owns ``key``."""
    common = dict(portal_id=g.portal.id, key=key, user_id=g.user.id, line_id=line.id, phone=row.e164,
                  chat_id=chat_id)
    if waiting is None:
        # The key's send exists already: send_once returns its outcome and sends nothing (no file needed).
        return send_once(gateway_for(g.portal), text="", media=OutgoingFile(uploads.DOCUMENT, b"", "", ""),
                         **common)
    with uploads.open_held(g.portal.id, waiting) as data:
        # The row's text describes the file: the outbox and the Open Lines mirror show it that way.
        text = caption or f"[{waiting.kind}] {waiting.name}"
        return send_once(gateway_for(g.portal), text=text[:MAX_TEXT * 2], **common,
                         media=OutgoingFile(kind=waiting.kind, data=data, mimetype=waiting.mime,
                                            filename=waiting.name, caption=caption))


def _shown(waiting):
    """What the form says of a waiting file: its name and size."""
    if waiting is None:
        return None
    mb = waiting.size / uploads.MB
    size = t("size_mb", n=f"{mb:.1f}") if mb >= 0.1 else t("size_kb", n=max(waiting.size // 1024, 1))
    return {"name": waiting.name, "size": size, "voice": waiting.kind == uploads.VOICE}


# ---------------------------------------------------------------- media in the history


def media_token(portal_id: int, line_id: str, chat_id: str, message_id: str) -> str:
    return link_box(_PURPOSE).seal_json({"p": portal_id, "l": line_id, "c": chat_id, "m": message_id})


def _opened(token: str) -> dict | None:
    if len(token) > 2000:
        return None
    data = link_box(_PURPOSE).open_json(token, ttl=current_app.config["OLCHAT_WIDGET_MEDIA_TTL"])
    if not data or not isinstance(data.get("p"), int) or not all(isinstance(data.get(k), str) for k in "lcm"):
        return None
    return data


def media_urls(line_id: str, chat_id: str, message_id: str) -> dict:
    """A history message's file for the request's portal: its signed address, and where to ask its type."""
    token = media_token(g.portal.id, line_id, chat_id, message_id)
    return {"src": url_for("widget_media.media_file", token=token), "probe": url_for("widget_media.media_card", t=token)}


def media_view(info: MediaInfo | None) -> str:
    """How the history shows a file: image, audio, video, file — or probe while its type is unknown."""
    if info is None or not info.mimetype:
        return "probe"
    mime = info.mimetype
    if mime in ("image/jpeg", "image/png", "image/webp", "image/gif"):
        return "image"
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("video/"):
        return "video"
    return "file"


def _info(portal, data: dict) -> MediaInfo:
    """The file's description from the line's gateway (reused briefly: the probe asks, then the file)."""
    cache = current_app.extensions.setdefault("olchat_media_info", TTLCache(maxsize=2048, ttl=_INFO_TTL))
    key = (portal.id, data["l"], data["c"], data["m"])
    info = cache.get(key)
    if info is None:
        info = gateway_for(portal).media_of(data["l"], data["c"], data["m"])
        cache[key] = info
    return info


@bp.get("/widget/media")
@widget_required
def media_card():
    """The history's element for a file whose type the history did not carry (asked of the gateway)."""
    data = _opened(request.args.get("t", ""))
    if data is None or data["p"] != g.portal.id:
        abort(404)
    try:
        info = _info(g.portal, data)
    except GatewayError:
        info = None
    return fragment("widget/_media.html", media=info, urls={"src": url_for("widget_media.media_file",
                                                                           token=request.args["t"]), "probe": None})


@bp.get("/media/<token>")
def media_file(token: str):
    """A history message's file for whoever holds a valid signed link; 404 for anything else."""
    data = _opened(token)
    if data is None:
        abort(404)
    portal = db.session.get(Portal, data["p"])
    if portal is None:
        abort(404)
    try:
        info = _info(portal, data)
        with tempfile.NamedTemporaryFile(prefix="olchat-media-", delete=False) as sink:
            try:
                mime = gateway_for(portal).download_media(data["l"], info.url, sink,
                                                          max_bytes=uploads.LIMITS[uploads.DOCUMENT])
            except BaseException:
                remove_quietly(sink.name)
                raise
    except (GatewayNotFound, MediaRefused, MediaTooLarge):
        abort(404)
    except GatewayError:
        abort(503)
    return file_answer(sink.name, info.mimetype or mime, info.filename or "file", inline=True, max_age=300)
