"""Use cases of the notifications service: fan an event out, attempt deliveries, read and set.

Each loads what it needs, applies a rule of ``domain.py`` and stores the result
through ``repository.py``. The outside world (SMTP, webhooks receivers, other
services' RPC) is reached through the ``Ports`` a caller hands in.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from conciliare.chassis.concurrency import until_written
from conciliare.contracts.common import new_id
from conciliare.contracts.identity import Role, Viewer
from conciliare.contracts.notifications import (
    DeliveryOut,
    DeliveryPage,
    DeliveryQuery,
    InboxItemOut,
    InboxPage,
    InboxQuery,
    PreferencesIn,
    PreferencesOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionPage,
)
from conciliare.errors import Forbidden, NotFound
from services.notifications import domain
from services.notifications.domain import (
    Channel,
    DeliveryStatus,
    Notice,
    RecipientKind,
    RetryPolicy,
)
from services.notifications.messages import (
    EmailMessage,
    render_email,
    render_inbox,
    webhook_body,
    webhook_headers,
)
from services.notifications.repository import (
    Delivery,
    DeliveryFilter,
    InboxItem,
    NotificationsRepository,
    Subscription,
)

log = logging.getLogger(__name__)

# How long an attempt may take before the retry timer may try the delivery again.
LEASE: Final = timedelta(seconds=60)
DELIVERY_NOT_FOUND: Final = "Consegna non trovata."
SUBSCRIPTION_NOT_FOUND: Final = "Sottoscrizione non trovata."


@dataclass(frozen=True)
class Ports:
    # (addresses, message, delivery id: sent as the X-Conciliare-Delivery header)
    send_email: Callable[[list[str], EmailMessage, str], None]
    post_webhook: Callable[[str, dict[str, str], str], None]
    now: Callable[[], datetime]
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Prepared:
    """An event with what its templates and webhooks need, gathered by the caller."""

    notice: Notice
    context: dict[str, Any]
    webhook_data: dict[str, Any]
    # Email addresses per recipient key; a recipient without any gets no email.
    addresses: dict[str, list[str]]


# --- fan-out ------------------------------------------------------------------------------


def notify_once(
    repo: NotificationsRepository, ports: Ports, consumer: str, event_id: str, prepare: Callable[[], Prepared | None]
) -> None:
    """Fan an event out unless it was already (a redelivery skips even the look-ups)."""
    if repo.event_done(consumer, event_id):
        return
    prepared = prepare()
    if prepared is not None:
        fan_out(repo, ports, prepared)
    repo.mark_event_done(consumer, event_id, ports.now())


def fan_out(repo: NotificationsRepository, ports: Ports, prepared: Prepared) -> list[str]:
    """Queue and attempt every delivery of an event; ids of the deliveries created now.

    Safe to repeat: a delivery that exists (same event, recipient, channel) is not
    created again, so a redelivered event sends nothing twice.
    """
    notice = prepared.notice
    now = ports.now()
    planned: list[Delivery] = []
    audience = domain.audience(notice)
    for recipient in audience.recipients:
        prefs = repo.preferences(recipient)
        for channel in domain.channels_for(prefs, notice.kind):
            target, content = _content(notice, prepared, recipient, channel, prefs.language)
            if target is not None:
                planned.append(_planned(notice, recipient, channel, target, None, content, now))
    partner_id = audience.integrator_partner_id
    subscriptions = {s.id: s for s in repo.subscriptions(partner_id)} if partner_id is not None else {}
    body = webhook_body(notice.kind, notice.event_id, notice.occurred_at, prepared.webhook_data)
    for rule in domain.subscribed([s.rule() for s in subscriptions.values()], notice, partner_id):
        subscription = subscriptions[rule.id]
        recipient = domain.recipient_key(RecipientKind.SUBSCRIPTION, rule.id)
        planned.append(_planned(notice, recipient, Channel.WEBHOOK, subscription.url, rule.id, {"body": body}, now))
    created = repo.add_deliveries(planned, now + LEASE)
    repo.save_states([(d, _try(repo, ports, d)) for d in created], ports.now())
    return [d.id for d in created]


def _planned(
    notice: Notice,
    recipient: str,
    channel: Channel,
    target: str,
    subscription_id: str | None,
    content: dict[str, str],
    now: datetime,
) -> Delivery:
    return Delivery(
        id=domain.delivery_id(notice.event_id, recipient, channel),
        event_id=notice.event_id,
        event_type=notice.kind.value,
        alliance_id=notice.alliance_id,
        recipient=recipient,
        channel=channel,
        target=target,
        subscription_id=subscription_id,
        state=domain.queued(),
        content=content,
        created_at=now,
        updated_at=now,
        version=1,
    )


def _content(
    notice: Notice, prepared: Prepared, recipient: str, channel: Channel, language: domain.Language
) -> tuple[str | None, dict[str, str]]:
    if channel is Channel.EMAIL:
        addresses = prepared.addresses.get(recipient) or []
        if not addresses:
            return None, {}
        email = render_email(notice.kind, language, prepared.context)
        return ", ".join(addresses), {"subject": email.subject, "text": email.text, "html": email.html}
    message = render_inbox(notice.kind, language, prepared.context)
    return recipient, {"title": message.title, "body": message.body}


# --- attempts -----------------------------------------------------------------------------


def attempt(repo: NotificationsRepository, ports: Ports, delivery_id: str) -> DeliveryStatus | None:
    """Try a queued delivery once and record the outcome (sent, retry later, or failed)."""
    delivery = repo.get_delivery(delivery_id)
    if delivery is None or delivery.state.status is not DeliveryStatus.QUEUED:
        repo.drop_due(delivery_id)
        return None if delivery is None else delivery.state.status
    state = _try(repo, ports, delivery)
    repo.save_state(delivery, state, ports.now())
    return state.status


def _try(repo: NotificationsRepository, ports: Ports, delivery: Delivery) -> domain.DeliveryState:
    """One attempt of a queued delivery: its next state (sent, retry later, or failed).

    Any failure of the channel (refused, unreachable, timed out) is recorded and retried.
    """
    try:
        _send(repo, ports, delivery)
    except Exception as exc:
        log.warning("delivery %s failed: %s", delivery.id, exc)
        return domain.attempt_failed(delivery.state, f"{type(exc).__name__}: {exc}", ports.now(), ports.policy)
    return domain.succeeded(delivery.state)


def _send(repo: NotificationsRepository, ports: Ports, delivery: Delivery) -> None:
    content = delivery.content
    if delivery.channel is Channel.EMAIL:
        message = EmailMessage(subject=content["subject"], text=content["text"], html=content["html"])
        ports.send_email([a.strip() for a in delivery.target.split(",")], message, delivery.id)
    elif delivery.channel is Channel.INBOX:
        repo.push_inbox(
            InboxItem(
                id=delivery.id,
                recipient=delivery.recipient,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                title=content["title"],
                body=content["body"],
                read=False,
                created_at=delivery.created_at,
            )
        )
    else:
        subscription = repo.get_subscription(delivery.subscription_id or "")
        if subscription is None or not subscription.active:
            raise RuntimeError("sottoscrizione eliminata o disattivata")
        message_id = domain.webhook_message_id(delivery.id)
        body = content["body"]
        ports.post_webhook(subscription.url, webhook_headers(subscription.secret, message_id, body, ports.now()), body)


def retry_due(repo: NotificationsRepository, ports: Ports, limit: int = 100) -> int:
    """Attempt the deliveries whose time has come; how many were attempted."""
    now = ports.now()
    ids = repo.claim_due(now, now + LEASE, limit)
    for delivery_id in ids:
        attempt(repo, ports, delivery_id)
    return len(ids)


# --- who reads what -----------------------------------------------------------------------


def _delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        event_id=d.event_id,
        event_type=d.event_type,
        alliance_id=d.alliance_id,
        recipient=d.recipient,
        channel=d.channel.value,
        target=d.target,
        subscription_id=d.subscription_id,
        status=d.state.status.value,
        attempts=d.state.attempts,
        last_error=d.state.last_error,
        next_attempt_at=d.state.next_attempt_at,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


def list_deliveries(repo: NotificationsRepository, viewer: Viewer, query: DeliveryQuery) -> DeliveryPage:
    """The delivery log: the platform operator all, alliance staff their alliances'."""
    if viewer.role is Role.PLATFORM_ADMIN:
        alliances = query.alliance_ids
    elif viewer.role is Role.ALLIANCE_MANAGER:
        allowed = set(viewer.alliance_ids)
        alliances = [a for a in (query.alliance_ids or viewer.alliance_ids) if a in allowed]
    else:
        raise Forbidden("Il registro delle consegne è riservato allo staff dell'alleanza.")
    where = DeliveryFilter(
        alliance_ids=alliances,
        subscription_ids=None if query.subscription_id is None else [query.subscription_id],
        status=query.status,
    )
    items, total = repo.list_deliveries(where, query.limit, query.offset)
    return DeliveryPage(items=[_delivery_out(d) for d in items], total=total, limit=query.limit, offset=query.offset)


