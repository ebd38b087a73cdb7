"""OLChat «Статусы и чаты»: the WhatsApp widget for Bitrix24 CRM cards."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the app (the flaskr pattern: instance config, then test overrides)."""
    app = Flask(__name__, instance_relative_config=True,
                template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    from .config import load_config

    load_config(app, test_config)
    _keep_secrets_out_of_logs(app)

    from .clock import install_clock

    install_clock(app)

    from .models import db

    db.init_app(app)

    from .runtime import KEY, Runtime

    app.extensions[KEY] = Runtime(app)
    app.extensions["olchat_numbering_reset"] = lambda: app.extensions.pop("olchat_numbering", None)

    from .admin.views import bp as admin_bp
    from .widget.media_views import bp as widget_media_bp
    from .widget.views import bp as widget_bp

    from .bridge.media import bp as bridge_media_bp
    from .bridge.views import bp as bridge_bp
    from .jobs import init_jobs

    app.register_blueprint(widget_bp)
    app.register_blueprint(widget_media_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(bridge_bp)
    app.register_blueprint(bridge_media_bp)

    from .bridge.demo_views import bp as demo_openlines_bp

    app.register_blueprint(demo_openlines_bp)
    init_jobs(app)
    _register_bitrix(app)

    from .errors import register_error_handlers
    from .web import add_security_headers, refuse_nul_values

    register_error_handlers(app)
    app.before_request(refuse_nul_values)
    app.after_request(add_security_headers)

    from .cli import register_cli
    from .templating import register_templating

    register_templating(app)

    register_cli(app)
    from .static_files import init_static

    init_static(app)
    return app


def _keep_secrets_out_of_logs(app: Flask) -> None:
    """No token, key or client phone in a log line, whatever level the deployment logs at."""
    # SQLAlchemy puts bound parameters (tokens, phones, message texts) into its error messages.
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options["hide_parameters"] = True
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    # urllib3 logs every URL it requests at DEBUG: the OAuth refresh carries the client
    # secret and refresh token in its query, WAHA paths carry phone numbers.
    # Its own level, not the inherited one: a root logger at DEBUG must not bring them back.
    quiet = logging.getLogger("urllib3")
    if quiet.level < logging.INFO:
        quiet.setLevel(logging.INFO)


def _register_bitrix(app: Flask) -> None:
    try:
        from .b24.views import bp as b24_bp
    except ImportError:  # the Bitrix24 blueprint is optional until it lands
        return
    app.register_blueprint(b24_bp)

