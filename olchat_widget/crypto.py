"""Symmetric encryption for secrets at rest and for widget tokens.

Fernet authenticates and timestamps what it encrypts, so one primitive gives
both "nobody can read or forge this" and "this is too old".
"""
from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken

from .clock import unix_now


class Box:
    """Encrypt and decrypt with a key derived from configuration and a purpose."""

    def __init__(self, secret: str, purpose: str):
        # A distinct key per purpose: a widget token can never be replayed as a stored secret.
        digest = hashlib.sha256(f"olchat:{purpose}:{secret}".encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, text: str) -> str:
        # Stamped by the app's clock, so a token's age is measured on one clock.
        return self._fernet.encrypt_at_time(text.encode(), unix_now()).decode()

    def open(self, token: str, ttl: int | None = None) -> str | None:
        """Return the plain text, or None when the token is forged, damaged or older than ttl."""
        try:
            if ttl is None:
                return self._fernet.decrypt(token.encode()).decode()
            return self._fernet.decrypt_at_time(token.encode(), ttl, unix_now()).decode()
        except (InvalidToken, ValueError, TypeError):
            return None

    def seal_json(self, data: dict) -> str:
        return self.seal(json.dumps(data, separators=(",", ":"), ensure_ascii=False))

    def open_json(self, token: str, ttl: int | None = None) -> dict | None:
        text = self.open(token, ttl)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


def secrets_box(app) -> Box:
    """The box for refresh tokens and gateway API keys stored in the database."""
    return Box(app.config["OLCHAT_ENCRYPTION_KEY"], "at-rest")
