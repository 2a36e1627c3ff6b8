"""Storage of the partners service: the only code that knows its MongoDB layout.

Collections::

    partners   {_id, kind, name, name_key, tax_code (unique), comune_istat, email,
                family_friendly, registered_by, created_at}
    alliances  {_id, code (unique), name, status, ambiti: [{name, comuni_istat}],
                capofila_partner_id, members: [Membership], member_requests: {request id:
                partner id}, version, created_at, _outbox, _outbox_pending}
    projects   {_id, alliance_id, <ProjectSpec fields>, created_at, updated_at, version,
                _outbox, _outbox_pending}

Members live inside their alliance's document, so a rule over all of them ("exactly
one capofila") is decided on one read and stored in one single-document write.
Concurrency is optimistic: every write of an alliance or a project is guarded by
the version the writer read (``{"_id": id, "version": v}``), increments it and
queues its events in the same update, so of two writers of one version exactly
one wins; the methods answer whether this one did.

Creates are idempotent when the caller names its request (the gateway's
``Idempotency-Key``): the new document's ``_id`` is derived from the key (see
``domain.request_id``), so a retry of a create whose answer was lost collides with
the first insert and the use case returns what is stored. Members are not
documents of their own: the request id of an addition is kept in the alliance's
``member_requests``, written in the same guarded update as the member.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from conciliare.chassis.outbox import Dispatch, OutboxRelay, attach_events, push_events
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.partners import (
    AllianceStatus,
    Ambito,
    Membership,
    MembershipRole,
    MembershipStatus,
    PartnerKind,
    ProjectSpec,
)
from conciliare.errors import Conflict

Document = dict[str, Any]
ALLIANCES = "alliances"
PROJECTS = "projects"
OUTBOX_COLLECTIONS = (ALLIANCES, PROJECTS)
# Never returned to callers: the outbox is the relay's business.
HIDDEN = {"_outbox": 0, "_outbox_pending": 0}


@dataclass(frozen=True)
class Partner:
    id: str
    kind: PartnerKind
    name: str
    tax_code: str
    comune_istat: str
    email: str | None
    family_friendly: bool
    created_at: datetime
    registered_by: str | None = None


@dataclass(frozen=True)
class Alliance:
    id: str
    code: str
    name: str
    status: AllianceStatus
    ambiti: list[Ambito]
    capofila_partner_id: str
    members: list[Membership]
    version: int
    created_at: datetime
    # Request id (idempotency key) of each member addition -> the partner it added.
    member_requests: dict[str, str] = field(default_factory=dict)

    def comuni_istat(self) -> list[str]:
        return [code for ambito in self.ambiti for code in ambito.comuni_istat]


@dataclass(frozen=True)
class Project:
    id: str
    alliance_id: str
    spec: ProjectSpec
    created_at: datetime
    updated_at: datetime
    version: int


def stored_time(moment: datetime) -> datetime:
    """``moment`` as MongoDB keeps it (milliseconds), so an answer equals later reads."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def ensure_indexes(db: Database[Document]) -> None:
    db.partners.create_index("tax_code", unique=True)
    db.partners.create_index([("name_key", ASCENDING)])
    db.alliances.create_index("code", unique=True)
    db.alliances.create_index("members.partner_id")
    db.projects.create_index([("alliance_id", ASCENDING), ("created_at", ASCENDING)])
    OutboxRelay(db, OUTBOX_COLLECTIONS).ensure_indexes()


def _partner(doc: Document) -> Partner:
    return Partner(
        id=doc["_id"],
        kind=PartnerKind(doc["kind"]),
        name=doc["name"],
        tax_code=doc["tax_code"],
        comune_istat=doc["comune_istat"],
        email=doc.get("email"),
        family_friendly=doc.get("family_friendly", False),
        created_at=doc["created_at"],
        registered_by=doc.get("registered_by"),
    )


