"""Use cases of the partners service: load, apply a domain rule, store, answer.

Each function takes the repository and validated contract models; ``service.py``
only parses payloads, calls one of these and publishes the outbox.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from conciliare.chassis.locks import BUSY, document_key, held
from conciliare.contracts.common import Page, new_id
from conciliare.contracts.partners import (
    AllianceCreate,
    AllianceCreated,
    AllianceMembershipCheck,
    AllianceOut,
    AllianceStatus,
    AllianceTerritory,
    AmbitoOut,
    ComuneOut,
    MemberAdd,
    MemberOut,
    MemberQuery,
    Membership,
    MembershipChanged,
    MembershipRole,
    MembershipStatus,
    PartnerCreate,
    PartnerOut,
    PartnerQuery,
    ProjectCreated,
    ProjectOut,
    ProjectSpec,
    ProjectUpdated,
)
from conciliare.errors import NotFound, ValidationFailed
from conciliare.geo import comune_by_istat
from services.partners import domain
from services.partners.repository import PartnersRepository

Document = dict[str, Any]
ALLIANCE_NOT_FOUND = "Alleanza non trovata."
PARTNER_NOT_FOUND = "Partner non trovato."


def _partner_out(doc: Document) -> PartnerOut:
    comune = comune_by_istat(doc["comune_istat"])
    return PartnerOut(
        id=doc["_id"],
        kind=doc["kind"],
        name=doc["name"],
        tax_code=doc["tax_code"],
        comune_istat=doc["comune_istat"],
        comune_name=comune.name if comune else doc["comune_istat"],
        email=doc.get("email"),
        family_friendly=doc.get("family_friendly", False),
        created_at=doc["created_at"],
    )


def _alliance_out(doc: Document) -> AllianceOut:
    ambiti = []
    for ambito in doc["ambiti"]:
        comuni = []
        for code in ambito["comuni_istat"]:
            comune = comune_by_istat(code)
            comuni.append(
                ComuneOut(istat=code, name=comune.name if comune else code, province=comune.province if comune else "")
            )
        ambiti.append(AmbitoOut(name=ambito["name"], comuni=comuni))
    active = [m for m in doc["members"] if m["status"] != MembershipStatus.WITHDRAWN.value]
    return AllianceOut(
        id=doc["_id"],
        code=doc["code"],
        name=doc["name"],
        status=doc["status"],
        ambiti=ambiti,
        capofila_partner_id=doc["capofila_partner_id"],
        member_count=len(active),
        created_at=doc["created_at"],
    )


def _project_out(doc: Document) -> ProjectOut:
    fields = {k: v for k, v in doc.items() if not k.startswith("_")}
    return ProjectOut.model_validate({**fields, "id": doc["_id"]})


def _require_alliance(repo: PartnersRepository, alliance_id: str) -> Document:
    doc = repo.get_alliance(alliance_id)
    if doc is None:
        raise NotFound(ALLIANCE_NOT_FOUND)
    return doc


# --- partners ---------------------------------------------------------------


def register_partner(repo: PartnersRepository, spec: PartnerCreate, now: datetime) -> PartnerOut:
    domain.ensure_valid_partner(spec.tax_code, spec.comune_istat)
    doc = {"_id": new_id(), **spec.model_dump(mode="json"), "created_at": now}
    repo.insert_partner(doc)
    return _partner_out(doc)


def get_partner(repo: PartnersRepository, partner_id: str) -> PartnerOut:
    doc = repo.get_partner(partner_id)
    if doc is None:
        raise NotFound(PARTNER_NOT_FOUND)
    return _partner_out(doc)


def list_partners(repo: PartnersRepository, query: PartnerQuery) -> Page[PartnerOut]:
    ids = query.partner_ids
    if query.alliance_ids is not None:
        member_ids = {
            m["partner_id"]
            for alliance_id in query.alliance_ids
            for m in _require_alliance(repo, alliance_id)["members"]
            if m["status"] != MembershipStatus.WITHDRAWN.value
        }
        ids = sorted(member_ids) if ids is None else [i for i in ids if i in member_ids]
    docs, total = repo.find_partners(ids, query.kind, query.tax_code, query.text, query.limit, query.offset)
    return Page(items=[_partner_out(d) for d in docs], total=total, limit=query.limit, offset=query.offset)


# --- alliances ----------------------------------------------------------------


def create_alliance(repo: PartnersRepository, spec: AllianceCreate, now: datetime) -> AllianceOut:
    domain.ensure_valid_territory([a.comuni_istat for a in spec.ambiti])
    if repo.get_partner(spec.capofila_partner_id) is None:
        raise ValidationFailed(
            "Il capofila indicato non esiste.",
            [{"field": "capofila_partner_id", "message": "nessun partner con questo id"}],
        )
    alliance_id = new_id()
    capofila = Membership(
        partner_id=spec.capofila_partner_id,
        role=MembershipRole.CAPOFILA,
        status=MembershipStatus.FORMALIZED,
        joined_at=now,
        formalized_at=now,
    )
    doc = {
        "_id": alliance_id,
        "code": spec.code,
        "name": spec.name,
        "status": AllianceStatus.ACTIVE.value,
        "ambiti": [a.model_dump() for a in spec.ambiti],
        "capofila_partner_id": spec.capofila_partner_id,
        "members": [capofila.model_dump()],
        "version": 1,
        "created_at": now,
    }
    comuni = [code for a in spec.ambiti for code in a.comuni_istat]
    events = [
        AllianceCreated(
            alliance_id=alliance_id,
            code=spec.code,
            name=spec.name,
            comuni_istat=comuni,
            capofila_partner_id=spec.capofila_partner_id,
        ),
        MembershipChanged(
            alliance_id=alliance_id,
            partner_id=spec.capofila_partner_id,
            role=MembershipRole.CAPOFILA,
            status=MembershipStatus.FORMALIZED,
            previous_status=None,
        ),
    ]
    repo.insert_alliance(doc, list(events))
    return _alliance_out(doc)


def get_alliance(repo: PartnersRepository, alliance_id: str) -> AllianceOut:
    return _alliance_out(_require_alliance(repo, alliance_id))


def list_alliances(
    repo: PartnersRepository, alliance_ids: list[str] | None, limit: int, offset: int
) -> Page[AllianceOut]:
    docs, total = repo.find_alliances(alliance_ids, limit, offset)
    return Page(items=[_alliance_out(d) for d in docs], total=total, limit=limit, offset=offset)


def alliances_of_partner(repo: PartnersRepository, partner_id: str) -> list[str]:
    return repo.alliance_ids_of_partner(partner_id)


def list_members(repo: PartnersRepository, alliance_id: str, query: MemberQuery) -> Page[MemberOut]:
    alliance = _require_alliance(repo, alliance_id)
    memberships = [
        Membership.model_validate(m)
        for m in alliance["members"]
        if (query.status is None or m["status"] == query.status.value)
        and (query.role is None or m["role"] == query.role.value)
    ]
    partners = repo.partners_by_ids([m.partner_id for m in memberships])
    # Capofila first, then by name: the order of the seed documents' lists.
    memberships.sort(key=lambda m: (m.role is not MembershipRole.CAPOFILA, partners[m.partner_id]["name_key"]))
    page = memberships[query.offset : query.offset + query.limit]
    items = [
        MemberOut(
            partner=_partner_out(partners[m.partner_id]),
            role=m.role,
            status=m.status,
            joined_at=m.joined_at,
            formalized_at=m.formalized_at,
            withdrawn_at=m.withdrawn_at,
        )
        for m in page
    ]
    return Page(items=items, total=len(memberships), limit=query.limit, offset=query.offset)


def _member_out(repo: PartnersRepository, membership: Membership) -> MemberOut:
    partner = repo.get_partner(membership.partner_id)
    assert partner is not None
    return MemberOut(partner=_partner_out(partner), **membership.model_dump(exclude={"partner_id"}))


def get_member(repo: PartnersRepository, alliance_id: str, partner_id: str) -> MemberOut:
    alliance = _require_alliance(repo, alliance_id)
    found = next((m for m in alliance["members"] if m["partner_id"] == partner_id), None)
    if found is None:
        raise NotFound("Il partner non è membro di questa alleanza.")
    return _member_out(repo, Membership.model_validate(found))


def _change_members(
    repo: PartnersRepository,
    alliance_id: str,
    change: Callable[[list[Membership]], tuple[list[Membership], Membership, MembershipStatus | None]],
) -> MemberOut:
    # Read, decide and write under the alliance's lock: a conditional update is
    # not atomic on FerretDB 1.x, and two staff members may act at once.
    with held(repo.outbox.locks, document_key("alliances", alliance_id), busy_message=BUSY):
        alliance = _require_alliance(repo, alliance_id)
        members = [Membership.model_validate(m) for m in alliance["members"]]
        new_members, membership, previous = change(members)
        event = MembershipChanged(
            alliance_id=alliance_id,
            partner_id=membership.partner_id,
            role=membership.role,
            status=membership.status,
            previous_status=previous,
        )
        repo.save_members(alliance_id, alliance["version"], new_members, [event])
    return _member_out(repo, membership)


def add_member(repo: PartnersRepository, alliance_id: str, spec: MemberAdd, now: datetime) -> MemberOut:
    if repo.get_partner(spec.partner_id) is None:
        raise ValidationFailed(
            "Il partner indicato non esiste.", [{"field": "partner_id", "message": "nessun partner con questo id"}]
        )
    return _change_members(
        repo,
        alliance_id,
        lambda members: domain.add_member(members, spec.partner_id, spec.role, spec.status, now),
    )


def formalize_member(repo: PartnersRepository, alliance_id: str, partner_id: str, now: datetime) -> MemberOut:
    return _change_members(repo, alliance_id, lambda members: domain.formalize_member(members, partner_id, now))


def withdraw_member(repo: PartnersRepository, alliance_id: str, partner_id: str, now: datetime) -> MemberOut:
    return _change_members(repo, alliance_id, lambda members: domain.withdraw_member(members, partner_id, now))


def membership_of(repo: PartnersRepository, alliance_id: str, partner_id: str) -> AllianceMembershipCheck:
    alliance = _require_alliance(repo, alliance_id)
    found = next((m for m in alliance["members"] if m["partner_id"] == partner_id), None)
    return AllianceMembershipCheck(
        alliance_id=alliance_id,
        partner_id=partner_id,
        role=found["role"] if found else None,
        status=found["status"] if found else None,
    )


def alliance_territory(repo: PartnersRepository, alliance_id: str) -> AllianceTerritory:
    alliance = _require_alliance(repo, alliance_id)
    return AllianceTerritory(
        alliance_id=alliance_id,
        comuni_istat=[code for a in alliance["ambiti"] for code in a["comuni_istat"]],
        formalized_partner_ids=[
            m["partner_id"] for m in alliance["members"] if m["status"] == MembershipStatus.FORMALIZED.value
        ],
    )


# --- projects -------------------------------------------------------------------


def create_project(repo: PartnersRepository, alliance_id: str, spec: ProjectSpec, now: datetime) -> ProjectOut:
    _require_alliance(repo, alliance_id)
    domain.ensure_valid_project(spec)
    project_id = new_id()
    doc = {
        "_id": project_id,
        "alliance_id": alliance_id,
        **spec.model_dump(mode="json"),
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    event = ProjectCreated(
        alliance_id=alliance_id,
        project_id=project_id,
        title=spec.title,
        total_cost_cents=spec.total_cost_cents,
        requested_contribution_cents=spec.requested_contribution_cents,
        version=1,
    )
    repo.insert_project(doc, [event])
    return _project_out(doc)


def update_project(
    repo: PartnersRepository, alliance_id: str, project_id: str, spec: ProjectSpec, now: datetime
) -> ProjectOut:
    domain.ensure_valid_project(spec)
    with held(repo.outbox.locks, document_key("projects", project_id), busy_message=BUSY):
        current = repo.get_project(alliance_id, project_id)
        if current is None:
            raise NotFound("Progetto non trovato.")
        version = current["version"]
        event = ProjectUpdated(
            alliance_id=alliance_id,
            project_id=project_id,
            title=spec.title,
            total_cost_cents=spec.total_cost_cents,
            requested_contribution_cents=spec.requested_contribution_cents,
            version=version + 1,
        )
        repo.replace_project(project_id, version, {**spec.model_dump(mode="json"), "updated_at": now}, [event])
    updated = repo.get_project(alliance_id, project_id)
    assert updated is not None
    return _project_out(updated)


def get_project(repo: PartnersRepository, alliance_id: str, project_id: str) -> ProjectOut:
    doc = repo.get_project(alliance_id, project_id)
    if doc is None:
        raise NotFound("Progetto non trovato.")
    return _project_out(doc)


def list_projects(repo: PartnersRepository, alliance_id: str, limit: int, offset: int) -> Page[ProjectOut]:
    _require_alliance(repo, alliance_id)
    docs, total = repo.find_projects(alliance_id, limit, offset)
    return Page(items=[_project_out(d) for d in docs], total=total, limit=limit, offset=offset)
