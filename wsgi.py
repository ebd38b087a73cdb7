"""Entry point for gunicorn and `flask --app wsgi`: exposes ``app``."""
from pathlib import Path

from olchat_widget import create_app
from olchat_widget.phones.numbering import plan_for_app

app = create_app()
# Load the numbering plan now, not in the first operator's request. When there is
# none yet (a new deployment, before `init-db` seeds it) the first use says so.
if Path(app.config["OLCHAT_NUMBERING_PATH"]).exists():
    plan_for_app(app)
