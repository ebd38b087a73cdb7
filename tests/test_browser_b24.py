"""End-to-end: the widget in headless Chromium, embedded the way Bitrix24 embeds it (issue 5).

The CRM card page of the portal is a page on the fake portal's own origin
(http://127.0.0.1:<fake port>, served by Playwright's router, the fake itself is
not touched); it POSTs the user-field handler's form into an iframe, as Bitrix24
does, with PLACEMENT_OPTIONS in the body and DOMAIN/LANG in the query. The widget
is addressed as http://localhost:<app port>: another site than the portal, so the
frame is a third-party frame and this Chromium refuses it cookies (checked). The
same card page on a foreign origin must be refused framing (CSP frame-ancestors).

BX24.js (https://api.bitrix24.com/api/v1/) is answered by a small stand-in that
hands out the token pairs a test configures and records every call in
window.__bx24calls. Every Bitrix24 call of the app goes over HTTP to the fake
portal + OAuth server of tests/fakes/fake_bitrix24.py. Nothing leaves the machine:
any other outside request is aborted and reported.

Never downloads a browser: Debian's /usr/bin/chromium or a skip.
"""
from __future__ import annotations

import html
import json
import os
import time
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

from tests.conftest import make_app  # noqa: E402
from tests.fakes.fake_waha import FakeWaha  # noqa: E402
from tests.fakes.fake_bitrix24 import FakeBitrix24  # noqa: E402
from tests.test_b24_app import fake, install  # noqa: E402,F401 -- fake: the portal fixture
from tests.test_browser import TIMEOUT, Server, idle, row, settle  # noqa: E402
from tests.test_browser import browser  # noqa: E402,F401 -- the shared Chromium fixture

pytestmark = pytest.mark.browser

BX24_URL = "https://api.bitrix24.com/api/v1/"
IVAN = "+79161234567"
DEAL_PHONES = {"+79161234567", "+79031234567", "+79261112233", "+79857654321", "+74951234567"}
FRAME = "olchat-field"
NO_AUTH = "Нет данных авторизации от Битрикс24"
CAUSE_RIGHTS = "У сотрудника нет прав на приложение"
CAUSE_RIGHTS_TODO = "Администратор портала проверяет права на приложение"
CAUSE_SERVER = "Проблемы с сервером авторизации Битрикс24"
CAUSE_SERVER_TODO = "Нужно подождать решения от Битрикс24 и обновить виджет позже"


# ---------------------------------------------------------------- the BX24.js stand-in

BX24_STUB = r"""
(function () {
  "use strict";
  var config = /*CONFIG*/null;
  var calls = window.__bx24calls = [];
  function copy(value) { return value ? JSON.parse(JSON.stringify(value)) : false; }
  function record(name, args) { calls.push({ call: name, args: copy(args) || [] }); }
  var current = copy(config.auth);
  window.BX24 = {
    init: function (cb) { record("init", []); setTimeout(cb, 0); },
    getAuth: function () { record("getAuth", []); return copy(current); },
    refreshAuth: function (cb) {
      record("refreshAuth", []);
      current = config.refresh.length ? config.refresh.shift() : false;
      var answer = copy(current);
      setTimeout(function () { if (cb) { cb(answer); } }, 0);
    },
    fitWindow: function () { record("fitWindow", []); },
    resizeWindow: function (width, height) { record("resizeWindow", [width, height]); },
    placement: {
      call: function (name, value, cb) { record("placement.call", [name, value]); if (cb) { setTimeout(cb, 0); } }
    },
    im: {
      openMessenger: function (id) { record("im.openMessenger", [id]); },
      openHistory: function (id) { record("im.openHistory", [id]); }
    },
    openApplication: function (params, cb) { record("openApplication", [params]); }
  };
})();
"""


def bx24_auth(fake: FakeBitrix24, user_id: int = 1) -> dict:
    """A fresh token pair as BX24.getAuth() hands it out."""
    pair = fake.issue_tokens(user_id)
    return {key: pair[key] for key in ("access_token", "refresh_token", "expires_in", "domain", "member_id")}


def forged_auth(fake: FakeBitrix24, n: int) -> dict:
    return {"access_token": f"forged-access-{n}", "refresh_token": f"forged-refresh-{n}", "expires_in": 3600,
            "domain": fake.domain, "member_id": fake.member_id}


