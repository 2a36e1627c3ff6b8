"""Running the seat rule: load an offering's seats, apply one operation, save it in one write.

``apply`` is the only code that changes an offering's seats. It loads the aggregate
(``seats.OfferingSeats``), applies an operation, and saves state and events in one
conditional write on ``{_id, version}`` (the outbox: the events ride in the same
document and are published right after). If another writer (the other service
instance, a cancellation, a catalog event) saved first, it loads again and re-applies,
a bounded number of times with jittered back-off, then answers ``Unavailable``.

Requests are decided in batches by ``admission.py`` (one partition queue's messages,
in order); cancellations and catalog changes call ``apply`` directly. Every path
goes through the same aggregate and the same conditional write, so their order is
the order of their writes, and a decision replayed after a crash is a no-op
(requesting or refusing an enrolment the aggregate already decided changes nothing).
The aggregate also follows the offering projection (capacity, published or not):
every ``apply`` first brings it up to the stored projection, so a crash between the
projection's write and the seats' one heals itself.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Final

from conciliare.chassis.concurrency import until_written
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.enrolment import (
    EnrolmentCancelled,
    EnrolmentConfirmed,
    EnrolmentPromoted,
    EnrolmentRefused,
    EnrolmentWaitlisted,
    RefusalReason,
)
from conciliare.errors import Unavailable
from services.enrolment.ports import Repository, Runtime
from services.enrolment.records import Enrolment
from services.enrolment.seats import (
    Cancelled,
    Confirmed,
    OfferingSeats,
    Promoted,
    Reason,
    Refused,
    SeatEvent,
    Waitlisted,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 12
# A request listed on its child this long ago whose enrolment was never stored: its
# batch died between the two writes (the message comes back and is decided then); it
# holds nothing meanwhile.
IN_FLIGHT_SECONDS: Final = 60.0
BUSY: Final = "Il servizio è molto richiesto in questo momento: riprova tra qualche secondo."

Change = Callable[[OfferingSeats, datetime], list[SeatEvent]]


def apply(
    repo: Repository, runtime: Runtime, offering_id: str, change: Change, known: Iterable[Enrolment] = ()
) -> OfferingSeats:
    """Apply ``change`` to the offering's seats and save it (events queued in the same write).

    ``known`` are enrolments the caller already holds (for the events' fields); the
    others the events name are read. Publishing is the caller's next step (``publish``).
    """
    records = {record.id: record for record in known}

    def attempt() -> OfferingSeats | None:
        now = runtime.now()
        seats = repo.seats(offering_id) or OfferingSeats(offering_id)
        events = _follow_projection(repo, seats, now)
        events += change(seats, now)
        if not seats.changed:
            return seats
        missing = {event.enrolment_id for event in events} - records.keys()
        records.update((record.id, record) for record in repo.enrolments(sorted(missing)))
        return seats if repo.save_seats(seats, _integration_events(events, records)) else None

    try:
        return until_written(
            attempt, attempts=MAX_ATTEMPTS, busy_message=BUSY, busy_error=Unavailable, sleep=runtime.sleep
        )
    except Unavailable:
        log.warning("seats of offering %s: %d writers in a row got there first", offering_id, MAX_ATTEMPTS)
        raise


def publish(repo: Repository, runtime: Runtime, offering_id: str) -> None:
    """Publish the events queued with the offering's seats; on failure the relay timer will."""
    try:
        repo.publish_seat_events(offering_id, runtime.dispatch)
    except Exception:
        log.exception("events of offering %s left for the relay", offering_id)


def decide(
    repo: Repository,
    runtime: Runtime,
    offering_id: str,
    decisions: Sequence[tuple[Enrolment, Sequence[Reason]]],
) -> OfferingSeats:
    """Seat (or refuse, when reasons are given) each stored request of one offering, in the given order.

    The order is the order of arrival: ``admission`` hands over its partition's
    queue order. Events are queued in the same write and published right after.
    """

    def change(seats: OfferingSeats, now: datetime) -> list[SeatEvent]:
        events: list[SeatEvent] = []
        for record, reasons in decisions:
            events += seats.refuse(record.id, now, reasons) if reasons else seats.request(record.id, now)
        return events

    seats = apply(repo, runtime, offering_id, change, [record for record, _ in decisions])
    if runtime.publish_soon is not None:
        runtime.publish_soon(offering_id)
    else:
        publish(repo, runtime, offering_id)
    return seats


# --- seat events -> integration events -----------------------------------------------------------


def _follow_projection(repo: Repository, seats: OfferingSeats, now: datetime) -> list[SeatEvent]:
    offering = repo.offering(seats.offering_id)
    if offering is None or offering.version <= seats.offering_version:
        return []
    return seats.follow_offering(offering.version, offering.capacity, offering.accepts_requests, now)


def _integration_events(events: Sequence[SeatEvent], records: dict[str, Enrolment]) -> list[IntegrationEvent]:
    published: list[IntegrationEvent] = []
    for event in events:
        record = records.get(event.enrolment_id)
        if record is None:  # the aggregate only takes stored requests: cannot happen
            log.error("no enrolment %s for its %s event", event.enrolment_id, type(event).__name__)
            continue
        published.append(_integration_event(event, record))
    return published


def _integration_event(event: SeatEvent, record: Enrolment) -> IntegrationEvent:
    common = {
        "alliance_id": record.alliance_id,
        "offering_id": record.offering_id,
        "enrolment_id": record.id,
        "child_id": record.child_id,
        "household_id": record.household_id,
        "provider_partner_id": record.provider_partner_id,
    }
    match event:
        case Confirmed(sequence=sequence):
            return EnrolmentConfirmed(**common, sequence=sequence)
        case Waitlisted(sequence=sequence, position=position):
            return EnrolmentWaitlisted(**common, sequence=sequence, position=position)
        case Promoted(sequence=sequence, position=position):
            return EnrolmentPromoted(**common, sequence=sequence, position=position)
        case Cancelled(sequence=sequence, previous_status=previous, reason=reason):
            return EnrolmentCancelled(**common, sequence=sequence, previous_status=previous.value, reason=reason)
        case Refused(reasons=reasons):
            return EnrolmentRefused(
                alliance_id=record.alliance_id,
                offering_id=record.offering_id,
                enrolment_id=record.id,
                child_id=record.child_id,
                household_id=record.household_id,
                reasons=[RefusalReason(code=r.code, message=r.message) for r in reasons],
            )
    raise AssertionError(f"unknown seat event {event!r}")
