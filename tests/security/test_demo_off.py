"""Demo mode never leaks into production: no debug page, no demo tokens, once the app is a Bitrix24 app."""
from __future__ import annotations

from tests.conftest import Widget, make_app

B24 = {"OLCHAT_B24_CLIENT_ID": "local.app.1", "OLCHAT_B24_CLIENT_SECRET": "s3cret"}
DEAL = {"entity_type": 2, "entity_id": 10}


def test_with_bitrix24_credentials_the_debug_page_is_off_by_default(tmp_path):
    app = make_app(tmp_path, **B24)
    client = app.test_client()
    assert app.config["OLCHAT_DEBUG_PAGE"] is False
    assert client.get("/").status_code == 404
    answer = client.post("/debug/token", json={"user": "admin"})
    assert answer.status_code == 404 and b"token" not in answer.data
    assert client.get("/widget", query_string=DEAL).status_code == 404
    assert client.get("/app/chat", query_string={**DEAL, "phone": "+79161234567", "line": "sales"}).status_code == 404


def test_without_credentials_the_debug_page_is_on_and_can_be_forced_off(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    assert make_app(tmp_path / "a").config["OLCHAT_DEBUG_PAGE"] is True
    assert make_app(tmp_path / "b", OLCHAT_DEBUG_PAGE="0").config["OLCHAT_DEBUG_PAGE"] is False


def test_a_demo_portal_token_is_refused_once_the_debug_page_is_off(tmp_path):
    demo = make_app(tmp_path)  # the same database and secret, as before a deployment went live
    admin = Widget(demo.test_client(), "admin")
    assert demo.test_client().get("/admin/settings/form", headers=admin.headers()).status_code == 200
    live = make_app(tmp_path, **B24)
    client = live.test_client()
    for method, path in (("get", "/widget/body"), ("get", "/admin/settings/form"), ("post", "/widget/send"),
                         ("post", "/admin/gateway")):
        answer = getattr(client, method)(path, query_string=DEAL, headers=admin.headers(),
                                         data={"text": "x", "key": "k", "phone": "+79161234567", "line": "sales",
                                               "base_url": "http://127.0.0.1:1"})
        assert answer.status_code == 401, (path, answer.status_code)
