"""The optimistic-concurrency retry loop shared by every service."""

import pytest

from conciliare.chassis import concurrency
from conciliare.errors import Conflict


def test_returns_the_first_attempt_that_wins_and_pauses_between_attempts() -> None:
    outcomes = iter([None, None, "scritto"])
    slept: list[float] = []
    assert concurrency.until_written(lambda: next(outcomes), sleep=slept.append) == "scritto"
    assert len(slept) == 2  # no pause before the first attempt


def test_gives_up_with_a_conflict_after_the_bound() -> None:
    calls: list[int] = []

    def always_loses() -> None:
        calls.append(1)

    with pytest.raises(Conflict) as raised:
        concurrency.until_written(always_loses, attempts=5, busy_message="occupato", sleep=lambda _: None)
    assert len(calls) == 5 and raised.value.detail == "occupato"


def test_a_refusal_of_the_rule_is_not_retried() -> None:
    calls: list[int] = []

    def refuses() -> None:
        calls.append(1)
        raise Conflict("già membro")

    with pytest.raises(Conflict, match="già membro"):
        concurrency.until_written(refuses, sleep=lambda _: None)
    assert calls == [1]


def test_pauses_are_jittered_and_capped() -> None:
    pauses = [concurrency.pause_before(attempt) for attempt in range(1, 40)]
    assert all(0 <= p <= concurrency.RETRY_CAP_SECONDS for p in pauses)
    assert pauses[0] <= concurrency.RETRY_BASE_SECONDS * 2
    assert len(set(pauses)) > 1  # random, so concurrent losers do not collide again in step