# ---------------------------------------------------------------- browser, portal, app


@pytest.fixture
def waha():
    with FakeWaha() as server:
        yield server


@pytest.fixture
def serve(tmp_path, fake, waha):
    """Start the app configured against the fake portal and installed there: ``serve(OLCHAT_TOKEN_TTL=2)``.

    The portal's lines are the deployment's WAHA (a fake one), which serves this portal by member id.
    """
    servers = []

    def start(**overrides):
        directory = tmp_path / f"app{len(servers)}"
        directory.mkdir()
        config = {"OLCHAT_GATEWAY": "waha", "OLCHAT_WAHA_URL": waha.url, "OLCHAT_WAHA_API_KEY": waha.api_key,
                  "OLCHAT_WAHA_PORTALS": fake.member_id, **overrides}
        app = make_app(directory, OLCHAT_B24_CLIENT_ID=fake.client_id, OLCHAT_B24_CLIENT_SECRET=fake.client_secret,
                       OLCHAT_B24_OAUTH_URL=fake.url, OLCHAT_B24_SCHEME="http", OLCHAT_B24_TIMEOUT=3.0,
                       **config)
        installed = install(app.test_client(), fake)
        assert installed.status_code == 200, installed.data[:500]
        server = Server(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class Portal:
    """One browser tab on the portal: the card page that frames the widget, BX24.js, what went over the wire."""

    def __init__(self, context, fake: FakeBitrix24, server: Server, *, auth, refresh=(), mode="view",
                 parent_origin: str | None = None):
        self.context = context
        self.page = context.new_page()
        self.domain = fake.domain  # kept: the fake may be stopped before the page opens
        self.portal_origin = fake.url
        self.parent_origin = parent_origin or self.portal_origin
        self.app_origin = f"http://localhost:{server.httpd.server_port}"  # another site than the portal
        self.config = {"auth": auth or False, "refresh": [a or False for a in refresh]}
        self.mode = mode
        self.requests = []       # every request the page or its frame made
        self.responses = []      # every response
        self.outside = []        # requests that would have left the machine (aborted)
        self.bx24_loads = 0
        self.console = []
        self.failed = []         # (url, error) of requests that failed
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("response", lambda response: self.responses.append(response))
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("requestfailed", lambda request: self.failed.append((request.url, request.failure)))
        # Routes: the last registered is asked first.
        self.page.route(lambda url: urlsplit(url).hostname not in ("127.0.0.1", "localhost"), self._outside)
        self.page.route(lambda url: url.startswith(BX24_URL), self._bx24)
        self.page.route(lambda url: url.startswith(self.parent_origin + "/crm/"), self._card_page)

    # -- routes

    def _outside(self, route):
        self.outside.append(route.request.url)
        route.abort()

    def _bx24(self, route):
        self.bx24_loads += 1
        script = BX24_STUB.replace("/*CONFIG*/null", json.dumps(self.config))
        route.fulfill(status=200, content_type="application/javascript; charset=utf-8", body=script)

    def _card_page(self, route):
        options = {"MODE": self.mode, "ENTITY_ID": "CRM_DEAL", "FIELD_NAME": "UF_CRM_OLCHAT", "ENTITY_VALUE_ID": "10",
                   "VALUE": None, "MULTIPLE": "N", "MANDATORY": "N", "XML_ID": None,
                   "ENTITY_DATA": {"entityTypeId": 2, "entityId": "10", "module": "crm"}}
        action = f"{self.app_origin}/b24/widget?DOMAIN={self.domain}&PROTOCOL=0&LANG=ru"
        body = f"""<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>Сделка #10</title></head>
<body><h1>Сделка #10</h1>
<iframe name="{FRAME}" width="900" height="900"></iframe>
<form id="launch" method="post" target="{FRAME}" action="{html.escape(action)}">
  <input type="hidden" name="PLACEMENT" value="USERFIELD_TYPE">
  <input type="hidden" name="PLACEMENT_OPTIONS" value="{html.escape(json.dumps(options))}">
</form>
<script>document.getElementById("launch").submit();</script></body></html>"""
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=body)

    # -- driving

    def open(self, refused=False):
        """Open the card page; wait for the widget's page in the frame (or, ``refused``, its refusal)."""
        handler = lambda r: urlsplit(r.url).path == "/b24/widget"  # noqa: E731
        if refused:
            with self.page.expect_event("requestfailed", handler):
                self.page.goto(f"{self.parent_origin}/crm/deal/details/10/")
            return self
        with self.page.expect_response(handler):
            self.page.goto(f"{self.parent_origin}/crm/deal/details/10/")
        expect(self.root.locator("body[data-mode]")).to_be_attached()
        self.frame.wait_for_load_state("domcontentloaded")
        return self

    @property
    def root(self):
        return self.page.frame_locator(f'iframe[name="{FRAME}"]')

    @property
    def frame(self):
        return self.page.frame(name=FRAME)

    def calls(self, name=None):
        entries = self.frame.evaluate("() => window.__bx24calls || []")
        return [e for e in entries if name is None or e["call"] == name]

    def wait_for_call(self, name):
        self.frame.wait_for_function("name => (window.__bx24calls || []).some(c => c.call === name)", arg=name)

    def to(self, prefix):
        return [r for r in self.requests if urlsplit(r.url).path.startswith(prefix)]

    def show_widget(self):
        """Press «Отобразить виджет» and wait until every phone row knows its WhatsApp status."""
        button = self.root.get_by_role("button", name="Отобразить виджет")
        expect(button).to_be_visible()
        idle(self.root)
        button.click()
        expect(self.root.locator("li[data-phone]").first).to_be_visible()
        settle(self.root)

    def expect_no_auth(self):
        block = self.root.locator("#olchat-noauth")
        expect(block).to_be_visible()
        expect(block).to_contain_text(NO_AUTH)
        for text in (CAUSE_RIGHTS, CAUSE_RIGHTS_TODO, CAUSE_SERVER, CAUSE_SERVER_TODO):
            expect(block).to_contain_text(text)
        expect(block.locator("li")).to_have_count(2)
        # Not a blank frame: the loading placeholder is gone, the message is what shows.
        expect(self.root.locator("#olchat-body")).to_be_hidden()
        expect(self.root.locator("li[data-phone]")).to_have_count(0)


