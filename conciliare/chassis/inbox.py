"""Idempotent event consumption: each consumer handles an event id at most once."""

from collections.abc import Callable
from typing import Any, TypeVar

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

T = TypeVar("T")


class Inbox:
    """Remembers which events a consumer has applied.

    The handler's own writes must be safe to repeat (upserts, conditional
    updates): a crash after applying and before marking replays the event once.
    """

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self.collection = database["processed_events"]

    def ensure_indexes(self) -> None:
        self.collection.create_index("processed_at")

    def seen(self, consumer: str, event_id: str) -> bool:
        # find_one by _id alone: the one query mongo-java-server answers from an index
        # (count_documents is an aggregation there, and scans the collection).
        return self.collection.find_one({"_id": f"{consumer}:{event_id}"}, {"_id": 1}) is not None

    def mark(self, consumer: str, event_id: str, processed_at: Any) -> None:
        try:
            self.collection.insert_one({"_id": f"{consumer}:{event_id}", "processed_at": processed_at})
        except DuplicateKeyError:
            pass

    def consume_once(self, consumer: str, payload: dict[str, Any], apply: Callable[[], T]) -> T | None:
        """Run ``apply`` unless the event in ``payload`` was already applied."""
        event_id = str(payload["event_id"])
        if self.seen(consumer, event_id):
            return None
        result = apply()
        self.mark(consumer, event_id, payload.get("occurred_at"))
        return result
