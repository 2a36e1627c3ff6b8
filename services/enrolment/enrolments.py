"""Enrolments: request, read, list, cancel; the provider's roster of an offering.

A request is checked (every refusal reason at once), stored, and decided by the
offering's seats (``seats.py`` holds the rule, ``seating.py`` runs it). Where an
enrolment stands is read from the seats, never stored twice. See ``seating.py`` for
why a crash at any point loses nothing acknowledged and counts no child twice.
"""

import hashlib
from datetime import datetime, timedelta

from conciliare.chassis.validation import parse
from conciliare.contracts.common import Page, new_id
from conciliare.contracts.enrolment import (
    EnrolmentCreate,
    EnrolmentOut,
    EnrolmentQuery,
    OfferingRoster,
    RosterEntry,
    SeatCounts,
    Viewer,
)
from conciliare.contracts.taxonomy import AttendanceMode
from conciliare.errors import FieldError, NotFound, ValidationFailed
from services.enrolment import access, projections, seating
from services.enrolment.domain import (
    ENROLMENT_STATUS_LABELS,
    ROME,
    ChildNeeds,
    EnrolmentRequest,
    EnrolmentStatus,
    ExistingEnrolment,
    Period,
    Refusal,
    check_eligibility,
    mask_codice_fiscale,
)
from services.enrolment.ports import Repository, Runtime
from services.enrolment.records import AuditEntry, AuditPurpose, Enrolment, ListedEnrolment
from services.enrolment.seats import UNDECIDED, OfferingSeats, Placement, SeatEvent

REFUSED = "L'iscrizione non può essere accettata."


def enrolment_id_for(owner_subject: str, request_key: str) -> str:
    """Stable id of the enrolment an idempotency key creates: a retry finds the first."""
    return hashlib.sha256(f"{owner_subject}\x00{request_key}".encode()).hexdigest()[:32]


def _enrolment_out(record: Enrolment, placement: Placement) -> EnrolmentOut:
    return EnrolmentOut.model_validate(
        {
            "id": record.id,
            "offering_id": record.offering_id,
            "offering_title": record.offering_title,
            "alliance_id": record.alliance_id,
            "provider_partner_id": record.provider_partner_id,
            "child_id": record.child_id,
            "child_name": record.child_name,
            "child_codice_fiscale": record.child_codice_fiscale,
            "household_id": record.household_id,
            "period": record.period.model_dump(mode="json"),
            "attendance_mode": record.attendance_mode.value,
            "chosen_weekdays": sorted(record.chosen_weekdays) if record.chosen_weekdays else None,
            "hours": record.hours,
            "status": placement.status.value,
            "status_label": ENROLMENT_STATUS_LABELS[placement.status],
            "sequence": placement.sequence,
            "waitlist_position": placement.waitlist_position,
            "promoted": placement.promoted,
            "requested_at": record.requested_at,
            "decided_at": placement.decided_at,
            "cancelled_at": placement.cancelled_at,
            "cancel_reason": placement.cancel_reason,
        }
    )


def _refused(refusals: list[Refusal]) -> ValidationFailed:
    errors: list[FieldError] = [{"field": r.code.value, "message": r.message} for r in refusals]
    return ValidationFailed(REFUSED, errors)


def _answer(record: Enrolment, placement: Placement) -> EnrolmentOut:
    """The answer to a request: its outcome, or the refusal of an offering that closed meanwhile."""
    if placement.rejected:
        raise ValidationFailed(REFUSED, [{"field": "offering_not_published", "message": placement.cancel_reason or ""}])
    return _enrolment_out(record, placement)


def _placement(repo: Repository, runtime: Runtime, record: Enrolment, finish_after: float) -> Placement:
    """Where the enrolment stands; a request undecided for ``finish_after`` seconds is decided now."""
    seats = repo.seats(record.offering_id)
    if seats is not None and seats.knows(record.id):
        return seats.placement(record.id)
    if runtime.now() - record.requested_at < timedelta(seconds=finish_after):
        return UNDECIDED  # its decider is at work
    # Stored and never decided: its decider crashed (or this is the retry asking again).
    decided = seating.decider(runtime)(repo, runtime, record)
    return decided.placement(record.id) if decided is not None else UNDECIDED


