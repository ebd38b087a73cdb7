"""The circuit breaker, alone with a fake clock and in front of the WAHA adapter on a fake WAHA."""
from __future__ import annotations

import threading
import time

import pytest

from olchat_widget.gateway.base import (GatewayNotFound, GatewayRateLimited, GatewayTimeout, GatewayUnauthorized,
                                        GatewayUnavailable, LineNotConnected)
from olchat_widget.gateway.breaker import CLOSED, HALF_OPEN, OPEN, BreakerGateway, CircuitBreaker, breaker_for
from olchat_widget.gateway.waha import WahaGateway
from tests import openapi_check
from tests.fakes.fake_waha import SEND_TEXT, SESSIONS, FakeWaha

READ_TIMEOUT = 0.2
CHAT = "79161234567@c.us"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def waha():
    """Run a fake WAHA for one test; afterwards check its exchanges against the contract."""
    with FakeWaha(timeout_sleep=READ_TIMEOUT + 0.4) as fake:
        yield fake
        if openapi_check.spec_available():
            openapi_check.check_all(fake.exchanges())


def guarded(fake: FakeWaha, breaker: CircuitBreaker) -> BreakerGateway:
    """Return the WAHA adapter on the fake behind ``breaker``."""
    return BreakerGateway(WahaGateway(fake.url, fake.api_key, connect_timeout=0.5, read_timeout=READ_TIMEOUT),
                          breaker)


# ---------------------------------------------------------------- the state machine


def test_opens_after_the_threshold_of_consecutive_failures(clock):
    b = CircuitBreaker(failure_threshold=3, cool_down=10, clock=clock)
    for _ in range(2):
        b.record_failure()
        assert b.allow() and b.state == CLOSED
    b.record_failure()
    assert b.state == OPEN and not b.allow()


