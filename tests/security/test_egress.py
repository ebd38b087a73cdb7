"""Issue 10, part 3: a portal admin's WAHA URL cannot make our server call where it should not (SSRF).

Every name resolution goes through a fake ``socket.getaddrinfo`` (``resolver``
fixture): names the test did not declare do not resolve, so nothing here
leaves 127.0.0.1, and the answers are the same on every machine.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from olchat_widget.crypto import secrets_box
from olchat_widget.gateway.base import GatewayUnavailable
from olchat_widget.gateway.egress import (EgressPolicy, OutboundAddressRefused, guarded_session, is_public_address,
                                          parse_base_url)
from olchat_widget.gateway.waha import WahaGateway
from olchat_widget.models import GatewayServer, Portal, PortalLine, db
from tests.conftest import Widget, make_app
from tests.fakes.fake_waha import SESSIONS, FakeWaha
from tests.html import parse

DEAL = {"entity_type": 2, "entity_id": 10}
PUBLIC = "93.184.215.14"  # a public address nothing here ever connects to (the resolver hands it out once)
CONNECT_FAILED = "не удалось подключиться к серверу"


# ---------------------------------------------------------------- fixtures


class FakeResolver:
    """Stand-in for socket.getaddrinfo: declared names only, answers may change per call."""

    def __init__(self, real):
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.asked: list[str] = []

    def set(self, name: str, *answers: list[str]) -> None:
        """Answer ``name`` with answers[0] on the first question, answers[1] on the second, … (the last repeats)."""
        self.answers[name.lower()] = [list(a) for a in answers]

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = str(host).lower().rstrip(".")
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            return self.real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        self.asked.append(name)
        queue = self.answers.get(name)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not declared in this test")
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        out = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if ip.version == 4:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
            else:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
        return out


@pytest.fixture
def resolver(monkeypatch):
    fake = FakeResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def waha():
    with FakeWaha() as server:
        yield server


@pytest.fixture
def closed_port():
    """A port of 127.0.0.1 that is ours and refuses connections (bound, never listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


class NosyServer:
    """Not a WAHA: an internal service that answers every request with its own secrets."""

    SECRET = "root:x:0:0:INTERNAL-SECRET"

    def __init__(self, status: int, content_type: str = "text/plain"):
        outer = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = (outer.SECRET if content_type == "text/plain" else
                        '{"statusCode": %d, "message": "%s"}' % (status, outer.SECRET)).encode()
                self.send_response(status, "Reason " + outer.SECRET)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def stored_server(app):
    with app.app_context():
        server = db.session.scalar(db.select(GatewayServer))
        if server is None:
            return None
        key = secrets_box(app).open(server.api_key_enc) if server.api_key_enc else None
        return server.base_url, key


def store_server(app, base_url: str, api_key: str | None, lines=("sales",)) -> None:
    """Put a portal server into the database directly (as one saved before this policy existed)."""
    with app.app_context():
        portal = db.session.scalar(db.select(Portal))
        server = GatewayServer(portal_id=portal.id, base_url=base_url,
                               api_key_enc=secrets_box(app).seal(api_key) if api_key else None)
        db.session.add(server)
        db.session.flush()
        for line in lines:
            db.session.add(PortalLine(portal_id=portal.id, server_id=server.id, line_id=line, name=line))
        db.session.commit()


def gateway_block(answer) -> str:
    """The settings page's word on the stored server: its error code and text ('' when none)."""
    block = parse(answer.data).find("div", data_error=True)
    return f"[{block.get('data-error')}] {block.text}" if block is not None else ""


def field_errors(answer) -> set[str]:
    return {e.get("data-field-error") for e in parse(answer.data).find_all("small", data_field_error=True)}


# ---------------------------------------------------------------- the policy, without HTTP


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "10.0.0.5", "172.16.0.1", "192.168.1.10", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "fc00::1", "fd12:3456::1",
    "fe80::1", "fe80::1%1", "ff02::1", "2001:db8::1", "64:ff9b::7f00:1", "2002:7f00:1::1", "::127.0.0.1",
])
def test_internal_addresses_are_not_public(address):
    assert not is_public_address(ipaddress.ip_address(address))
    assert not EgressPolicy().address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_public(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", [
    "http://waha.example.com#@127.0.0.1/", "http://waha.example.com/#x", "http://waha.example.com/?x=1",
    "http://waha.example.com?", "http://user:pass@waha.example.com/", "http://127.0.0.1@waha.example.com/",
    "http://waha.example.com\\@127.0.0.1/", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/",
    "http://127.1/", "ftp://waha.example.com/", "file:///etc/passwd", "gopher://waha.example.com/",
    "http://:3000/", "http:///api", "http://waha.example.com:0/", "http://waha.example.com:99999/",
    "http://waha.example.com/a%2f..", "http://waha.example.com/../x", "http://waha .example.com/",
    "http://waha.example.com/\n", "https://вах.рф/", "https://" + "a" * 500 + ".com/", "",
])
def test_malformed_urls_are_refused(url):
    with pytest.raises(OutboundAddressRefused) as refused:
        parse_base_url(url)
    assert refused.value.kind == "url"