# --- requests -------------------------------------------------------------------------------------


def request_enrolment(
    repo: Repository, viewer: Viewer, spec_in: EnrolmentCreate, request_key: str | None, runtime: Runtime
) -> EnrolmentOut:
    """Check eligibility, store the request, and answer with its seat decision.

    Refused requests store nothing (every reason is listed). ``request_key`` (the
    gateway's idempotency key) makes a retry answer with the first request's outcome.
    Two simultaneous requests of one child for overlapping periods: each appends
    itself to the child's list of enrolments (an atomic ``$push``) and then checks
    against the entries listed before it; the later one withdraws and is refused.
    """
    access.ensure_family(viewer, "Solo le famiglie possono iscrivere i propri figli.")
    request = parse(EnrolmentRequest, spec_in.model_dump(mode="json"))
    child = repo.child(request.child_id)
    household = repo.household(child.household_id) if child else None
    if child is None or household is None or not access.owns(viewer, household):
        raise NotFound(access.CHILD_NOT_FOUND)
    enrolment_id = enrolment_id_for(viewer.subject, request_key) if request_key else new_id()
    if request_key and (stored := repo.enrolment(enrolment_id)) is not None:
        return _answer(stored, _placement(repo, runtime, stored, finish_after=0))

    now = runtime.now()
    offering = projections.offering_for_request(repo, runtime, request.offering_id)
    territory = projections.territory_for_request(repo, runtime, offering.alliance_id)
    needs = repo.needs_of([child.id]).get(child.id, ChildNeeds())
    repo.audit([AuditEntry.of(viewer, child.id, AuditPurpose.ELIGIBILITY, "household", now)])

    def refusals(listed: tuple[ListedEnrolment, ...]) -> list[Refusal]:
        return check_eligibility(
            request,
            child.birth_date,
            needs,
            household.spec,
            offering,
            territory.comuni_istat or frozenset(),
            territory.formalized_partner_ids,
            _active_overlapping(repo, child.id, listed, request.period, enrolment_id, now),
            now.astimezone(ROME).date(),
        )

    if found := refusals(child.enrolments):
        raise _refused(found)
    listed = child.enrolments
    if all(entry.enrolment_id != enrolment_id for entry in listed):
        entry = ListedEnrolment(enrolment_id, offering.offering_id, request.period, now)
        listed = (repo.list_enrolment(child.id, entry) or child).enrolments
    listed_ids = [e.enrolment_id for e in listed]
    earlier = listed[: listed_ids.index(enrolment_id)] if enrolment_id in listed_ids else listed
    if found := refusals(earlier):
        # Another request of this child, listed first, overlaps: it wins.
        repo.unlist_enrolment(child.id, enrolment_id)
        raise _refused(found)

    record = Enrolment(
        id=enrolment_id,
        offering_id=offering.offering_id,
        offering_title=offering.title,
        alliance_id=offering.alliance_id,
        provider_partner_id=offering.provider_partner_id,
        child_id=child.id,
        child_first_name=child.first_name,
        child_last_name=child.last_name,
        child_codice_fiscale=mask_codice_fiscale(child.codice_fiscale),
        child_birth_date=child.birth_date,
        household_id=household.id,
        owner_subject=viewer.subject,
        period=request.period,
        attendance_mode=request.attendance_mode,
        chosen_weekdays=request.chosen_weekdays,
        hours=request.hours,
        requested_at=now,
    )
    # Noted first: a stored request is never left without someone to decide it.
    repo.note_undecided(record.id, record.offering_id, now)
    if not repo.add_enrolment(record):
        record = repo.enrolment(record.id) or record  # a retry with the same key stored it first
    seats = seating.decider(runtime)(repo, runtime, record)
    # None: still undecided after the wait (answered "requested"; the relay decides it).
    return _answer(record, seats.placement(record.id) if seats is not None else UNDECIDED)