def test_a_success_resets_the_run_of_failures(clock):
    b = CircuitBreaker(failure_threshold=3, cool_down=10, clock=clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state == CLOSED and b.failures == 2


def test_half_open_lets_exactly_one_trial_through_after_the_cool_down(clock):
    b = CircuitBreaker(failure_threshold=1, cool_down=10, clock=clock)
    b.record_failure()
    clock.advance(9.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.state == HALF_OPEN
    assert b.allow()          # the trial
    assert not b.allow()      # everyone else still fails fast
    b.record_success()
    assert b.state == CLOSED and b.allow()


def test_a_failed_trial_opens_again_for_a_full_cool_down(clock):
    b = CircuitBreaker(failure_threshold=1, cool_down=10, clock=clock)
    b.record_failure()
    clock.advance(10)
    assert b.allow()
    b.record_failure()
    assert b.state == OPEN
    clock.advance(9)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()


def test_release_frees_the_trial_without_a_verdict(clock):
    b = CircuitBreaker(failure_threshold=1, cool_down=10, clock=clock)
    b.record_failure()
    clock.advance(10)
    assert b.allow()
    b.release()
    assert b.state == HALF_OPEN and b.allow()


def test_concurrent_failures_are_all_counted():
    b = CircuitBreaker(failure_threshold=10_000, cool_down=10)
    threads = [threading.Thread(target=lambda: [b.record_failure() for _ in range(500)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.failures == 4000 and b.state == CLOSED


def test_only_one_of_many_concurrent_callers_gets_the_trial(clock):
    b = CircuitBreaker(failure_threshold=1, cool_down=10, clock=clock)
    b.record_failure()
    clock.advance(10)
    start = threading.Barrier(16)
    granted = []

    def caller():
        start.wait()
        granted.append(b.allow())

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(True) == 1


def test_breaker_for_keeps_one_breaker_per_server():
    registry: dict = {}
    a = breaker_for(registry, "http://waha-a:3000/", failure_threshold=2, cool_down=5)
    assert breaker_for(registry, "http://waha-a:3000") is a
    assert breaker_for(registry, "http://waha-b:3000") is not a
    a.record_failure()
    # New settings reach the existing breaker; its state stays.
    again = breaker_for(registry, "http://waha-a:3000", failure_threshold=7, cool_down=9)
    assert again is a and (a.failure_threshold, a.cool_down, a.failures) == (7, 9.0, 1)


def test_breaker_for_hands_out_one_breaker_under_a_race():
    registry: dict = {}
    start = threading.Barrier(12)
    got = []

    def grab():
        start.wait()
        got.append(breaker_for(registry, "http://waha:3000"))

    threads = [threading.Thread(target=grab) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in got}) == 1


# ---------------------------------------------------------------- in front of WAHA


def test_opens_on_a_failing_server_and_fails_fast_without_calling_it(waha, clock):
    waha.fail[SESSIONS] = "500"
    gw = guarded(waha, CircuitBreaker(failure_threshold=3, cool_down=30, clock=clock))

    for _ in range(3):
        with pytest.raises(GatewayUnavailable):
            gw.list_lines()
    assert waha.count(SESSIONS) == 3 and gw.breaker.state == OPEN

    started = time.perf_counter()
    for _ in range(1000):
        with pytest.raises(GatewayUnavailable, match="circuit open"):
            gw.list_lines()
    per_call = (time.perf_counter() - started) / 1000
    assert waha.count(SESSIONS) == 3           # the server was not asked again
    assert per_call < 0.001                    # microseconds, not a timeout
    # Every question fails fast, sends included (and nothing is sent).
    with pytest.raises(GatewayUnavailable, match="circuit open"):
        gw.send_text("sales", CHAT, "hi", message_id="3EB0X")
    assert waha.count(SEND_TEXT) == 0


def test_half_opens_after_the_cool_down_and_closes_when_the_server_is_back(waha, clock):
    waha.fail[SESSIONS] = "drop"
    gw = guarded(waha, CircuitBreaker(failure_threshold=2, cool_down=30, clock=clock))
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            gw.list_lines()
    assert gw.breaker.state == OPEN

    waha.fail.clear()  # the server recovers, but nobody knows yet
    clock.advance(29)
    with pytest.raises(GatewayUnavailable, match="circuit open"):
        gw.list_lines()
    assert waha.count(SESSIONS) == 2

    clock.advance(1)
    assert gw.breaker.state == HALF_OPEN
    assert len(gw.list_lines()) == 4           # the trial goes through
    assert gw.breaker.state == CLOSED and waha.count(SESSIONS) == 3
    gw.list_lines()
    assert waha.count(SESSIONS) == 4


def test_a_failed_trial_keeps_the_server_alone_for_another_cool_down(waha, clock):
    waha.fail["*"] = "500"
    gw = guarded(waha, CircuitBreaker(failure_threshold=1, cool_down=30, clock=clock))
    with pytest.raises(GatewayUnavailable):
        gw.new_message_id("sales")
    clock.advance(30)
    with pytest.raises(GatewayUnavailable) as trial:
        gw.new_message_id("sales")
    assert "circuit open" not in str(trial.value)  # it really asked
    with pytest.raises(GatewayUnavailable, match="circuit open"):
        gw.new_message_id("sales")
    assert waha.calls == {"new_message_id": 2}


def test_timeouts_count_as_failures(waha, clock):
    waha.fail[SESSIONS] = "timeout"
    gw = guarded(waha, CircuitBreaker(failure_threshold=2, cool_down=30, clock=clock))
    for _ in range(2):
        with pytest.raises(GatewayTimeout):
            gw.list_lines()
    assert gw.breaker.state == OPEN
    started = time.perf_counter()
    with pytest.raises(GatewayUnavailable, match="circuit open"):
        gw.list_lines()
    assert time.perf_counter() - started < READ_TIMEOUT / 10
    assert waha.count(SESSIONS) == 2


def test_while_half_open_other_callers_fail_fast_during_the_trial(waha, clock):
    gw = guarded(waha, CircuitBreaker(failure_threshold=1, cool_down=30, clock=clock))
    waha.fail[SESSIONS] = "500"
    with pytest.raises(GatewayUnavailable):
        gw.list_lines()
    waha.fail.clear()
    waha.delays[SESSIONS] = READ_TIMEOUT / 2  # a slow but successful trial
    clock.advance(30)

    trial = threading.Thread(target=gw.list_lines)
    trial.start()
    deadline = time.monotonic() + 2
    while waha.count(SESSIONS) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(GatewayUnavailable, match="circuit open"):
        gw.list_lines()
    trial.join()

    assert gw.breaker.state == CLOSED and waha.count(SESSIONS) == 2


@pytest.mark.parametrize("mode, error", [
    ("401", GatewayUnauthorized),
    ("404", GatewayNotFound),
    ("422_qr", LineNotConnected),
    ("500_rate", GatewayRateLimited),
])
def test_answers_from_a_live_server_do_not_trip_the_breaker(waha, clock, mode, error):
    waha.fail["*"] = mode
    gw = guarded(waha, CircuitBreaker(failure_threshold=2, cool_down=30, clock=clock))
    for _ in range(5):
        with pytest.raises(error):
            gw.check_exists("sales", "+79161234567")
    assert gw.breaker.state == CLOSED and waha.count("check_exists") == 5


def test_a_live_answer_breaks_a_run_of_failures(waha, clock):
    gw = guarded(waha, CircuitBreaker(failure_threshold=3, cool_down=30, clock=clock))
    for mode in ("drop", "drop", "401", "drop", "drop"):
        waha.fail[SESSIONS] = mode
        with pytest.raises((GatewayUnavailable, GatewayUnauthorized)):
            gw.list_lines()
    assert gw.breaker.state == CLOSED and waha.count(SESSIONS) == 5


def test_the_wrapper_forwards_arguments_and_results(waha, clock):
    gw = guarded(waha, CircuitBreaker(clock=clock))
    mid = gw.new_message_id("sales")
    sent = gw.send_text("sales", CHAT, "через предохранитель", message_id=mid)
    assert sent.id.endswith(mid)
    assert gw.find_message("sales", CHAT, mid).text == "через предохранитель"
    page = gw.history("sales", CHAT, limit=3, offset=1)
    assert len(page.messages) == 3 and page.offset == 1
    assert gw.find_chat("sales", CHAT).chat_id == CHAT
    assert gw.check_exists("sales", "+5511987654321").chat_id == "551187654321@c.us"
    assert gw.base_url == waha.url  # the wrapped adapter's extras stay reachable
    gw.close()


def test_a_bug_during_the_trial_does_not_wedge_the_breaker(clock):
    class Broken:
        def list_lines(self):
            raise KeyError("parsing bug")

    b = CircuitBreaker(failure_threshold=1, cool_down=10, clock=clock)
    b.record_failure()
    clock.advance(10)
    gw = BreakerGateway(Broken(), b)
    with pytest.raises(KeyError):
        gw.list_lines()
    with pytest.raises(KeyError):  # the next caller may try again, not "circuit open" forever
        gw.list_lines()
