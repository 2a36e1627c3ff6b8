"""In-memory stand-ins for the enrolment service's ports (cosmicpython's FakeRepository).

``FakeRepository`` implements ``services.enrolment.ports.Repository`` with dicts and
keeps the same guarantees the service relies on from MongoDB: unique ids, atomic
appends, conditional writes on a version. It stores copies, never the caller's
objects, so a use case that forgets to save is caught.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from conciliare.contracts.common import IntegrationEvent
from services.enrolment.domain import ChildNeeds, OfferingProjection, Territory
from services.enrolment.ports import Dispatch, Repository, Runtime
from services.enrolment.records import (
    AttendanceMonth,
    AuditEntry,
    Child,
    Enrolment,
    EnrolmentFilter,
    Household,
    ListedEnrolment,
    RecordedDay,
    RefusedRequest,
)
from services.enrolment.seats import OfferingSeats


def copy_seats(seats: OfferingSeats, version: int | None = None) -> OfferingSeats:
    return OfferingSeats(
        seats.offering_id,
        seats.capacity,
        seats.accepting,
        offering_version=seats.offering_version,
        version=seats.version if version is None else version,
        arrivals=seats.arrivals,
        decision_times=seats.decision_times,
        confirmed=seats.confirmed,
        waitlist=seats.waitlist,
        promoted=seats.promoted,
        cancelled=seats.cancelled,
        rejected=seats.rejected,
    )


class FakeRepository:
    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.households_by_id: dict[str, Household] = {}
        self.child_claims: dict[str, str] = {}
        self.children_by_id: dict[str, Child] = {}
        self.needs: dict[str, ChildNeeds] = {}
        self.audit_log: list[AuditEntry] = []
        self.offerings: dict[str, OfferingProjection] = {}
        self.territories: dict[str, Territory] = {}
        self.applied: set[tuple[str, str]] = set()
        self.seats_by_offering: dict[str, OfferingSeats] = {}
        self.outbox: dict[str, list[IntegrationEvent]] = {}
        self.refusals_by_id: dict[str, RefusedRequest] = {}
        self.enrolments_by_id: dict[str, Enrolment] = {}
        self.attendance_by_id: dict[str, AttendanceMonth] = {}
        # Test hook: called before a seats write; may return False to lose the race, or raise (a crash).
        self.before_seats_write: Callable[[OfferingSeats], bool] | None = None

    def ping(self) -> None:
        return None

    # --- households and children ---

    def claim_household(self, owner_subject: str, household_id: str) -> str:
        return self.owners.setdefault(owner_subject, household_id)

    def household_id_of(self, owner_subject: str) -> str | None:
        return self.owners.get(owner_subject)

    def add_household(self, household: Household) -> bool:
        if household.id in self.households_by_id:
            return False
        self.households_by_id[household.id] = household
        return True

    def household(self, household_id: str) -> Household | None:
        return self.households_by_id.get(household_id)

    def households_of(self, household_ids: Iterable[str]) -> dict[str, Household]:
        return {h: self.households_by_id[h] for h in household_ids if h in self.households_by_id}

    def households(self, limit: int, offset: int) -> tuple[list[Household], int]:
        ordered = sorted(self.households_by_id.values(), key=lambda h: (h.created_at, h.id))
        return ordered[offset : offset + limit], len(ordered)

    def claim_child(self, household_id: str, codice_fiscale: str, child_id: str) -> str:
        return self.child_claims.setdefault(f"{household_id}:{codice_fiscale}", child_id)

    def store_needs(self, child_id: str, needs: ChildNeeds, at: datetime) -> None:
        self.needs[child_id] = needs

    def needs_of(self, child_ids: Iterable[str]) -> dict[str, ChildNeeds]:
        return {c: self.needs[c] for c in child_ids if c in self.needs}

    def add_child(self, child: Child) -> bool:
        household = self.households_by_id[child.household_id]
        if child.id not in household.child_ids:
            self.households_by_id[household.id] = replace(household, child_ids=(*household.child_ids, child.id))
        if child.id in self.children_by_id:
            return False
        self.children_by_id[child.id] = child
        return True

    def child(self, child_id: str) -> Child | None:
        return self.children_by_id.get(child_id)

    def children(self, child_ids: Iterable[str]) -> list[Child]:
        return [self.children_by_id[c] for c in dict.fromkeys(child_ids) if c in self.children_by_id]

    def list_enrolment(self, child_id: str, entry: ListedEnrolment) -> Child | None:
        child = self.children_by_id.get(child_id)
        if child is None:
            return None
        self.children_by_id[child_id] = replace(child, enrolments=(*child.enrolments, entry))
        return self.children_by_id[child_id]

    def list_enrolments(self, entries: Sequence[tuple[str, ListedEnrolment]]) -> dict[str, Child]:
        for child_id, entry in entries:
            self.list_enrolment(child_id, entry)
        return {c: self.children_by_id[c] for c, _ in entries if c in self.children_by_id}

    def unlist_enrolment(self, child_id: str, enrolment_id: str) -> None:
        child = self.children_by_id[child_id]
        kept = tuple(e for e in child.enrolments if e.enrolment_id != enrolment_id)
        self.children_by_id[child_id] = replace(child, enrolments=kept)

    def audit(self, entries: Sequence[AuditEntry]) -> None:
        self.audit_log += entries

    def audit_trail(self, child_id: str) -> list[AuditEntry]:
        return sorted((e for e in self.audit_log if e.child_id == child_id), key=lambda e: e.at)

    # --- projections ---

    def offering(self, offering_id: str) -> OfferingProjection | None:
        return self.offerings.get(offering_id)

    def save_offering(self, offering: OfferingProjection, replacing: OfferingProjection | None) -> bool:
        if self.offerings.get(offering.offering_id) != replacing:
            return False
        self.offerings[offering.offering_id] = offering
        return True

    def territory(self, alliance_id: str) -> Territory | None:
        return self.territories.get(alliance_id)

    def save_territory(self, territory: Territory) -> bool:
        current = self.territories.get(territory.alliance_id)
        if (current.version if current else 0) != territory.version:
            return False
        self.territories[territory.alliance_id] = replace(territory, version=territory.version + 1)
        return True

    def apply_once(self, consumer: str, event: IntegrationEvent, apply: Callable[[], object]) -> None:
        if (consumer, event.event_id) in self.applied:
            return
        apply()
        self.applied.add((consumer, event.event_id))

    # --- seats ---

    def seats(self, offering_id: str) -> OfferingSeats | None:
        stored = self.seats_by_offering.get(offering_id)
        return copy_seats(stored) if stored else None

    def seats_snapshot(self, offering_id: str) -> OfferingSeats | None:
        return self.seats(offering_id)

    def save_seats(self, seats: OfferingSeats, events: Sequence[IntegrationEvent]) -> bool:
        if self.before_seats_write is not None and not self.before_seats_write(seats):
            return False
        stored = self.seats_by_offering.get(seats.offering_id)
        if (stored.version if stored else 0) != seats.version:
            return False
        seats.version += 1
        self.seats_by_offering[seats.offering_id] = copy_seats(seats)
        self.outbox.setdefault(seats.offering_id, []).extend(events)
        return True

    def publish_seat_events(self, offering_id: str, dispatch: Dispatch) -> int:
        events = self.outbox.get(offering_id, [])
        published = 0
        while events:
            event = events[0]
            dispatch(event.event_type, event.model_dump(mode="json"))
            events.pop(0)
            published += 1
        return published

    def publish_pending_events(self, dispatch: Dispatch) -> int:
        return sum(self.publish_seat_events(offering_id, dispatch) for offering_id in list(self.outbox))

    # --- enrolments ---

    def add_refusal(self, refusal: RefusedRequest) -> bool:
        if refusal.id in self.refusals_by_id:
            return False
        self.refusals_by_id[refusal.id] = refusal
        return True

    def refusals(self, request_ids: Iterable[str]) -> list[RefusedRequest]:
        return [self.refusals_by_id[r] for r in dict.fromkeys(request_ids) if r in self.refusals_by_id]

    def add_enrolment(self, enrolment: Enrolment) -> bool:
        if enrolment.id in self.enrolments_by_id:
            return False
        self.enrolments_by_id[enrolment.id] = enrolment
        return True

    def add_enrolments(self, enrolments: Sequence[Enrolment]) -> None:
        for enrolment in enrolments:
            self.add_enrolment(enrolment)

    def enrolment(self, enrolment_id: str) -> Enrolment | None:
        return self.enrolments_by_id.get(enrolment_id)

    def enrolments(self, enrolment_ids: Iterable[str]) -> list[Enrolment]:
        return [self.enrolments_by_id[e] for e in dict.fromkeys(enrolment_ids) if e in self.enrolments_by_id]

    def find_enrolments(self, where: EnrolmentFilter) -> list[Enrolment]:
        return [e for e in self.enrolments_by_id.values() if where.matches(e)]

    # --- attendance ---

    def attendance(self, enrolment_id: str, months: Sequence[str]) -> list[AttendanceMonth]:
        ids = [f"{enrolment_id}:{m}" for m in months]
        return [self.attendance_by_id[i] for i in ids if i in self.attendance_by_id]

    def attendance_of_month(self, enrolment_ids: Sequence[str], month: str) -> dict[str, AttendanceMonth]:
        found = {e: self.attendance_by_id.get(f"{e}:{month}") for e in enrolment_ids}
        return {e: m for e, m in found.items() if m is not None}

    def record_attendance(self, enrolment_id: str, days: Sequence[RecordedDay]) -> None:
        for day in days:
            month = day.day.strftime("%Y-%m")
            key = f"{enrolment_id}:{month}"
            current = self.attendance_by_id.get(key) or AttendanceMonth(enrolment_id, month)
            self.attendance_by_id[key] = replace(current, days={**current.days, day.day: day})


# The fake is what the use cases need: mypy checks it against the port.
_: type[Repository] = FakeRepository


@dataclass
class Clock:
    now: datetime = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Published:
    """Events the use cases dispatched, in order."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, event_type: str, payload: dict[str, Any]) -> None:
        self.events.append((event_type, payload))

    def types(self) -> list[str]:
        return [event_type for event_type, _ in self.events]


def runtime(
    clock: Clock,
    published: Published,
    *,
    sleeps: list[float] | None = None,
    fetch_territory: Callable[[str], dict[str, Any] | None] | None = None,
    fetch_offering: Callable[[str], dict[str, Any] | None] | None = None,
    dispatch: Callable[[str, dict[str, Any]], None] | None = None,
) -> Runtime:
    recorded = sleeps if sleeps is not None else []
    return Runtime(
        dispatch=dispatch or published,
        now=clock,
        sleep=recorded.append,
        fetch_territory=fetch_territory or (lambda _: None),
        fetch_offering=fetch_offering or (lambda _: None),
    )