@pytest.fixture
def context(browser):
    # The card page comes from Playwright's router, so Chromium knows no address for it and
    # counts it as public; its frame on localhost then meets Local Network Access checks
    # (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS). A real portal and a real app are both
    # public: grant the permission so the test meets what production meets.
    context = browser.new_context(locale="ru-RU", viewport={"width": 1100, "height": 1000},
                                  permissions=["local-network-access"])
    context.set_default_timeout(TIMEOUT)
    yield context
    context.close()


@pytest.fixture
def portal(context, fake):
    """``portal(server, auth=..., refresh=[...], mode="view")`` -> a Portal tab, not yet opened."""
    def make(server, **kwargs):
        kwargs.setdefault("auth", bx24_auth(fake))
        return Portal(context, fake, server, **kwargs)
    return make


def phones_shown(root):
    return set(root.locator("li[data-phone]").evaluate_all("ns => ns.map(n => n.dataset.phone)"))


# ---------------------------------------------------------------- 1. view mode: token header, no cookies, 1 request


def test_view_mode_shows_the_deals_phones_with_the_token_header_no_cookies_one_portal_request(
        portal, serve, fake, context):
    server = serve()
    tab = portal(server)
    fake.reset_counters()
    tab.open()
    tab.show_widget()

    assert phones_shown(tab.root) == DEAL_PHONES
    expect(row(tab.root, IVAN).locator(".wa-status")).to_have_text("есть WhatsApp")
    expect(tab.root.locator("#olchat-noauth")).to_be_hidden()
    tab.page.wait_for_load_state("networkidle")

    # BX24.js came from its standard address; the frame asked it for auth.
    assert tab.bx24_loads == 1
    assert [c["call"] for c in tab.calls()][:2] == ["init", "getAuth"]
    assert tab.calls("refreshAuth") == []
    # One token exchange, naming the card; every htmx request carried the widget token.
    exchanges = tab.to("/b24/token")
    assert len(exchanges) == 1
    sent = json.loads(exchanges[0].post_data)
    assert (sent["entity_type"], sent["entity_id"], sent["member_id"]) == (2, 10, fake.member_id)
    widget_requests = tab.to("/widget/")
    assert len(widget_requests) >= 3  # start, body, lines, statuses...
    missing = [r.url for r in widget_requests if not r.headers.get("x-olchat-token")]
    assert missing == []
    assert len({r.headers["x-olchat-token"] for r in widget_requests}) == 1
    # No cookie anywhere: none set (all_headers: .headers hides cookie headers), none stored, none sent.
    set_cookie = [r.url for r in tab.responses if "set-cookie" in r.all_headers()]
    assert set_cookie == []
    assert context.cookies() == []
    assert [r.url for r in tab.requests if "cookie" in r.all_headers()] == []
    # The token check and the card went to Bitrix24 as ONE request; the rest was served warm.
    assert fake.requests == 1, fake.log
    assert fake.log == ["batch"]
    assert fake.oauth_requests == 0
    assert tab.outside == []


