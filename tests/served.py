"""The real app served on 127.0.0.1:<free port> from a thread, for tests whose peers (a browser,
a fake WAHA, a fake Bitrix24) must reach it over HTTP."""
from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class Server:
    """The real app on 127.0.0.1:<free port>, served from a thread."""

    def __init__(self, app):
        self.app = app
        self.httpd = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def gateway(self):
        return self.app.extensions["olchat"].demo_gateway

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
