"""Enrolment service: households, children, enrolments and attendance (entrypoints only).

How seats stay exact under concurrency and crashes is explained in ``usecases.py``;
why the storage looks the way it does, in ``repository.py``.
"""

import logging
from collections.abc import Callable
from typing import Any

from nameko.events import EventDispatcher, event_handler
from nameko.timer import timer
from pydantic import ValidationError

from conciliare.chassis.entrypoints import domain_rpc
from conciliare.chassis.validation import dump, parse
from conciliare.contracts.catalog import (
    OfferingArchived,
    OfferingEvent,
    OfferingPublished,
    OfferingSuspended,
    OfferingUpdated,
)
from conciliare.contracts.common import PageRequest, utc_now
from conciliare.contracts.enrolment import (
    AttendanceRecord,
    CancelRequest,
    ChildCreate,
    EnrolmentCreate,
    EnrolmentQuery,
    HouseholdCreate,
    Viewer,
)
from conciliare.contracts.partners import AllianceCreated, MembershipChanged
from conciliare.tracing import instrument_nameko, setup_tracing
from services.enrolment import usecases
from services.enrolment.dependencies import (
    DecisionBoard,
    Decisions,
    EnrolmentStore,
    RemoteFetcher,
    SnapshotRpc,
    TerritoryRpc,
)
from services.enrolment.repository import EnrolmentRepository

setup_tracing("enrolment-service")
instrument_nameko()

log = logging.getLogger(__name__)


def _projection_handler(source: str, event_type: str) -> Any:
    # Projections are idempotent, so a failure (a lock not obtained in time, the
    # database away) puts the event back for another try instead of losing it.
    return event_handler(source, event_type, requeue_on_error=True)


