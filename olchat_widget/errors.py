"""Every failure becomes something a person can act on (F15): a fragment for htmx, a page otherwise."""
from __future__ import annotations

from flask import current_app, jsonify, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from .auth import AdminRequired, AuthError
from .crm.base import CardNotFound, CrmAccessDenied, CrmAuthExpired, CrmError, CrmRateLimited
from .gateway.base import GatewayError, GatewayRateLimited, GatewayUnauthorized, LineNotConnected
from .i18n import t
from .models import db
from .web import fragment, is_htmx, page

# reason -> (HTTP status, text key). Upstream trouble is a state of the block, not a
# server error: it answers 200 so no proxy or monitor mistakes it for our crash.
ERRORS = {
    "no_auth": (401, "err_no_auth"),
    "expired": (401, "err_session"),
    "admin": (403, "err_admin"),
    "forbidden": (403, "err_forbidden"),
    "not_found": (404, "err_not_found"),
    "bad_request": (400, "err_bad_request"),
    "crm_limit": (429, "err_crm_limit"),
    "crm_unavailable": (200, "err_crm_unavailable"),
    "auth_expired": (401, "err_auth_expired"),
    "gateway": (200, "err_gateway"),
    "gateway_auth": (200, "err_gateway_auth"),
    "line": (200, "err_line"),
    "rate": (200, "err_rate"),
    "chat_not_found": (404, "err_chat_not_found"),
    "openline": (200, "err_openline"),
    "too_large": (413, "err_too_large"),
    "db_unavailable": (503, "err_db_unavailable"),
    "internal": (500, "err_internal"),
}

# Failures a second try of the same request cannot mend: the line needs a QR scan or a new token, the
# user lacks access, the card is gone, the input is wrong. They get no «Повторить», only what to do.
RETRY_CANNOT_HELP = {"no_auth", "admin", "forbidden", "not_found", "bad_request", "gateway_auth", "line",
                     "chat_not_found", "too_large"}


def retry_helps(reason: str) -> bool:
    return reason not in RETRY_CANNOT_HELP


# Endpoints whose callers are scripts (widget.js, Bitrix24's event sender): they get JSON.
JSON_ENDPOINTS = {"b24.token", "b24.events", "admin.debug_token"}


def error_response(reason: str, *, retry: bool = True, **fmt):
    status, key = ERRORS.get(reason, ERRORS["internal"])
    context = dict(reason=reason, title=t(key + "_title"), body=t(key + "_body", **fmt),
                   retry_url=request.full_path if retry and retry_helps(reason) and request.method == "GET" else None)
    if request.endpoint in JSON_ENDPOINTS:
        response = jsonify(error=reason, message=context["body"])
        response.status_code = status
    elif is_htmx():
        response = fragment("errors/_fragment.html", status, **context)
    else:
        response = page("errors/page.html", status, **context)
    if reason in ("expired", "auth_expired"):
        # widget.js renews the token silently and repeats the request.
        response.headers["X-OLChat-Reauth"] = "1"
    return response


def crm_reason(exc: CrmError) -> str:
    if isinstance(exc, CardNotFound):
        return "not_found"
    if isinstance(exc, CrmAccessDenied):
        return "forbidden"
    if isinstance(exc, CrmAuthExpired):
        return "auth_expired"
    if isinstance(exc, CrmRateLimited):
        return "crm_limit"
    return "crm_unavailable"


def gateway_reason(exc: GatewayError) -> str:
    if isinstance(exc, LineNotConnected):
        return "line"
    if isinstance(exc, GatewayUnauthorized):
        return "gateway_auth"
    if isinstance(exc, GatewayRateLimited):
        return "rate"
    return "gateway"


def register_error_handlers(app) -> None:
    @app.errorhandler(AuthError)
    def _auth(exc: AuthError):
        return error_response(exc.reason, retry=False)

    @app.errorhandler(AdminRequired)
    def _admin(exc):
        return error_response("admin", retry=False)

    @app.errorhandler(CrmError)
    def _crm(exc: CrmError):
        return error_response(crm_reason(exc))

    @app.errorhandler(GatewayError)
    def _gateway(exc: GatewayError):
        return error_response(gateway_reason(exc), state=t("state_" + (exc.status or "FAILED")))

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.TimeoutError)
    def _database(exc: Exception):
        # Locked (SQLite busy timeout), unreachable, or the pool has no free connection in time:
        # a moment's trouble the user can retry, not a crash.
        current_app.logger.warning("database unavailable on %s %s: %s", request.method, request.path,
                                   str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        _rollback()
        return error_response("db_unavailable")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        reason = {400: "bad_request", 401: "no_auth", 403: "forbidden", 404: "not_found",
                  413: "too_large"}.get(exc.code)
        if reason is None:
            return exc
        # The limit in KB for the 413 text; the others take no arguments.
        # The route's own limit where it has one (the file upload's), else the app's.
        size = (request.max_content_length or 0) // 1024
        return error_response(reason, retry=False, size=size)

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        # Roll back whatever the failed request left half-done, log the trace, show none of it.
        _rollback()
        current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("internal")


def _rollback() -> None:
    try:
        db.session.rollback()
    except sa_exc.SQLAlchemyError:  # the connection itself is gone: nothing left to undo
        current_app.logger.warning("rollback failed", exc_info=True)