def _own_subscription(repo: NotificationsRepository, viewer: Viewer, subscription_id: str) -> Subscription:
    subscription = repo.get_subscription(subscription_id)
    if subscription is None or not _may_manage(viewer, subscription.partner_id):
        raise NotFound(SUBSCRIPTION_NOT_FOUND)
    return subscription


def _may_manage(viewer: Viewer, partner_id: str) -> bool:
    if viewer.role is Role.PLATFORM_ADMIN:
        return True
    return viewer.role is Role.PARTNER_OPERATOR and viewer.partner_id == partner_id


def subscription_deliveries(
    repo: NotificationsRepository, viewer: Viewer, subscription_id: str, limit: int, offset: int
) -> DeliveryPage:
    _own_subscription(repo, viewer, subscription_id)
    items, total = repo.list_deliveries(DeliveryFilter(subscription_ids=[subscription_id]), limit, offset)
    return DeliveryPage(items=[_delivery_out(d) for d in items], total=total, limit=limit, offset=offset)


def redeliver(
    repo: NotificationsRepository,
    ports: Ports,
    viewer: Viewer,
    delivery_id: str,
    subscription_id: str | None = None,
) -> DeliveryOut:
    """Send a sent or failed webhook delivery again, now (its integrator or the platform operator)."""
    delivery = repo.get_delivery(delivery_id)
    if delivery is None or delivery.subscription_id is None:
        raise NotFound(DELIVERY_NOT_FOUND)
    if subscription_id is not None and delivery.subscription_id != subscription_id:
        raise NotFound(DELIVERY_NOT_FOUND)
    try:
        _own_subscription(repo, viewer, delivery.subscription_id)
    except NotFound:
        raise NotFound(DELIVERY_NOT_FOUND) from None

    def requeue() -> Delivery | None:
        current = repo.get_delivery(delivery_id)
        if current is None:
            raise NotFound(DELIVERY_NOT_FOUND)
        now = ports.now()
        state = domain.requeued(current.state, now)
        return current if repo.requeue(current, state, now, now + LEASE) else None

    until_written(requeue)
    attempt(repo, ports, delivery_id)
    stored = repo.get_delivery(delivery_id)
    assert stored is not None
    return _delivery_out(stored)


