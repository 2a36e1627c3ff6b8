"""What the use cases need from the outside world, as interfaces.

``Repository`` is everything they store and read; ``repository.MongoRepository``
implements it on MongoDB, the unit tests' ``FakeRepository`` in memory. ``Runtime``
is the rest: clock, sleep, event dispatch and the RPC fall-backs.
"""

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from conciliare.contracts.common import IntegrationEvent, utc_now
from services.enrolment.domain import ChildNeeds, OfferingProjection, Territory
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

Dispatch = Callable[[str, dict[str, Any]], None]
Fetch = Callable[[str], dict[str, Any] | None]


class Repository(Protocol):
    """The enrolment service's storage, in the use cases' words."""

    def ping(self) -> None: ...

    # --- households and children ---

    def claim_household(self, owner_subject: str, household_id: str) -> str:
        """Bind the owner to ``household_id`` unless bound already; the bound id."""
        ...

    def household_id_of(self, owner_subject: str) -> str | None: ...

    def add_household(self, household: Household) -> bool:
        """False if a household with this id exists already."""
        ...

    def household(self, household_id: str) -> Household | None: ...

    def households(self, limit: int, offset: int) -> tuple[list[Household], int]:
        """A page of every household, oldest first, and the total."""
        ...

    def claim_child(self, household_id: str, codice_fiscale: str, child_id: str) -> str:
        """Reserve a codice fiscale in a household for ``child_id``; the id holding it."""
        ...

    def store_needs(self, child_id: str, needs: ChildNeeds, at: datetime) -> None:
        """Store (or replace) a child's needs, apart from the child."""
        ...

    def needs_of(self, child_ids: Iterable[str]) -> dict[str, ChildNeeds]: ...

    def add_child(self, child: Child) -> bool:
        """List the child in its household and store it; False if it exists already."""
        ...

    def child(self, child_id: str) -> Child | None: ...

    def children(self, child_ids: Iterable[str]) -> list[Child]:
        """The children that exist among ``child_ids`` (any order)."""
        ...

    def list_enrolment(self, child_id: str, entry: ListedEnrolment) -> Child | None:
        """Append to the child's list of enrolments, atomically; the child as it is after."""
        ...

    def list_enrolments(self, entries: Sequence[tuple[str, ListedEnrolment]]) -> dict[str, Child]:
        """Append each entry to its child's list (in the order given); the children as they are after."""
        ...

    def unlist_enrolment(self, child_id: str, enrolment_id: str) -> None: ...

    def audit(self, entries: Sequence[AuditEntry]) -> None: ...

    def audit_trail(self, child_id: str) -> list[AuditEntry]:
        """Every read of the child's needs, oldest first."""
        ...

    # --- projections ---

    def offering(self, offering_id: str) -> OfferingProjection | None: ...

    def save_offering(self, offering: OfferingProjection, replacing: OfferingProjection | None) -> bool:
        """Store ``offering`` if the stored one is still ``replacing`` (None: none stored)."""
        ...

    def territory(self, alliance_id: str) -> Territory | None: ...

    def save_territory(self, territory: Territory) -> bool:
        """Store ``territory`` if nobody stored another since its ``version`` was read."""
        ...

    def apply_once(self, consumer: str, event: IntegrationEvent, apply: Callable[[], object]) -> None:
        """Run ``apply`` unless ``consumer`` already applied this event (by its id)."""
        ...

    # --- seats ---

    def seats(self, offering_id: str) -> OfferingSeats | None:
        """The offering's seats, to change and save."""
        ...

    def seats_snapshot(self, offering_id: str) -> OfferingSeats | None:
        """The offering's seats as stored now, to read only (may be shared: never change it)."""
        ...

    def save_seats(self, seats: OfferingSeats, events: Sequence[IntegrationEvent]) -> bool:
        """Store the aggregate and queue its events in one write, if ``seats.version`` is current.

        On success the aggregate's ``version`` is the stored one; False means another
        writer got there first (load again and retry).
        """
        ...

    def publish_seat_events(self, offering_id: str, dispatch: Dispatch) -> int:
        """Dispatch the events queued with one offering's seats, then drop them."""
        ...

    def publish_pending_events(self, dispatch: Dispatch) -> int:
        """Dispatch every queued event (the relay timer's pass)."""
        ...

    # --- enrolments ---

    def add_refusal(self, refusal: RefusedRequest) -> bool:
        """False if a request with this id was refused already."""
        ...

    def refusals(self, request_ids: Iterable[str]) -> list[RefusedRequest]:
        """The refused requests among ``request_ids`` (any order)."""
        ...

    def add_enrolment(self, enrolment: Enrolment) -> bool:
        """False if an enrolment with this id exists already."""
        ...

    def add_enrolments(self, enrolments: Sequence[Enrolment]) -> None:
        """Store the enrolments; one already stored keeps its first copy."""
        ...

    def households_of(self, household_ids: Iterable[str]) -> dict[str, Household]:
        """The households that exist among ``household_ids``, by id."""
        ...

    def enrolment(self, enrolment_id: str) -> Enrolment | None: ...

    def enrolments(self, enrolment_ids: Iterable[str]) -> list[Enrolment]:
        """The enrolments that exist among ``enrolment_ids`` (any order)."""
        ...

    def find_enrolments(self, where: EnrolmentFilter) -> list[Enrolment]:
        """Every enrolment matching ``where`` (staff lists: not for the request path)."""
        ...

    # --- attendance ---

    def attendance(self, enrolment_id: str, months: Sequence[str]) -> list[AttendanceMonth]: ...

    def attendance_of_month(self, enrolment_ids: Sequence[str], month: str) -> dict[str, AttendanceMonth]: ...

    def record_attendance(self, enrolment_id: str, days: Sequence[RecordedDay]) -> None:
        """Store recorded days; a day recorded again replaces the earlier record."""
        ...


def _no_fetch(_: str) -> dict[str, Any] | None:
    return None


@dataclass(frozen=True)
class Runtime:
    """What a use case needs from its surroundings; the service and the tests provide it."""

    dispatch: Dispatch
    now: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep
    fetch_territory: Fetch = _no_fetch
    fetch_offering: Fetch = _no_fetch
    # Publishes an offering's queued events beside the caller (the service's deciders
    # hand it over so the next batch need not wait); None: the caller publishes.
    publish_soon: Callable[[str], None] | None = None
