"""Storage of the enrolment service: the only code that knows its MongoDB layout.

Written for what MongoDB *and* FerretDB 1.x (SQLite backend) both guarantee. On
FerretDB 1.24 an update is a read, a change in Go and a full-document rewrite, not
one atomic step: a conditional ``$inc`` lets 300 concurrent callers "win" 20 seats
and loses increments, and any two concurrent updates of one document can lose one
of them. What *is* atomic on both servers is inserting a document whose ``_id`` (or
unique key) is taken, and deleting a document (the count tells who deleted it).
So every document that several workers may change is changed only under a lease
lock made of those two operations (``try_lock``), and one-of-a-kind facts (one
household per user, one request per idempotency key) are unique inserts.

FerretDB also pushes only ``{"_id": <string>}`` filters down to SQLite; any other
query reads the whole collection. And while reading or inserting by ``_id`` costs
the same at any size, an update or a delete by ``_id`` costs time proportional to
the collection (its write path does not use the ``_id`` index: ~15 ms at 4,000
documents). The request path therefore only reads by ``_id`` and inserts; it
updates and deletes only in small collections (locks, undecided requests, one
ledger per offering).
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from conciliare.chassis.inbox import Inbox
from conciliare.chassis.outbox import PENDING_FLAG
from conciliare.contracts.common import new_id
from conciliare.errors import Conflict

Document = dict[str, Any]
DUPLICATE_KEY = 11000


def ensure_indexes(db: Database[Document]) -> None:
    # Unique indexes are the concurrency guards (both servers enforce them
    # atomically); the others only speed MongoDB up, FerretDB 1.x ignores them.
    db.locks.create_index("key", unique=True)
    db.children.create_index("household_cf", unique=True)
    db.children.create_index("household_id")
    db.households.create_index("owner_subject")
    db.enrolments.create_index([("offering_id", ASCENDING), ("status", ASCENDING)])
    db.enrolments.create_index("owner_subject")
    db.enrolments.create_index("provider_partner_id")
    db.enrolments.create_index("alliance_id")
    db.enrolment_requests.create_index("offering_id")
    db.ledgers.create_index(PENDING_FLAG)
    db.audit_log.create_index([("child_id", ASCENDING), ("at", ASCENDING)])
    Inbox(db).ensure_indexes()


class EnrolmentRepository:
    def __init__(self, db: Database[Document]) -> None:
        self.db = db
        self.inbox = Inbox(db)

    # --- lease locks ------------------------------------------------------------

    def try_lock(self, key: str, now: datetime, lease_seconds: float) -> str | None:
        """Take the lock ``key`` (unique index) or return None if someone holds it.

        Each acquisition has its own ``_id``: breaking a stale lease deletes that
        very document, never a newer holder's (see ``break_stale_lock``).
        """
        token = new_id()
        try:
            self.db.locks.insert_one({"_id": token, "key": key, "expires_at": now + timedelta(seconds=lease_seconds)})
        except DuplicateKeyError:
            return None
        return token

    def release_lock(self, token: str) -> None:
        self.db.locks.delete_one({"_id": token})

    def break_stale_lock(self, key: str, now: datetime) -> bool:
        """Remove the lease of a holder that died (expired); True if one was removed."""
        held = self.db.locks.find_one({"key": key})
        if held is None:
            return True
        if held["expires_at"] >= now:
            return False
        return self.db.locks.delete_one({"_id": held["_id"]}).deleted_count == 1

    # --- households ---------------------------------------------------------------

    def claim_owner(self, owner_subject: str, household_id: str) -> str:
        """Bind ``owner_subject`` to ``household_id`` unless bound already; return the bound id."""
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

    def insert_household(self, doc: Document) -> bool:
        try:
            self.db.households.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def get_household(self, household_id: str) -> Document | None:
        return self.db.households.find_one({"_id": household_id})

    def find_households(self, limit: int, offset: int) -> tuple[list[Document], int]:
        total = self.db.households.count_documents({})
        cursor = self.db.households.find({}).sort("created_at", ASCENDING).skip(offset).limit(limit)
        return list(cursor), total

    # --- children and their needs ---------------------------------------------------

    def insert_needs(self, child_id: str, needs: list[str], now: datetime) -> None:
        self.db.child_needs.replace_one({"_id": child_id}, {"needs": needs, "updated_at": now}, upsert=True)

    def delete_needs(self, child_id: str) -> None:
        self.db.child_needs.delete_one({"_id": child_id})

    def get_needs(self, child_id: str) -> list[str] | None:
        found = self.db.child_needs.find_one({"_id": child_id})
        return list(found["needs"]) if found else None

    def needs_of(self, child_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(child_ids)
        if not ids:
            return {}
        return {doc["_id"]: list(doc["needs"]) for doc in self.db.child_needs.find({"_id": {"$in": ids}})}

    def insert_child(self, doc: Document) -> None:
        try:
            self.db.children.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(
                f"Il bambino con codice fiscale {doc['codice_fiscale']} è già registrato in questo nucleo."
            ) from None

    def get_child(self, child_id: str) -> Document | None:
        return self.db.children.find_one({"_id": child_id})

    def children_of(self, household_id: str) -> list[Document]:
        cursor = self.db.children.find({"household_id": household_id}).sort(
            [("last_name", ASCENDING), ("first_name", ASCENDING)]
        )
        return list(cursor)

    def child_enrolment_items(self, child_id: str) -> list[Document]:
        """The child's enrolments, oldest first: ``<child_id>:0000``, ``:0001`` ... until a gap.

        Insert-only documents read by ``_id``: both O(1) on FerretDB, where a
        ``$push`` into the child's document would rewrite it at O(collection).
        """
        items: list[Document] = []
        while (found := self.db.child_enrolments.find_one({"_id": f"{child_id}:{len(items):04d}"})) is not None:
            items.append(found)
        return items

    def add_child_enrolment_item(self, child_id: str, index: int, item: Document) -> None:
        """Append to the child's list (caller holds the child's lock; a race would be a duplicate key)."""
        self.db.child_enrolments.insert_one({"_id": f"{child_id}:{index:04d}", "child_id": child_id, **item})

    # --- audit log of special-category data ----------------------------------------------

    def audit(self, entries: list[Document]) -> None:
        if entries:
            self.db.audit_log.insert_many(entries)

    def audit_entries(self, child_id: str) -> list[Document]:
        return list(self.db.audit_log.find({"child_id": child_id}).sort("at", ASCENDING))

    # --- projections fed by events ---------------------------------------------------------

    def get_offering(self, offering_id: str) -> Document | None:
        return self.db.offerings.find_one({"_id": offering_id})

    def save_offering(self, doc: Document) -> None:
        """Replace the projection (caller holds the offering's lock)."""
        self.db.offerings.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    def get_alliance(self, alliance_id: str) -> Document | None:
        return self.db.alliances.find_one({"_id": alliance_id})

    def save_alliance(self, doc: Document) -> None:
        """Replace the projection (caller holds the alliance's lock)."""
        self.db.alliances.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    # --- seat ledgers -------------------------------------------------------------------

    def get_ledger(self, offering_id: str) -> Document | None:
        return self.db.ledgers.find_one({"_id": offering_id})

    def save_ledger(self, offering_id: str, fields: Document) -> None:
        """One single-document write of the allocation state (caller holds the offering's lock)."""
        self.db.ledgers.update_one({"_id": offering_id}, {"$set": fields}, upsert=True)

    def ledgers_with_pending_work(self) -> list[str]:
        return [doc["_id"] for doc in self.db.ledgers.find({PENDING_FLAG: True}, {"_id": 1})]

    # --- requests not yet decided ------------------------------------------------------------

    def insert_request(self, doc: Document) -> bool:
        try:
            self.db.enrolment_requests.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def get_request(self, enrolment_id: str) -> Document | None:
        return self.db.enrolment_requests.find_one({"_id": enrolment_id})

    def pending_requests(self, offering_id: str, limit: int) -> list[Document]:
        cursor = (
            self.db.enrolment_requests.find({"offering_id": offering_id})
            .sort([("requested_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return list(cursor)

    def offerings_with_requests_before(self, before: datetime) -> set[str]:
        docs = self.db.enrolment_requests.find({"requested_at": {"$lt": before}}, {"offering_id": 1})
        return {doc["offering_id"] for doc in docs}

    def delete_requests(self, ids: list[str]) -> None:
        if ids:
            self.db.enrolment_requests.delete_many({"_id": {"$in": ids}})

    # --- enrolments -------------------------------------------------------------------------

    def insert_enrolments(self, docs: list[Document]) -> None:
        """Insert decided enrolments; ones already there (a replayed journal) are kept."""
        if not docs:
            return
        try:
            self.db.enrolments.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    def set_enrolment_fields(self, enrolment_id: str, fields: Document) -> None:
        self.db.enrolments.update_one({"_id": enrolment_id}, {"$set": fields})

    def get_enrolment(self, enrolment_id: str) -> Document | None:
        return self.db.enrolments.find_one({"_id": enrolment_id})

    def enrolments_by_ids(self, ids: list[str]) -> dict[str, Document]:
        if not ids:
            return {}
        return {doc["_id"]: doc for doc in self.db.enrolments.find({"_id": {"$in": ids}})}

    def find_enrolments(self, query: Document, limit: int, offset: int) -> tuple[list[Document], int]:
        total = self.db.enrolments.count_documents(query)
        cursor = (
            self.db.enrolments.find(query)
            .sort([("requested_at", DESCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return list(cursor), total

    def enrolments_of_offering(self, offering_id: str, statuses: list[str]) -> list[Document]:
        return list(self.db.enrolments.find({"offering_id": offering_id, "status": {"$in": statuses}}))

    # --- attendance ---------------------------------------------------------------------------

    def attendance_months(self, ids: list[str]) -> dict[str, Document]:
        """Monthly attendance documents by id (``<enrolment_id>:<YYYY-MM>``)."""
        if not ids:
            return {}
        if len(ids) == 1:  # the _id-only filter is the one FerretDB answers without a scan
            found = self.db.attendance.find_one({"_id": ids[0]})
            return {found["_id"]: found} if found else {}
        return {doc["_id"]: doc for doc in self.db.attendance.find({"_id": {"$in": ids}})}

    def save_attendance_month(self, doc: Document) -> None:
        """Replace one month of a register (caller holds the enrolment's attendance lock)."""
        self.db.attendance.replace_one({"_id": doc["_id"]}, doc, upsert=True)
