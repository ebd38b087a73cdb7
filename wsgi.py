"""Entry point for gunicorn and `flask --app wsgi`: exposes ``app``."""
from olchat_widget import create_app
from olchat_widget.phones.numbering import plan_for_app

app = create_app()
# Load the numbering plan now, not in the first operator's request.
plan_for_app(app)
