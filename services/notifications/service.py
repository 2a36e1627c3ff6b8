"""Notifications service: who is told what, by email, in La Posta and by webhook (entrypoints only).

Where things are: ``domain.py`` (recipients, preferences, retries, delivery states),
``messages.py`` (templates and Standard Webhooks signatures), ``preparing.py`` (an
event with the recipient data other services own, asked by RPC), ``usecases.py``
(fan-out, attempts, reads), ``outbound.py`` (SMTP, HTTP), ``repository.py`` (storage).

Event queues are nameko's durable service-pool queues: events published while this
service is down wait in RabbitMQ and are delivered when it starts. A redelivered
event creates no second delivery (one per event, recipient and channel).
"""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from nameko.events import event_handler
from nameko.timer import timer

from conciliare.chassis.entrypoints import domain_rpc
from conciliare.chassis.validation import dump, parse, parse_event
from conciliare.contracts.catalog import OfferingPublished
from conciliare.contracts.common import IntegrationEvent, PageRequest, utc_now
from conciliare.contracts.enrolment import (
    EnrolmentCancelled,
    EnrolmentConfirmed,
    EnrolmentPromoted,
    EnrolmentRefused,
    EnrolmentWaitlisted,
)
from conciliare.contracts.identity import Role, Viewer
from conciliare.contracts.notifications import DeliveryQuery, InboxQuery, PreferencesIn, SubscriptionCreate
from conciliare.contracts.partners import MembershipChanged
from conciliare.errors import ValidationFailed
from conciliare.tracing import instrument_nameko, setup_tracing
from services.notifications import usecases
from services.notifications.dependencies import SYSTEM_VIEWER, NotificationsStore, Outbound, Remote, RemoteReader
from services.notifications.domain import EventKind
from services.notifications.messages import new_webhook_secret
from services.notifications.preparing import (
    Lookups,
    enrolment_notice,
    membership_notice,
    offering_notice,
    refusal_notice,
)
from services.notifications.repository import NotificationsRepository
from services.notifications.usecases import Ports, Prepared

setup_tracing("notifications-service")
instrument_nameko()

log = logging.getLogger(__name__)

E = TypeVar("E", bound=IntegrationEvent)


def _handler(source: str, event_type: str) -> Any:
    # Fan-out is idempotent (deterministic delivery ids), so a failure (a service
    # whose data is needed is away) puts the event back for another try.
    return event_handler(source, event_type, requeue_on_error=True)


