"""Storage of the enrolment service: the only code that knows its MongoDB documents.

Written for what MongoDB and mongo-java-server (the native server) both guarantee:
one write to one document is atomic (``$push``, ``$pull``, an update conditional on
``version``) and unique indexes (``_id`` first) refuse duplicates. mongo-java-server
finds documents only by ``_id`` or a unique key (a filter of ``_id`` *and* another
field scans) and serialises the operations on a collection, so:
- the request path reads and writes by ``_id`` only: the child (with its own list of
  enrolments, for overlap checks), the enrolment, a refused request, the
  projections, the offering's seats;
- conditional writes (``{_id, version}``) go to small collections only: ``seats``
  (the seat aggregate with its outbox, one document per offering), ``offerings`` and
  ``alliances``; they are read without their outbox (``WHOLE``), which no reader
  needs; the relay timer scans ``seats`` (small);
- staff lists (by provider, by alliance) and the audit trail scan: not on the
  click-day path; on MongoDB the secondary indexes below serve them.
"""

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any, Final

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from conciliare.chassis.inbox import Inbox
from conciliare.chassis.outbox import OUTBOX_FIELD, OutboxRelay, attach_events, push_events
from conciliare.contracts.common import IntegrationEvent, new_id
from conciliare.contracts.identity import Role
from conciliare.contracts.taxonomy import AttendanceMode
from services.enrolment.domain import (
    ChildNeeds,
    Employment,
    EnrolmentStatus,
    Guardian,
    HouseholdSpec,
    Isee,
    IseeKind,
    MemberState,
    OfferingProjection,
    Period,
    Territory,
)
from services.enrolment.ports import Dispatch
from services.enrolment.records import (
    AttendanceMonth,
    AuditEntry,
    AuditPurpose,
    Child,
    Enrolment,
    EnrolmentFilter,
    Household,
    ListedEnrolment,
    RecordedDay,
    RefusedRequest,
)
from services.enrolment.seats import NOT_ACCEPTING, Cancellation, OfferingSeats, Reason, Rejection

Document = dict[str, Any]

# Collections whose documents carry an outbox (events written with the state change).
OUTBOX_COLLECTIONS = ("seats",)

# A document read to apply a rule and write back: everything but the events waiting
# in its outbox, which can be many (a click day's decisions) and no reader needs.
# (mongo-java-server 1.47's torn plain reads are fixed in the server's launcher,
# scripts/infra/mongo-server, and checked by tests/integration/test_database_semantics.py.)
WHOLE: Final[Document] = {OUTBOX_FIELD: 0}
DUPLICATE_KEY: Final = 11000


