"""Storage of the partners service: the only code that knows its MongoDB layout."""

import re
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from conciliare.chassis.outbox import OutboxRelay, attach_events, push_events
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.partners import Membership, MembershipRole, MembershipStatus
from conciliare.errors import Conflict

Document = dict[str, Any]
OUTBOX_COLLECTIONS = ("alliances", "projects")


def ensure_indexes(db: Database[Document]) -> None:
    db.partners.create_index("tax_code", unique=True)
    db.partners.create_index([("name_key", ASCENDING)])
    db.alliances.create_index("code", unique=True)
    db.alliances.create_index("members.partner_id")
    db.projects.create_index([("alliance_id", ASCENDING), ("created_at", ASCENDING)])
    OutboxRelay(db, OUTBOX_COLLECTIONS).ensure_indexes()


class PartnersRepository:
    def __init__(self, db: Database[Document]) -> None:
        self.db = db
        self.outbox = OutboxRelay(db, OUTBOX_COLLECTIONS)

    # --- partners -----------------------------------------------------------

    def insert_partner(self, doc: Document) -> None:
        try:
            self.db.partners.insert_one({**doc, "name_key": doc["name"].casefold()})
        except DuplicateKeyError:
            existing = self.db.partners.find_one({"tax_code": doc["tax_code"]}, {"_id": 1})
            existing_id = existing["_id"] if existing else "?"
            raise Conflict(f"Esiste già un partner con codice fiscale {doc['tax_code']} (id {existing_id}).") from None

    def get_partner(self, partner_id: str) -> Document | None:
        return self.db.partners.find_one({"_id": partner_id})

    def partners_by_ids(self, ids: list[str]) -> dict[str, Document]:
        return {doc["_id"]: doc for doc in self.db.partners.find({"_id": {"$in": ids}})}

    def find_partners(
        self,
        ids: list[str] | None,
        kind: str | None,
        tax_code: str | None,
        text: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Document], int]:
        query: Document = {}
        if ids is not None:
            query["_id"] = {"$in": ids}
        if kind:
            query["kind"] = kind
        if tax_code:
            query["tax_code"] = tax_code
        if text:
            query["name_key"] = {"$regex": re.escape(text.casefold())}
        cursor = self.db.partners.find(query).sort("name_key", ASCENDING)
        if ids is not None:
            # A bounded set (an alliance's members): one query, counted in memory,
            # instead of a count plus a find on the hot listing path.
            docs = list(cursor)
            return docs[offset : offset + limit], len(docs)
        total = self.db.partners.count_documents(query)
        return list(cursor.skip(offset).limit(limit)), total

    # --- alliances ------------------------------------------------------------

    def insert_alliance(self, doc: Document, events: list[IntegrationEvent]) -> None:
        try:
            self.db.alliances.insert_one(attach_events(doc, events))
        except DuplicateKeyError:
            raise Conflict(f"Esiste già un'alleanza con codice {doc['code']}.") from None

    def get_alliance(self, alliance_id: str) -> Document | None:
        return self.db.alliances.find_one({"_id": alliance_id}, {"_outbox": 0})

    def find_alliances(self, ids: list[str] | None, limit: int, offset: int) -> tuple[list[Document], int]:
        query: Document = {} if ids is None else {"_id": {"$in": ids}}
        total = self.db.alliances.count_documents(query)
        cursor = self.db.alliances.find(query, {"_outbox": 0}).sort("code", ASCENDING).skip(offset).limit(limit)
        return list(cursor), total

    def alliance_ids_of_partner(self, partner_id: str) -> list[str]:
        docs = self.db.alliances.find({"members.partner_id": partner_id}, {"members": 1})
        return [
            doc["_id"]
            for doc in docs
            if any(
                m["partner_id"] == partner_id and m["status"] != MembershipStatus.WITHDRAWN.value
                for m in doc["members"]
            )
        ]

    def save_members(
        self, alliance_id: str, version: int, members: list[Membership], events: list[IntegrationEvent]
    ) -> None:
        """Store the new member list and its events in one write (caller holds the alliance's lock).

        Members live inside the alliance document, so "exactly one capofila" is
        decided and stored in one single-document update.
        """
        capofila = next(m.partner_id for m in members if m.role is MembershipRole.CAPOFILA)
        update = push_events(
            {
                "$set": {
                    "members": [m.model_dump() for m in members],
                    "capofila_partner_id": capofila,
                    "version": version + 1,
                }
            },
            events,
        )
        self.db.alliances.update_one({"_id": alliance_id}, update)

    # --- projects -------------------------------------------------------------

    def insert_project(self, doc: Document, events: list[IntegrationEvent]) -> None:
        self.db.projects.insert_one(attach_events(doc, events))

    def get_project(self, alliance_id: str, project_id: str) -> Document | None:
        return self.db.projects.find_one({"_id": project_id, "alliance_id": alliance_id}, {"_outbox": 0})

    def find_projects(self, alliance_id: str, limit: int, offset: int) -> tuple[list[Document], int]:
        query = {"alliance_id": alliance_id}
        total = self.db.projects.count_documents(query)
        cursor = self.db.projects.find(query, {"_outbox": 0}).sort("created_at", ASCENDING).skip(offset).limit(limit)
        return list(cursor), total

    def replace_project(self, project_id: str, version: int, fields: Document, events: list[IntegrationEvent]) -> None:
        """Store the project's new data and its events (caller holds the project's lock)."""
        update = push_events({"$set": {**fields, "version": version + 1}}, events)
        self.db.projects.update_one({"_id": project_id}, update)