@pytest.mark.parametrize("url, host, port", [
    ("https://waha.example.com", "waha.example.com", 443), ("http://WAHA.example.com.:3000/", "waha.example.com", 3000),
    ("https://example.com/waha", "example.com", 443), ("http://[2606:4700::1]:8080", "2606:4700::1", 8080),
])
def test_plain_urls_parse(url, host, port):
    target = parse_base_url(url)
    assert (target.host, target.port) == (host, port)


def test_a_name_of_a_private_address_is_refused(resolver):
    resolver.set("waha.corp.example", ["10.1.2.3"])
    with pytest.raises(OutboundAddressRefused) as refused:
        EgressPolicy().check_url("https://waha.corp.example")
    assert refused.value.kind == "address"


def test_one_private_address_among_public_ones_refuses_the_name(resolver):
    resolver.set("waha.example.com", [PUBLIC, "127.0.0.1"])
    with pytest.raises(OutboundAddressRefused):
        EgressPolicy().check_url("https://waha.example.com")


def test_a_public_name_passes(resolver):
    resolver.set("waha.example.com", [PUBLIC, "2606:4700::1"])
    assert EgressPolicy().resolve("waha.example.com", 443) == [
        (socket.AF_INET, (PUBLIC, 443)), (socket.AF_INET6, ("2606:4700::1", 443, 0, 0))]


def test_the_allow_list_takes_names_addresses_and_networks(resolver):
    policy = EgressPolicy.from_setting(" 127.0.0.1, waha.internal ,10.0.0.0/8,[fd00::1]")
    resolver.set("waha.internal", ["192.168.5.5"])
    resolver.set("other.internal", ["192.168.5.5"])
    assert policy.check_url("http://127.0.0.1:3000").host == "127.0.0.1"
    assert policy.check_url("http://[::ffff:127.0.0.1]:3000").port == 3000
    assert policy.check_url("http://10.20.30.40").host == "10.20.30.40"
    assert policy.check_url("http://[fd00::1]:3000").host == "fd00::1"
    assert policy.check_url("http://waha.internal:3000").host == "waha.internal"
    for url in ("http://127.0.0.2", "http://192.168.5.5", "http://other.internal", "http://169.254.169.254",
                "http://[fd00::2]"):
        with pytest.raises(OutboundAddressRefused):
            policy.check_url(url)


@pytest.mark.parametrize("setting", ["10.0.0.0/33", "waha internal", "http://waha.internal", "999.1.1.1/8"])
def test_a_typo_in_the_allow_list_stops_the_start(tmp_path, setting):
    with pytest.raises(ValueError, match="OLCHAT_GATEWAY_ALLOWED_HOSTS"):
        make_app(tmp_path, OLCHAT_GATEWAY_ALLOWED_HOSTS=setting)


def test_the_default_allows_nothing_internal(tmp_path):
    app = make_app(tmp_path)
    assert app.config["OLCHAT_GATEWAY_ALLOWED_HOSTS"] == ""


# ---------------------------------------------------------------- the connection itself


def test_the_connection_is_checked_too_not_only_the_saved_url(waha):
    gateway = WahaGateway(waha.url, waha.api_key, policy=EgressPolicy())
    with pytest.raises(OutboundAddressRefused):
        gateway.list_lines()
    assert waha.calls == {}


