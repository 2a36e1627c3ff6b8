"""Storage of the catalog service: the only code that knows its MongoDB layout.

One document per offering in ``offerings``::

    {_id, alliance_id, provider_partner_id, status, version,
     spec: <OfferingSpec JSON dump: dates as ISO strings>,
     search_tokens: [...], calendar_first_day, calendar_last_day,
     created_at, updated_at, published_at, _outbox, _outbox_pending}

``search_tokens`` and the calendar bounds only feed the database prefilter of a
search; the domain's ``matches`` stays the authority on what matches.
"""

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database

from conciliare.chassis.locks import update_if_version
from conciliare.chassis.outbox import OutboxRelay, attach_events, push_events
from conciliare.contracts.common import IntegrationEvent
from services.catalog.domain import SearchCriteria, tokenize

Document = dict[str, Any]
OUTBOX_COLLECTIONS = ("offerings",)
# Never returned to callers: the outbox is the relay's business.
HIDDEN = {"_outbox": 0, "_outbox_pending": 0}


def ensure_indexes(db: Database[Document]) -> None:
    db.offerings.create_index([("alliance_id", ASCENDING), ("status", ASCENDING)])
    db.offerings.create_index([("provider_partner_id", ASCENDING), ("created_at", ASCENDING)])
    OutboxRelay(db, OUTBOX_COLLECTIONS).ensure_indexes()


def search_prefilter(criteria: SearchCriteria, statuses: Sequence[str], unpublished_only_of: str | None) -> Document:
    """A MongoDB filter no matching offering fails (it may let some non-matching through).

    FerretDB 1.x answers ``$all`` with regular expressions with no documents at all
    (and no error), so each text token is its own anchored ``$regex`` under ``$and``.
    """
    clauses: list[Document] = [{"alliance_id": criteria.alliance_id}, {"status": {"$in": list(statuses)}}]
    if unpublished_only_of is not None:
        clauses.append({"$or": [{"status": "published"}, {"provider_partner_id": unpublished_only_of}]})
    if criteria.provider_partner_id is not None:
        clauses.append({"provider_partner_id": criteria.provider_partner_id})
    if criteria.comune_istat is not None:
        clauses.append({"spec.comune_istat": criteria.comune_istat})
    if criteria.types:
        clauses.append({"spec.type": {"$in": [t.value for t in criteria.types]}})
    if criteria.needs:
        clauses.append({"spec.special_needs_supported": {"$all": [n.value for n in criteria.needs]}})
    age = criteria.child_age()
    if age is not None:
        clauses.append({"spec.age_range.min_months": {"$lte": age}})
        clauses.append({"spec.age_range.max_months": {"$gte": age}})
    # ISO dates compare as strings; offerings without periods (null bounds) drop out.
    if criteria.date_from is not None:
        clauses.append({"calendar_last_day": {"$gte": criteria.date_from.isoformat()}})
    if criteria.date_to is not None:
        clauses.append({"calendar_first_day": {"$lte": criteria.date_to.isoformat()}})
    if criteria.text:
        # Tokens are [a-z0-9]+ (see ``tokenize``): nothing to escape.
        clauses.extend({"search_tokens": {"$regex": f"^{token}"}} for token in tokenize(criteria.text))
    return {"$and": clauses}


class CatalogRepository:
    def __init__(self, db: Database[Document]) -> None:
        self.db = db
        self.outbox = OutboxRelay(db, OUTBOX_COLLECTIONS)

    def insert_offering(self, doc: Document, events: list[IntegrationEvent]) -> None:
        self.db.offerings.insert_one(attach_events(doc, events))

    def get_offering(self, offering_id: str) -> Document | None:
        return self.db.offerings.find_one({"_id": offering_id}, HIDDEN)

    def save_offering(
        self, offering_id: str, expected_version: int, fields: Document, events: list[IntegrationEvent]
    ) -> bool:
        """Store ``fields`` and queue ``events`` if nobody changed the offering since
        ``expected_version``; False when someone did (the caller decides what then)."""
        update = push_events({"$set": {**fields, "version": expected_version + 1}}, events)
        return update_if_version(self.db, self.outbox.locks, "offerings", offering_id, expected_version, update)

    def search_candidates(
        self, criteria: SearchCriteria, statuses: Sequence[str], unpublished_only_of: str | None
    ) -> list[Document]:
        query = search_prefilter(criteria, statuses, unpublished_only_of)
        return list(self.db.offerings.find(query, HIDDEN))

    def find_by_provider(
        self,
        provider_partner_id: str,
        alliance_id: str | None,
        statuses: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Document], int]:
        query: Document = {"provider_partner_id": provider_partner_id}
        if alliance_id is not None:
            query["alliance_id"] = alliance_id
        if statuses is not None:
            query["status"] = {"$in": list(statuses)}
        total = self.db.offerings.count_documents(query)
        cursor = (
            self.db.offerings.find(query, HIDDEN)
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return list(cursor), total
