"""Lease locks that hold on MongoDB *and* FerretDB 1.x.

FerretDB 1.24 (SQLite backend) applies an update as read, change, rewrite: a
conditional update (``{"version": v}`` or ``{"n": {"$lt": cap}}``) is not atomic
there, and two concurrent updates of one document can lose one. Inserting a
document whose unique key is taken, and deleting a document, are atomic on both.
A lock is therefore one document in a ``locks`` collection with a unique ``key``;
each acquisition has its own ``_id``, so breaking a dead holder's expired lease
deletes exactly that lease and never a newer holder's.
"""

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from conciliare.contracts.common import new_id, utc_now
from conciliare.errors import Conflict

STALE_CHECK_SECONDS = 2.0


class LeaseLocks:
    def __init__(self, database: Database[dict[str, Any]], collection: str = "locks") -> None:
        self.collection = database[collection]

    def ensure_indexes(self) -> None:
        self.collection.create_index("key", unique=True)

    def try_lock(self, key: str, now: datetime, lease_seconds: float) -> str | None:
        """Take the lock ``key`` and return its token, or None if someone holds it."""
        token = new_id()
        try:
            self.collection.insert_one({"_id": token, "key": key, "expires_at": now + timedelta(seconds=lease_seconds)})
        except DuplicateKeyError:
            return None
        return token

    def release(self, token: str) -> None:
        self.collection.delete_one({"_id": token})

    def break_stale(self, key: str, now: datetime) -> bool:
        """Remove the lease of a holder that died (expired); True if the key is free now."""
        held = self.collection.find_one({"key": key})
        if held is None:
            return True
        if held["expires_at"] >= now:
            return False
        return self.collection.delete_one({"_id": held["_id"]}).deleted_count == 1


def acquire(
    locks: LeaseLocks,
    key: str,
    *,
    wait: float,
    lease: float,
    busy_message: str,
    now: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Wait up to ``wait`` seconds for ``key``; raise ``Conflict(busy_message)`` past that."""
    deadline = monotonic() + wait
    next_stale_check = monotonic() + STALE_CHECK_SECONDS
    delay = 0.005
    while True:
        token = locks.try_lock(key, now(), lease)
        if token is not None:
            return token
        moment = monotonic()
        if moment >= next_stale_check:
            locks.break_stale(key, now())
            next_stale_check = moment + STALE_CHECK_SECONDS
        if moment >= deadline:
            raise Conflict(busy_message)
        # Jitter keeps competing workers from retrying in lock-step.
        sleep(delay * (0.5 + random.random()))  # noqa: S311 - timing only
        delay = min(delay * 2, 0.05)


@contextmanager
def held(locks: LeaseLocks, key: str, *, wait: float = 5.0, lease: float = 20.0, busy_message: str) -> Iterator[None]:
    """Run the block while holding ``key``."""
    token = acquire(locks, key, wait=wait, lease=lease, busy_message=busy_message)
    try:
        yield
    finally:
        locks.release(token)


BUSY = "La risorsa è in modifica da parte di qualcun altro: riprova tra qualche secondo."


def document_key(collection: str, document_id: Any) -> str:
    """The lock every writer of one document takes (the outbox relay included)."""
    return f"{collection}:{document_id}"


def update_if_version(
    database: Database[dict[str, Any]],
    locks: LeaseLocks,
    collection: str,
    document_id: Any,
    expected_version: int,
    update: dict[str, Any],
) -> bool:
    """Apply ``update`` only if the document is still at ``expected_version``.

    A filter on ``version`` alone is atomic on MongoDB but not on FerretDB 1.x,
    so the check and the write happen under the document's lease lock.
    """
    with held(locks, document_key(collection, document_id), busy_message=BUSY):
        current = database[collection].find_one({"_id": document_id}, {"version": 1})
        if current is None or current.get("version") != expected_version:
            return False
        database[collection].update_one({"_id": document_id}, update)
        return True