class _SnapshotCache:
    """The last seat aggregates built in this process, by offering and version (read-only use)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._found: dict[tuple[str, str], OfferingSeats] = {}

    def get(
        self, database: str, offering_id: str, version: int, load: Callable[[], OfferingSeats | None]
    ) -> OfferingSeats | None:
        key = (database, offering_id)
        cached = self._found.get(key)
        if cached is not None and cached.version == version:
            return cached
        loaded = load()
        if loaded is not None:
            if len(self._found) >= self._size:
                self._found.pop(next(iter(self._found)))
            self._found[key] = loaded
        return loaded


_SNAPSHOTS: Final = _SnapshotCache(size=256)


def ensure_indexes(db: Database[Document]) -> None:
    # Unique ``_id``s are the only guards this code needs. The others serve staff
    # queries on MongoDB; mongo-java-server accepts and ignores them.
    db.households.create_index("created_at")
    db.enrolments.create_index("owner_subject")
    db.enrolments.create_index("provider_partner_id")
    db.enrolments.create_index("alliance_id")
    db.audit_log.create_index([("child_id", ASCENDING), ("at", ASCENDING)])
    OutboxRelay(db, OUTBOX_COLLECTIONS).ensure_indexes()
    Inbox(db).ensure_indexes()


def _by_ids(ids: Sequence[str]) -> Document:
    # One id alone is what every server answers from the ``_id`` index; ``$in`` on
    # ``_id`` is too (mongo-java-server included).
    return {"_id": ids[0]} if len(ids) == 1 else {"_id": {"$in": list(ids)}}


class MongoRepository:
    """``ports.Repository`` on MongoDB (one service database)."""

    def __init__(self, db: Database[Document]) -> None:
        self.db = db
        self.inbox = Inbox(db)
        self.outbox = OutboxRelay(db, OUTBOX_COLLECTIONS)

    def ping(self) -> None:
        self.db.command("ping")

    # --- households ---------------------------------------------------------------------

    def claim_household(self, owner_subject: str, household_id: str) -> str:
        try:
            self.db.household_owners.insert_one({"_id": owner_subject, "household_id": household_id})
        except DuplicateKeyError:
            found = self.db.household_owners.find_one({"_id": owner_subject})
            assert found is not None
            return str(found["household_id"])
        return household_id

    def household_id_of(self, owner_subject: str) -> str | None:
        found = self.db.household_owners.find_one({"_id": owner_subject})
        return str(found["household_id"]) if found else None

    def add_household(self, household: Household) -> bool:
        doc = {
            "_id": household.id,
            "owner_subject": household.owner_subject,
            **household.spec.model_dump(mode="json"),
            "created_at": household.created_at,
            "child_ids": list(household.child_ids),
        }
        try:
            self.db.households.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def household(self, household_id: str) -> Household | None:
        found = self.db.households.find_one({"_id": household_id})
        return _household(found) if found else None

    def households(self, limit: int, offset: int) -> tuple[list[Household], int]:
        total = self.db.households.count_documents({})
        cursor = self.db.households.find({}).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [_household(doc) for doc in cursor.skip(offset).limit(limit)], total

    # --- children and their needs ----------------------------------------------------------

    def claim_child(self, household_id: str, codice_fiscale: str, child_id: str) -> str:
        key = f"{household_id}:{codice_fiscale}"
        try:
            self.db.child_claims.insert_one({"_id": key, "child_id": child_id})
        except DuplicateKeyError:
            found = self.db.child_claims.find_one({"_id": key})
            assert found is not None
            return str(found["child_id"])
        return child_id

    def store_needs(self, child_id: str, needs: ChildNeeds, at: datetime) -> None:
        doc = {"needs": sorted(need.value for need in needs.needs), "updated_at": at}
        self.db.child_needs.replace_one({"_id": child_id}, doc, upsert=True)

    def needs_of(self, child_ids: Iterable[str]) -> dict[str, ChildNeeds]:
        ids = list(dict.fromkeys(child_ids))
        if not ids:
            return {}
        return {
            doc["_id"]: ChildNeeds.model_validate({"needs": doc["needs"]})
            for doc in self.db.child_needs.find(_by_ids(ids))
        }

    def add_child(self, child: Child) -> bool:
        # Listed first: a crash before the insert leaves an id the listing skips and
        # the next attempt (same id, from the claim) completes.
        self.db.households.update_one({"_id": child.household_id}, {"$addToSet": {"child_ids": child.id}})
        doc = {
            "_id": child.id,
            "household_id": child.household_id,
            "first_name": child.first_name,
            "last_name": child.last_name,
            "codice_fiscale": child.codice_fiscale,
            "birth_date": child.birth_date.isoformat(),
            "created_at": child.created_at,
            "enrolments": [],
        }
        try:
            self.db.children.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def child(self, child_id: str) -> Child | None:
        found = self.db.children.find_one({"_id": child_id})
        return _child(found) if found else None

    def children(self, child_ids: Iterable[str]) -> list[Child]:
        ids = list(dict.fromkeys(child_ids))
        return [_child(doc) for doc in self.db.children.find(_by_ids(ids))] if ids else []

    def list_enrolment(self, child_id: str, entry: ListedEnrolment) -> Child | None:
        found = self.db.children.find_one_and_update(
            {"_id": child_id}, {"$push": {"enrolments": _listed(entry)}}, return_document=ReturnDocument.AFTER
        )
        return _child(found) if found else None

    def list_enrolments(self, entries: Sequence[tuple[str, ListedEnrolment]]) -> dict[str, Child]:
        if not entries:
            return {}
        # Ordered: one child's entries are appended in the order given (each $push atomic).
        self.db.children.bulk_write(
            [UpdateOne({"_id": child_id}, {"$push": {"enrolments": _listed(entry)}}) for child_id, entry in entries]
        )
        return {child.id: child for child in self.children(child_id for child_id, _ in entries)}

    def unlist_enrolment(self, child_id: str, enrolment_id: str) -> None:
        self.db.children.update_one({"_id": child_id}, {"$pull": {"enrolments": {"enrolment_id": enrolment_id}}})

    # --- audit log of special-category data -----------------------------------------------

    def audit(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            self.db.audit_log.insert_many(
                [
                    {
                        "_id": new_id(),
                        "at": e.at,
                        "child_id": e.child_id,
                        "reader_subject": e.reader_subject,
                        "reader_role": e.reader_role.value,
                        "reader_partner_id": e.reader_partner_id,
                        "purpose": e.purpose.value,
                        "basis": e.basis,
                    }
                    for e in entries
                ]
            )

    def audit_trail(self, child_id: str) -> list[AuditEntry]:
        cursor = self.db.audit_log.find({"child_id": child_id}).sort([("at", ASCENDING), ("_id", ASCENDING)])
        return [
            AuditEntry(
                child_id=doc["child_id"],
                reader_subject=doc["reader_subject"],
                reader_role=Role(doc["reader_role"]),
                reader_partner_id=doc.get("reader_partner_id"),
                purpose=AuditPurpose(doc["purpose"]),
                basis=doc["basis"],
                at=doc["at"],
            )
            for doc in cursor
        ]

    # --- projections fed by events -----------------------------------------------------------

    def offering(self, offering_id: str) -> OfferingProjection | None:
        found = self.db.offerings.find_one({"_id": offering_id}, WHOLE)
        return _offering(found) if found else None

    def save_offering(self, offering: OfferingProjection, replacing: OfferingProjection | None) -> bool:
        doc = {
            "alliance_id": offering.alliance_id,
            "provider_partner_id": offering.provider_partner_id,
            "title": offering.title,
            "status": offering.status.value,
            "capacity": offering.capacity,
            "age_min_months": offering.age_range.min_months,
            "age_max_months": offering.age_range.max_months,
            "special_needs_supported": sorted(n.value for n in offering.special_needs_supported),
            "attendance_modes": sorted(m.value for m in offering.attendance_modes),
            "periods": [p.model_dump(mode="json") for p in offering.periods],
            "comune_istat": offering.comune_istat,
            "price": offering.price.model_dump(mode="json") if offering.price else None,
            "version": offering.version,
        }
        if replacing is None:
            try:
                self.db.offerings.insert_one({"_id": offering.offering_id, **doc})
            except DuplicateKeyError:
                return False
            return True
        result = self.db.offerings.replace_one({"_id": offering.offering_id, "version": replacing.version}, doc)
        return result.matched_count == 1

    def territory(self, alliance_id: str) -> Territory | None:
        found = self.db.alliances.find_one({"_id": alliance_id}, WHOLE)
        if found is None:
            return None
        comuni = found.get("comuni_istat")
        return Territory(
            alliance_id=alliance_id,
            comuni_istat=frozenset(comuni) if comuni is not None else None,
            members={p: MemberState(m["status"], m["at"]) for p, m in found.get("members", {}).items()},
            version=int(found.get("version", 0)),
        )

    def save_territory(self, territory: Territory) -> bool:
        state = {
            "comuni_istat": sorted(territory.comuni_istat) if territory.comuni_istat is not None else None,
            "members": {p: {"status": m.status, "at": m.at} for p, m in territory.members.items()},
        }
        if territory.version == 0:
            try:
                self.db.alliances.insert_one({"_id": territory.alliance_id, **state, "version": 1})
            except DuplicateKeyError:
                return False
            return True
        result = self.db.alliances.update_one(
            {"_id": territory.alliance_id, "version": territory.version}, {"$set": state, "$inc": {"version": 1}}
        )
        return result.matched_count == 1

    def apply_once(self, consumer: str, event: IntegrationEvent, apply: Callable[[], object]) -> None:
        self.inbox.consume_once(consumer, {"event_id": event.event_id, "occurred_at": event.occurred_at}, apply)

    # --- seats ----------------------------------------------------------------------------------

    def seats(self, offering_id: str) -> OfferingSeats | None:
        found = self.db.seats.find_one({"_id": offering_id}, WHOLE)
        return _seats(found) if found else None

    def seats_snapshot(self, offering_id: str) -> OfferingSeats | None:
        # A click day's aggregate holds thousands of requests, and every read of an
        # enrolment needs it: its version alone is read, and the whole document only
        # when it changed since this process last built it.
        stamp = self.db.seats.find_one({"_id": offering_id}, {"version": 1})
        if stamp is None:
            return None
        return _SNAPSHOTS.get(self.db.name, offering_id, int(stamp["version"]), lambda: self.seats(offering_id))

    def save_seats(self, seats: OfferingSeats, events: Sequence[IntegrationEvent]) -> bool:
        state = {
            "capacity": seats.capacity,
            "accepting": seats.accepting,
            "offering_version": seats.offering_version,
            "arrivals": list(seats.arrivals),
            "decision_times": [[first, at] for first, at in seats.decision_times],
            "confirmed": list(seats.confirmed),
            "waitlist": list(seats.waitlist),
            "promoted": sorted(seats.promoted),
            "cancelled": [
                {"id": i, "at": c.at, "previous_status": c.previous_status.value, "reason": c.reason, "by": c.by}
                for i, c in seats.cancelled.items()
            ],
            "rejected": [
                {"id": i, "at": r.at, "reasons": [{"code": x.code, "message": x.message} for x in r.reasons]}
                for i, r in seats.rejected.items()
            ],
        }
        if seats.version == 0:
            doc = {"_id": seats.offering_id, **state, "version": 1}
            try:
                self.db.seats.insert_one(attach_events(doc, events) if events else doc)
            except DuplicateKeyError:
                return False
        else:
            update: Document = {"$set": state, "$inc": {"version": 1}}
            result = self.db.seats.update_one(
                {"_id": seats.offering_id, "version": seats.version}, push_events(update, events) if events else update
            )
            if result.matched_count != 1:
                return False
        seats.version += 1
        return True

    def publish_seat_events(self, offering_id: str, dispatch: Dispatch) -> int:
        return self.outbox.publish_pending(dispatch, collection="seats", document_id=offering_id)

    def publish_pending_events(self, dispatch: Dispatch) -> int:
        return self.outbox.publish_pending(dispatch)

    # --- enrolments ----------------------------------------------------------------------------

    def add_refusal(self, refusal: RefusedRequest) -> bool:
        doc = {
            "_id": refusal.id,
            "owner_subject": refusal.owner_subject,
            "protocol": refusal.protocol,
            "offering_id": refusal.offering_id,
            "child_id": refusal.child_id,
            "reasons": [{"code": r.code, "message": r.message} for r in refusal.reasons],
            "requested_at": refusal.requested_at,
            "decided_at": refusal.decided_at,
        }
        try:
            self.db.refusals.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def refusals(self, request_ids: Iterable[str]) -> list[RefusedRequest]:
        ids = list(dict.fromkeys(request_ids))
        return [_refused_request(doc) for doc in self.db.refusals.find(_by_ids(ids))] if ids else []

    def add_enrolment(self, enrolment: Enrolment) -> bool:
        try:
            self.db.enrolments.insert_one(_enrolment_doc(enrolment))
        except DuplicateKeyError:
            return False
        return True

    def add_enrolments(self, enrolments: Sequence[Enrolment]) -> None:
        if not enrolments:
            return
        try:
            self.db.enrolments.insert_many([_enrolment_doc(e) for e in enrolments], ordered=False)
        except BulkWriteError as exc:
            # Stored already (a redelivered batch): the first copy stands. Anything else is real.
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    def households_of(self, household_ids: Iterable[str]) -> dict[str, Household]:
        ids = list(dict.fromkeys(household_ids))
        return {doc["_id"]: _household(doc) for doc in self.db.households.find(_by_ids(ids))} if ids else {}

    def enrolment(self, enrolment_id: str) -> Enrolment | None:
        found = self.db.enrolments.find_one({"_id": enrolment_id})
        return _enrolment(found) if found else None

    def enrolments(self, enrolment_ids: Iterable[str]) -> list[Enrolment]:
        ids = list(dict.fromkeys(enrolment_ids))
        return [_enrolment(doc) for doc in self.db.enrolments.find(_by_ids(ids))] if ids else []

    def find_enrolments(self, where: EnrolmentFilter) -> list[Enrolment]:
        query: Document = {}
        if not where.everything:
            scopes: list[Document] = []
            if where.owner_subject is not None:
                scopes.append({"owner_subject": where.owner_subject})
            if where.provider_partner_id is not None:
                scopes.append({"provider_partner_id": where.provider_partner_id})
            if where.alliance_ids:
                scopes.append({"alliance_id": {"$in": sorted(where.alliance_ids)}})
            if not scopes:
                return []
            query = scopes[0] if len(scopes) == 1 else {"$or": scopes}
        if where.offering_id is not None:
            query["offering_id"] = where.offering_id
        if where.child_id is not None:
            query["child_id"] = where.child_id
        return [_enrolment(doc) for doc in self.db.enrolments.find(query)]

    # --- attendance: one document per enrolment and month ---------------------------------------

    def attendance(self, enrolment_id: str, months: Sequence[str]) -> list[AttendanceMonth]:
        if not months:
            return []
        found = self.db.attendance.find(_by_ids([f"{enrolment_id}:{month}" for month in months]))
        return [_attendance_month(doc) for doc in found]

    def attendance_of_month(self, enrolment_ids: Sequence[str], month: str) -> dict[str, AttendanceMonth]:
        if not enrolment_ids:
            return {}
        found = self.db.attendance.find(_by_ids([f"{enrolment_id}:{month}" for enrolment_id in enrolment_ids]))
        return {doc["enrolment_id"]: _attendance_month(doc) for doc in found}

    def record_attendance(self, enrolment_id: str, days: Sequence[RecordedDay]) -> None:
        by_month: dict[str, Document] = {}
        for day in days:
            month = day.day.strftime("%Y-%m")
            fields = by_month.setdefault(month, {"enrolment_id": enrolment_id, "month": month})
            fields[f"days.{day.day.isoformat()}"] = {
                "present": day.present,
                "hours": day.hours,
                "recorded_by": day.recorded_by,
                "recorded_at": day.recorded_at,
            }
        for month, fields in by_month.items():
            # One atomic write per month: days recorded concurrently never overwrite each other.
            self.db.attendance.update_one({"_id": f"{enrolment_id}:{month}"}, {"$set": fields}, upsert=True)


# --- documents -> records ----------------------------------------------------------------------


def _household(doc: Document) -> Household:
    # Stored from a validated HouseholdSpec: rebuilt without validating it again (the
    # codice fiscale checks are the costly part of the request path's CPU).
    guardians = tuple(
        Guardian.model_construct(
            **{
                **guardian,
                "employment": Employment(guardian["employment"]),
                "birth_date": date.fromisoformat(guardian["birth_date"]) if guardian.get("birth_date") else None,
            }
        )
        for guardian in doc["guardians"]
    )
    isee = doc.get("isee")
    spec = HouseholdSpec.model_construct(
        guardians=guardians,
        residence_comune_istat=doc["residence_comune_istat"],
        isee=Isee.model_construct(
            value_cents=isee["value_cents"],
            kind=IseeKind(isee["kind"]),
            expires_on=date.fromisoformat(isee["expires_on"]),
        )
        if isee
        else None,
        single_parent=doc["single_parent"],
    )
    return Household(
        id=doc["_id"],
        owner_subject=doc["owner_subject"],
        spec=spec,
        created_at=doc["created_at"],
        child_ids=tuple(doc.get("child_ids", ())),
    )


def _listed(entry: ListedEnrolment) -> Document:
    return {
        "enrolment_id": entry.enrolment_id,
        "offering_id": entry.offering_id,
        "start": entry.period.start.isoformat(),
        "end": entry.period.end.isoformat(),
        "listed_at": entry.listed_at,
    }


def _child(doc: Document) -> Child:
    listed: dict[str, ListedEnrolment] = {}
    for item in doc.get("enrolments", []):
        # A request retried concurrently may list itself twice: the first entry counts.
        listed.setdefault(
            item["enrolment_id"],
            ListedEnrolment(
                enrolment_id=item["enrolment_id"],
                offering_id=item["offering_id"],
                period=Period.model_construct(
                    start=date.fromisoformat(item["start"]), end=date.fromisoformat(item["end"])
                ),
                listed_at=item["listed_at"],
            ),
        )
    return Child(
        id=doc["_id"],
        household_id=doc["household_id"],
        first_name=doc["first_name"],
        last_name=doc["last_name"],
        codice_fiscale=doc["codice_fiscale"],
        birth_date=date.fromisoformat(doc["birth_date"]),
        created_at=doc["created_at"],
        enrolments=tuple(listed.values()),
    )


def _offering(doc: Document) -> OfferingProjection:
    return OfferingProjection.model_validate(
        {
            "offering_id": doc["_id"],
            "alliance_id": doc["alliance_id"],
            "provider_partner_id": doc["provider_partner_id"],
            "title": doc.get("title", ""),
            "status": doc["status"],
            "capacity": doc["capacity"],
            "age_range": {"min_months": doc["age_min_months"], "max_months": doc["age_max_months"]},
            "special_needs_supported": doc["special_needs_supported"],
            "attendance_modes": doc["attendance_modes"],
            "periods": doc["periods"],
            "comune_istat": doc["comune_istat"],
            "price": doc.get("price"),
            "version": doc["version"],
        }
    )


def _seats(doc: Document) -> OfferingSeats:
    return OfferingSeats(
        doc["_id"],
        capacity=int(doc["capacity"]),
        accepting=bool(doc["accepting"]),
        offering_version=int(doc.get("offering_version", 0)),
        version=int(doc["version"]),
        arrivals=doc.get("arrivals", []),
        decision_times=[(first, at) for first, at in doc.get("decision_times", [])],
        confirmed=doc.get("confirmed", []),
        waitlist=doc.get("waitlist", []),
        promoted=doc.get("promoted", []),
        cancelled={
            c["id"]: Cancellation(c["at"], EnrolmentStatus(c["previous_status"]), c.get("reason"), c.get("by"))
            for c in doc.get("cancelled", [])
        },
        rejected={r["id"]: _rejection(r) for r in doc.get("rejected", [])},
    )


def _rejection(doc: Document) -> Rejection:
    if "reasons" not in doc:  # stored before refusals had reasons: the offering was closed
        return Rejection(doc["at"], (Reason(NOT_ACCEPTING.code, doc["reason"]),))
    return Rejection(doc["at"], tuple(Reason(r["code"], r["message"]) for r in doc["reasons"]))


def _refused_request(doc: Document) -> RefusedRequest:
    return RefusedRequest(
        id=doc["_id"],
        owner_subject=doc["owner_subject"],
        protocol=doc["protocol"],
        offering_id=doc["offering_id"],
        child_id=doc["child_id"],
        reasons=tuple(Reason(r["code"], r["message"]) for r in doc["reasons"]),
        requested_at=doc["requested_at"],
        decided_at=doc["decided_at"],
    )


def _enrolment_doc(enrolment: Enrolment) -> Document:
    return {
        "_id": enrolment.id,
        "offering_id": enrolment.offering_id,
        "offering_title": enrolment.offering_title,
        "alliance_id": enrolment.alliance_id,
        "provider_partner_id": enrolment.provider_partner_id,
        "child_id": enrolment.child_id,
        "child_first_name": enrolment.child_first_name,
        "child_last_name": enrolment.child_last_name,
        "child_codice_fiscale": enrolment.child_codice_fiscale,
        "child_birth_date": enrolment.child_birth_date.isoformat(),
        "household_id": enrolment.household_id,
        "owner_subject": enrolment.owner_subject,
        "period": enrolment.period.model_dump(mode="json"),
        "attendance_mode": enrolment.attendance_mode.value,
        "chosen_weekdays": sorted(enrolment.chosen_weekdays) if enrolment.chosen_weekdays else None,
        "hours": enrolment.hours,
        "requested_at": enrolment.requested_at,
        "protocol": enrolment.protocol,
    }


def _enrolment(doc: Document) -> Enrolment:
    weekdays = doc.get("chosen_weekdays")
    return Enrolment(
        id=doc["_id"],
        offering_id=doc["offering_id"],
        offering_title=doc["offering_title"],
        alliance_id=doc["alliance_id"],
        provider_partner_id=doc["provider_partner_id"],
        child_id=doc["child_id"],
        child_first_name=doc["child_first_name"],
        child_last_name=doc["child_last_name"],
        child_codice_fiscale=doc["child_codice_fiscale"],
        child_birth_date=date.fromisoformat(doc["child_birth_date"]),
        household_id=doc["household_id"],
        owner_subject=doc["owner_subject"],
        period=Period.model_construct(
            start=date.fromisoformat(doc["period"]["start"]), end=date.fromisoformat(doc["period"]["end"])
        ),
        attendance_mode=AttendanceMode(doc["attendance_mode"]),
        chosen_weekdays=frozenset(weekdays) if weekdays else None,
        hours=doc.get("hours"),
        requested_at=doc["requested_at"],
        protocol=doc.get("protocol"),
    )


def _attendance_month(doc: Document) -> AttendanceMonth:
    days = {}
    for iso, value in doc.get("days", {}).items():
        day = date.fromisoformat(iso)
        days[day] = RecordedDay(
            day=day,
            present=value["present"],
            hours=value.get("hours"),
            recorded_by=value.get("recorded_by", ""),
            recorded_at=value["recorded_at"],
        )
    return AttendanceMonth(enrolment_id=doc["enrolment_id"], month=doc["month"], days=days)