# --- subscriptions ---------------------------------------------------------------------------


def _subscription_out(s: Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=s.id,
        partner_id=s.partner_id,
        url=s.url,
        event_kinds=s.event_kinds,
        description=s.description,
        active=s.active,
        created_at=s.created_at,
    )


def create_subscription(
    repo: NotificationsRepository, viewer: Viewer, spec: SubscriptionCreate, secret: str, now: datetime
) -> SubscriptionCreated:
    """An integrator (partner operator) subscribes; the secret is returned only here."""
    if viewer.role is not Role.PARTNER_OPERATOR or viewer.partner_id is None:
        raise Forbidden("I webhook sono per gli integratori degli enti partner.")
    subscription = Subscription(
        id=new_id(),
        partner_id=viewer.partner_id,
        url=domain.check_webhook_url(spec.url),
        event_kinds=domain.check_event_kinds(spec.event_kinds),
        description=spec.description,
        secret=secret,
        active=True,
        created_at=now,
    )
    repo.add_subscription(subscription)
    return SubscriptionCreated(**_subscription_out(subscription).model_dump(), secret=secret)


def list_subscriptions(repo: NotificationsRepository, viewer: Viewer, limit: int, offset: int) -> SubscriptionPage:
    if viewer.role is Role.PLATFORM_ADMIN:
        subscriptions = repo.subscriptions()
    elif viewer.role is Role.PARTNER_OPERATOR and viewer.partner_id is not None:
        subscriptions = repo.subscriptions(viewer.partner_id)
    else:
        subscriptions = []
    page = subscriptions[offset : offset + limit]
    return SubscriptionPage(
        items=[_subscription_out(s) for s in page], total=len(subscriptions), limit=limit, offset=offset
    )


