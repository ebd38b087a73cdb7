"""A circuit breaker in front of a gateway, one per gateway server.

When a WAHA server is down every call would wait for its connect/read timeout,
and the widget's statuses would hang for seconds per number. After a few
failures in a row the breaker opens and answers «unavailable» at once; after
a cool-down one trial call is let through to see whether the server is back.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .base import ChatRef, Gateway, GatewayError, GatewayUnavailable, HistoryPage, Line, Message, Presence, SentMessage

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Count consecutive failures; open after ``failure_threshold``, try again after ``cool_down`` seconds."""

    def __init__(self, failure_threshold: int = 5, cool_down: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.failure_threshold = max(int(failure_threshold), 1)
        self.cool_down = float(cool_down)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_out = False  # half-open: the one trial call is under way

    @property
    def state(self) -> str:
        """Return closed, open or half-open (open whose cool-down is over reads as half-open)."""
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.cool_down:
                return HALF_OPEN
            return self._state

    @property
    def failures(self) -> int:
        """Return the current run of consecutive failures."""
        with self._lock:
            return self._failures

    def allow(self) -> bool:
        """Tell whether a call may go to the server now; when half-open only the first caller may."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN:
                if self._clock() - self._opened_at < self.cool_down:
                    return False
                self._state = HALF_OPEN
            if self._trial_out:
                return False
            self._trial_out = True
            return True

    def record_success(self) -> None:
        """Note that the server answered: close the circuit."""
        with self._lock:
            self._state = CLOSED
            self._failures = 0
            self._trial_out = False

    def record_failure(self) -> None:
        """Note that the server could not be reached; open after enough of them (or a failed trial)."""
        with self._lock:
            self._trial_out = False
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = OPEN
                self._opened_at = self._clock()

    def release(self) -> None:
        """End a call that proved nothing about the server (a bug on our side): free the trial slot."""
        with self._lock:
            self._trial_out = False


class BreakerGateway:
    """Wrap a gateway so that an unreachable server fails fast instead of timing out on every call."""

    def __init__(self, gateway: Gateway, breaker: CircuitBreaker):
        self.gateway = gateway
        self.breaker = breaker

    def __repr__(self) -> str:
        return f"BreakerGateway({self.gateway!r}, state={self.breaker.state})"

    def __getattr__(self, name: str) -> Any:
        # Extras of the wrapped gateway (close(), base_url, sessions…) stay reachable.
        if name == "gateway":  # not set yet (copy, unpickling): no endless recursion
            raise AttributeError(name)
        return getattr(self.gateway, name)

    def _through(self, method: str, line_id: str | None, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped gateway's ``method`` unless the circuit is open."""
        breaker = self.breaker
        if not breaker.allow():
            raise GatewayUnavailable("circuit open", line_id=line_id)
        try:
            result = getattr(self.gateway, method)(*args, **kwargs)
        except GatewayUnavailable:  # timeouts included
            breaker.record_failure()
            raise
        except GatewayError:
            # 401, 404, 422, rate limits: the server answered, so it is up.
            breaker.record_success()
            raise
        except BaseException:
            breaker.release()
            raise
        breaker.record_success()
        return result

    def list_lines(self) -> list[Line]:
        """Return the lines, unless the circuit is open."""
        return self._through("list_lines", None)

    def check_exists(self, line_id: str, phone: str) -> Presence:
        """Check a number, unless the circuit is open."""
        return self._through("check_exists", line_id, line_id, phone)

    def find_chat(self, line_id: str, chat_id: str) -> ChatRef | None:
        """Look a chat up, unless the circuit is open."""
        return self._through("find_chat", line_id, line_id, chat_id)

    def history(self, line_id: str, chat_id: str, *, limit: int = 20, offset: int = 0) -> HistoryPage:
        """Return a history page, unless the circuit is open."""
        return self._through("history", line_id, line_id, chat_id, limit=limit, offset=offset)

    def new_message_id(self, line_id: str) -> str:
        """Return a fresh message id, unless the circuit is open."""
        return self._through("new_message_id", line_id, line_id)

    def send_text(self, line_id: str, chat_id: str, text: str, *, message_id: str) -> SentMessage:
        """Send a text, unless the circuit is open (then nothing was sent)."""
        return self._through("send_text", line_id, line_id, chat_id, text, message_id=message_id)

    def find_message(self, line_id: str, chat_id: str, message_id: str) -> Message | None:
        """Look a sent message up, unless the circuit is open."""
        return self._through("find_message", line_id, line_id, chat_id, message_id)

    def send_media(self, line_id: str, chat_id: str, kind: str, **kwargs: Any) -> SentMessage:
        """Send a file, unless the circuit is open (then nothing was sent)."""
        return self._through("send_media", line_id, line_id, chat_id, kind, **kwargs)

    def media_of(self, line_id: str, chat_id: str, message_id: str):
        """Describe a message's file, unless the circuit is open."""
        return self._through("media_of", line_id, line_id, chat_id, message_id)

    def download_media(self, line_id: str, url: str, sink: Any, *, max_bytes: int) -> str:
        """Download a received file, unless the circuit is open."""
        return self._through("download_media", line_id, line_id, url, sink, max_bytes=max_bytes)


_registry_lock = threading.Lock()


def breaker_for(registry: dict, key: str, **kw: Any) -> CircuitBreaker:
    """Return the one breaker of server ``key`` in ``registry``, creating it on first use."""
    key = key.strip().rstrip("/")
    with _registry_lock:
        breaker = registry.get(key)
        if breaker is None:
            breaker = registry[key] = CircuitBreaker(**kw)
        else:
            # Settings may have changed since the breaker was made; its state stays.
            if "failure_threshold" in kw:
                breaker.failure_threshold = max(int(kw["failure_threshold"]), 1)
            if "cool_down" in kw:
                breaker.cool_down = float(kw["cool_down"])
    return breaker