def _active_overlapping(
    repo: Repository,
    child_id: str,
    listed: tuple[ListedEnrolment, ...],
    period: Period,
    skip_id: str,
    now: datetime,
) -> list[ExistingEnrolment]:
    """The child's enrolments overlapping ``period``, with their status (only those matter)."""
    candidates = [e for e in listed if e.enrolment_id != skip_id and e.period.overlaps(period)]
    if not candidates:
        return []
    records = {r.id: r for r in repo.enrolments(e.enrolment_id for e in candidates)}
    seats = {offering_id: repo.seats(offering_id) for offering_id in {e.offering_id for e in candidates}}
    found: list[ExistingEnrolment] = []
    for entry in candidates:
        record = records.get(entry.enrolment_id)
        if record is not None:
            offering_seats = seats.get(record.offering_id)
            status = offering_seats.status_of(record.id) if offering_seats else EnrolmentStatus.REQUESTED
            found.append(record.as_existing(status))
        elif now - entry.listed_at < timedelta(seconds=seating.IN_FLIGHT_SECONDS):
            # Listed a moment ago, not stored yet: it counts as requested.
            found.append(
                ExistingEnrolment.model_construct(
                    enrolment_id=entry.enrolment_id,
                    child_id=child_id,
                    offering_id=entry.offering_id,
                    attendance_mode=AttendanceMode.FULL,  # only its period and status matter here
                    period=entry.period,
                    status=EnrolmentStatus.REQUESTED,
                    requested_at=entry.listed_at,
                )
            )
        # Otherwise an attempt that died before storing its request: it holds nothing.
    return found


# --- reads ---------------------------------------------------------------------------------------


def get_enrolment(repo: Repository, enrolment_id: str, viewer: Viewer, runtime: Runtime) -> EnrolmentOut:
    """One enrolment, with its current waitlist position (a request a crash left undecided is decided now)."""
    record = access.visible_enrolment(viewer, repo.enrolment(enrolment_id))
    return _enrolment_out(record, _placement(repo, runtime, record, finish_after=seating.STALE_REQUEST_SECONDS))


def list_enrolments(repo: Repository, viewer: Viewer, query: EnrolmentQuery) -> Page[EnrolmentOut]:
    """The enrolments the viewer may see, newest first."""
    statuses = {s.value for s in EnrolmentStatus}
    if query.status is not None and query.status not in statuses:
        raise ValidationFailed(
            "Filtro non valido.",
            [
                {
                    "field": "status",
                    "message": "stato sconosciuto: requested, confirmed, waitlisted, cancelled, completed",
                }
            ],
        )
    where = access.enrolment_filter(viewer, query.offering_id, query.child_id)
    records: list[Enrolment] = []
    if where is not None and where.owner_subject is not None:
        # A family's enrolments are listed by its children: reads by id only.
        household_id = repo.household_id_of(where.owner_subject)
        household = repo.household(household_id) if household_id else None
        children = repo.children(household.child_ids) if household else []
        records = repo.enrolments(e.enrolment_id for c in children for e in c.enrolments)
    elif where is not None:
        records = repo.find_enrolments(where)
    visible = [r for r in records if where is not None and where.matches(r)]
    seats = _seats_of(repo, {r.offering_id for r in visible})
    placed = [(r, _placed(seats, r)) for r in visible]
    if query.status is not None:
        placed = [(r, p) for r, p in placed if p.status.value == query.status]
    placed.sort(key=lambda item: item[0].id)
    placed.sort(key=lambda item: item[0].requested_at, reverse=True)
    page = placed[query.offset : query.offset + query.limit]
    return Page(
        items=[_enrolment_out(r, p) for r, p in page], total=len(placed), limit=query.limit, offset=query.offset
    )