class NotificationsService:
    name = "notifications"

    store: NotificationsRepository = NotificationsStore()
    outbound: Ports = Outbound()
    enrolment: Any = Remote("enrolment")
    partners: Any = Remote("partners")

    def _lookups(self) -> Lookups:
        return Lookups(
            enrolment=RemoteReader(
                self.enrolment, "get_enrolment", lambda key: {"enrolment_id": key, "viewer": SYSTEM_VIEWER}
            ),
            household=RemoteReader(
                self.enrolment, "get_household", lambda key: {"household_id": key, "viewer": SYSTEM_VIEWER}
            ),
            partner=RemoteReader(self.partners, "get_partner", lambda key: {"partner_id": key}),
            alliance=RemoteReader(self.partners, "get_alliance", lambda key: {"alliance_id": key}),
        )

    def _consume(self, model: type[E], payload: dict[str, Any], prepare: Callable[[E], Prepared | None]) -> None:
        # Tolerant reader; an event that cannot be read at all would fail forever: dropped, loudly.
        try:
            event = parse_event(model, payload)
        except ValidationFailed as exc:
            log.error("dropping malformed %s event %s: %s", model.event_type, payload.get("event_id"), exc.errors)
            return

        consumer = f"notify:{model.event_type}"
        usecases.notify_once(self.store, self.outbound, consumer, event.event_id, lambda: prepare(event))

    def _enrolment(self, kind: EventKind, model: Any, payload: dict[str, Any]) -> None:
        self._consume(model, payload, lambda e: enrolment_notice(kind, e, self._lookups()))

    # --- events ---------------------------------------------------------------------------

    @_handler("enrolment", "enrolment.confirmed")
    def on_enrolment_confirmed(self, payload: dict[str, Any]) -> None:
        """Tell the family and the provider that a seat is confirmed."""
        self._enrolment(EventKind.ENROLMENT_CONFIRMED, EnrolmentConfirmed, payload)

    @_handler("enrolment", "enrolment.waitlisted")
    def on_enrolment_waitlisted(self, payload: dict[str, Any]) -> None:
        """Tell the family its position in the waitlist."""
        self._enrolment(EventKind.ENROLMENT_WAITLISTED, EnrolmentWaitlisted, payload)

    @_handler("enrolment", "enrolment.promoted")
    def on_enrolment_promoted(self, payload: dict[str, Any]) -> None:
        """Tell the family a waitlisted child got a seat."""
        self._enrolment(EventKind.ENROLMENT_PROMOTED, EnrolmentPromoted, payload)

    @_handler("enrolment", "enrolment.cancelled")
    def on_enrolment_cancelled(self, payload: dict[str, Any]) -> None:
        """Tell the family and the provider an enrolment was cancelled."""
        self._enrolment(EventKind.ENROLMENT_CANCELLED, EnrolmentCancelled, payload)

    @_handler("enrolment", "enrolment.refused")
    def on_enrolment_refused(self, payload: dict[str, Any]) -> None:
        """Tell the family why its request was refused."""
        self._consume(EnrolmentRefused, payload, lambda e: refusal_notice(e, self._lookups()))

    @_handler("catalog", "offering.published")
    def on_offering_published(self, payload: dict[str, Any]) -> None:
        """Tell the alliance staff and the provider's integrators about a new offering."""
        self._consume(OfferingPublished, payload, offering_notice)

    @_handler("partners", "membership.changed")
    def on_membership_changed(self, payload: dict[str, Any]) -> None:
        """Tell the partner and the alliance staff that a membership was formalized."""
        self._consume(MembershipChanged, payload, lambda e: membership_notice(e, self._lookups()))

    @timer(interval=1)
    def retry_deliveries(self) -> None:
        """Attempt the deliveries whose retry time has come (and any a crash left queued)."""
        usecases.retry_due(self.store, self.outbound)

    # --- RPC ----------------------------------------------------------------------------

    @domain_rpc
    def ping(self) -> str:
        """Readiness probe: answers once the service and its database are up."""
        self.store.ping()
        return "pong"

    def _mailboxes(self, viewer: Viewer) -> list[str]:
        household_id = None
        if viewer.role is Role.FAMILY:
            # The family's household is the enrolment service's data: asked, with a deadline.
            households = RemoteReader(
                self.enrolment, "list_households", lambda _: {"viewer": dump(viewer), "page": {"limit": 1, "offset": 0}}
            )
            page = households(viewer.subject) or {"items": []}
            household_id = page["items"][0]["id"] if page["items"] else None
        return usecases.mailboxes(viewer, household_id)

    @domain_rpc
    def list_inbox(self, viewer: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        """The caller's La Posta, newest first, with the unread count."""
        caller = parse(Viewer, viewer)
        return dump(usecases.inbox_page(self.store, self._mailboxes(caller), parse(InboxQuery, query)))

    @domain_rpc
    def unread_count(self, viewer: dict[str, Any]) -> int:
        """How many messages of the caller's La Posta are unread."""
        return usecases.unread_count(self.store, self._mailboxes(parse(Viewer, viewer)))

    @domain_rpc
    def mark_read(self, viewer: dict[str, Any], item_id: str) -> None:
        """Mark one message of the caller's La Posta as read."""
        usecases.mark_read(self.store, self._mailboxes(parse(Viewer, viewer)), item_id)

    @domain_rpc
    def get_preferences(self, viewer: dict[str, Any]) -> dict[str, Any]:
        """The caller's notification preferences (of its first mailbox)."""
        boxes = self._mailboxes(parse(Viewer, viewer))
        if not boxes:
            raise ValidationFailed("Nessuna casella di notifica per questo utente.")
        return dump(usecases.get_preferences(self.store, boxes[0]))

    @domain_rpc
    def set_preferences(self, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """Set the caller's preferences (on each of its mailboxes); outcomes cannot be muted."""
        boxes = self._mailboxes(parse(Viewer, viewer))
        if not boxes:
            raise ValidationFailed("Nessuna casella di notifica per questo utente.")
        spec = parse(PreferencesIn, payload)
        results = [usecases.set_preferences(self.store, box, spec) for box in boxes]
        return dump(results[0])

    @domain_rpc
    def create_subscription(self, viewer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """An integrator's webhook subscription; the answer holds the secret, shown only now."""
        spec = parse(SubscriptionCreate, payload)
        return dump(
            usecases.create_subscription(self.store, parse(Viewer, viewer), spec, new_webhook_secret(), utc_now())
        )

    @domain_rpc
    def list_subscriptions(self, viewer: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
        """The caller's subscriptions (all of them for the platform operator)."""
        request = parse(PageRequest, page)
        return dump(usecases.list_subscriptions(self.store, parse(Viewer, viewer), request.limit, request.offset))

    @domain_rpc
    def get_subscription(self, viewer: dict[str, Any], subscription_id: str) -> dict[str, Any]:
        """One subscription (never its secret)."""
        return dump(usecases.get_subscription(self.store, parse(Viewer, viewer), subscription_id))

    @domain_rpc
    def delete_subscription(self, viewer: dict[str, Any], subscription_id: str) -> None:
        """Stop a subscription; pending deliveries of it fail."""
        usecases.delete_subscription(self.store, parse(Viewer, viewer), subscription_id)

    @domain_rpc
    def subscription_deliveries(
        self, viewer: dict[str, Any], subscription_id: str, page: dict[str, Any]
    ) -> dict[str, Any]:
        """Delivery log of one subscription, newest first."""
        request = parse(PageRequest, page)
        return dump(
            usecases.subscription_deliveries(
                self.store, parse(Viewer, viewer), subscription_id, request.limit, request.offset
            )
        )

    @domain_rpc
    def redeliver(self, viewer: dict[str, Any], delivery_id: str, subscription_id: str | None = None) -> dict[str, Any]:
        """Send a sent or failed webhook delivery (of ``subscription_id``, when given) again, now."""
        caller = parse(Viewer, viewer)
        return dump(usecases.redeliver(self.store, self.outbound, caller, delivery_id, subscription_id))

    @domain_rpc
    def list_deliveries(self, viewer: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        """The delivery log of the caller's alliances (alliance staff, platform operator)."""
        return dump(usecases.list_deliveries(self.store, parse(Viewer, viewer), parse(DeliveryQuery, query)))