def _alliance(doc: Document) -> Alliance:
    return Alliance(
        id=doc["_id"],
        code=doc["code"],
        name=doc["name"],
        status=AllianceStatus(doc["status"]),
        ambiti=[Ambito.model_validate(a) for a in doc["ambiti"]],
        capofila_partner_id=doc["capofila_partner_id"],
        members=[Membership.model_validate(m) for m in doc["members"]],
        version=doc["version"],
        created_at=doc["created_at"],
        member_requests=dict(doc.get("member_requests") or {}),
    )


def _project(doc: Document) -> Project:
    spec_fields = {name: doc[name] for name in ProjectSpec.model_fields if name in doc}
    return Project(
        id=doc["_id"],
        alliance_id=doc["alliance_id"],
        spec=ProjectSpec.model_validate(spec_fields),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        version=doc["version"],
    )


def _members_fields(members: list[Membership]) -> Document:
    capofila = next(m.partner_id for m in members if m.role is MembershipRole.CAPOFILA)
    return {"members": [m.model_dump() for m in members], "capofila_partner_id": capofila}


class PartnersRepository:
    def __init__(self, db: Database[Document]) -> None:
        self.db = db
        self.outbox = OutboxRelay(db, OUTBOX_COLLECTIONS)

    # --- partners -----------------------------------------------------------

    def insert_partner(self, partner: Partner) -> None:
        doc: Document = {
            "_id": partner.id,
            "kind": partner.kind.value,
            "name": partner.name,
            "name_key": partner.name.casefold(),
            "tax_code": partner.tax_code,
            "comune_istat": partner.comune_istat,
            "email": partner.email,
            "family_friendly": partner.family_friendly,
            "registered_by": partner.registered_by,
            "created_at": partner.created_at,
        }
        try:
            self.db.partners.insert_one(doc)
        except DuplicateKeyError:
            if self.db.partners.find_one({"_id": partner.id}, {"_id": 1}) is not None:
                raise Conflict(f"Esiste già un partner con id {partner.id}.") from None
            existing = self.db.partners.find_one({"tax_code": partner.tax_code}, {"_id": 1})
            existing_id = existing["_id"] if existing else "?"
            raise Conflict(f"Esiste già un partner con codice fiscale {partner.tax_code} (id {existing_id}).") from None

    def get_partner(self, partner_id: str) -> Partner | None:
        doc = self.db.partners.find_one({"_id": partner_id})
        return None if doc is None else _partner(doc)

    def partner_ids_registered_by(self, subject: str) -> list[str]:
        return [doc["_id"] for doc in self.db.partners.find({"registered_by": subject}, {"_id": 1})]

    def partners_by_ids(self, ids: list[str]) -> dict[str, Partner]:
        return {doc["_id"]: _partner(doc) for doc in self.db.partners.find({"_id": {"$in": ids}})}

    def find_partners(
        self,
        ids: list[str] | None,
        kind: str | None,
        tax_code: str | None,
        text: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Partner], int]:
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
            return [_partner(d) for d in docs[offset : offset + limit]], len(docs)
        total = self.db.partners.count_documents(query)
        return [_partner(d) for d in cursor.skip(offset).limit(limit)], total

    # --- alliances ------------------------------------------------------------

    def insert_alliance(self, alliance: Alliance, events: list[IntegrationEvent]) -> None:
        doc: Document = {
            "_id": alliance.id,
            "code": alliance.code,
            "name": alliance.name,
            "status": alliance.status.value,
            "ambiti": [a.model_dump() for a in alliance.ambiti],
            **_members_fields(alliance.members),
            "member_requests": dict(alliance.member_requests),
            "version": alliance.version,
            "created_at": alliance.created_at,
        }
        try:
            self.db.alliances.insert_one(attach_events(doc, events))
        except DuplicateKeyError:
            if self.db.alliances.find_one({"_id": alliance.id}, {"_id": 1}) is not None:
                raise Conflict(f"Esiste già un'alleanza con id {alliance.id}.") from None
            raise Conflict(f"Esiste già un'alleanza con codice {alliance.code}.") from None

    def get_alliance(self, alliance_id: str) -> Alliance | None:
        doc = self.db.alliances.find_one({"_id": alliance_id}, HIDDEN)
        return None if doc is None else _alliance(doc)

    def find_alliances(self, ids: list[str] | None, limit: int, offset: int) -> tuple[list[Alliance], int]:
        query: Document = {} if ids is None else {"_id": {"$in": ids}}
        total = self.db.alliances.count_documents(query)
        cursor = self.db.alliances.find(query, HIDDEN).sort("code", ASCENDING).skip(offset).limit(limit)
        return [_alliance(d) for d in cursor], total

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

    def alliance_ids_covering(self, comune_istat: str) -> list[str]:
        # Alliances are few (one per local network): read their territories and decide here,
        # rather than rely on every server answering queries into arrays of subdocuments alike.
        docs = self.db.alliances.find({}, {"ambiti": 1})
        return sorted(
            doc["_id"] for doc in docs if any(comune_istat in a.get("comuni_istat", []) for a in doc["ambiti"])
        )

    def save_members(
        self,
        alliance_id: str,
        expected_version: int,
        members: list[Membership],
        events: list[IntegrationEvent],
        request: tuple[str, str] | None = None,
    ) -> bool:
        """Store the new member list and its events in one write, if the alliance is
        still at ``expected_version``; False when another writer got there first.

        ``request`` (request id, partner id) records which request made the change,
        so its retry is recognised."""
        fields = _members_fields(members)
        if request is not None:
            fields[f"member_requests.{request[0]}"] = request[1]
        update = push_events({"$set": fields, "$inc": {"version": 1}}, events)
        result = self.db.alliances.update_one({"_id": alliance_id, "version": expected_version}, update)
        return result.matched_count == 1

    def publish_alliance_events(self, dispatch: Dispatch, alliance_id: str) -> int:
        """Publish what the last write of one alliance queued (the timer catches the rest)."""
        return self.outbox.publish_pending(dispatch, collection=ALLIANCES, document_id=alliance_id)

    # --- projects -------------------------------------------------------------

    def insert_project(self, project: Project, events: list[IntegrationEvent]) -> None:
        doc: Document = {
            "_id": project.id,
            "alliance_id": project.alliance_id,
            **project.spec.model_dump(mode="json"),
            "created_at": project.created_at,
            "updated_at": project.updated_at,
            "version": project.version,
        }
        try:
            self.db.projects.insert_one(attach_events(doc, events))
        except DuplicateKeyError:
            raise Conflict(f"Esiste già un progetto con id {project.id}.") from None

    def get_project(self, alliance_id: str, project_id: str) -> Project | None:
        # By ``_id`` alone (what every server answers from its index), then the tenant.
        doc = self.db.projects.find_one({"_id": project_id}, HIDDEN)
        if doc is None or doc["alliance_id"] != alliance_id:
            return None
        return _project(doc)

    def find_projects(self, alliance_id: str, limit: int, offset: int) -> tuple[list[Project], int]:
        query = {"alliance_id": alliance_id}
        total = self.db.projects.count_documents(query)
        cursor = self.db.projects.find(query, HIDDEN).sort("created_at", ASCENDING).skip(offset).limit(limit)
        return [_project(d) for d in cursor], total

    def replace_project(
        self,
        project_id: str,
        expected_version: int,
        spec: ProjectSpec,
        updated_at: datetime,
        events: list[IntegrationEvent],
    ) -> Project | None:
        """Store the project's new data and its events if it is still at
        ``expected_version``: the project as written, or None when another writer won."""
        update = push_events(
            {"$set": {**spec.model_dump(mode="json"), "updated_at": updated_at}, "$inc": {"version": 1}}, events
        )
        doc = self.db.projects.find_one_and_update(
            {"_id": project_id, "version": expected_version},
            update,
            projection=HIDDEN,
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _project(doc)

    def publish_project_events(self, dispatch: Dispatch, project_id: str) -> int:
        """Publish what the last write of one project queued (the timer catches the rest)."""
        return self.outbox.publish_pending(dispatch, collection=PROJECTS, document_id=project_id)
