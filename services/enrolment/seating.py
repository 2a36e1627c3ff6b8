"""Running the seat rule: load an offering's seats, apply one operation, save it in one write.

``apply`` is the only code that changes an offering's seats. It loads the aggregate
(``seats.OfferingSeats``), applies an operation, and saves state and events in one
conditional write on ``{_id, version}`` (the outbox: the events ride in the same
document and are published right after). If another writer (the other service
instance, a cancellation, a catalog event) saved first, it loads again and re-applies,
a bounded number of times with jittered back-off, then answers ``Unavailable``.

How a request gets its seat, and why nothing is lost or counted twice:
1. the request path stores the enrolment (a unique ``_id``, derived from the
   idempotency key when there is one) after noting it as *undecided*;
2. ``decide`` takes a batch of stored requests of one offering (the service batches
   the requests its workers are waiting on) and applies ``request_many`` in arrival
   order: requesting an enrolment the aggregate already took is a no-op, so a
   decision retried, replayed or raced by the other instance counts each child once;
3. the undecided marker is dropped and the events published.
A crash after 1 leaves a marker: the relay timer (``finish_undecided``) decides the
request a few seconds later, and a read of the enrolment does so at once. A crash
after 2 leaves the events in the seats' outbox: the timer publishes them.
The aggregate also follows the offering projection (capacity, published or not):
every ``apply`` first brings it up to the stored projection, so a crash between the
projection's write and the seats' one heals itself.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final

from conciliare.chassis.concurrency import until_written
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.enrolment import (
    EnrolmentCancelled,
    EnrolmentConfirmed,
    EnrolmentPromoted,
    EnrolmentWaitlisted,
)
from conciliare.errors import Unavailable
from services.enrolment.domain import EnrolmentStatus
from services.enrolment.ports import Repository, Runtime
from services.enrolment.records import Enrolment
from services.enrolment.seats import (
    Cancelled,
    Confirmed,
    OfferingSeats,
    Promoted,
    Rejected,
    SeatEvent,
    Waitlisted,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 12
# A request stored this long ago and still undecided lost its decider (a crash):
# the relay timer, or the next read of it, decides it.
STALE_REQUEST_SECONDS: Final = 3.0
# A request listed for its child (or noted undecided) this long ago whose enrolment
# was never stored died before it was acknowledged: it holds nothing.
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
    requests: Sequence[Enrolment],
    on_decided: Callable[[OfferingSeats], None] | None = None,
    publish_events: bool = True,
) -> OfferingSeats:
    """Give each stored request of one offering its seat or its waitlist place, in arrival order.

    ``on_decided`` runs right after the write (to answer waiting requests before the
    rest); ``publish_events=False`` leaves publishing to the caller.
    """
    ordered = sorted(requests, key=lambda r: (r.requested_at, r.id))
    ids = [r.id for r in ordered]
    seats = apply(repo, runtime, offering_id, lambda s, now: s.request_many(ids, now), ordered)
    if on_decided is not None:
        on_decided(seats)
    repo.forget_undecided(ids)
    if publish_events:
        publish(repo, runtime, offering_id)
    return seats


def decide_now(repo: Repository, runtime: Runtime, request: Enrolment) -> OfferingSeats | None:
    """Decide one request in the calling worker (``Runtime.decide`` when nothing batches)."""
    return decide(repo, runtime, request.offering_id, [request])


def decider(runtime: Runtime) -> Callable[[Repository, Runtime, Enrolment], OfferingSeats | None]:
    return runtime.decide or decide_now


def finish_undecided(repo: Repository, runtime: Runtime) -> int:
    """Decide the requests a crash left undecided (the relay timer's work); how many."""
    now = runtime.now()
    stale = repo.undecided(now - timedelta(seconds=STALE_REQUEST_SECONDS))
    by_offering: dict[str, list[str]] = defaultdict(list)
    for marker in stale:
        by_offering[marker.offering_id].append(marker.enrolment_id)
    decided = 0
    for offering_id, ids in sorted(by_offering.items()):
        records = repo.enrolments(ids)
        stored = {record.id for record in records}
        abandoned = [
            m.enrolment_id
            for m in stale
            if m.offering_id == offering_id
            and m.enrolment_id not in stored
            and now - m.noted_at > timedelta(seconds=IN_FLIGHT_SECONDS)
        ]
        repo.forget_undecided(abandoned)
        if not records:
            continue
        try:
            decide(repo, runtime, offering_id, records)
        except Unavailable:
            log.warning("undecided requests of offering %s: busy, next round", offering_id)
            continue
        decided += len(records)
    return decided


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
        case Rejected(reason=reason):
            return EnrolmentCancelled(
                **common, sequence=None, previous_status=EnrolmentStatus.REQUESTED.value, reason=reason
            )
    raise AssertionError(f"unknown seat event {event!r}")
