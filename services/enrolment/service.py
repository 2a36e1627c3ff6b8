"""Enrolment service: households, children, enrolments and attendance (entrypoints only).

Where things are: ``access.py`` (who sees what), ``households.py``, ``admission.py``
(deciding the requests of the partition queues, ``partitions.py``), ``enrolments.py``
(reads, cancellation, roster), ``registers.py`` (attendance), ``projections.py``
(offerings and alliances from events), ``relay.py`` (the timer); the seat rule is
``seats.py``, run by ``seating.py``; storage is ``repository.py``.
"""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from nameko.events import EventDispatcher, event_handler
from nameko.timer import timer

from conciliare.chassis.batches import consume_in_order
from conciliare.chassis.entrypoints import domain_rpc
from conciliare.chassis.validation import dump, parse, parse_event
from conciliare.contracts.catalog import OfferingArchived, OfferingPublished, OfferingSuspended, OfferingUpdated
from conciliare.contracts.common import IntegrationEvent, PageRequest, utc_now
from conciliare.contracts.enrolment import (
    AttendanceRecord,
    CancelRequest,
    ChildCreate,
    EnrolmentQuery,
    HouseholdCreate,
    Viewer,
)
from conciliare.contracts.enrolment_requests import EnrolmentRequested
from conciliare.contracts.partners import AllianceCreated, MembershipChanged
from conciliare.errors import ValidationFailed
from conciliare.tracing import instrument_nameko, setup_tracing
from services.enrolment import admission, enrolments, households, projections, registers, relay, seating
from services.enrolment.dependencies import (
    EnrolmentStore,
    Publishing,
    RemoteFetcher,
    SnapshotRpc,
    SoonPublisher,
    TerritoryRpc,
)
from services.enrolment.partitions import REQUEST_BATCH, partition_queues
from services.enrolment.ports import Runtime
from services.enrolment.repository import MongoRepository

setup_tracing("enrolment-service")
instrument_nameko()

log = logging.getLogger(__name__)

E = TypeVar("E", bound=IntegrationEvent)


def _projection_handler(source: str, event_type: str) -> Any:
    # Projections are idempotent, so a failure (the database away for a moment) puts
    # the event back for another try instead of losing it.
    return event_handler(source, event_type, requeue_on_error=True)


def partitioned_requests(method: Callable[..., None]) -> Callable[..., None]:
    """Consume every partition queue of enrolment requests (one active consumer each, see the contract)."""
    for queue in partition_queues():
        method = consume_in_order(queue, max_batch=REQUEST_BATCH)(method)
    return method


def _consume(model: type[E], payload: dict[str, Any], apply: Callable[[E], None]) -> None:
    # Tolerant reader: fields this service does not know are ignored. An event it
    # cannot read at all would fail forever: dropped, loudly.
    try:
        apply(parse_event(model, payload))
    except ValidationFailed as exc:
        log.error("dropping malformed %s event %s: %s", model.event_type, payload.get("event_id"), exc.errors)