def test_dns_rebinding_gains_nothing(resolver, waha):
    # Public when the URL is checked, loopback a moment later when the connection is made.
    resolver.set("rebind.example.com", [PUBLIC], ["127.0.0.1"])
    url = f"http://rebind.example.com:{port_of(waha.url)}"
    policy = EgressPolicy()
    policy.check_url(url)
    gateway = WahaGateway(url, waha.api_key, policy=policy)
    with pytest.raises(OutboundAddressRefused):
        gateway.list_lines()
    assert waha.calls == {}
    assert resolver.asked == ["rebind.example.com", "rebind.example.com"]


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(resolver, waha):
    resolver.set("waha.internal", ["127.0.0.1"], ["10.9.9.9"])
    gateway = WahaGateway(f"http://waha.internal:{port_of(waha.url)}", waha.api_key,
                          policy=EgressPolicy.from_setting("127.0.0.1"))
    assert [line.id for line in gateway.list_lines()][:1] == ["sales"]
    # One resolution for the connection (urllib3 did not ask again), and WAHA saw the name, not the IP.
    assert resolver.asked == ["waha.internal"]
    assert waha.exchanges(SESSIONS)[0].headers["Host"] == f"waha.internal:{port_of(waha.url)}"


def test_a_proxy_from_the_environment_is_not_used(monkeypatch, waha):
    # A proxy would resolve the name itself, past the check; the guarded session ignores the environment.
    monkeypatch.setenv("HTTP_PROXY", waha.url)
    session = guarded_session(EgressPolicy())
    assert session.trust_env is False
    with pytest.raises(OutboundAddressRefused):
        session.get("http://169.254.169.254/latest/meta-data/", timeout=1)
    assert waha.calls == {}


def test_tls_keeps_the_host_name_for_sni_and_the_certificate(tmp_path, resolver):
    ssl = pytest.importorskip("ssl")
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    ca_key, ca, key, csr, cert, ext = (tmp_path / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem", "ext"))
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "3650",
        "-subj", "/CN=Test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=waha.internal")
    ext.write_text("subjectAltName=DNS:waha.internal\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "3650", "-extfile", str(ext))
    seen_sni = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        resolver.set("waha.internal", ["127.0.0.1"])
        resolver.set("other.internal", ["127.0.0.1"])
        policy = EgressPolicy.from_setting("127.0.0.1")
        good = WahaGateway(f"https://waha.internal:{port}", None, policy=policy)
        good._http.verify = str(ca)
        assert good.list_lines() == []
        assert seen_sni == ["waha.internal"]
        # The same address under a name the certificate does not carry: verification still fails.
        wrong = WahaGateway(f"https://other.internal:{port}", None, policy=policy)
        wrong._http.verify = str(ca)
        with pytest.raises(GatewayUnavailable):
            wrong.list_lines()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- the settings page


def admin_of(app):
    return Widget(app.test_client())


@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{port}", "http://localhost:{port}", "http://10.0.0.5:{port}", "http://192.168.1.10:{port}",
    "http://169.254.169.254/latest/meta-data", "http://[::1]:{port}", "http://[::ffff:127.0.0.1]:{port}",
    "http://0.0.0.0:{port}", "http://2130706433:{port}/", "http://0177.0.0.1:{port}/", "http://100.64.0.1:{port}",
    "http://[fd00::1]:{port}", "http://internal.example.com:{port}",
    "http://127.0.0.1:{port}#@waha.example.com", "http://waha.example.com?@127.0.0.1:{port}",
    "http://user:pw@127.0.0.1:{port}", "http://waha.example.com@127.0.0.1:{port}",
])
def test_admin_cannot_point_our_server_inward(tmp_path, resolver, waha, template):
    resolver.set("localhost", ["127.0.0.1"])
    resolver.set("internal.example.com", ["10.0.0.7"])
    resolver.set("waha.example.com", [PUBLIC])
    app = make_app(tmp_path)
    url = template.format(port=port_of(waha.url))
    answer = admin_of(app).post("/admin/gateway", {"base_url": url, "api_key": waha.api_key})
    assert answer.status_code == 422
    assert field_errors(answer) & {"base_url", "base_url_refused"}
    assert stored_server(app) is None
    assert waha.calls == {}


def test_a_refused_address_is_explained_before_any_connection(tmp_path, waha):
    app = make_app(tmp_path)
    answer = admin_of(app).post("/admin/gateway", {"base_url": waha.url, "api_key": "k"})
    message = parse(answer.data).find("small", data_field_error="base_url_refused").text
    assert "не разрешён" in message and "OLCHAT_GATEWAY_ALLOWED_HOSTS" in message
    english = Widget(app.test_client(), lang="en").post("/admin/gateway", {"base_url": waha.url, "api_key": "k"})
    assert "not allowed" in parse(english.data).find("small", data_field_error="base_url_refused").text


