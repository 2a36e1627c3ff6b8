"""Optimistic concurrency: the one retry loop every service uses around a guarded write.

A use case reads a document with its ``version``, applies a domain rule, and writes
back with a filter on that version (atomic on MongoDB and on mongo-java-server). A
write that matched nothing lost the race to another writer: read again, apply the
rule to what is stored now, try again. Each lost attempt means another writer won,
so contention settles; full-jitter pauses spread competing workers apart.
"""

import random
import time
from collections.abc import Callable
from typing import TypeVar

from conciliare.errors import Conflict, DomainError

T = TypeVar("T")

WRITE_ATTEMPTS = 20
RETRY_BASE_SECONDS = 0.005
RETRY_CAP_SECONDS = 0.1
BUSY = "Troppe modifiche contemporanee a questo elemento: riprova tra qualche istante."


def pause_before(attempt: int) -> float:
    """Full jitter: a random pause up to an exponentially growing, capped bound."""
    return random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt))  # noqa: S311 - timing only


def until_written(
    attempt: Callable[[], T | None],
    *,
    attempts: int = WRITE_ATTEMPTS,
    busy_message: str = BUSY,
    busy_error: type[DomainError] = Conflict,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run ``attempt`` (read, decide, guarded write) until its write wins.

    ``attempt`` returns None when its guarded write lost to a concurrent one and
    raises when the rule refuses; after ``attempts`` lost races the caller gets
    ``busy_error`` (a ``Conflict`` by default; ``Unavailable`` where the caller should
    simply retry later, as on a click day) with ``busy_message``.
    """
    pause = sleep or time.sleep
    for number in range(attempts):
        if number:
            pause(pause_before(number))
        result = attempt()
        if result is not None:
            return result
    raise busy_error(busy_message)