class EnrolmentService:
    name = "enrolment"

    # Typed as what a worker receives: each provider hands the worker its object.
    store: EnrolmentRepository = EnrolmentStore()
    dispatch: Callable[[str, dict[str, Any]], None] = EventDispatcher()
    territory: RemoteFetcher = TerritoryRpc()
    snapshot: RemoteFetcher = SnapshotRpc()
    decisions: DecisionBoard = Decisions()

    def _runtime(self) -> usecases.Runtime:
        return usecases.Runtime(
            dispatch=self.dispatch,
            fetch_territory=self.territory,
            fetch_offering=self.snapshot,
            await_decision=self.decisions.wait,
        )

    @timer(interval=2)
    def relay_outbox(self) -> None:
        """Finish allocation passes a crash interrupted and publish their events."""
        usecases.relay(self.store, self._runtime())

    @domain_rpc
    def ping(self) -> str:
        """Readiness probe: answers once the service and its database are up."""
        self.store.db.command("ping")
        return "pong"

    # --- households and children ------------------------------------------------------

    @domain_rpc
    def create_household(self, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Register the caller's household (one per family user)."""
        spec = parse(HouseholdCreate, payload)
        return dump(usecases.create_household(self.store, parse(Viewer, viewer), spec, utc_now()))

    @domain_rpc
    def get_household(self, household_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """One household, for its family (or the platform operator)."""
        return dump(usecases.get_household(self.store, household_id, parse(Viewer, viewer)))

    @domain_rpc
    def list_households(self, viewer: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
        """The caller's household (families) or every household (platform operator)."""
        request = parse(PageRequest, page)
        return dump(usecases.list_households(self.store, parse(Viewer, viewer), request.limit, request.offset))

    @domain_rpc
    def add_child(self, household_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Register a child; its needs are stored apart from its identity."""
        spec = parse(ChildCreate, payload)
        return dump(usecases.add_child(self.store, household_id, parse(Viewer, viewer), spec, self._runtime()))

    @domain_rpc
    def list_children(self, household_id: str, viewer: dict[str, Any]) -> list[dict[str, Any]]:
        """Children of a household; needs only for the family itself (each read audited)."""
        children = usecases.list_children(self.store, household_id, parse(Viewer, viewer), utc_now())
        return [dump(child) for child in children]

    # --- enrolments ---------------------------------------------------------------------------

    @domain_rpc
    def request_enrolment(
        self, viewer: dict[str, Any], payload: dict[str, Any], request_key: str | None = None
    ) -> dict[str, Any]:
        """Enrol a child: refused with every reason, or confirmed/waitlisted atomically.

        ``request_key`` (the gateway's idempotency key) makes a retry return the
        first enrolment instead of creating another.
        """
        spec = parse(EnrolmentCreate, payload)
        result = usecases.request_enrolment(self.store, parse(Viewer, viewer), spec, request_key, self._runtime())
        return dump(result)

    @domain_rpc
    def get_enrolment(self, enrolment_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """One enrolment, with its current waitlist position."""
        return dump(usecases.get_enrolment(self.store, enrolment_id, parse(Viewer, viewer)))

    @domain_rpc
    def list_enrolments(self, viewer: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        """Enrolments the caller may see (own, own offerings', own alliance's), newest first."""
        return dump(usecases.list_enrolments(self.store, parse(Viewer, viewer), parse(EnrolmentQuery, query)))

    @domain_rpc
    def cancel_enrolment(self, enrolment_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Cancel an enrolment; a freed seat promotes the first waitlisted child."""
        body = parse(CancelRequest, payload)
        result = usecases.cancel_enrolment(
            self.store, enrolment_id, parse(Viewer, viewer), body.reason, self._runtime()
        )
        return dump(result)

    @domain_rpc
    def offering_roster(self, offering_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Confirmed children and waitlist of an offering, for its staff."""
        return dump(usecases.offering_roster(self.store, offering_id, parse(Viewer, viewer), utc_now()))

    @domain_rpc
    def seat_counts(self, offering_id: str) -> dict[str, Any]:
        """Confirmed and waitlisted children of an offering (asked before lowering capacity)."""
        return dump(usecases.seat_counts(self.store, offering_id))

    # --- attendance --------------------------------------------------------------------------------

    @domain_rpc
    def record_attendance(self, enrolment_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Record presence (or hours) per day of an enrolment."""
        record = parse(AttendanceRecord, payload)
        result = usecases.record_attendance(self.store, enrolment_id, parse(Viewer, viewer), record, self._runtime())
        return dump(result)

    @domain_rpc
    def get_attendance(self, enrolment_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Recorded days and totals (per month and overall) of an enrolment."""
        return dump(usecases.get_attendance(self.store, enrolment_id, parse(Viewer, viewer)))

    @domain_rpc
    def attendance_register(self, offering_id: str, month: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """The month's attendance register of an offering as CSV (codici fiscali masked)."""
        return dump(usecases.attendance_register(self.store, offering_id, month, parse(Viewer, viewer)))

    # --- projections ---------------------------------------------------------------------------------

    def _on_offering(self, model: type[OfferingEvent], payload: dict[str, Any]) -> None:
        try:
            event = model.model_validate(payload)
        except ValidationError:
            # A malformed event would fail forever: drop it, loudly.
            log.error("dropping malformed %s event %s", model.event_type, payload.get("event_id"))
            return
        usecases.apply_offering_event(self.store, event, self._runtime())

    @_projection_handler("catalog", "offering.published")
    def on_offering_published(self, payload: dict[str, Any]) -> None:
        """Project a published offering (seats become bookable)."""
        self._on_offering(OfferingPublished, payload)

    @_projection_handler("catalog", "offering.updated")
    def on_offering_updated(self, payload: dict[str, Any]) -> None:
        """Project an updated offering; a capacity increase promotes waitlisted children."""
        self._on_offering(OfferingUpdated, payload)

    @_projection_handler("catalog", "offering.suspended")
    def on_offering_suspended(self, payload: dict[str, Any]) -> None:
        """Project a suspended offering (no new enrolments)."""
        self._on_offering(OfferingSuspended, payload)

    @_projection_handler("catalog", "offering.archived")
    def on_offering_archived(self, payload: dict[str, Any]) -> None:
        """Project an archived offering."""
        self._on_offering(OfferingArchived, payload)

    @_projection_handler("partners", "alliance.created")
    def on_alliance_created(self, payload: dict[str, Any]) -> None:
        """Project an alliance's Comuni (residence eligibility)."""
        try:
            event = AllianceCreated.model_validate(payload)
        except ValidationError:
            log.error("dropping malformed alliance.created event %s", payload.get("event_id"))
            return
        usecases.apply_alliance_created(self.store, event, self._runtime())

    @_projection_handler("partners", "membership.changed")
    def on_membership_changed(self, payload: dict[str, Any]) -> None:
        """Project formalized memberships (employment eligibility)."""
        try:
            event = MembershipChanged.model_validate(payload)
        except ValidationError:
            log.error("dropping malformed membership.changed event %s", payload.get("event_id"))
            return
        usecases.apply_membership_changed(self.store, event, self._runtime())