def _seats_of(repo: Repository, offering_ids: set[str]) -> dict[str, OfferingSeats]:
    found = {offering_id: repo.seats(offering_id) for offering_id in sorted(offering_ids)}
    return {offering_id: seats for offering_id, seats in found.items() if seats is not None}


def _placed(seats: dict[str, OfferingSeats], record: Enrolment) -> Placement:
    offering_seats = seats.get(record.offering_id)
    return offering_seats.placement(record.id) if offering_seats is not None else UNDECIDED


# --- cancellation ---------------------------------------------------------------------------------


def cancel_enrolment(
    repo: Repository, enrolment_id: str, viewer: Viewer, reason: str | None, runtime: Runtime
) -> EnrolmentOut:
    """Cancel; a freed seat goes to the first waitlisted child in the same write."""
    record = access.visible_enrolment(viewer, repo.enrolment(enrolment_id))
    access.ensure_may_cancel(viewer)

    def cancel(seats: OfferingSeats, now: datetime) -> list[SeatEvent]:
        # A request a crash left undecided is decided first, so it is cancelled from where it stands.
        return seats.request(record.id, now) + seats.cancel(record.id, now, reason, by=viewer.subject)

    seats = seating.apply(repo, runtime, record.offering_id, cancel, [record])
    repo.forget_undecided([record.id])
    seating.publish(repo, runtime, record.offering_id)
    return _enrolment_out(record, seats.placement(record.id))


# --- the offering's staff view ---------------------------------------------------------------


def seat_counts(repo: Repository, offering_id: str) -> SeatCounts:
    """Confirmed and waitlisted children (the catalog asks before lowering the capacity)."""
    seats = repo.seats(offering_id)
    if seats is None:
        return SeatCounts(confirmed=0, waitlisted=0)
    return SeatCounts(confirmed=len(seats.confirmed), waitlisted=len(seats.waitlist))


def offering_roster(repo: Repository, offering_id: str, viewer: Viewer, now: datetime) -> OfferingRoster:
    """Confirmed children and the waitlist in order; needs only for the provider (each read audited)."""
    offering = access.staff_offering(viewer, repo.offering(offering_id))
    seats = repo.seats(offering_id) or OfferingSeats(offering_id, offering.capacity)
    records = {r.id: r for r in repo.enrolments([*seats.confirmed, *seats.waitlist])}
    disclose = access.discloses_needs(viewer, offering)
    needs: dict[str, ChildNeeds] = {}
    if disclose:
        child_ids = sorted({r.child_id for r in records.values()})
        needs = repo.needs_of(child_ids)
        basis = "provider_of_enrolled_service"
        repo.audit([AuditEntry.of(viewer, c, AuditPurpose.PROVIDER_ROSTER, basis, now) for c in child_ids])

    def entry(record: Enrolment) -> RosterEntry:
        placement = seats.placement(record.id)
        child_needs = needs.get(record.child_id, ChildNeeds())
        return RosterEntry.model_validate(
            {
                "enrolment_id": record.id,
                "child_id": record.child_id,
                "child_name": record.child_name,
                "child_codice_fiscale": record.child_codice_fiscale,
                "birth_date": record.child_birth_date,
                "needs": sorted(n.value for n in child_needs.needs) if disclose else None,
                "status": placement.status.value,
                "sequence": placement.sequence,
                "waitlist_position": placement.waitlist_position,
                "period": record.period.model_dump(mode="json"),
                "attendance_mode": record.attendance_mode.value,
                "requested_at": record.requested_at,
            }
        )

    confirmed = sorted(
        (records[i] for i in seats.confirmed if i in records), key=lambda r: seats.sequence_of(r.id) or 0
    )
    return OfferingRoster(
        offering_id=offering_id,
        title=offering.title,
        capacity=offering.capacity,
        confirmed_count=len(seats.confirmed),
        waitlisted_count=len(seats.waitlist),
        needs_disclosed=disclose,
        confirmed=[entry(r) for r in confirmed],
        waitlist=[entry(records[i]) for i in seats.waitlist if i in records],
    )
