"""Use cases of applications: submit (data frozen from the enrolment service), read,
review eligibility, withdraw."""

from datetime import datetime

from conciliare.contracts.common import Page, new_id
from conciliare.contracts.enrolment import ChildOut, HouseholdOut
from conciliare.contracts.identity import Viewer
from conciliare.contracts.vouchers import (
    ApplicantSnapshot,
    ApplicationCreate,
    ApplicationOut,
    ApplicationQuery,
    ApplicationReviewed,
    ApplicationStatus,
    ApplicationSubmitted,
    GuardianSnapshot,
    ProgrammeStatus,
    ReviewDecision,
    WithdrawRequest,
    attachment_prefix,
)
from conciliare.errors import Conflict, NotFound, ValidationFailed
from services.vouchers import access
from services.vouchers.dependencies import EnrolmentClient, PartnersClient
from services.vouchers.domain import eligibility, programmes, ranking
from services.vouchers.domain.programmes import ROME
from services.vouchers.programmes import require, require_managed
from services.vouchers.repository import Application, VouchersRepository, duplicate_application, stored_time
from services.vouchers.views import application_out

REVIEWABLE = frozenset({ProgrammeStatus.OPEN, ProgrammeStatus.CLOSED, ProgrammeStatus.RANKED})


def freeze(
    household: HouseholdOut, children: list[ChildOut], child: ChildOut, weekly_hours: list[int], on: datetime
) -> ApplicantSnapshot:
    """The household's declared data at submission, as the application keeps it."""
    if weekly_hours and len(weekly_hours) != len(household.guardians):
        raise ValidationFailed(
            "Indica le ore settimanali di ciascun genitore del nucleo.",
            [{"field": "weekly_hours", "message": f"attesi {len(household.guardians)} valori"}],
        )
    if any(h < 0 or h > 80 for h in weekly_hours):
        raise ValidationFailed("Ore settimanali non valide.", [{"field": "weekly_hours", "message": "tra 0 e 80"}])
    hours = weekly_hours or [0] * len(household.guardians)
    today = on.astimezone(ROME).date()
    return ApplicantSnapshot(
        residence_comune_istat=household.residence_comune_istat,
        single_parent=household.single_parent,
        isee_cents=household.isee.value_cents if household.isee else None,
        isee_kind=household.isee.kind if household.isee else None,
        isee_expires_on=household.isee.expires_on if household.isee else None,
        guardians=[
            GuardianSnapshot(
                codice_fiscale=g.codice_fiscale,
                employment=g.employment,
                employer_partner_id=g.employer_partner_id,
                weekly_hours=h,
            )
            for g, h in zip(household.guardians, hours, strict=True)
        ],
        minors_count=sum(1 for c in children if eligibility.age_in_years(c.birth_date, today) < 18),
        child_codice_fiscale=child.codice_fiscale,
        child_birth_date=child.birth_date,
    )


def submit(
    repo: VouchersRepository,
    enrolment: EnrolmentClient,
    partners: PartnersClient,
    viewer: Viewer,
    programme_id: str,
    spec: ApplicationCreate,
    now: datetime,
) -> ApplicationOut:
    """A family applies for one child; a protocol number and the time received are assigned."""
    access.ensure_family(viewer)
    foreign = [a.object_key for a in spec.attachments if not a.object_key.startswith(attachment_prefix(viewer.subject))]
    if foreign:
        raise ValidationFailed(
            "Gli allegati vanno caricati dal proprio account prima della domanda.",
            [{"field": "attachments", "message": f"allegato non tuo: {key}"} for key in foreign],
        )
    now = stored_time(now)
    programme = require(repo, viewer, programme_id)
    problem = programmes.submission_window_problem(programme.spec, programme.status, now)
    if problem:
        raise Conflict(problem)
    # The enrolment service decides whether this family may read this household.
    household = enrolment.get_household(spec.household_id, viewer)
    children = enrolment.list_children(spec.household_id, viewer)
    child = next((c for c in children if c.id == spec.child_id), None)
    if child is None:
        raise NotFound("Minore non trovato in questo nucleo.")
    territory = partners.alliance_territory(programme.alliance_id)
    snapshot = freeze(household, children, child, spec.weekly_hours, now)
    has_disability = "disabilita" in (child.needs or [])
    declarations = eligibility.Declarations(
        claims_disability_priority=spec.claims_disability_priority,
        child_has_disability=has_disability,
        no_double_funding=spec.no_double_funding,
        attachments=spec.attachments,
    )
    reasons = eligibility.automatic_checks(
        programme.spec,
        snapshot,
        declarations,
        eligibility.Territory(frozenset(territory.comuni_istat), frozenset(territory.formalized_partner_ids)),
        now.astimezone(ROME).date(),
    )
    priority = spec.claims_disability_priority and has_disability
    breakdown = ranking.score(programme.spec.criteria, snapshot, priority)
    application_id = new_id()
    if not repo.claim_child(programme_id, spec.child_id, application_id):
        raise duplicate_application()
    try:
        sequence = repo.next_sequence(programme_id)
        application = Application(
            id=application_id,
            programme_id=programme_id,
            alliance_id=programme.alliance_id,
            protocol=programmes.protocol_number(programme.spec.year, sequence),
            sequence=sequence,
            submitted_at=now,
            applicant_subject=viewer.subject,
            household_id=spec.household_id,
            child_id=spec.child_id,
            snapshot=snapshot,
            disability_priority=priority,
            claims_disability_priority=spec.claims_disability_priority,
            no_double_funding=spec.no_double_funding,
            attachments=spec.attachments,
            status=ApplicationStatus.SUBMITTED,
            automatic_reasons=reasons,
            review_note=None,
            reviewed_by=None,
            score=sum(b.points for b in breakdown),
            breakdown=breakdown,
            cf_masked=eligibility.mask_codice_fiscale(snapshot.guardians[0].codice_fiscale),
        )
        event = ApplicationSubmitted(
            alliance_id=programme.alliance_id,
            programme_id=programme_id,
            application_id=application_id,
            protocol=application.protocol,
            applicant_subject=viewer.subject,
        )
        repo.insert_application(application, [event])
    except BaseException:
        repo.release_child(programme_id, spec.child_id, application_id)
        raise
    return application_out(application)