class EnrolmentService:
    name = "enrolment"

    # Typed as what a worker receives: each provider hands the worker its object.
    store: MongoRepository = EnrolmentStore()
    dispatch: Callable[[str, dict[str, Any]], None] = EventDispatcher()
    territory: RemoteFetcher = TerritoryRpc()
    snapshot: RemoteFetcher = SnapshotRpc()
    publisher: SoonPublisher = Publishing()

    def _runtime(self) -> Runtime:
        runtime = Runtime(
            dispatch=self.dispatch,
            fetch_territory=self.territory,
            fetch_offering=self.snapshot,
            publish_soon=lambda offering_id: self.publisher.soon(
                offering_id, lambda: seating.publish(self.store, runtime, offering_id)
            ),
        )
        return runtime

    @timer(interval=2)
    def relay_outbox(self) -> None:
        """Publish the events a crash left in an outbox."""
        relay.run(self.store, self._runtime())

    @domain_rpc
    def ping(self) -> str:
        """Readiness probe: answers once the service and its database are up."""
        self.store.ping()
        return "pong"

    # --- households and children ------------------------------------------------------

    @domain_rpc
    def create_household(self, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Register the caller's household (one per family user)."""
        spec = parse(HouseholdCreate, payload)
        return dump(households.create_household(self.store, parse(Viewer, viewer), spec, utc_now()))

    @domain_rpc
    def get_household(self, household_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """One household, for its family (or the platform operator)."""
        return dump(households.get_household(self.store, household_id, parse(Viewer, viewer)))

    @domain_rpc
    def list_households(self, viewer: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
        """The caller's household (families) or every household (platform operator)."""
        request = parse(PageRequest, page)
        return dump(households.list_households(self.store, parse(Viewer, viewer), request.limit, request.offset))

    @domain_rpc
    def add_child(self, household_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Register a child; its needs are stored apart from its identity."""
        spec = parse(ChildCreate, payload)
        return dump(households.add_child(self.store, household_id, parse(Viewer, viewer), spec, self._runtime()))

    @domain_rpc
    def list_children(self, household_id: str, viewer: dict[str, Any]) -> list[dict[str, Any]]:
        """Children of a household; needs only for the family itself (each read audited)."""
        children = households.list_children(self.store, household_id, parse(Viewer, viewer), utc_now())
        return [dump(child) for child in children]

    # --- enrolments ---------------------------------------------------------------------------

    @partitioned_requests
    def decide_requests(self, messages: list[dict[str, Any]]) -> None:
        """Decide a partition's enrolment requests, in the order the broker accepted them."""
        requests = []
        for message in messages:
            try:
                requests.append(parse_event(EnrolmentRequested, message))
            except ValidationFailed as exc:  # would fail forever: dropped, loudly
                log.error("dropping malformed enrolment request %s: %s", message.get("request_id"), exc.errors)
        admission.decide_requests(self.store, self._runtime(), requests)

    @domain_rpc
    def get_enrolment(self, enrolment_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """One enrolment, with its current waitlist position."""
        return dump(enrolments.get_enrolment(self.store, enrolment_id, parse(Viewer, viewer)))

    @domain_rpc
    def list_enrolments(self, viewer: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        """Enrolments the caller may see (own, own offerings', own alliance's), newest first."""
        return dump(enrolments.list_enrolments(self.store, parse(Viewer, viewer), parse(EnrolmentQuery, query)))

    @domain_rpc
    def cancel_enrolment(self, enrolment_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Cancel an enrolment; a freed seat promotes the first waitlisted child."""
        reason = parse(CancelRequest, payload).reason
        viewer_in = parse(Viewer, viewer)
        return dump(enrolments.cancel_enrolment(self.store, enrolment_id, viewer_in, reason, self._runtime()))

    @domain_rpc
    def offering_roster(self, offering_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Confirmed children and waitlist of an offering, for its staff."""
        return dump(enrolments.offering_roster(self.store, offering_id, parse(Viewer, viewer), utc_now()))

    @domain_rpc
    def seat_counts(self, offering_id: str) -> dict[str, Any]:
        """Confirmed and waitlisted children of an offering (asked before lowering capacity)."""
        return dump(enrolments.seat_counts(self.store, offering_id))

    # --- attendance --------------------------------------------------------------------------------

    @domain_rpc
    def record_attendance(self, enrolment_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Record presence (or hours) per day of an enrolment."""
        record = parse(AttendanceRecord, payload)
        viewer_in = parse(Viewer, viewer)
        return dump(registers.record_attendance(self.store, enrolment_id, viewer_in, record, self._runtime()))

    @domain_rpc
    def get_attendance(self, enrolment_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """Recorded days and totals (per month and overall) of an enrolment."""
        return dump(registers.get_attendance(self.store, enrolment_id, parse(Viewer, viewer)))

    @domain_rpc
    def attendance_register(self, offering_id: str, month: str, viewer: dict[str, Any]) -> dict[str, Any]:
        """The month's attendance register of an offering as CSV (codici fiscali masked)."""
        return dump(registers.attendance_register(self.store, offering_id, month, parse(Viewer, viewer)))

    # --- projections ---------------------------------------------------------------------------------

    @_projection_handler("catalog", "offering.published")
    def on_offering_published(self, payload: dict[str, Any]) -> None:
        """Project a published offering (its seats become bookable)."""
        _consume(OfferingPublished, payload, lambda e: projections.offering_changed(self.store, self._runtime(), e))

    @_projection_handler("catalog", "offering.updated")
    def on_offering_updated(self, payload: dict[str, Any]) -> None:
        """Project an updated offering; a capacity increase promotes waitlisted children."""
        _consume(OfferingUpdated, payload, lambda e: projections.offering_changed(self.store, self._runtime(), e))

    @_projection_handler("catalog", "offering.suspended")
    def on_offering_suspended(self, payload: dict[str, Any]) -> None:
        """Project a suspended offering (no new enrolments)."""
        _consume(OfferingSuspended, payload, lambda e: projections.offering_changed(self.store, self._runtime(), e))

    @_projection_handler("catalog", "offering.archived")
    def on_offering_archived(self, payload: dict[str, Any]) -> None:
        """Project an archived offering."""
        _consume(OfferingArchived, payload, lambda e: projections.offering_changed(self.store, self._runtime(), e))

    @_projection_handler("partners", "alliance.created")
    def on_alliance_created(self, payload: dict[str, Any]) -> None:
        """Project an alliance's Comuni (residence eligibility)."""
        _consume(AllianceCreated, payload, lambda e: projections.alliance_created(self.store, self._runtime(), e))

    @_projection_handler("partners", "membership.changed")
    def on_membership_changed(self, payload: dict[str, Any]) -> None:
        """Project formalized memberships (employment eligibility)."""
        _consume(MembershipChanged, payload, lambda e: projections.membership_changed(self.store, self._runtime(), e))