# ---------------------------------------------------------------- 2. framing: third-party frame, foreign parent


def test_third_party_frame_without_cookies_works_and_a_foreign_parent_is_refused(portal, serve, fake, context):
    server = serve()
    tab = portal(server).open()
    # This browser treats the frame as third-party and refuses it cookies: the widget cannot lean on any.
    assert urlsplit(tab.frame.url).hostname == "localhost" and urlsplit(tab.page.url).hostname == "127.0.0.1"
    probe = tab.frame.evaluate("""() => { document.cookie = "olchat_probe=1; SameSite=None; Secure; Path=/";
                                          return document.cookie; }""")
    assert probe == "", "this Chromium lets a third-party frame keep cookies: the test proves nothing"
    tab.show_widget()
    assert phones_shown(tab.root) == DEAL_PHONES
    assert context.cookies() == []

    # The handler names the portal's stored origin as the only other allowed parent; no X-Frame-Options.
    handler = next(r for r in tab.responses if urlsplit(r.url).path == "/b24/widget")
    headers = handler.headers
    assert f"frame-ancestors 'self' {fake.url}" in headers["content-security-policy"]
    assert "x-frame-options" not in headers

    # The same card page, naming the same portal, on another origin (https, so that Chromium's
    # Local Network Access rules let the request through and the app's answer decides):
    # Chromium refuses to show the widget in its frame.
    foreign = portal(server, parent_origin="https://portal.evil.example")
    foreign.open(refused=True)
    expect(foreign.page.locator("h1")).to_have_text("Сделка #10")
    foreign.page.wait_for_timeout(300)
    frame = foreign.frame
    assert not frame.url.startswith(foreign.app_origin), frame.url
    assert frame.locator("#olchat, [data-mode]").count() == 0
    blocked = [error for url, error in foreign.failed if urlsplit(url).path == "/b24/widget"]
    assert blocked == ["net::ERR_BLOCKED_BY_RESPONSE"], foreign.failed
    assert any(f"frame-ancestors 'self' {fake.url}" in text for text in foreign.console), foreign.console
    assert foreign.bx24_loads == 0 and foreign.to("/b24/token") == [] and foreign.to("/widget/") == []


# ---------------------------------------------------------------- 3-5. no auth, each cause


def test_no_rights_to_the_app_shows_no_auth_and_asks_nothing(portal, serve):
    server = serve()
    tab = portal(server, auth=False, refresh=[False]).open()
    tab.expect_no_auth()
    tab.page.wait_for_timeout(300)
    assert tab.to("/widget/") == []
    assert tab.to("/b24/token") == []  # nothing to trade
    assert [c["call"] for c in tab.calls()][:2] == ["init", "getAuth"]


def test_forged_token_shows_no_auth_after_one_retry(portal, serve, fake):
    server = serve()
    tab = portal(server, auth=forged_auth(fake, 1), refresh=[forged_auth(fake, 2)]).open()
    tab.expect_no_auth()
    tab.page.wait_for_timeout(300)
    exchanges = [r for r in tab.responses if urlsplit(r.url).path == "/b24/token"]
    assert [r.status for r in exchanges] == [401, 401]
    assert [json.loads(r.request.post_data)["access_token"] for r in exchanges] == ["forged-access-1",
                                                                                     "forged-access-2"]
    assert len(tab.calls("refreshAuth")) == 1
    assert tab.to("/widget/") == []