def get_application(repo: VouchersRepository, viewer: Viewer, application_id: str) -> ApplicationOut:
    return application_out(access.ensure_sees_application(viewer, repo.get_application(application_id)))


def list_applications(
    repo: VouchersRepository, viewer: Viewer, programme_id: str, query: ApplicationQuery
) -> Page[ApplicationOut]:
    programme = require(repo, viewer, programme_id)
    subject = access.applicant_filter(viewer, programme.alliance_id)
    status = query.status.value if query.status else None
    found, total = repo.find_applications(programme_id, subject, status, query.limit, query.offset)
    return Page(items=[application_out(a) for a in found], total=total, limit=query.limit, offset=query.offset)


def review_application(
    repo: VouchersRepository, viewer: Viewer, application_id: str, decision: ReviewDecision
) -> ApplicationOut:
    """Staff confirm or override the automatic checks (an override needs a note)."""
    application = repo.get_application(application_id)
    if application is None:
        raise NotFound(access.APPLICATION_NOT_FOUND)
    programme = require_managed(repo, viewer, application.programme_id)
    if programme.status not in REVIEWABLE:
        raise Conflict("La graduatoria è già definitiva: le domande non si istruiscono più.")
    status = eligibility.review(application.status, application.automatic_reasons, decision.eligible, decision.note)
    event = ApplicationReviewed(
        alliance_id=application.alliance_id,
        programme_id=application.programme_id,
        application_id=application_id,
        protocol=application.protocol,
        applicant_subject=application.applicant_subject,
        eligible=decision.eligible,
    )
    if not repo.save_review(application_id, application.status, status, decision.note, viewer.subject, [event]):
        raise Conflict("La domanda è stata modificata nel frattempo: ricaricala e riprova.")
    stored = repo.get_application(application_id)
    assert stored is not None
    return application_out(stored)


def confirm_automatic_reviews(repo: VouchersRepository, viewer: Viewer, programme_id: str) -> int:
    """Staff confirm the automatic result of every application not reviewed yet (one action)."""
    programme = require_managed(repo, viewer, programme_id)
    if programme.status not in REVIEWABLE:
        raise Conflict("La graduatoria è già definitiva: le domande non si istruiscono più.")
    decisions = []
    for row in repo.pending_reviews(programme_id):
        event = ApplicationReviewed(
            alliance_id=programme.alliance_id,
            programme_id=programme_id,
            application_id=row.application_id,
            protocol=row.protocol,
            applicant_subject=row.applicant_subject,
            eligible=row.automatic_ok,
        )
        status = ApplicationStatus.ELIGIBLE if row.automatic_ok else ApplicationStatus.INELIGIBLE
        decisions.append((row.application_id, status, event))
    return repo.confirm_reviews(decisions, viewer.subject)


def withdraw(repo: VouchersRepository, viewer: Viewer, application_id: str, request: WithdrawRequest) -> ApplicationOut:
    """The family withdraws its application; the child may then apply again."""
    application = access.ensure_sees_application(viewer, repo.get_application(application_id))
    if application.applicant_subject != viewer.subject:
        raise NotFound(access.APPLICATION_NOT_FOUND)
    programme = repo.get_programme(application.programme_id)
    if programme is not None and programme.status in (ProgrammeStatus.PUBLISHED, ProgrammeStatus.AWARDED):
        raise Conflict("La graduatoria è definitiva: la domanda non si può più ritirare.")
    if application.status is ApplicationStatus.WITHDRAWN:
        raise Conflict("La domanda è già stata ritirata.")
    if not repo.save_review(
        application_id, application.status, ApplicationStatus.WITHDRAWN, request.reason, viewer.subject, []
    ):
        raise Conflict("La domanda è stata modificata nel frattempo: ricaricala e riprova.")
    repo.release_child(application.programme_id, application.child_id, application_id)
    stored = repo.get_application(application_id)
    assert stored is not None
    return application_out(stored)