def test_a_loopback_port_scan_learns_nothing(tmp_path, waha, closed_port):
    app = make_app(tmp_path)
    admin = admin_of(app)
    closed_url = f"http://127.0.0.1:{closed_port}"
    open_answer = admin.post("/admin/gateway", {"base_url": waha.url, "api_key": "k"})
    closed_answer = admin.post("/admin/gateway", {"base_url": closed_url, "api_key": "k"})
    assert open_answer.status_code == closed_answer.status_code == 422
    # The form shows the admin's own input back; apart from it the two answers are the same bytes.
    assert parse(closed_answer.data).find("input", name="base_url").get("value") == closed_url
    assert open_answer.data.replace(waha.url.encode(), b"URL") == closed_answer.data.replace(closed_url.encode(), b"URL")
    assert waha.calls == {}


@pytest.mark.parametrize("status, content_type", [(404, "application/json"), (500, "text/plain"),
                                                  (200, "text/plain"), (403, "text/plain"), (302, "text/plain")])
def test_an_allowed_internal_service_looks_like_a_closed_port(tmp_path, closed_port, status, content_type):
    # Even where the deployment allows loopback, the page tells an open port from a closed one by nothing.
    nosy = NosyServer(status, content_type)
    try:
        app = make_app(tmp_path, OLCHAT_GATEWAY_ALLOWED_HOSTS="127.0.0.1", OLCHAT_GATEWAY_CONNECT_TIMEOUT=0.5,
                       OLCHAT_GATEWAY_READ_TIMEOUT=0.5)
        admin = admin_of(app)
        answers = []
        for port in (nosy.port, closed_port):
            answer = admin.post("/admin/gateway", {"base_url": f"http://127.0.0.1:{port}", "api_key": "k"})
            assert answer.status_code == 200
            answers.append(answer)
        assert nosy.requests  # it was reached (allowed), and yet:
        opened, closed = (gateway_block(a) for a in answers)
        if status != 403:
            assert opened == closed and CONNECT_FAILED in opened
        for answer in answers:
            assert NosyServer.SECRET not in answer.data.decode()
            assert str(status) not in gateway_block(answer)
    finally:
        nosy.close()


def test_timeouts_and_refusals_read_the_same(tmp_path, closed_port):
    with FakeWaha(timeout_sleep=1.0) as slow:
        slow.fail["*"] = "timeout"
        app = make_app(tmp_path, OLCHAT_GATEWAY_ALLOWED_HOSTS="127.0.0.1", OLCHAT_GATEWAY_READ_TIMEOUT=0.3)
        admin = admin_of(app)
        timed_out = admin.post("/admin/gateway", {"base_url": slow.url, "api_key": slow.api_key})
        refused = admin.post("/admin/gateway", {"base_url": f"http://127.0.0.1:{closed_port}", "api_key": "k"})
    assert gateway_block(timed_out) == gateway_block(refused)
    assert CONNECT_FAILED in gateway_block(refused)
    english = Widget(app.test_client(), lang="en").get("/admin/settings/form")
    assert "could not connect to the server" in gateway_block(english)


def test_dns_rebinding_after_saving_reaches_nothing(tmp_path, resolver, waha):
    resolver.set("rebind.example.com", [PUBLIC], ["127.0.0.1"])
    app = make_app(tmp_path)
    admin = admin_of(app)
    url = f"http://rebind.example.com:{port_of(waha.url)}"
    saved = admin.post("/admin/gateway", {"base_url": url, "api_key": waha.api_key})
    assert saved.status_code == 200 and stored_server(app) == (url, waha.api_key)
    # The settings page's probe resolved again, got loopback and did not connect.
    assert CONNECT_FAILED in gateway_block(saved)
    admin.post("/admin/lines", {"session": ["sales"]})
    assert admin.get("/widget/lines", **DEAL).status_code < 500
    assert admin.get("/widget/phone", phone="+79161234567", **DEAL).status_code < 500
    assert waha.calls == {}
    assert len(resolver.asked) >= 3


def test_a_stored_portal_server_is_checked_at_every_connection(tmp_path, waha):
    # Saved before the policy (or written by hand): the widget's gateway does not call it either.
    app = make_app(tmp_path)
    store_server(app, waha.url, waha.api_key)
    admin = admin_of(app)
    assert admin.get("/widget/lines", **DEAL).status_code < 500
    assert admin.get("/widget/phone", phone="+79161234567", **DEAL).status_code < 500
    assert CONNECT_FAILED in gateway_block(admin.get("/admin/settings/form"))
    assert waha.calls == {}


def test_a_stored_url_with_a_fragment_is_not_called(tmp_path, waha):
    app = make_app(tmp_path, OLCHAT_GATEWAY_ALLOWED_HOSTS="127.0.0.1")
    store_server(app, waha.url + "/#", waha.api_key)
    admin = admin_of(app)
    assert admin.get("/widget/lines", **DEAL).status_code < 500
    assert waha.calls == {}


