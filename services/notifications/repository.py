"""Storage of the notifications service: the only code that knows its MongoDB layout.

Collections::

    deliveries     {_id: "<event_id>:<recipient>:<channel>", event_id, event_type, alliance_id,
                    recipient, channel, target, subscription_id, status, attempts, last_error,
                    next_attempt_at, content: {subject, text, html} | {body}, created_at,
                    updated_at, version}
    due            {_id: delivery id, due_at}        only deliveries still to be attempted
    inboxes        {_id: recipient, items: [InboxItem] (newest last, at most INBOX_LIMIT)}
    preferences    {_id: recipient, channels, muted, language, version}
    subscriptions  {_id, partner_id, url, event_kinds, description, secret, active, created_at}
    processed_events {_id: "<consumer>:<event_id>", processed_at}   (the chassis inbox, conciliare/chassis/inbox.py)

A delivery is inserted once under its deterministic ``_id`` (a duplicate key means it
exists already: the event was redelivered). Before a delivery is attempted its entry
in ``due`` is written with a lease in the future, so a crash between the insert and
the attempt leaves it to the retry timer instead of losing it; the entry is removed
when the delivery is sent or failed, so the timer scans only what is pending (a small
collection: mongo-java-server scans for anything but ``_id``). La Posta keeps one
document per recipient with a bounded list, read by ``_id``; the unread count is
computed from that list. Every attempt holds the delivery's lease in ``due``
(single-document atomic claim on a small collection), so its writes go by ``_id``
alone: on mongo-java-server any filter beyond ``_id`` scans the collection.
Subscriptions are scanned (few per platform) when an event is fanned out.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from conciliare.chassis.inbox import Inbox
from services.notifications.domain import (
    INBOX_LIMIT,
    Channel,
    DeliveryState,
    DeliveryStatus,
    EventKind,
    Language,
    Preferences,
    SubscriptionRule,
    default_preferences,
)

Document = dict[str, Any]
DELIVERIES = "deliveries"
DUE = "due"
INBOXES = "inboxes"
PREFERENCES = "preferences"
SUBSCRIPTIONS = "subscriptions"
# The chassis inbox's collection, read here by ``_id`` (its ``seen`` counts, which scans).
DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Delivery:
    id: str
    event_id: str
    event_type: str
    alliance_id: str
    recipient: str
    channel: Channel
    target: str
    subscription_id: str | None
    state: DeliveryState
    content: dict[str, str]
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class InboxItem:
    id: str
    recipient: str
    event_id: str
    event_type: str
    title: str
    body: str
    read: bool
    created_at: datetime


@dataclass(frozen=True)
class Subscription:
    id: str
    partner_id: str
    url: str
    event_kinds: list[str]
    description: str | None
    secret: str
    active: bool
    created_at: datetime

    def rule(self) -> SubscriptionRule:
        return SubscriptionRule(self.id, self.partner_id, frozenset(self.event_kinds), self.active)


@dataclass(frozen=True)
class DeliveryFilter:
    alliance_ids: list[str] | None = None
    subscription_ids: list[str] | None = None
    status: str | None = None


def ensure_indexes(db: Database[Document]) -> None:
    Inbox(db).ensure_indexes()
    # Accepted, not used by mongo-java-server (it scans); used by MongoDB in Docker mode.
    db[DUE].create_index([("due_at", ASCENDING)])
    db[DELIVERIES].create_index([("alliance_id", ASCENDING), ("created_at", DESCENDING)])
    db[SUBSCRIPTIONS].create_index([("partner_id", ASCENDING)])


def _delivery(doc: Document) -> Delivery:
    return Delivery(
        id=doc["_id"],
        event_id=doc["event_id"],
        event_type=doc["event_type"],
        alliance_id=doc["alliance_id"],
        recipient=doc["recipient"],
        channel=Channel(doc["channel"]),
        target=doc["target"],
        subscription_id=doc.get("subscription_id"),
        state=DeliveryState(
            status=DeliveryStatus(doc["status"]),
            attempts=doc["attempts"],
            last_error=doc.get("last_error"),
            next_attempt_at=doc.get("next_attempt_at"),
        ),
        content=doc.get("content") or {},
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        version=doc["version"],
    )


def _delivery_doc(d: Delivery) -> Document:
    return {
        "_id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "alliance_id": d.alliance_id,
        "recipient": d.recipient,
        "channel": d.channel.value,
        "target": d.target,
        "subscription_id": d.subscription_id,
        "status": d.state.status.value,
        "attempts": d.state.attempts,
        "last_error": d.state.last_error,
        "next_attempt_at": d.state.next_attempt_at,
        "content": d.content,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "version": d.version,
    }


def _state_update(state: DeliveryState, now: datetime) -> Document:
    return {
        "$set": {
            "status": state.status.value,
            "attempts": state.attempts,
            "last_error": state.last_error,
            "next_attempt_at": state.next_attempt_at,
            "updated_at": now,
        },
        "$inc": {"version": 1},
    }


def _insert_new(collection: Any, documents: list[Document]) -> set[int]:
    """Insert what is not there yet (unordered batch); indexes of the documents that existed."""
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {int(e["index"]) for e in errors}
    return set()


def _subscription(doc: Document) -> Subscription:
    return Subscription(
        id=doc["_id"],
        partner_id=doc["partner_id"],
        url=doc["url"],
        event_kinds=list(doc["event_kinds"]),
        description=doc.get("description"),
        secret=doc["secret"],
        active=doc["active"],
        created_at=doc["created_at"],
    )


class NotificationsRepository:
    def __init__(self, db: Database[Document]) -> None:
        self.db = db

    def ping(self) -> None:
        self.db.command("ping")

    # --- consumed events --------------------------------------------------------------

    def event_done(self, consumer: str, event_id: str) -> bool:
        """Whether an event was fanned out already (the chassis inbox)."""
        return Inbox(self.db).seen(consumer, event_id)

    def mark_event_done(self, consumer: str, event_id: str, processed_at: datetime) -> None:
        Inbox(self.db).mark(consumer, event_id, processed_at)

    # --- deliveries -------------------------------------------------------------------

    def add_deliveries(self, deliveries: list[Delivery], lease_until: datetime) -> list[Delivery]:
        """Store queued deliveries once each; the ones that did not exist yet (a redelivered
        event finds its deliveries stored).

        Their ``due`` entries (with a lease: the caller attempts them now) come first, so
        no crash can leave a stored delivery that nobody attempts; a stale ``due`` entry
        for nothing is dropped by the timer. Two batched writes, whatever the count.
        """
        if not deliveries:
            return []
        _insert_new(self.db[DUE], [{"_id": d.id, "due_at": lease_until} for d in deliveries])
        failed = _insert_new(self.db[DELIVERIES], [_delivery_doc(d) for d in deliveries])
        return [d for index, d in enumerate(deliveries) if index not in failed]

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        doc = self.db[DELIVERIES].find_one({"_id": delivery_id})
        return None if doc is None else _delivery(doc)

    def save_states(self, outcomes: list[tuple[Delivery, DeliveryState]], now: datetime) -> None:
        """``save_state`` for many deliveries, in three batched writes."""
        if not outcomes:
            return
        self.db[DELIVERIES].bulk_write([UpdateOne({"_id": d.id}, _state_update(s, now)) for d, s in outcomes])
        retry = [
            UpdateOne({"_id": d.id}, {"$set": {"due_at": s.next_attempt_at}}, upsert=True)
            for d, s in outcomes
            if s.status is DeliveryStatus.QUEUED and s.next_attempt_at is not None
        ]
        if retry:
            self.db[DUE].bulk_write(retry)
        done = [d.id for d, s in outcomes if s.status is not DeliveryStatus.QUEUED]
        if done:
            self.db[DUE].delete_many({"_id": {"$in": done}})

    def save_state(self, delivery: Delivery, state: DeliveryState, now: datetime) -> None:
        """Store a delivery's new state and keep its ``due`` entry in step.

        Written by ``_id`` alone (a filter on more fields scans on mongo-java-server):
        the attempt that writes holds the delivery's lease in ``due`` (taken at insert,
        by ``claim_due`` or by ``claim``), so no other attempt runs meanwhile.
        """
        self.db[DELIVERIES].update_one({"_id": delivery.id}, _state_update(state, now))
        if state.status is DeliveryStatus.QUEUED and state.next_attempt_at is not None:
            self.db[DUE].update_one({"_id": delivery.id}, {"$set": {"due_at": state.next_attempt_at}}, upsert=True)
        elif state.status is not DeliveryStatus.QUEUED:
            self.db[DUE].delete_one({"_id": delivery.id})

    def requeue(self, delivery: Delivery, state: DeliveryState, now: datetime, lease_until: datetime) -> bool:
        """Queue a sent or failed delivery again, holding its lease; False if it changed meanwhile."""
        won = self.db[DELIVERIES].find_one_and_update(
            {"_id": delivery.id, "version": delivery.version},
            {
                "$set": {
                    "status": state.status.value,
                    "attempts": state.attempts,
                    "next_attempt_at": state.next_attempt_at,
                    "updated_at": now,
                },
                "$inc": {"version": 1},
            },
            projection={"_id": 1},
        )
        if won is None:
            return False
        self.db[DUE].update_one({"_id": delivery.id}, {"$set": {"due_at": lease_until}}, upsert=True)
        return True

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[str]:
        """Ids of deliveries due by ``now``, each claimed (its due time moved to the lease end)."""
        claimed: list[str] = []
        for doc in self.db[DUE].find({"due_at": {"$lte": now}}, {"_id": 1}).limit(limit):
            won = self.db[DUE].find_one_and_update(
                {"_id": doc["_id"], "due_at": {"$lte": now}},
                {"$set": {"due_at": lease_until}},
                return_document=ReturnDocument.AFTER,
            )
            if won is not None:
                claimed.append(str(won["_id"]))
        return claimed

    def drop_due(self, delivery_id: str) -> None:
        self.db[DUE].delete_one({"_id": delivery_id})

    def list_deliveries(self, where: DeliveryFilter, limit: int, offset: int) -> tuple[list[Delivery], int]:
        query: Document = {}
        if where.alliance_ids is not None:
            query["alliance_id"] = {"$in": where.alliance_ids}
        if where.subscription_ids is not None:
            query["subscription_id"] = {"$in": where.subscription_ids}
        if where.status is not None:
            query["status"] = where.status
        total = self.db[DELIVERIES].count_documents(query)
        cursor = self.db[DELIVERIES].find(query).sort([("created_at", DESCENDING), ("_id", ASCENDING)])
        return [_delivery(d) for d in cursor.skip(offset).limit(limit)], total

    def count_deliveries(self, query: Document) -> int:
        return self.db[DELIVERIES].count_documents(query)

    # --- La Posta ---------------------------------------------------------------------------

    def push_inbox(self, item: InboxItem) -> None:
        """Append an item once, keeping the newest INBOX_LIMIT.

        Read, then push by ``_id`` alone (a compound filter scans on mongo-java-server):
        the caller holds the delivery's lease, so the only replay is after a crash
        between the push and the delivery's state, which the read catches.
        """
        if any(existing.id == item.id for existing in self.inbox_items(item.recipient)):
            return
        entry = {
            "id": item.id,
            "event_id": item.event_id,
            "event_type": item.event_type,
            "title": item.title,
            "body": item.body,
            "read": item.read,
            "created_at": item.created_at,
        }
        self.db[INBOXES].update_one(
            {"_id": item.recipient}, {"$push": {"items": {"$each": [entry], "$slice": -INBOX_LIMIT}}}, upsert=True
        )

    def inbox_items(self, recipient: str) -> list[InboxItem]:
        doc = self.db[INBOXES].find_one({"_id": recipient})
        if doc is None:
            return []
        return [
            InboxItem(
                id=e["id"],
                recipient=recipient,
                event_id=e["event_id"],
                event_type=e["event_type"],
                title=e["title"],
                body=e["body"],
                read=e["read"],
                created_at=e["created_at"],
            )
            for e in doc.get("items", [])
        ]

    def mark_read(self, recipient: str, item_id: str) -> bool:
        """True when the item exists in the recipient's inbox (read now or before)."""
        doc = self.db[INBOXES].find_one_and_update(
            {"_id": recipient, "items.id": item_id},
            {"$set": {"items.$.read": True}},
            projection={"_id": 1},
        )
        return doc is not None

    # --- preferences ---------------------------------------------------------------------------

    def preferences(self, recipient: str) -> Preferences:
        doc = self.db[PREFERENCES].find_one({"_id": recipient})
        if doc is None:
            return default_preferences(recipient)
        return Preferences(
            recipient=recipient,
            channels=frozenset(Channel(c) for c in doc["channels"]),
            muted=frozenset(EventKind(k) for k in doc["muted"]),
            language=Language(doc["language"]),
            version=doc["version"],
        )

    def save_preferences(self, prefs: Preferences) -> bool:
        """Version-guarded write (version 0: never stored, inserted)."""
        fields = {
            "channels": sorted(c.value for c in prefs.channels),
            "muted": sorted(k.value for k in prefs.muted),
            "language": prefs.language.value,
        }
        if prefs.version == 0:
            try:
                self.db[PREFERENCES].insert_one({"_id": prefs.recipient, **fields, "version": 1})
            except DuplicateKeyError:
                return False
            return True
        result = self.db[PREFERENCES].update_one(
            {"_id": prefs.recipient, "version": prefs.version}, {"$set": fields, "$inc": {"version": 1}}
        )
        return result.modified_count == 1

    # --- subscriptions ---------------------------------------------------------------------------

    def add_subscription(self, subscription: Subscription) -> None:
        self.db[SUBSCRIPTIONS].insert_one(
            {
                "_id": subscription.id,
                "partner_id": subscription.partner_id,
                "url": subscription.url,
                "event_kinds": subscription.event_kinds,
                "description": subscription.description,
                "secret": subscription.secret,
                "active": subscription.active,
                "created_at": subscription.created_at,
            }
        )

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        doc = self.db[SUBSCRIPTIONS].find_one({"_id": subscription_id})
        return None if doc is None else _subscription(doc)

    def subscriptions(self, partner_id: str | None = None) -> list[Subscription]:
        query: Document = {} if partner_id is None else {"partner_id": partner_id}
        return [_subscription(d) for d in self.db[SUBSCRIPTIONS].find(query).sort("created_at", ASCENDING)]

    def delete_subscription(self, subscription_id: str) -> bool:
        return self.db[SUBSCRIPTIONS].delete_one({"_id": subscription_id}).deleted_count == 1