def get_subscription(repo: NotificationsRepository, viewer: Viewer, subscription_id: str) -> SubscriptionOut:
    return _subscription_out(_own_subscription(repo, viewer, subscription_id))


def delete_subscription(repo: NotificationsRepository, viewer: Viewer, subscription_id: str) -> None:
    _own_subscription(repo, viewer, subscription_id)
    repo.delete_subscription(subscription_id)


# --- La Posta and preferences -------------------------------------------------------------------


def inbox_page(repo: NotificationsRepository, recipients: list[str], query: InboxQuery) -> InboxPage:
    """The merged inboxes of the caller's mailboxes, newest first."""
    items = [item for r in recipients for item in repo.inbox_items(r)]
    items.sort(key=lambda i: (i.created_at, i.id), reverse=True)
    unread = sum(1 for i in items if not i.read)
    shown = [i for i in items if not i.read] if query.unread_only else items
    page = shown[query.offset : query.offset + query.limit]
    return InboxPage(
        items=[
            InboxItemOut(
                id=i.id,
                recipient=i.recipient,
                event_id=i.event_id,
                event_type=i.event_type,
                title=i.title,
                body=i.body,
                read=i.read,
                created_at=i.created_at,
            )
            for i in page
        ],
        unread=unread,
        total=len(shown),
        limit=query.limit,
        offset=query.offset,
    )


def unread_count(repo: NotificationsRepository, recipients: list[str]) -> int:
    return sum(1 for r in recipients for i in repo.inbox_items(r) if not i.read)


def mark_read(repo: NotificationsRepository, recipients: list[str], item_id: str) -> None:
    if not any(repo.mark_read(r, item_id) for r in recipients):
        raise NotFound("Messaggio non trovato.")


def _preferences_out(prefs: domain.Preferences) -> PreferencesOut:
    return PreferencesOut(
        recipient=prefs.recipient,
        channels=sorted(c.value for c in prefs.channels),
        muted_event_kinds=sorted(k.value for k in prefs.muted),
        language=prefs.language.value,
        version=prefs.version,
    )


def get_preferences(repo: NotificationsRepository, recipient: str) -> PreferencesOut:
    domain.recipient_kind(recipient)
    return _preferences_out(repo.preferences(recipient))


def set_preferences(repo: NotificationsRepository, recipient: str, spec: PreferencesIn) -> PreferencesOut:
    domain.recipient_kind(recipient)

    def write() -> domain.Preferences | None:
        current = repo.preferences(recipient)
        chosen = domain.choose_preferences(current, spec.channels, spec.muted_event_kinds, spec.language)
        return chosen if repo.save_preferences(chosen) else None

    until_written(write)
    return _preferences_out(repo.preferences(recipient))


def mailboxes(viewer: Viewer, household_id: str | None) -> list[str]:
    """The recipient keys whose La Posta and preferences a viewer reads."""
    match viewer.role:
        case Role.FAMILY:
            return [] if household_id is None else [domain.recipient_key(RecipientKind.HOUSEHOLD, household_id)]
        case Role.PARTNER_OPERATOR if viewer.partner_id:
            return [domain.recipient_key(RecipientKind.PARTNER, viewer.partner_id)]
        case Role.ALLIANCE_MANAGER:
            return [domain.recipient_key(RecipientKind.ALLIANCE, a) for a in viewer.alliance_ids]
    return []
