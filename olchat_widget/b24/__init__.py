"""Bitrix24 REST: a small client with typed errors, batch, OAuth refresh and token checks."""
from .client import (B24AccessDenied, B24AuthError, B24Client, B24Error, B24NotFound, B24Overload,
                     B24PortalDeleted, B24QueryLimit, B24Unavailable, BatchResult, build_command, build_query,
                     domain_of_endpoint, error_from, refresh_tokens, verify_user_token)

__all__ = [
    "B24AccessDenied", "B24AuthError", "B24Client", "B24Error", "B24NotFound", "B24Overload",
    "B24PortalDeleted", "B24QueryLimit", "B24Unavailable", "BatchResult", "build_command", "build_query",
    "domain_of_endpoint", "error_from", "refresh_tokens", "verify_user_token",
]
