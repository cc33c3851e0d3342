"""The circuit breaker: closed -> open -> half_open -> closed/open. Pure: time is passed in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from northstard.core.breaker import Breaker


def fail(breaker: Breaker, times: int, now: float = 0.0) -> Breaker:
    for _ in range(times):
        breaker = breaker.before_call(now).failure(now)
    return breaker


def test_a_new_breaker_is_closed_and_lets_calls_through() -> None:
    breaker = Breaker(threshold=3, cooldown=30.0)
    assert (breaker.state, breaker.failures) == ("closed", 0)
    assert breaker.wait(0.0) == 0.0
    assert breaker.before_call(1e9) == breaker


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = fail(Breaker(threshold=3, cooldown=30.0), 2, now=5.0)
    assert (breaker.state, breaker.failures) == ("closed", 2)
    assert breaker.wait(5.0) == 0.0
    breaker = breaker.before_call(7.0).failure(7.0)
    assert (breaker.state, breaker.failures, breaker.opened_at) == ("open", 3, 7.0)


def test_threshold_one_opens_at_the_first_failure() -> None:
    assert fail(Breaker(threshold=1), 1).state == "open"


def test_success_resets_the_count() -> None:
    breaker = fail(Breaker(threshold=3), 2).success()
    assert (breaker.state, breaker.failures) == ("closed", 0)
    breaker = fail(breaker, 2)
    assert breaker.state == "closed"  # 2 + 2 failures, but not consecutive
    assert fail(breaker, 1).state == "open"


def test_wait_during_the_cool_down() -> None:
    breaker = fail(Breaker(threshold=2, cooldown=30.0), 2, now=100.0)
    assert breaker.wait(100.0) == 30.0
    assert breaker.wait(112.5) == 17.5
    assert breaker.wait(130.0) == 0.0
    assert breaker.wait(500.0) == 0.0
    # during the cool-down a call stays refused: before_call keeps it open
    assert breaker.before_call(129.9).state == "open"


def test_half_open_after_the_cool_down() -> None:
    breaker = fail(Breaker(threshold=2, cooldown=30.0), 2, now=100.0)
    probing = breaker.before_call(130.0)
    assert probing.state == "half_open"
    assert probing.wait(130.0) == 0.0
    assert probing.before_call(131.0).state == "half_open"


def test_half_open_failure_reopens_with_a_fresh_cool_down() -> None:
    breaker = fail(Breaker(threshold=2, cooldown=30.0), 2, now=100.0)
    reopened = breaker.before_call(140.0).failure(141.0)
    assert (reopened.state, reopened.opened_at) == ("open", 141.0)
    assert reopened.wait(141.0) == 30.0
    assert reopened.before_call(170.9).state == "open"
    assert reopened.before_call(171.0).state == "half_open"


def test_half_open_success_closes() -> None:
    breaker = fail(Breaker(threshold=2, cooldown=30.0), 2, now=100.0)
    closed = breaker.before_call(130.0).success()
    assert (closed.state, closed.failures) == ("closed", 0)
    assert closed.wait(130.0) == 0.0
    # and it takes the full threshold again to open
    assert fail(closed, 1, now=131.0).state == "closed"
    assert fail(closed, 2, now=131.0).state == "open"


def test_transitions_return_new_breakers() -> None:
    breaker = Breaker(threshold=1)
    opened = breaker.failure(1.0)
    assert breaker.state == "closed"
    assert opened is not breaker and opened.state == "open"


@settings(deadline=None, max_examples=200)
@given(
    threshold=st.integers(1, 5),
    cooldown=st.floats(0, 100, allow_nan=False),
    steps=st.lists(st.tuples(st.floats(0, 50, allow_nan=False), st.booleans()), max_size=40),
)
def test_breaker_matches_a_model(threshold: int, cooldown: float,
                                 steps: list[tuple[float, bool]]) -> None:
    """A caller that waits as told: compare with a plain model of the three states."""
    breaker = Breaker(threshold=threshold, cooldown=cooldown)
    state, failures, opened_at, now = "closed", 0, 0.0, 0.0
    for gap, ok in steps:
        now += gap
        expected_wait = max(0.0, opened_at + cooldown - now) if state == "open" else 0.0
        assert breaker.wait(now) == expected_wait
        if expected_wait > 0:
            assert breaker.before_call(now).state == "open"
            now = opened_at + cooldown  # the caller sleeps the wait
        breaker = breaker.before_call(now)
        if state == "open":
            state = "half_open"
        assert breaker.state == state
        if ok:
            breaker = breaker.success()
            state, failures = "closed", 0
        else:
            breaker = breaker.failure(now)
            failures += 1
            if state == "half_open" or failures >= threshold:
                state, opened_at = "open", now
        assert (breaker.state, breaker.failures) == (state, failures)
