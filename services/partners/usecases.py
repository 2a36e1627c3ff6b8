"""Use cases of the partners service: load, apply a domain rule, store, answer.

Each function takes the repository and validated contract models; ``service.py``
only parses payloads, calls one of these and publishes the outbox.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from conciliare.chassis.concurrency import until_written
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
    PartnerAccess,
    PartnerCreate,
    PartnerOut,
    PartnerQuery,
    ProjectCreated,
    ProjectOut,
    ProjectSpec,
    ProjectUpdated,
)
from conciliare.errors import Conflict, NotFound, ValidationFailed
from conciliare.geo import comune_by_istat
from services.partners import domain
from services.partners.repository import Alliance, Partner, PartnersRepository, Project, stored_time

T = TypeVar("T")

ALLIANCE_NOT_FOUND = "Alleanza non trovata."
PARTNER_NOT_FOUND = "Partner non trovato."
PROJECT_NOT_FOUND = "Progetto non trovato."
NOT_A_MEMBER = "Il partner non è membro di questa alleanza."
STALE_PROJECT = "Il progetto è stato modificato da qualcun altro nel frattempo: ricaricalo e riprova."


def _partner_out(partner: Partner) -> PartnerOut:
    comune = comune_by_istat(partner.comune_istat)
    return PartnerOut(
        id=partner.id,
        kind=partner.kind,
        name=partner.name,
        tax_code=partner.tax_code,
        comune_istat=partner.comune_istat,
        comune_name=comune.name if comune else partner.comune_istat,
        email=partner.email,
        family_friendly=partner.family_friendly,
        created_at=partner.created_at,
    )


def _alliance_out(alliance: Alliance) -> AllianceOut:
    ambiti = []
    for ambito in alliance.ambiti:
        comuni = []
        for code in ambito.comuni_istat:
            comune = comune_by_istat(code)
            comuni.append(
                ComuneOut(istat=code, name=comune.name if comune else code, province=comune.province if comune else "")
            )
        ambiti.append(AmbitoOut(name=ambito.name, comuni=comuni))
    active = [m for m in alliance.members if domain.listed_member(m, None, False)]
    return AllianceOut(
        id=alliance.id,
        code=alliance.code,
        name=alliance.name,
        status=alliance.status,
        ambiti=ambiti,
        capofila_partner_id=alliance.capofila_partner_id,
        member_count=len(active),
        created_at=alliance.created_at,
    )


def _project_out(project: Project) -> ProjectOut:
    return ProjectOut(
        **project.spec.model_dump(),
        id=project.id,
        alliance_id=project.alliance_id,
        created_at=project.created_at,
        updated_at=project.updated_at,
        version=project.version,
    )


def _require_alliance(repo: PartnersRepository, alliance_id: str) -> Alliance:
    alliance = repo.get_alliance(alliance_id)
    if alliance is None:
        raise NotFound(ALLIANCE_NOT_FOUND)
    return alliance


def _membership(alliance: Alliance, partner_id: str) -> Membership | None:
    return next((m for m in alliance.members if m.partner_id == partner_id), None)


# --- partners ---------------------------------------------------------------


def register_partner(
    repo: PartnersRepository,
    spec: PartnerCreate,
    now: datetime,
    request_key: str | None = None,
    requested_by: str | None = None,
) -> PartnerOut:
    """Register an organisation; ``requested_by`` (who registers it) may read it at once.

    With ``request_key`` (the caller's idempotency key) a retry answers with the
    partner the first request registered, instead of a duplicate-tax-code conflict.
    """
    domain.ensure_valid_partner(spec.tax_code, spec.comune_istat)
    partner_id = domain.request_id("partner", requested_by, request_key) if request_key else new_id()
    if request_key and (earlier := repo.get_partner(partner_id)) is not None:
        return _partner_out(earlier)
    partner = Partner(id=partner_id, **spec.model_dump(), created_at=stored_time(now), registered_by=requested_by)
    try:
        repo.insert_partner(partner)
    except Conflict:
        # A concurrent retry of the same request got there first: its partner is the answer.
        if request_key and (earlier := repo.get_partner(partner_id)) is not None:
            return _partner_out(earlier)
        raise
    return _partner_out(partner)


def partner_access(repo: PartnersRepository, partner_id: str) -> PartnerAccess:
    partner = repo.get_partner(partner_id)
    if partner is None:
        raise NotFound(PARTNER_NOT_FOUND)
    return PartnerAccess(
        partner_id=partner_id,
        alliance_ids=repo.alliance_ids_of_partner(partner_id),
        registered_by=partner.registered_by,
    )


def get_partner(repo: PartnersRepository, partner_id: str) -> PartnerOut:
    partner = repo.get_partner(partner_id)
    if partner is None:
        raise NotFound(PARTNER_NOT_FOUND)
    return _partner_out(partner)


def list_partners(repo: PartnersRepository, query: PartnerQuery) -> Page[PartnerOut]:
    ids = query.partner_ids
    if query.alliance_ids is not None:
        member_ids = {
            m.partner_id
            for alliance_id in query.alliance_ids
            for m in _require_alliance(repo, alliance_id).members
            if m.status is not MembershipStatus.WITHDRAWN
        }
        if query.registered_by is not None:
            member_ids.update(repo.partner_ids_registered_by(query.registered_by))
        ids = sorted(member_ids) if ids is None else [i for i in ids if i in member_ids]
    kind = query.kind.value if query.kind else None
    found, total = repo.find_partners(ids, kind, query.tax_code, query.text, query.limit, query.offset)
    return Page(items=[_partner_out(p) for p in found], total=total, limit=query.limit, offset=query.offset)


# --- alliances ----------------------------------------------------------------


def create_alliance(
    repo: PartnersRepository,
    spec: AllianceCreate,
    now: datetime,
    request_key: str | None = None,
    requested_by: str | None = None,
) -> AllianceOut:
    """Create an alliance; with ``request_key`` a retry answers with the first one."""
    alliance_id = domain.request_id("alliance", requested_by, request_key) if request_key else new_id()
    if request_key and (earlier := repo.get_alliance(alliance_id)) is not None:
        return _alliance_out(earlier)
    domain.ensure_valid_territory([a.comuni_istat for a in spec.ambiti])
    if repo.get_partner(spec.capofila_partner_id) is None:
        raise ValidationFailed(
            "Il capofila indicato non esiste.",
            [{"field": "capofila_partner_id", "message": "nessun partner con questo id"}],
        )
    now = stored_time(now)
    capofila = Membership(
        partner_id=spec.capofila_partner_id,
        role=MembershipRole.CAPOFILA,
        status=MembershipStatus.FORMALIZED,
        joined_at=now,
        formalized_at=now,
    )
    alliance = Alliance(
        id=alliance_id,
        code=spec.code,
        name=spec.name,
        status=AllianceStatus.ACTIVE,
        ambiti=list(spec.ambiti),
        capofila_partner_id=spec.capofila_partner_id,
        members=[capofila],
        version=1,
        created_at=now,
    )
    events = [
        AllianceCreated(
            alliance_id=alliance.id,
            code=spec.code,
            name=spec.name,
            comuni_istat=alliance.comuni_istat(),
            capofila_partner_id=spec.capofila_partner_id,
        ),
        MembershipChanged(
            alliance_id=alliance.id,
            partner_id=spec.capofila_partner_id,
            role=MembershipRole.CAPOFILA,
            status=MembershipStatus.FORMALIZED,
            previous_status=None,
        ),
    ]
    try:
        repo.insert_alliance(alliance, list(events))
    except Conflict:
        if request_key and (earlier := repo.get_alliance(alliance_id)) is not None:
            return _alliance_out(earlier)
        raise
    return _alliance_out(alliance)


def alliances_covering(repo: PartnersRepository, comune_istat: str) -> list[str]:
    """Ids of the alliances whose territory includes the Comune."""
    return repo.alliance_ids_covering(comune_istat)


def get_alliance(repo: PartnersRepository, alliance_id: str) -> AllianceOut:
    return _alliance_out(_require_alliance(repo, alliance_id))


def list_alliances(
    repo: PartnersRepository, alliance_ids: list[str] | None, limit: int, offset: int
) -> Page[AllianceOut]:
    found, total = repo.find_alliances(alliance_ids, limit, offset)
    return Page(items=[_alliance_out(a) for a in found], total=total, limit=limit, offset=offset)


def alliances_of_partner(repo: PartnersRepository, partner_id: str) -> list[str]:
    return repo.alliance_ids_of_partner(partner_id)


def list_members(repo: PartnersRepository, alliance_id: str, query: MemberQuery) -> Page[MemberOut]:
    alliance = _require_alliance(repo, alliance_id)
    memberships = [m for m in alliance.members if domain.listed_member(m, query.status, query.include_withdrawn)]
    memberships = [m for m in memberships if query.role is None or m.role is query.role]
    partners = repo.partners_by_ids([m.partner_id for m in memberships])
    # Capofila first, then by name: the order of the seed documents' lists.
    memberships.sort(key=lambda m: (m.role is not MembershipRole.CAPOFILA, partners[m.partner_id].name.casefold()))
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
    found = _membership(_require_alliance(repo, alliance_id), partner_id)
    if found is None:
        raise NotFound(NOT_A_MEMBER)
    return _member_out(repo, found)


MemberChange = Callable[[list[Membership]], tuple[list[Membership], Membership, MembershipStatus | None]]


def _change_members(
    repo: PartnersRepository, alliance_id: str, change: MemberChange, request: str | None = None
) -> MemberOut:
    """Read the alliance, apply ``change`` (a domain rule over all members), write it
    back guarded by the version read; on a lost race, read and decide again.

    ``request`` (a request id) is recorded with the change: when the alliance already
    records it, the change was made by an earlier try of this very request, and the
    membership it made is the answer."""

    def attempt() -> Membership | None:
        alliance = _require_alliance(repo, alliance_id)
        if request is not None and request in alliance.member_requests:
            earlier = _membership(alliance, alliance.member_requests[request])
            if earlier is not None:
                return earlier
        new_members, membership, previous = change(list(alliance.members))
        event = MembershipChanged(
            alliance_id=alliance_id,
            partner_id=membership.partner_id,
            role=membership.role,
            status=membership.status,
            previous_status=previous,
        )
        if request is None:
            written = repo.save_members(alliance_id, alliance.version, new_members, [event])
        else:
            recorded = (request, membership.partner_id)
            written = repo.save_members(alliance_id, alliance.version, new_members, [event], request=recorded)
        return membership if written else None

    return _member_out(repo, until_written(attempt))


def add_member(
    repo: PartnersRepository,
    alliance_id: str,
    spec: MemberAdd,
    now: datetime,
    request_key: str | None = None,
    requested_by: str | None = None,
) -> MemberOut:
    """Add a partner; with ``request_key`` a retry answers with the membership the
    first try made instead of "already a member"."""
    request = domain.request_id("member", requested_by, request_key, alliance_id) if request_key else None
    if repo.get_partner(spec.partner_id) is None:
        raise ValidationFailed(
            "Il partner indicato non esiste.", [{"field": "partner_id", "message": "nessun partner con questo id"}]
        )
    now = stored_time(now)
    return _change_members(
        repo,
        alliance_id,
        lambda members: domain.add_member(members, spec.partner_id, spec.role, spec.status, now),
        request,
    )


def formalize_member(repo: PartnersRepository, alliance_id: str, partner_id: str, now: datetime) -> MemberOut:
    now = stored_time(now)
    return _change_members(repo, alliance_id, lambda members: domain.formalize_member(members, partner_id, now))


def withdraw_member(repo: PartnersRepository, alliance_id: str, partner_id: str, now: datetime) -> MemberOut:
    now = stored_time(now)
    return _change_members(repo, alliance_id, lambda members: domain.withdraw_member(members, partner_id, now))


def membership_of(repo: PartnersRepository, alliance_id: str, partner_id: str) -> AllianceMembershipCheck:
    found = _membership(_require_alliance(repo, alliance_id), partner_id)
    return AllianceMembershipCheck(
        alliance_id=alliance_id,
        partner_id=partner_id,
        role=found.role if found else None,
        status=found.status if found else None,
    )


def alliance_territory(repo: PartnersRepository, alliance_id: str) -> AllianceTerritory:
    alliance = _require_alliance(repo, alliance_id)
    return AllianceTerritory(
        alliance_id=alliance_id,
        comuni_istat=alliance.comuni_istat(),
        formalized_partner_ids=[m.partner_id for m in alliance.members if m.status is MembershipStatus.FORMALIZED],
    )


# --- projects -------------------------------------------------------------------


def create_project(
    repo: PartnersRepository,
    alliance_id: str,
    spec: ProjectSpec,
    now: datetime,
    request_key: str | None = None,
    requested_by: str | None = None,
) -> ProjectOut:
    """Create a project whose period and budget are valid; with ``request_key`` a retry
    answers with the project the first try created."""
    _require_alliance(repo, alliance_id)
    project_id = domain.request_id("project", requested_by, request_key, alliance_id) if request_key else new_id()
    if request_key and (earlier := repo.get_project(alliance_id, project_id)) is not None:
        return _project_out(earlier)
    domain.ensure_valid_project(spec)
    now = stored_time(now)
    project = Project(id=project_id, alliance_id=alliance_id, spec=spec, created_at=now, updated_at=now, version=1)
    event = ProjectCreated(
        alliance_id=alliance_id,
        project_id=project.id,
        title=spec.title,
        total_cost_cents=spec.total_cost_cents,
        requested_contribution_cents=spec.requested_contribution_cents,
        version=project.version,
    )
    try:
        repo.insert_project(project, [event])
    except Conflict:
        if request_key and (earlier := repo.get_project(alliance_id, project_id)) is not None:
            return _project_out(earlier)
        raise
    return _project_out(project)


def _stale_project(current_version: int) -> Conflict:
    return Conflict(STALE_PROJECT, [{"field": "version", "message": f"versione attuale: {current_version}"}])


def update_project(
    repo: PartnersRepository,
    alliance_id: str,
    project_id: str,
    spec: ProjectSpec,
    now: datetime,
    expected_version: int | None = None,
) -> ProjectOut:
    """Replace a project's data; the budget must still add up.

    With ``expected_version`` (the version the caller read) the write succeeds only
    if nobody changed the project since: of concurrent editors of one version
    exactly one wins and the others get a ``Conflict``. Without it the last
    writer wins, still one whole write at a time (each bumps the version).
    """
    domain.ensure_valid_project(spec)
    now = stored_time(now)

    def attempt() -> Project | None:
        current = repo.get_project(alliance_id, project_id)
        if current is None:
            raise NotFound(PROJECT_NOT_FOUND)
        if expected_version is not None and current.version != expected_version:
            raise _stale_project(current.version)
        event = ProjectUpdated(
            alliance_id=alliance_id,
            project_id=project_id,
            title=spec.title,
            total_cost_cents=spec.total_cost_cents,
            requested_contribution_cents=spec.requested_contribution_cents,
            version=current.version + 1,
        )
        written = repo.replace_project(project_id, current.version, spec, now, [event])
        if written is None and expected_version is not None:
            # Someone else wrote the version this caller read: theirs stands.
            latest = repo.get_project(alliance_id, project_id)
            raise _stale_project(latest.version if latest else expected_version + 1)
        return written

    return _project_out(until_written(attempt))


def get_project(repo: PartnersRepository, alliance_id: str, project_id: str) -> ProjectOut:
    project = repo.get_project(alliance_id, project_id)
    if project is None:
        raise NotFound(PROJECT_NOT_FOUND)
    return _project_out(project)


def list_projects(repo: PartnersRepository, alliance_id: str, limit: int, offset: int) -> Page[ProjectOut]:
    _require_alliance(repo, alliance_id)
    found, total = repo.find_projects(alliance_id, limit, offset)
    return Page(items=[_project_out(p) for p in found], total=total, limit=limit, offset=offset)