def test_the_deployments_own_server_is_trusted(tmp_path, waha):
    app = make_app(tmp_path, OLCHAT_GATEWAY="waha", OLCHAT_WAHA_URL=waha.url, OLCHAT_WAHA_API_KEY=waha.api_key)
    lines = parse(admin_of(app).get("/widget/lines", **DEAL).data)
    assert lines.find("option", data_line="sales") is not None
    assert waha.count(SESSIONS) >= 1


# ---------------------------------------------------------------- the stored key stays with its server


def test_a_new_url_needs_the_key_again_and_the_stored_key_never_travels(tmp_path):
    with FakeWaha(api_key="key-of-server-a") as a, FakeWaha(api_key="key-of-server-b") as b:
        app = make_app(tmp_path, OLCHAT_GATEWAY_ALLOWED_HOSTS="127.0.0.1")
        admin = admin_of(app)
        assert admin.post("/admin/gateway", {"base_url": a.url, "api_key": a.api_key}).status_code == 200
        admin.post("/admin/lines", {"session": ["sales"]})

        moved = admin.post("/admin/gateway", {"base_url": b.url, "api_key": ""})
        assert moved.status_code == 422 and "api_key_again" in field_errors(moved)
        assert "ключ API для нового сервера" in moved.data.decode()
        assert stored_server(app) == (a.url, a.api_key)
        with app.app_context():
            assert db.session.scalar(db.select(PortalLine.line_id)) == "sales"
        assert b.calls == {}

        # The same URL with the field left empty keeps the stored key.
        kept = admin.post("/admin/gateway", {"base_url": a.url + "/", "api_key": ""})
        assert kept.status_code == 200 and stored_server(app) == (a.url, a.api_key)

        assert admin.post("/admin/gateway", {"base_url": b.url, "api_key": b.api_key}).status_code == 200
        assert stored_server(app) == (b.url, b.api_key)
        assert admin.get("/widget/lines", **DEAL).status_code < 500
        assert b.exchanges() and {e.headers.get("X-Api-Key") for e in b.exchanges()} == {b.api_key}
        assert all(a.api_key not in str(e.headers) for e in b.exchanges())


def test_a_refused_url_stores_nothing(tmp_path, waha):
    app = make_app(tmp_path, OLCHAT_GATEWAY_ALLOWED_HOSTS="127.0.0.1")
    admin = admin_of(app)
    admin.post("/admin/gateway", {"base_url": waha.url, "api_key": waha.api_key})
    admin.post("/admin/lines", {"session": ["sales", "support"]})
    for url in ("http://10.0.0.1:3000", "http://127.0.0.1:1#x", "http://no-such-host.example.com"):
        answer = admin.post("/admin/gateway", {"base_url": url, "api_key": "new-key"})
        assert answer.status_code == 422
        assert stored_server(app) == (waha.url, waha.api_key)
        with app.app_context():
            assert set(db.session.scalars(db.select(PortalLine.line_id))) == {"sales", "support"}


def test_a_name_that_does_not_resolve_is_refused_without_detail(tmp_path, resolver):
    app = make_app(tmp_path)
    answer = admin_of(app).post("/admin/gateway", {"base_url": "https://no-such-host.example.com", "api_key": "k"})
    assert answer.status_code == 422 and field_errors(answer) == {"base_url_unreachable"}
    assert CONNECT_FAILED in answer.data.decode()


# ---------------------------------------------------------------- the allow-list


@pytest.mark.parametrize("allowed", ["127.0.0.1", "127.0.0.0/8", "10.0.0.0/8, 127.0.0.0/30", "waha.internal"])
def test_the_deployment_can_allow_its_own_waha(tmp_path, resolver, waha, allowed):
    resolver.set("waha.internal", ["127.0.0.1"])
    app = make_app(tmp_path, OLCHAT_GATEWAY_ALLOWED_HOSTS=allowed)
    host = "waha.internal" if allowed == "waha.internal" else "127.0.0.1"
    url = f"http://{host}:{port_of(waha.url)}"
    saved = admin_of(app).post("/admin/gateway", {"base_url": url, "api_key": waha.api_key})
    assert saved.status_code == 200
    assert {tr.get("data-session") for tr in parse(saved.data).find_all("tr", data_session=True)} >= {"sales"}
    assert waha.count(SESSIONS) == 1
