"""Use cases of the bando: create, read, and the audited status changes up to closing."""

from datetime import datetime

from conciliare.chassis.concurrency import until_written
from conciliare.contracts.common import IntegrationEvent, Page, new_id
from conciliare.contracts.identity import Role, Viewer
from conciliare.contracts.vouchers import (
    ProgrammeCreate,
    ProgrammeOpened,
    ProgrammeOut,
    ProgrammeQuery,
    ProgrammeSpec,
    ProgrammeStatus,
    StatusChange,
)
from conciliare.errors import NotFound, ValidationFailed
from services.vouchers import access
from services.vouchers.dependencies import PartnersClient
from services.vouchers.domain import programmes as rules
from services.vouchers.repository import Document, Programme, VouchersRepository, stored_time
from services.vouchers.views import programme_out


def require(repo: VouchersRepository, viewer: Viewer, programme_id: str) -> Programme:
    return access.ensure_sees_programme(viewer, repo.get_programme(programme_id))


def require_managed(repo: VouchersRepository, viewer: Viewer, programme_id: str) -> Programme:
    programme = repo.get_programme(programme_id)
    if programme is None:
        raise NotFound(access.PROGRAMME_NOT_FOUND)
    access.ensure_manages(viewer, programme.alliance_id)
    return programme


def create_programme(
    repo: VouchersRepository, partners: PartnersClient, viewer: Viewer, spec: ProgrammeCreate, now: datetime
) -> ProgrammeOut:
    """A draft bando of one project and action of the alliance (rules are checked at opening)."""
    access.ensure_manages(viewer, spec.alliance_id)
    project = partners.get_project(spec.alliance_id, spec.project_id)
    if spec.action_code not in {action.code for action in project.actions}:
        raise ValidationFailed(
            "L'azione indicata non è tra quelle del progetto.",
            [{"field": "action_code", "message": f"azioni del progetto: {', '.join(a.code for a in project.actions)}"}],
        )
    now = stored_time(now)
    programme = Programme(
        id=new_id(),
        alliance_id=spec.alliance_id,
        spec=ProgrammeSpec.model_validate(spec.model_dump(exclude={"alliance_id"})),
        status=ProgrammeStatus.DRAFT,
        history=[StatusChange(status=ProgrammeStatus.DRAFT, by=viewer.subject, at=now)],
        awarded_cents=0,
        ranking_run=None,
        ranked_awards_cents=0,
        version=1,
        created_at=now,
    )
    repo.insert_programme(programme)
    return programme_out(programme)


def get_programme(repo: VouchersRepository, viewer: Viewer, programme_id: str) -> ProgrammeOut:
    return programme_out(require(repo, viewer, programme_id))


def list_programmes(repo: VouchersRepository, viewer: Viewer, query: ProgrammeQuery) -> Page[ProgrammeOut]:
    if viewer.role is Role.PLATFORM_ADMIN or viewer.role is Role.FAMILY:
        alliance_ids = None if query.alliance_id is None else [query.alliance_id]
    else:
        allowed = list(viewer.alliance_ids)
        alliance_ids = [a for a in allowed if query.alliance_id in (None, a)]
    found, _ = repo.find_programmes(alliance_ids, query.status.value if query.status else None, False, 10_000, 0)
    visible = [p for p in found if access.sees_programme(viewer, p)]
    page = visible[query.offset : query.offset + query.limit]
    return Page(items=[programme_out(p) for p in page], total=len(visible), limit=query.limit, offset=query.offset)


def change_status(
    repo: VouchersRepository,
    viewer: Viewer,
    programme_id: str,
    decide: "rules.TransitionRule",
    now: datetime,
    note: str | None = None,
    extra: Document | None = None,
    events: "list[IntegrationEvent] | None" = None,
) -> Programme:
    """Read, apply the transition rule, write guarded by the version read (retry on a lost race)."""
    now = stored_time(now)

    def attempt() -> Programme | None:
        programme = require_managed(repo, viewer, programme_id)
        result = decide(programme.spec, programme.status, viewer.subject, now, note)
        written = repo.save_programme(
            programme_id, programme.version, result.status, result.change, events or [], extra
        )
        return repo.get_programme(programme_id) if written else None

    return until_written(attempt)


def open_programme(repo: VouchersRepository, viewer: Viewer, programme_id: str, now: datetime) -> ProgrammeOut:
    """Validate the rules and open the bando; ``programme.opened`` goes out with the same write."""
    current = require_managed(repo, viewer, programme_id)
    event = ProgrammeOpened(
        alliance_id=current.alliance_id,
        programme_id=programme_id,
        title=current.spec.title,
        budget_cents=current.spec.budget_cents,
        opens_at=current.spec.opens_at,
        closes_at=current.spec.closes_at,
    )
    return programme_out(
        change_status(
            repo,
            viewer,
            programme_id,
            lambda spec, status, by, at, note: rules.open_programme(spec, status, by, at),
            now,
            events=[event],
        )
    )


def close_programme(
    repo: VouchersRepository, viewer: Viewer, programme_id: str, now: datetime, note: str | None
) -> ProgrammeOut:
    return programme_out(
        change_status(
            repo,
            viewer,
            programme_id,
            lambda spec, status, by, at, n: rules.transition(status, ProgrammeStatus.CLOSED, by, at, n),
            now,
            note,
        )
    )
