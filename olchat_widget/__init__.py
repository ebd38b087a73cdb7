"""OLChat «Статусы и чаты»: the WhatsApp widget for Bitrix24 CRM cards."""
from __future__ import annotations

from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the app (the flaskr pattern: instance config, then test overrides)."""
    app = Flask(__name__, instance_relative_config=True,
                template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    from .config import load_config

    load_config(app, test_config)

    from .clock import install_clock

    install_clock(app)

    from .models import db

    db.init_app(app)

    from .runtime import KEY, Runtime

    app.extensions[KEY] = Runtime(app)
    app.extensions["olchat_numbering_reset"] = lambda: app.extensions.pop("olchat_numbering", None)

    from .admin.views import bp as admin_bp
    from .widget.views import bp as widget_bp

    app.register_blueprint(widget_bp)
    app.register_blueprint(admin_bp)
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
    app.jinja_env.globals["static_version"] = _static_version()
    return app


def _register_bitrix(app: Flask) -> None:
    try:
        from .b24.views import bp as b24_bp
    except ImportError:  # the Bitrix24 blueprint is optional until it lands
        return
    app.register_blueprint(b24_bp)


def _static_version() -> str:
    """A cache-busting suffix for static files: their newest modification time."""
    newest = max((p.stat().st_mtime for p in (ROOT / "static").glob("*.*")), default=0)
    return str(int(newest))
