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

from conciliare.chassis.locks import LeaseLocks, document_key
from conciliare.contracts.common import IntegrationEvent, utc_now

OUTBOX_FIELD = "_outbox"
PENDING_FLAG = "_outbox_pending"

Dispatch = Callable[[str, dict[str, Any]], None]
LEASE_SECONDS = 20.0


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

    Removing a published event rewrites the document on FerretDB 1.x, so it is
    done under the document's lease lock, like every other write of it; a
    document someone else is writing is skipped and picked up on the next pass.
    """

    def __init__(self, database: Database[dict[str, Any]], collections: Sequence[str]) -> None:
        self.database = database
        self.collections = collections
        self.locks = LeaseLocks(database)

    def ensure_indexes(self) -> None:
        self.locks.ensure_indexes()
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
            query: dict[str, Any] = {PENDING_FLAG: True}
            if document_id is not None:
                query["_id"] = document_id
            for doc in coll.find(query, {OUTBOX_FIELD: 1}).limit(batch):
                key = document_key(name, doc["_id"])
                token = self.locks.try_lock(key, utc_now(), LEASE_SECONDS)
                if token is None:
                    self.locks.break_stale(key, utc_now())  # a holder that died frees it for next pass
                    continue
                try:
                    published += self._publish_document(coll, doc["_id"], dispatch)
                finally:
                    self.locks.release(token)
        return published

    def _publish_document(self, coll: Collection[dict[str, Any]], document_id: Any, dispatch: Dispatch) -> int:
        doc = coll.find_one({"_id": document_id}, {OUTBOX_FIELD: 1})
        records = doc.get(OUTBOX_FIELD, []) if doc else []
        for record in records:
            dispatch(record["event_type"], record["payload"])
            # Pull the record exactly as read: FerretDB 1.x ignores $pull with a
            # condition ({"event_id": ...}) without any error.
            coll.update_one({"_id": document_id}, {"$pull": {OUTBOX_FIELD: record}})
        # Clear the flag only if nothing new was queued meanwhile.
        coll.update_one({"_id": document_id, OUTBOX_FIELD: []}, {"$set": {PENDING_FLAG: False}})
        return len(records)
