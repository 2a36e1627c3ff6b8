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

Worse, a read by ``_id`` is a scan too (FerretDB's ``_id`` filter does not match
the expression its ``_id`` index is built on), stopping at the first match: the
cost grows with the rows before the document, and the newest documents (the ones
a click day reads) are last. So the collections that grow with use and are read
by ``_id`` on the request path (children, their needs and enrolment lists, the
enrolments, the audit log, attendance) are split by a hash of their key into
``SHARDS`` physical collections (``children_00`` ... ``children_31``): a read
scans a thirty-second of the rows. Queries on other fields visit every shard.
"""

import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from conciliare.chassis.inbox import Inbox
from conciliare.chassis.locks import LeaseLocks
from conciliare.chassis.outbox import PENDING_FLAG

Document = dict[str, Any]
DUPLICATE_KEY = 11000
SHARDS: Final = 32


class Sharded:
    """One logical collection stored as ``SHARDS`` collections, by a hash of a key."""

    def __init__(self, db: Database[Document], name: str) -> None:
        self.db = db
        self.name = name

    def of(self, key: str) -> Collection[Document]:
        """The shard holding the documents of ``key`` (an id, or the id they belong to)."""
        return self.db[f"{self.name}_{zlib.crc32(key.encode()) % SHARDS:02d}"]

    def all(self) -> list[Collection[Document]]:
        return [self.db[f"{self.name}_{index:02d}"] for index in range(SHARDS)]

    def find(self, query: Document) -> list[Document]:
        """Every matching document, from every shard (not for the request path)."""
        return [doc for shard in self.all() for doc in shard.find(query)]

    def by_ids(self, ids: Iterable[str]) -> dict[str, Document]:
        """Documents by ``_id``: one query per shard concerned."""
        by_shard: dict[str, list[str]] = {}
        for key in ids:
            by_shard.setdefault(self.of(key).name, []).append(key)
        found: dict[str, Document] = {}
        for name, keys in by_shard.items():
            query: Document = {"_id": keys[0]} if len(keys) == 1 else {"_id": {"$in": keys}}
            found.update((doc["_id"], doc) for doc in self.db[name].find(query))
        return found


def ensure_indexes(db: Database[Document]) -> None:
    # Unique indexes are the concurrency guards (both servers enforce them
    # atomically); the others only speed MongoDB up, FerretDB 1.x ignores them.
    LeaseLocks(db).ensure_indexes()
    db.households.create_index("owner_subject")
    db.enrolment_requests.create_index("offering_id")
    db.ledgers.create_index(PENDING_FLAG)
    for shard in Sharded(db, "children").all():
        shard.create_index("household_id")
    for shard in Sharded(db, "enrolments").all():
        shard.create_index([("offering_id", ASCENDING), ("status", ASCENDING)])
        shard.create_index("owner_subject")
        shard.create_index("provider_partner_id")
        shard.create_index("alliance_id")
    for shard in Sharded(db, "audit_log").all():
        shard.create_index([("child_id", ASCENDING), ("at", ASCENDING)])
    Inbox(db).ensure_indexes()


class EnrolmentRepository:
    def __init__(self, db: Database[Document]) -> None:
        self.db = db
        self.locks = LeaseLocks(db)
        self.inbox = Inbox(db)
        self.children = Sharded(db, "children")
        self.child_needs = Sharded(db, "child_needs")
        self.child_enrolments = Sharded(db, "child_enrolments")
        # Keyed by household + codice fiscale: one child per code in a household.
        self.child_claims = Sharded(db, "child_claims")
        self.enrolments = Sharded(db, "enrolments")
        self.audit_log = Sharded(db, "audit_log")
        self.attendance = Sharded(db, "attendance")

    # --- lease locks ------------------------------------------------------------

    def try_lock(self, key: str, now: datetime, lease_seconds: float) -> str | None:
        return self.locks.try_lock(key, now, lease_seconds)

    def release_lock(self, token: str) -> None:
        self.locks.release(token)

    def break_stale_lock(self, key: str, now: datetime) -> bool:
        return self.locks.break_stale(key, now)

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
        """Store a child's needs (replacing what an interrupted registration left)."""
        shard = self.child_needs.of(child_id)
        try:
            shard.insert_one({"_id": child_id, "needs": needs, "updated_at": now})
        except DuplicateKeyError:
            shard.replace_one({"_id": child_id}, {"needs": needs, "updated_at": now})

    def get_needs(self, child_id: str) -> list[str] | None:
        found = self.child_needs.of(child_id).find_one({"_id": child_id})
        return list(found["needs"]) if found else None

    def needs_of(self, child_ids: Iterable[str]) -> dict[str, list[str]]:
        return {key: list(doc["needs"]) for key, doc in self.child_needs.by_ids(child_ids).items()}

    def claim_child(self, household_cf: str, child_id: str) -> str:
        """Reserve a codice fiscale in a household for ``child_id``; return the id holding it."""
        claims = self.child_claims.of(household_cf)
        try:
            claims.insert_one({"_id": household_cf, "child_id": child_id})
        except DuplicateKeyError:
            found = claims.find_one({"_id": household_cf})
            assert found is not None
            return str(found["child_id"])
        return child_id

    def insert_child(self, doc: Document) -> bool:
        """False if a child with this id exists already."""
        try:
            self.children.of(doc["_id"]).insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def get_child(self, child_id: str) -> Document | None:
        return self.children.of(child_id).find_one({"_id": child_id})

    def children_of(self, household_id: str) -> list[Document]:
        found = self.children.find({"household_id": household_id})
        return sorted(found, key=lambda c: (c["last_name"], c["first_name"], c["_id"]))

    def child_enrolment_items(self, child_id: str) -> list[Document]:
        """The child's enrolments, oldest first: ``<child_id>:0000``, ``:0001`` ... until a gap.

        Insert-only documents read by ``_id``: a ``$push`` into the child's
        document would rewrite it at a cost proportional to the collection.
        """
        shard = self.child_enrolments.of(child_id)
        items: list[Document] = []
        while (found := shard.find_one({"_id": f"{child_id}:{len(items):04d}"})) is not None:
            items.append(found)
        return items

    def add_child_enrolment_item(self, child_id: str, index: int, item: Document) -> bool:
        """Append at ``index``; False if another request took that index first."""
        try:
            self.child_enrolments.of(child_id).insert_one({"_id": f"{child_id}:{index:04d}", **item})
        except DuplicateKeyError:
            return False
        return True

    # --- audit log of special-category data ----------------------------------------------

    def audit(self, entries: list[Document]) -> None:
        """Store who read which child's needs (sharded by child, so a child's trail is together)."""
        by_shard: dict[str, list[Document]] = {}
        for entry in entries:
            by_shard.setdefault(self.audit_log.of(entry["child_id"]).name, []).append(entry)
        for name, shard_entries in by_shard.items():
            self.db[name].insert_many(shard_entries)

    def audit_entries(self, child_id: str) -> list[Document]:
        return list(self.audit_log.of(child_id).find({"child_id": child_id}).sort("at", ASCENDING))

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
        by_shard: dict[str, list[Document]] = {}
        for doc in docs:
            by_shard.setdefault(self.enrolments.of(doc["_id"]).name, []).append(doc)
        for name, shard_docs in by_shard.items():
            try:
                self.db[name].insert_many(shard_docs, ordered=False)
            except BulkWriteError as exc:
                if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                    raise

    def set_enrolment_fields(self, enrolment_id: str, fields: Document) -> None:
        self.enrolments.of(enrolment_id).update_one({"_id": enrolment_id}, {"$set": fields})

    def get_enrolment(self, enrolment_id: str) -> Document | None:
        return self.enrolments.of(enrolment_id).find_one({"_id": enrolment_id})

    def enrolments_by_ids(self, ids: list[str]) -> dict[str, Document]:
        return self.enrolments.by_ids(ids)

    def find_enrolments(self, query: Document, limit: int, offset: int) -> tuple[list[Document], int]:
        """Newest first, paginated across shards."""
        found = self.enrolments.find(query)
        found.sort(key=lambda d: d["_id"])
        found.sort(key=lambda d: d["requested_at"], reverse=True)
        return found[offset : offset + limit], len(found)

    def enrolments_of_offering(self, offering_id: str, statuses: list[str]) -> list[Document]:
        return self.enrolments.find({"offering_id": offering_id, "status": {"$in": statuses}})

    # --- attendance ---------------------------------------------------------------------------
    # One document per enrolment and month (``<enrolment_id>:<YYYY-MM>``), in the
    # enrolment's shard.

    def attendance_months(self, enrolment_id: str, months: list[str]) -> dict[str, Document]:
        """Monthly attendance documents of one enrolment, by id."""
        ids = [f"{enrolment_id}:{month}" for month in months]
        if not ids:
            return {}
        shard = self.attendance.of(enrolment_id)
        query: Document = {"_id": ids[0]} if len(ids) == 1 else {"_id": {"$in": ids}}
        return {doc["_id"]: doc for doc in shard.find(query)}

    def attendance_of_month(self, enrolment_ids: list[str], month: str) -> dict[str, Document]:
        """The month's document of each enrolment that has one, by enrolment id."""
        found: dict[str, Document] = {}
        for enrolment_id in enrolment_ids:
            doc = self.attendance.of(enrolment_id).find_one({"_id": f"{enrolment_id}:{month}"})
            if doc is not None:
                found[enrolment_id] = doc
        return found

    def save_attendance_month(self, doc: Document) -> None:
        """Replace one month of a register (caller holds the enrolment's attendance lock)."""
        self.attendance.of(doc["enrolment_id"]).replace_one({"_id": doc["_id"]}, doc, upsert=True)
