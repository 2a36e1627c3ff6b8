"""Transactional outbox without multi-document transactions.

An aggregate's state change and the events it causes are written in *one*
single-document update: the events ride inside the document in ``_outbox``. After
the write the worker publishes them and pulls them out; a timer does the same for
anything a crash left behind. Delivery is therefore at-least-once and consumers
de-duplicate by ``event_id`` (see ``inbox.py``).
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from conciliare.contracts.common import IntegrationEvent

OUTBOX_FIELD = "_outbox"
PENDING_FLAG = "_outbox_pending"

Dispatch = Callable[[str, dict[str, Any]], None]


def outbox_record(event: IntegrationEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "payload": event.model_dump(mode="json"),
    }


def attach_events(document: dict[str, Any], events: Iterable[IntegrationEvent]) -> dict[str, Any]:
    """Return ``document`` carrying ``events``, for an insert that stores both at once."""
    records = [outbox_record(event) for event in events]
    return {**document, OUTBOX_FIELD: [*document.get(OUTBOX_FIELD, []), *records], PENDING_FLAG: True}


def push_events(update: dict[str, Any], events: Iterable[IntegrationEvent]) -> dict[str, Any]:
    """Extend a MongoDB update document so the same update also queues ``events``."""
    records = [outbox_record(event) for event in events]
    merged = {key: dict(value) for key, value in update.items()}
    merged.setdefault("$push", {})[OUTBOX_FIELD] = {"$each": records}
    merged.setdefault("$set", {})[PENDING_FLAG] = True
    return merged


class OutboxRelay:
    """Publishes the events waiting in the outboxes of some collections.

    Two relays (two instances of a service, or the write path and the timer) may
    publish the same event twice; consumers de-duplicate by ``event_id``, so that
    costs a redelivery, never a loss. No lock is needed: each published event is
    pulled by its id, atomically, and a newer event pushed meanwhile stays.
    """

    def __init__(self, database: Database[dict[str, Any]], collections: Sequence[str]) -> None:
        self.database = database
        self.collections = collections

    def ensure_indexes(self) -> None:
        for name in self.collections:
            self.database[name].create_index(PENDING_FLAG, sparse=True)

    def publish_pending(
        self,
        dispatch: Dispatch,
        collection: str | None = None,
        document_id: Any = None,
        batch: int = 100,
    ) -> int:
        """Dispatch waiting events (of one document, or of everything) and remove them."""
        published = 0
        for name in [collection] if collection else self.collections:
            coll = self.database[name]
            # An ``_id`` look-up alone is what mongo-java-server answers from its index;
            # the pending flag is then checked on the one document.
            query: dict[str, Any] = {"_id": document_id} if document_id is not None else {PENDING_FLAG: True}
            for doc in coll.find(query, {OUTBOX_FIELD: 1, PENDING_FLAG: 1}).limit(batch):
                if doc.get(PENDING_FLAG):
                    published += self._publish_document(coll, doc["_id"], doc.get(OUTBOX_FIELD, []), dispatch)
        return published

    def _publish_document(
        self, coll: Collection[dict[str, Any]], document_id: Any, records: list[dict[str, Any]], dispatch: Dispatch
    ) -> int:
        published: list[str] = []
        try:
            for record in records:
                dispatch(record["event_type"], record["payload"])
                published.append(record["event_id"])
        finally:
            # One write however many events: the document may be large (a seat aggregate).
            # If a dispatch failed, what went out is removed and the rest waits for a pass.
            if published:
                coll.update_one({"_id": document_id}, {"$pull": {OUTBOX_FIELD: {"event_id": {"$in": published}}}})
        # Clear the flag only if nothing new was queued meanwhile.
        coll.update_one({"_id": document_id, OUTBOX_FIELD: {"$size": 0}}, {"$set": {PENDING_FLAG: False}})
        return len(published)
