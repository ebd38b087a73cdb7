"""What lives as long as the app: backends, caches, the guard. Kept in app.extensions."""
from __future__ import annotations

import threading

import requests

from cachetools import TTLCache
from flask import current_app, g

from .crm.base import CrmSource
from .crm.demo import DemoCrm
from .demo import DemoDataError, load_demo_data
from .gateway.base import Gateway
from .gateway.demo import DemoGateway
from .gateway.guard import PresenceGuard

KEY = "olchat"


class LockedTTLCache:
    """A cachetools TTL cache safe to share between request threads."""

    def __init__(self, maxsize: int, ttl: float):
        self._cache = TTLCache(maxsize=maxsize, ttl=ttl)
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            return self._cache.get(key)

    def set(self, key, value) -> None:
        with self._lock:
            self._cache[key] = value

    def pop(self, key) -> None:
        with self._lock:
            self._cache.pop(key, None)

    def pop_where(self, predicate) -> None:
        with self._lock:
            for key in [k for k in self._cache.keys() if predicate(k)]:
                self._cache.pop(key, None)


class Runtime:
    def __init__(self, app):
        cfg = app.config
        self.demo_data = load_demo_data(cfg["OLCHAT_DEMO_DATA"] or None)
        self.demo_member_id = str(self.demo_data["portal"]["member_id"])
        try:
            self.demo_crm = DemoCrm(self.demo_data, delay=cfg["OLCHAT_DEMO_CRM_DELAY"],
                                    fail=cfg["OLCHAT_DEMO_CRM_FAIL"])
            self.demo_gateway = DemoGateway(self.demo_data, delay=cfg["OLCHAT_DEMO_GATEWAY_DELAY"],
                                            check_delay=cfg["OLCHAT_DEMO_GATEWAY_CHECK_DELAY"],
                                            fail=cfg["OLCHAT_DEMO_GATEWAY_FAIL"],
                                            fail_as=cfg["OLCHAT_DEMO_GATEWAY_FAIL_AS"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Say which part of the file is wrong instead of a bare traceback at start.
            raise DemoDataError(f"demo data {cfg['OLCHAT_DEMO_DATA'] or '(built-in)'} does not fit the shape "
                                f"in PRODUCT.md: {type(exc).__name__}: {exc}") from exc
        ttl = cfg["OLCHAT_CACHE_TTL"]
        self.guard = PresenceGuard(ttl_yes=cfg["OLCHAT_PRESENCE_TTL_YES"], ttl_no=cfg["OLCHAT_PRESENCE_TTL_NO"],
                                   cache_ttl=ttl, pause=cfg["OLCHAT_CHECK_PAUSE"], wait=cfg["OLCHAT_CHECK_WAIT"])
        # Keys of every cache start with the portal id: one portal never sees another's entries.
        self.cards = LockedTTLCache(20_000, max(ttl, 1))  # (portal, type, id) -> (Card, fetched_at)
        self.card_access = LockedTTLCache(100_000, max(ttl, 1))  # (portal, user, type, id) -> checked_at
        self.chats = LockedTTLCache(50_000, max(ttl, 1))  # (portal, line, chat id) -> ChatRef | None
        self.lines = LockedTTLCache(5_000, min(max(ttl, 1), 30))  # portal -> [Line]
        # Small per-portal facts every request reads; other workers see changes within 30 s.
        self.portals = LockedTTLCache(10_000, 30)  # member_id -> PortalRef
        self.settings = LockedTTLCache(10_000, 30)  # portal id -> SettingsView
        self.preferences = LockedTTLCache(100_000, 30)  # (portal id, user id) -> line id
        self.phone_lists = LockedTTLCache(20_000, max(ttl, 1))  # (portal, card, fetched_at, ...) -> described
        self.fragments = LockedTTLCache(20_000, 60)  # (portal, ...inputs) -> rendered HTML
        self.gateways: dict = {}  # (portal, config fingerprint) -> Gateway
        self.breakers: dict = {}
        self.http_sessions: dict = {}  # remote key -> requests.Session
        self.verdicts = LockedTTLCache(100_000, 3600)  # sha256(portal, user token) -> (until UTC, VerifiedUser)
        self.renew_lock = threading.Lock()  # one app-token refresh at a time in this worker
        self.unsaved_tokens: dict = {}  # portal id -> renewed app token pair whose commit failed (renew_lock)
        self.lock = threading.Lock()


def runtime() -> Runtime:
    return current_app.extensions[KEY]


def crm_for(portal) -> CrmSource:
    """The CRM source of ``portal``: the demo CRM, or Bitrix24 REST with the user's own token."""
    if portal.kind == "demo":
        return runtime().demo_crm
    from .crm.bitrix import BitrixCrm
    from .b24.client import B24Client

    client = B24Client(portal.domain, getattr(g, "b24_token", None) or "",
                       scheme=current_app.config["OLCHAT_B24_SCHEME"],
                       read_timeout=current_app.config["OLCHAT_B24_TIMEOUT"],
                       session=http_session(("b24", portal.id)))
    return BitrixCrm(client)


def http_session(key) -> requests.Session:
    """One requests.Session per remote (kept connections), shared by the app's threads."""
    rt = runtime()
    with rt.lock:
        session = rt.http_sessions.get(key)
        if session is None:
            session = rt.http_sessions[key] = requests.Session()
    return session


def gateway_for(portal) -> Gateway:
    """The WhatsApp gateway serving ``portal``'s lines."""
    from .gateway.registry import build_gateway

    return build_gateway(portal)
