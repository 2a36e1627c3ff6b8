"""Storage of the catalog service: the only code that knows its MongoDB layout.

One document per offering in ``offerings``::

    {_id, alliance_id, provider_partner_id, status, version,
     spec: <OfferingSpec JSON dump: dates as ISO strings>,
     search_tokens: [...], calendar_first_day, calendar_last_day,
     created_at, updated_at, status_changed_at, published_at,
     _outbox, _outbox_pending}

``search_tokens`` and the calendar bounds only feed the database prefilter of a
search; the domain's ``matches`` stays the authority on what matches.

Concurrency is optimistic: every write of an offering is one ``update_one`` guarded
by the version the writer read (``{"_id": id, "version": v}``) that also increments
it and queues the write's events (outbox), so two writers of one version cannot
both win; ``matched_count`` tells the caller whether it did.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from conciliare.chassis.outbox import Dispatch, OutboxRelay, attach_events, push_events
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.offerings import OfferingSpec
from conciliare.contracts.taxonomy import OfferingStatus
from services.catalog.domain import SearchCriteria, search_tokens, tokenize

Document = dict[str, Any]
COLLECTION = "offerings"
OUTBOX_COLLECTIONS = (COLLECTION,)
# Never returned to callers: the outbox is the relay's business.
HIDDEN = {"_outbox": 0, "_outbox_pending": 0}


@dataclass(frozen=True)
class Offering:
    """An offering as stored, whatever its status (the use cases decide who sees it)."""

    id: str
    alliance_id: str
    provider_partner_id: str
    status: OfferingStatus
    version: int
    spec: OfferingSpec
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None


def stored_time(moment: datetime) -> datetime:
    """``moment`` as MongoDB keeps it (milliseconds), so an answer equals later reads."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def ensure_indexes(db: Database[Document]) -> None:
    db.offerings.create_index([("alliance_id", ASCENDING), ("status", ASCENDING)])
    db.offerings.create_index([("provider_partner_id", ASCENDING), ("created_at", ASCENDING)])
    OutboxRelay(db, OUTBOX_COLLECTIONS).ensure_indexes()


def search_prefilter(criteria: SearchCriteria, statuses: Sequence[str], unpublished_only_of: str | None) -> Document:
    """A MongoDB filter no matching offering fails (it may let some non-matching through).

    Each text token is its own anchored ``$regex`` under ``$and`` (``$all`` with
    regular expressions is not answered alike by every MongoDB-wire server).
    """
    clauses: list[Document] = [{"status": {"$in": list(statuses)}}]
    if criteria.alliance_id is not None:
        clauses.append({"alliance_id": criteria.alliance_id})
    if criteria.alliance_ids is not None:
        clauses.append({"alliance_id": {"$in": list(criteria.alliance_ids)}})
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


def _spec_fields(spec: OfferingSpec) -> Document:
    """What is stored for a spec: its JSON dump plus what the search prefilter reads."""
    periods = spec.calendar.periods
    return {
        "spec": spec.model_dump(mode="json"),
        "search_tokens": search_tokens(spec),
        "calendar_first_day": min(p.start for p in periods).isoformat() if periods else None,
        "calendar_last_day": max(p.end for p in periods).isoformat() if periods else None,
    }


def _offering(doc: Document) -> Offering:
    return Offering(
        id=doc["_id"],
        alliance_id=doc["alliance_id"],
        provider_partner_id=doc["provider_partner_id"],
        status=OfferingStatus(doc["status"]),
        version=doc["version"],
        spec=OfferingSpec.model_validate(doc["spec"]),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        published_at=doc.get("published_at"),
    )


class CatalogRepository:
    def __init__(self, db: Database[Document]) -> None:
        self.db = db
        self.outbox = OutboxRelay(db, OUTBOX_COLLECTIONS)

    def insert_offering(self, offering: Offering, events: list[IntegrationEvent]) -> None:
        doc: Document = {
            "_id": offering.id,
            "alliance_id": offering.alliance_id,
            "provider_partner_id": offering.provider_partner_id,
            "status": offering.status.value,
            "version": offering.version,
            **_spec_fields(offering.spec),
            "created_at": offering.created_at,
            "updated_at": offering.updated_at,
            "published_at": offering.published_at,
        }
        self.db.offerings.insert_one(attach_events(doc, events))

    def insert_offering_once(self, offering: Offering, events: list[IntegrationEvent]) -> bool:
        """Insert unless an offering with this id exists (a retried create): whether it inserted."""
        try:
            self.insert_offering(offering, events)
        except DuplicateKeyError:
            return False
        return True

    def get_offering(self, offering_id: str) -> Offering | None:
        doc = self.db.offerings.find_one({"_id": offering_id}, HIDDEN)
        return None if doc is None else _offering(doc)

    def _save(self, offering_id: str, expected_version: int, fields: Document, events: list[IntegrationEvent]) -> bool:
        """One guarded write: ``fields``, version + 1 and ``events``, if the version is still
        ``expected_version``. False when another writer got there first."""
        update = push_events({"$set": fields, "$inc": {"version": 1}}, events)
        result = self.db.offerings.update_one({"_id": offering_id, "version": expected_version}, update)
        return result.matched_count == 1

    def save_spec(
        self,
        offering_id: str,
        expected_version: int,
        spec: OfferingSpec,
        now: datetime,
        events: list[IntegrationEvent],
    ) -> bool:
        """Replace the offering's spec if nobody changed it since ``expected_version``."""
        return self._save(offering_id, expected_version, {**_spec_fields(spec), "updated_at": now}, events)

    def save_status(
        self,
        offering_id: str,
        expected_version: int,
        status: OfferingStatus,
        now: datetime,
        first_publication: bool,
        events: list[IntegrationEvent],
    ) -> bool:
        """Record a status change if nobody changed the offering since ``expected_version``."""
        fields: Document = {"status": status.value, "updated_at": now, "status_changed_at": now}
        if first_publication:
            fields["published_at"] = now
        return self._save(offering_id, expected_version, fields, events)

    def publish_events(self, dispatch: Dispatch, offering_id: str) -> int:
        """Publish what the last write of one offering queued (the timer catches the rest)."""
        return self.outbox.publish_pending(dispatch, collection=COLLECTION, document_id=offering_id)

    def search_candidates(
        self, criteria: SearchCriteria, statuses: Sequence[str], unpublished_only_of: str | None
    ) -> list[Offering]:
        query = search_prefilter(criteria, statuses, unpublished_only_of)
        return [_offering(doc) for doc in self.db.offerings.find(query, HIDDEN)]

    def find_by_provider(
        self,
        provider_partner_id: str,
        alliance_id: str | None,
        statuses: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Offering], int]:
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
        return [_offering(doc) for doc in cursor], total
