"""Configuration: defaults, then ``OLCHAT_*`` environment variables, then instance config.

Every setting an operator of the service may change is listed in DEFAULTS with
its type; README.md documents each one. Secrets (keys, client secrets) have
no default value in the repository: when none is configured for the demo run,
a random key is generated once into the instance folder.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

# name -> default. The type of the default decides how an environment value is parsed.
DEFAULTS: dict[str, object] = {
    # Where the widget's data lives. DATABASE_URL (no prefix) overrides it.
    "SQLALCHEMY_DATABASE_URI": None,  # None: sqlite in the instance folder
    # Signing key for widget tokens; also the default key for secrets at rest.
    "OLCHAT_SECRET_KEY": "",
    # Key (any string) that encrypts refresh tokens and gateway API keys at rest.
    "OLCHAT_ENCRYPTION_KEY": "",
    # Lifetime of a widget token, seconds.
    "OLCHAT_TOKEN_TTL": 900,
    # Embedded demo data (JSON, shape in PRODUCT.md); empty: the built-in file.
    "OLCHAT_DEMO_DATA": "",
    # Serve the standalone debug page at / and accept tokens of the demo portal.
    # "auto": on only while no Bitrix24 application credentials are configured.
    "OLCHAT_DEBUG_PAGE": "auto",
    # Demo backends' behaviour, for tests and benchmarks.
    "OLCHAT_DEMO_CRM_DELAY": 0.0,  # seconds per CRM call
    "OLCHAT_DEMO_CRM_FAIL": "",  # '', 'unavailable', 'access_denied', 'not_found', 'rate_limited'
    "OLCHAT_DEMO_GATEWAY_DELAY": 0.0,  # seconds per gateway call
    "OLCHAT_DEMO_GATEWAY_CHECK_DELAY": -1.0,  # seconds per number check; <0: same as DELAY
    # Comma-separated gateway operations that fail ('all' or list_lines, check_exists,
    # find_chat, history, send_text) and how: unavailable|timeout|unauthorized|rate_limited.
    "OLCHAT_DEMO_GATEWAY_FAIL": "",
    "OLCHAT_DEMO_GATEWAY_FAIL_AS": "unavailable",
    # Which gateway serves portals that did not connect their own: demo | waha.
    "OLCHAT_GATEWAY": "demo",
    "OLCHAT_WAHA_URL": "",
    "OLCHAT_WAHA_API_KEY": "",
    "OLCHAT_WAHA_SESSIONS": "",  # comma-separated session names; empty = all
    # Member ids of the Bitrix24 portals the deployment's WAHA serves; empty = none of them.
    "OLCHAT_WAHA_PORTALS": "",
    # Hosts, IPs and CIDR networks a portal's own WAHA URL may lead to besides
    # public addresses (comma-separated), e.g. a WAHA beside the app: "127.0.0.1,waha.internal,10.0.0.0/8".
    "OLCHAT_GATEWAY_ALLOWED_HOSTS": "",
    "OLCHAT_GATEWAY_CONNECT_TIMEOUT": 3.05,
    "OLCHAT_GATEWAY_READ_TIMEOUT": 10.0,
    "OLCHAT_BREAKER_FAILURES": 5,
    "OLCHAT_BREAKER_COOL_DOWN": 30.0,
    # Freshness of CRM data and chat lookups (F14), seconds.
    "OLCHAT_CACHE_TTL": 300,
    # Anti-ban guard (B1).
    "OLCHAT_PRESENCE_TTL_YES": 7 * 24 * 3600,
    "OLCHAT_PRESENCE_TTL_NO": 24 * 3600,
    "OLCHAT_CHECK_BUDGET": 100,  # checks per line per day
    "OLCHAT_CHECK_PAUSE": 0.02,  # seconds between two checks on one line
    "OLCHAT_CHECK_WAIT": 8.0,  # how long a status request waits for a check in flight
    # Phones per card (F7) and the region assumed for numbers without a country code.
    "OLCHAT_MAX_PHONES": 10,
    "OLCHAT_DEFAULT_REGION": "RU",
    # Russian numbering plan (B2): the active copy and where `numbering update` fetches it.
    "OLCHAT_NUMBERING_PATH": "",
    "OLCHAT_NUMBERING_URL": "https://opendata.digital.gov.ru/downloads/DEF-9xx.csv",
    # Bitrix24 application.
    "OLCHAT_B24_CLIENT_ID": "",
    "OLCHAT_B24_CLIENT_SECRET": "",
    # app.info CODE of our application; empty: the client id (true for local apps).
    "OLCHAT_B24_APP_CODE": "",
    "OLCHAT_B24_OAUTH_URL": "https://oauth.bitrix.info",
    "OLCHAT_B24_SCHEME": "https",
    "OLCHAT_B24_TIMEOUT": 10.0,
    # Each portal's REST bucket (BITRIX24.md: 2/s drain, 50 burst); queue consumers wait for room and
    # leave OLCHAT_B24_WORKER_RESERVE requests of the burst to the people using the widget.
    "OLCHAT_B24_RATE": 2.0,
    "OLCHAT_B24_BURST": 50.0,
    "OLCHAT_B24_WORKER_RESERVE": 10.0,
    # Background queue (huey): Redis URL for many processes and machines; empty = SQLite file.
    "OLCHAT_REDIS_URL": "",
    "OLCHAT_JOBS_PATH": "",  # the SQLite queue file; empty: instance/jobs.sqlite3
    "OLCHAT_JOBS_IMMEDIATE": False,  # run tasks at once in the caller (tests)
    "OLCHAT_JOB_RETRIES": 5,
    "OLCHAT_JOB_RETRY_DELAY": 2,  # seconds between a job's retries; a sweep every minute takes what is left
    # The deployment's WAHA signs its webhooks with this key (HMAC-SHA512); empty = unsigned accepted.
    "OLCHAT_WAHA_WEBHOOK_KEY": "",
    # Set each line's webhook on the deployment's WAHA when it is chosen (bridge/webhooks.py); off when that
    # WAHA posts through its global WHATSAPP_HOOK_* settings instead (both: every event arrives twice).
    "OLCHAT_WAHA_SESSION_WEBHOOKS": True,
    # Our Open Lines connector id (lower case, digits, _).
    "OLCHAT_CONNECTOR_ID": "olchat_whatsapp",
    # «Показывать имя сотрудника» for replies from Open Lines: the operator's name goes out first.
    "OLCHAT_OL_SHOW_OPERATOR_NAME": True,
    # Files across the bridge (bridge/media.py): the largest carried, bytes; how long Bitrix24's
    # signed URL to a client's file stays valid, seconds; how many tries a download gets.
    "OLCHAT_MEDIA_MAX_BYTES": 100 * 1024 * 1024,
    "OLCHAT_MEDIA_URL_TTL": 24 * 3600,
    "OLCHAT_MEDIA_TRIES": 3,
    # Files attached in the send form wait here (per portal) until sent; empty: instance/uploads.
    "OLCHAT_UPLOADS_PATH": "",
    # Life of a history media link (<img>/<audio> src), seconds.
    "OLCHAT_WIDGET_MEDIA_TTL": 900,
    # The app's address on the internet (https://olchat.example.com), for URLs Bitrix24 fetches
    # itself; empty: the address WAHA posted its webhook to.
    "OLCHAT_PUBLIC_URL": "",
    # How long a request waits for the database (SQLite lock, PostgreSQL pool, connect, row lock)
    # before the widget says «сервис временно недоступен» (503), seconds.
    "OLCHAT_DB_TIMEOUT": 3.0,
    # Largest request body accepted, bytes (Flask's MAX_CONTENT_LENGTH); larger ones get 413.
    "OLCHAT_MAX_REQUEST_BYTES": 256 * 1024,
    # Interface language when the portal does not say: ru | en.
    "OLCHAT_LOCALE": "ru",
}


def _parse(raw: str, default: object) -> object:
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def load_config(app, test_config: dict | None) -> None:
    """Fill ``app.config``: defaults, environment, instance config, then test overrides."""
    for name, default in DEFAULTS.items():
        app.config.setdefault(name, default)
    for name, default in DEFAULTS.items():
        if name.startswith("OLCHAT_") and name in os.environ:
            app.config[name] = _parse(os.environ[name], default)
    if os.environ.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = _postgres_dialect(os.environ["DATABASE_URL"])

    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.update(test_config)

    instance = Path(app.instance_path)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        instance.mkdir(parents=True, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'olchat.sqlite3'}"
    if not app.config["OLCHAT_SECRET_KEY"]:
        app.config["OLCHAT_SECRET_KEY"] = _instance_secret(instance)
    app.config["SECRET_KEY"] = app.config["OLCHAT_SECRET_KEY"]
    if not app.config["OLCHAT_ENCRYPTION_KEY"]:
        app.config["OLCHAT_ENCRYPTION_KEY"] = app.config["OLCHAT_SECRET_KEY"]
    app.config["OLCHAT_DEBUG_PAGE"] = _debug_page(app.config)
    if not app.config["OLCHAT_NUMBERING_PATH"]:
        app.config["OLCHAT_NUMBERING_PATH"] = str(_default_numbering_path(instance))
    # A typo in the allow-list should stop the start, not surface on a settings page.
    from .gateway.egress import policy_from_config

    policy_from_config(app.config)
    if not app.config["OLCHAT_UPLOADS_PATH"]:
        app.config["OLCHAT_UPLOADS_PATH"] = str(instance / "uploads")
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's own default is None: no limit at all
        app.config["MAX_CONTENT_LENGTH"] = int(app.config["OLCHAT_MAX_REQUEST_BYTES"])
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", _engine_options(app.config["SQLALCHEMY_DATABASE_URI"],
                                                                       float(app.config["OLCHAT_DB_TIMEOUT"])))


def _debug_page(config) -> bool:
    """The debug page (and the demo portal's tokens) stay off once the app is a real Bitrix24 app."""
    value = config["OLCHAT_DEBUG_PAGE"]
    if isinstance(value, str):
        value = value.strip().lower()
        if value in ("", "auto"):
            return not (config["OLCHAT_B24_CLIENT_ID"] and config["OLCHAT_B24_CLIENT_SECRET"])
        return value in ("1", "true", "yes", "on")
    return bool(value)


def _postgres_dialect(url: str) -> str:
    # Hosting platforms hand out postgres:// URLs; SQLAlchemy 2 only knows postgresql://.
    return "postgresql://" + url[len("postgres://"):] if url.startswith("postgres://") else url


def _engine_options(uri: str, timeout: float) -> dict:
    """Engine options that bound every wait for the database by ``timeout`` seconds.

    A request stuck behind a lock answers 503 «повторите» within that time
    (errors.py) instead of hanging until gunicorn kills the worker.
    """
    if uri.startswith("sqlite"):
        # Several gunicorn workers and threads share one SQLite file: wait for locks
        # (the busy timeout) instead of failing at once, but not for ever; the
        # threads of one process wait in turn (sqlite_turns.py).
        from .sqlite_turns import TurnConnection

        options = {"connect_args": {"timeout": timeout, "check_same_thread": False, "factory": TurnConnection}}
        if ":memory:" not in uri and uri.rstrip("/") != "sqlite:":
            # One pooled connection per gunicorn thread (32): beyond the pool each request would
            # open a new one, with its PRAGMAs, and close it again.
            options.update(pool_size=32, max_overflow=32, pool_timeout=timeout)
        return options
    options: dict = {"pool_pre_ping": True, "pool_timeout": timeout}
    if uri.startswith("postgresql"):
        # libpq takes whole seconds; lock_timeout bounds a wait for a row lock (FOR UPDATE).
        options["connect_args"] = {"connect_timeout": max(1, round(timeout)),
                                   "options": f"-c lock_timeout={int(timeout * 1000)}"}
    return options


def _instance_secret(instance: Path) -> str:
    """Return the instance's own random key, creating it on first use.

    All workers of one deployment read the same file, so tokens signed by one
    worker verify in another. Production sets OLCHAT_SECRET_KEY instead.
    """
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        # Write aside, then link into place: a worker never reads a half-written key,
        # and when two workers race the first link wins for both.
        tmp = instance / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.write_text(secrets.token_urlsafe(48))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def _default_numbering_path(instance: Path) -> Path:
    """The deployment's own copy of the numbering plan; `init-db` seeds it, `numbering update` replaces it."""
    return instance / "numbering" / "DEF-9xx.csv"


def shared_numbering_snapshot() -> Path | None:
    """The snapshot in ../shared beside a development checkout, if there is one."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ru-numbering" / "DEF-9xx.csv"
    return path if path.exists() else None
