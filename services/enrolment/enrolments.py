"""Enrolments: read, list, cancel; the provider's roster of an offering.

Requests are decided by ``admission.py``, from the partition queues. Where an
enrolment stands is read from the offering's seats (``seats.py`` holds the rule,
``seating.py`` runs it), never stored twice.
"""

from datetime import datetime, timedelta

from conciliare.contracts.common import Page
from conciliare.contracts.enrolment import (
    EnrolmentOut,
    EnrolmentQuery,
    OfferingRoster,
    RosterEntry,
    SeatCounts,
    Viewer,
)
from conciliare.contracts.taxonomy import AttendanceMode
from conciliare.errors import Conflict, ValidationFailed
from services.enrolment import access, seating
from services.enrolment.domain import (
    ENROLMENT_STATUS_LABELS,
    ChildNeeds,
    EnrolmentStatus,
    ExistingEnrolment,
    Period,
)
from services.enrolment.ports import Repository, Runtime
from services.enrolment.records import AuditEntry, AuditPurpose, Enrolment, ListedEnrolment, RefusedRequest
from services.enrolment.seats import UNDECIDED, OfferingSeats, Placement, SeatEvent

STILL_DECIDING = "La richiesta è ancora in elaborazione: riprova tra qualche secondo."
NOTHING_TO_CANCEL = "La richiesta è stata respinta: non c'è nulla da annullare."


def _enrolment_out(record: Enrolment, placement: Placement) -> EnrolmentOut:
    return EnrolmentOut.model_validate(
        {
            "id": record.id,
            "protocol": record.protocol,
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
            "refusal_reasons": [{"code": r.code, "message": r.message} for r in placement.refusal_reasons],
            "accepted_at": record.requested_at,
            "requested_at": record.requested_at,
            "decided_at": placement.decided_at,
            "cancelled_at": placement.cancelled_at,
            "cancel_reason": placement.cancel_reason,
        }
    )


def _placement(repo: Repository, record: Enrolment) -> Placement:
    """Where the enrolment stands (``requested`` while its batch is being decided)."""
    seats = repo.seats_snapshot(record.offering_id)
    return seats.placement(record.id) if seats is not None else UNDECIDED


def active_overlapping(
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
    seats = {offering_id: repo.seats_snapshot(offering_id) for offering_id in {e.offering_id for e in candidates}}
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


def get_enrolment(repo: Repository, enrolment_id: str, viewer: Viewer) -> EnrolmentOut:
    """One enrolment, with its current waitlist position, or the refusal of a request."""
    record = repo.enrolment(enrolment_id)
    if record is None:
        refused = next(iter(repo.refusals([enrolment_id])), None)
        if refused is not None and access.may_read_refusal(viewer, refused.owner_subject):
            return _refusal_out(refused)
    record = access.visible_enrolment(viewer, record)
    return _enrolment_out(record, _placement(repo, record))


def _refusal_out(refused: RefusedRequest) -> EnrolmentOut:
    return EnrolmentOut.model_validate(
        {
            "id": refused.id,
            "protocol": refused.protocol,
            "offering_id": refused.offering_id,
            "offering_title": None,
            "alliance_id": None,
            "provider_partner_id": None,
            "child_id": refused.child_id,
            "child_name": None,
            "child_codice_fiscale": None,
            "household_id": None,
            "period": None,
            "attendance_mode": None,
            "chosen_weekdays": None,
            "hours": None,
            "status": EnrolmentStatus.REFUSED.value,
            "status_label": ENROLMENT_STATUS_LABELS[EnrolmentStatus.REFUSED],
            "sequence": None,
            "waitlist_position": None,
            "promoted": False,
            "refusal_reasons": [{"code": r.code, "message": r.message} for r in refused.reasons],
            "accepted_at": refused.requested_at,
            "requested_at": refused.requested_at,
            "decided_at": refused.decided_at,
            "cancelled_at": None,
            "cancel_reason": None,
        }
    )


def list_enrolments(repo: Repository, viewer: Viewer, query: EnrolmentQuery) -> Page[EnrolmentOut]:
    """The enrolments the viewer may see, newest first."""
    statuses = {s.value for s in EnrolmentStatus}
    if query.status is not None and query.status not in statuses:
        raise ValidationFailed(
            "Filtro non valido.",
            [
                {
                    "field": "status",
                    "message": "stato sconosciuto: requested, confirmed, waitlisted, refused, cancelled, completed",
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
    found = {offering_id: repo.seats_snapshot(offering_id) for offering_id in sorted(offering_ids)}
    return {offering_id: seats for offering_id, seats in found.items() if seats is not None}


def _placed(seats: dict[str, OfferingSeats], record: Enrolment) -> Placement:
    offering_seats = seats.get(record.offering_id)
    return offering_seats.placement(record.id) if offering_seats is not None else UNDECIDED


# --- cancellation ---------------------------------------------------------------------------------


def cancel_enrolment(
    repo: Repository, enrolment_id: str, viewer: Viewer, reason: str | None, runtime: Runtime
) -> EnrolmentOut:
    """Cancel; a freed seat goes to the first waitlisted child in the same write."""
    stored = repo.enrolment(enrolment_id)
    if stored is None and any(access.may_read_refusal(viewer, r.owner_subject) for r in repo.refusals([enrolment_id])):
        raise Conflict(NOTHING_TO_CANCEL)
    record = access.visible_enrolment(viewer, stored)
    access.ensure_may_cancel(viewer)

    def cancel(seats: OfferingSeats, now: datetime) -> list[SeatEvent]:
        if not seats.knows(record.id):  # its batch is being decided: ask again in a moment
            raise Conflict(STILL_DECIDING)
        return seats.cancel(record.id, now, reason, by=viewer.subject)

    seats = seating.apply(repo, runtime, record.offering_id, cancel, [record])
    seating.publish(repo, runtime, record.offering_id)
    return _enrolment_out(record, seats.placement(record.id))


# --- the offering's staff view ---------------------------------------------------------------


def seat_counts(repo: Repository, offering_id: str) -> SeatCounts:
    """Confirmed and waitlisted children (the catalog asks before lowering the capacity)."""
    seats = repo.seats_snapshot(offering_id)
    if seats is None:
        return SeatCounts(confirmed=0, waitlisted=0)
    return SeatCounts(confirmed=len(seats.confirmed), waitlisted=len(seats.waitlist))


def offering_roster(repo: Repository, offering_id: str, viewer: Viewer, now: datetime) -> OfferingRoster:
    """Confirmed children and the waitlist in order; needs only for the provider (each read audited)."""
    offering = access.staff_offering(viewer, repo.offering(offering_id))
    seats = repo.seats_snapshot(offering_id) or OfferingSeats(offering_id, offering.capacity)
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
