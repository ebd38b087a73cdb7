"""Entry point for gunicorn and `flask --app wsgi`: exposes ``app``."""
from olchat_widget import create_app

app = create_app()