def test_auth_server_unreachable_shows_no_auth_not_a_blank_frame(portal, serve, fake):
    server = serve()
    tab = portal(server, auth=bx24_auth(fake), refresh=[bx24_auth(fake)])
    fake.stop()
    tab.open()
    tab.expect_no_auth()
    exchanges = [r for r in tab.responses if urlsplit(r.url).path == "/b24/token"]
    assert exchanges and all(r.status == 503 for r in exchanges), [(r.url, r.status) for r in exchanges]
    assert tab.to("/widget/") == []


# ---------------------------------------------------------------- 6. expired widget token renewed via BX24.refreshAuth


def test_expired_widget_token_is_renewed_through_bx24_refresh_auth(portal, serve, fake):
    server = serve(OLCHAT_TOKEN_TTL=2)
    tab = portal(server, refresh=[bx24_auth(fake)]).open()
    expect(tab.root.get_by_role("button", name="Отобразить виджет")).to_be_visible()
    assert tab.calls("refreshAuth") == []
    time.sleep(3.2)  # the widget token (2 s, whole-second timestamps) is now expired
    tab.show_widget()

    assert phones_shown(tab.root) == DEAL_PHONES
    assert len(tab.calls("refreshAuth")) == 1
    expect(tab.root.locator(".error-block:visible")).to_have_count(0)
    expect(tab.root.get_by_text("Сессия виджета истекла")).to_have_count(0)
    expect(tab.root.locator("#olchat-noauth")).to_be_hidden()
    # It went through the renewal path: the body was refused once, a second exchange, then repeated.
    refused = [r.url for r in tab.responses if r.status == 401]
    assert any("/widget/body" in url for url in refused), refused
    assert len(tab.to("/b24/token")) == 2
    tokens = [r.headers.get("x-olchat-token") for r in tab.to("/widget/body")]
    assert len(tokens) == 2 and tokens[0] != tokens[1]


# ---------------------------------------------------------------- 7. edit mode


def test_edit_mode_notice_and_refresh_sets_the_field_value(portal, serve):
    server = serve()
    tab = portal(server, mode="edit").open()
    tab.show_widget()
    expect(tab.root.get_by_text("Вы в режиме редактирования")).to_be_visible()
    assert tab.calls("placement.call") == []

    tab.root.get_by_role("button", name="Обновить данные виджета").click()
    tab.wait_for_call("placement.call")
    calls = tab.calls("placement.call")
    assert len(calls) == 1, calls
    name, value = calls[0]["args"]
    assert name == "setValue" and isinstance(value, str) and value.strip()
    settle(tab.root)
    assert phones_shown(tab.root) == DEAL_PHONES
    expect(tab.root.get_by_text("Вы в режиме редактирования")).to_be_visible()


def test_view_mode_refresh_does_not_write_the_field(portal, serve):
    server = serve()
    tab = portal(server).open()
    tab.show_widget()
    expect(tab.root.get_by_text("Вы в режиме редактирования")).to_have_count(0)
    with tab.page.expect_response(lambda r: urlsplit(r.url).path == "/widget/refresh"):
        tab.root.get_by_role("button", name="Обновить данные виджета").click()
    settle(tab.root)
    assert tab.calls("placement.call") == []


# ---------------------------------------------------------------- 8. open the app / an Open Lines chat through BX24


def test_open_app_and_open_lines_chat_go_through_bx24_not_a_navigation(portal, serve, fake):
    fake.add_chat("deal", 10, "1010")
    server = serve()
    tab = portal(server).open()
    tab.show_widget()
    frame_url = tab.frame.url

    row(tab.root, IVAN).get_by_role("button", name="Открыть приложение").click()
    opened = tab.calls("openApplication")
    assert len(opened) == 1, tab.calls()
    params = opened[0]["args"][0]
    assert params["phone"] == IVAN and params["line"]
    assert (str(params["entity_type"]), str(params["entity_id"])) == ("2", "10")
    tab.page.wait_for_timeout(200)
    assert tab.frame.url == frame_url
    assert tab.to("/app/") == []
    expect(tab.root.locator("li[data-phone]")).to_have_count(len(DEAL_PHONES))

    chat = tab.root.locator('[data-b24-chat="1010"]')
    expect(chat).to_be_visible()
    expect(chat).to_contain_text("Открыть чат")
    chat.click()
    assert [c["args"] for c in tab.calls("im.openMessenger")] == [["chat1010"]]
    assert len(tab.calls("openApplication")) == 1
    tab.page.wait_for_timeout(200)
    assert tab.frame.url == frame_url
