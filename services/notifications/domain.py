"""Rules of the notifications service, as plain functions and models with no I/O.

- which event kinds exist and which are outcomes (never muted);
- who is told about each kind: the household's guardians, the provider partner's
  operators, the alliance staff, subscribed integrators;
- which channels a recipient gets (preferences, defaults per kind of recipient);
- the delivery state machine ``queued -> sent | failed`` and its retry schedule
  (exponential backoff, capped, a configurable number of attempts);
- deterministic delivery ids: one delivery per event, recipient and channel.
"""

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from conciliare.errors import Conflict, ValidationFailed


class Channel(StrEnum):
    EMAIL = "email"
    INBOX = "inbox"
    WEBHOOK = "webhook"


class EventKind(StrEnum):
    ENROLMENT_CONFIRMED = "enrolment.confirmed"
    ENROLMENT_WAITLISTED = "enrolment.waitlisted"
    ENROLMENT_PROMOTED = "enrolment.promoted"
    ENROLMENT_CANCELLED = "enrolment.cancelled"
    ENROLMENT_REFUSED = "enrolment.refused"
    OFFERING_PUBLISHED = "offering.published"
    MEMBERSHIP_FORMALIZED = "membership.formalized"


# A family must learn the outcome of its request whatever it chose to mute.
OUTCOMES: Final = frozenset(
    {
        EventKind.ENROLMENT_CONFIRMED,
        EventKind.ENROLMENT_WAITLISTED,
        EventKind.ENROLMENT_PROMOTED,
        EventKind.ENROLMENT_CANCELLED,
        EventKind.ENROLMENT_REFUSED,
    }
)

# Outcomes of a seat (the provider is told too); a refusal is the family's business only.
ENROLMENT_KINDS: Final = OUTCOMES - {EventKind.ENROLMENT_REFUSED}


class RecipientKind(StrEnum):
    HOUSEHOLD = "household"
    PARTNER = "partner"
    ALLIANCE = "alliance"
    SUBSCRIPTION = "subscription"


class Language(StrEnum):
    IT = "it"
    EN = "en"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


def recipient_key(kind: RecipientKind, identifier: str) -> str:
    return f"{kind.value}:{identifier}"


def recipient_kind(key: str) -> RecipientKind:
    prefix, _, rest = key.partition(":")
    try:
        kind = RecipientKind(prefix)
    except ValueError:
        raise ValidationFailed("Destinatario non valido.", [{"field": "recipient", "message": key}]) from None
    if not rest:
        raise ValidationFailed("Destinatario non valido.", [{"field": "recipient", "message": key}])
    return kind


# --- the event, as this service reads it --------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """An event worth telling someone about, with the ids that decide who."""

    kind: EventKind
    event_id: str
    alliance_id: str
    occurred_at: datetime
    household_id: str | None = None
    partner_id: str | None = None


@dataclass(frozen=True)
class Audience:
    """The recipients of a notice, before preferences and addresses."""

    recipients: tuple[str, ...]
    integrator_partner_id: str | None


def audience(notice: Notice) -> Audience:
    """Who is told what.

    - enrolment outcomes: the household's guardians and the provider partner's
      operators; the provider's integrators by webhook;
    - a refused request: the household's guardians only (nothing was booked);
    - an offering published: the alliance staff; the provider's integrators;
    - a membership formalized: the partner's operators and the alliance staff; the
      partner's integrators.
    """
    recipients: list[str] = []
    if notice.kind in ENROLMENT_KINDS:
        if notice.household_id is None or notice.partner_id is None:
            raise ValidationFailed("Evento di iscrizione senza nucleo o ente gestore.")
        recipients = [
            recipient_key(RecipientKind.HOUSEHOLD, notice.household_id),
            recipient_key(RecipientKind.PARTNER, notice.partner_id),
        ]
    elif notice.kind is EventKind.ENROLMENT_REFUSED:
        if notice.household_id is None:
            raise ValidationFailed("Richiesta respinta senza nucleo.")
        recipients = [recipient_key(RecipientKind.HOUSEHOLD, notice.household_id)]
    elif notice.kind is EventKind.OFFERING_PUBLISHED:
        recipients = [recipient_key(RecipientKind.ALLIANCE, notice.alliance_id)]
    elif notice.kind is EventKind.MEMBERSHIP_FORMALIZED:
        if notice.partner_id is None:
            raise ValidationFailed("Evento di adesione senza partner.")
        recipients = [
            recipient_key(RecipientKind.PARTNER, notice.partner_id),
            recipient_key(RecipientKind.ALLIANCE, notice.alliance_id),
        ]
    return Audience(recipients=tuple(recipients), integrator_partner_id=notice.partner_id)


# --- preferences --------------------------------------------------------------------------


# Alliance staff are gateway users whose addresses this service does not hold: La Posta only.
DEFAULT_CHANNELS: Final[dict[RecipientKind, frozenset[Channel]]] = {
    RecipientKind.HOUSEHOLD: frozenset({Channel.EMAIL, Channel.INBOX}),
    RecipientKind.PARTNER: frozenset({Channel.EMAIL, Channel.INBOX}),
    RecipientKind.ALLIANCE: frozenset({Channel.INBOX}),
}


@dataclass(frozen=True)
class Preferences:
    recipient: str
    channels: frozenset[Channel]
    muted: frozenset[EventKind] = field(default_factory=frozenset)
    language: Language = Language.IT
    version: int = 0


def default_preferences(recipient: str) -> Preferences:
    kind = recipient_kind(recipient)
    return Preferences(recipient=recipient, channels=DEFAULT_CHANNELS.get(kind, frozenset({Channel.INBOX})))


def choose_preferences(
    current: Preferences, channels: list[str], muted_event_kinds: list[str], language: str
) -> Preferences:
    """New preferences from what the recipient asked, checked.

    Outcomes cannot be switched off: muting one is refused, and a recipient keeps
    at least one channel (La Posta when none is chosen would be silent).
    """
    errors = []
    chosen: set[Channel] = set()
    for name in channels:
        try:
            channel = Channel(name)
        except ValueError:
            errors.append({"field": "channels", "message": f"canale sconosciuto: {name}"})
            continue
        if channel is Channel.WEBHOOK:
            errors.append({"field": "channels", "message": "i webhook si attivano con una sottoscrizione"})
            continue
        chosen.add(channel)
    muted: set[EventKind] = set()
    for name in muted_event_kinds:
        try:
            kind = EventKind(name)
        except ValueError:
            errors.append({"field": "muted_event_kinds", "message": f"tipo di evento sconosciuto: {name}"})
            continue
        if kind in OUTCOMES:
            errors.append({"field": "muted_event_kinds", "message": f"gli esiti non si possono silenziare: {name}"})
            continue
        muted.add(kind)
    try:
        lang = Language(language)
    except ValueError:
        errors.append({"field": "language", "message": "lingua non supportata (it, en)"})
        lang = Language.IT
    if not chosen and not errors:
        errors.append({"field": "channels", "message": "scegli almeno un canale"})
    if errors:
        raise ValidationFailed("Preferenze non valide.", errors)  # type: ignore[arg-type]
    return replace(current, channels=frozenset(chosen), muted=frozenset(muted), language=lang)


def channels_for(preferences: Preferences, kind: EventKind) -> list[Channel]:
    """The channels on which a recipient hears about ``kind``.

    An outcome always reaches La Posta at least, whatever the channels chosen.
    """
    if kind in preferences.muted and kind not in OUTCOMES:
        return []
    channels = set(preferences.channels) - {Channel.WEBHOOK}
    if kind in OUTCOMES:
        channels.add(Channel.INBOX)
    return sorted(channels)


@dataclass(frozen=True)
class SubscriptionRule:
    id: str
    partner_id: str
    event_kinds: frozenset[str]
    active: bool


def subscribed(subscriptions: list[SubscriptionRule], notice: Notice, partner_id: str | None) -> list[SubscriptionRule]:
    """Active subscriptions of the concerned partner's integrators that asked for this kind."""
    if partner_id is None:
        return []
    return [
        s
        for s in subscriptions
        if s.active and s.partner_id == partner_id and (notice.kind.value in s.event_kinds or "*" in s.event_kinds)
    ]


def check_event_kinds(kinds: list[str]) -> list[str]:
    unknown = [k for k in kinds if k != "*" and k not in {e.value for e in EventKind}]
    if unknown:
        raise ValidationFailed("Tipi di evento sconosciuti.", [{"field": "event_kinds", "message": ", ".join(unknown)}])
    return sorted(set(kinds))


def check_webhook_url(url: str) -> str:
    """https only, except for loopback receivers (local tests and development)."""
    lowered = url.lower()
    local = lowered.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    if not (lowered.startswith("https://") or local):
        raise ValidationFailed("URL non valido.", [{"field": "url", "message": "deve essere https"}])
    return url


# --- deliveries ---------------------------------------------------------------------------


def delivery_id(event_id: str, recipient: str, channel: Channel) -> str:
    """One delivery per event, recipient and channel: the key that de-duplicates."""
    return f"{event_id}:{recipient}:{channel.value}"


def webhook_message_id(delivery: str) -> str:
    """The ``webhook-id``: the same on every attempt, so receivers de-duplicate too."""
    return "msg_" + hashlib.sha256(delivery.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base: timedelta = timedelta(seconds=30)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=1)

    def delay(self, attempts: int) -> timedelta:
        """Pause after the ``attempts``-th failed attempt: base * factor^(attempts-1), capped."""
        seconds = self.base.total_seconds() * self.factor ** max(0, attempts - 1)
        return min(self.cap, timedelta(seconds=seconds))


@dataclass(frozen=True)
class DeliveryState:
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None


def queued() -> DeliveryState:
    return DeliveryState(DeliveryStatus.QUEUED, 0, None, None)


def succeeded(state: DeliveryState) -> DeliveryState:
    if state.status is not DeliveryStatus.QUEUED:
        raise Conflict(f"Consegna già {state.status.value}.")
    return DeliveryState(DeliveryStatus.SENT, state.attempts + 1, state.last_error, None)


def attempt_failed(state: DeliveryState, error: str, now: datetime, policy: RetryPolicy) -> DeliveryState:
    """Another try later, or failed once the attempts are spent."""
    if state.status is not DeliveryStatus.QUEUED:
        raise Conflict(f"Consegna già {state.status.value}.")
    attempts = state.attempts + 1
    message = error[:500]
    if attempts >= policy.max_attempts:
        return DeliveryState(DeliveryStatus.FAILED, attempts, message, None)
    return DeliveryState(DeliveryStatus.QUEUED, attempts, message, now + policy.delay(attempts))


def requeued(state: DeliveryState, now: datetime) -> DeliveryState:
    """A delivery re-sent by hand: queued again, due now, with a fresh budget of attempts."""
    if state.status is DeliveryStatus.QUEUED:
        raise Conflict("La consegna è già in coda.")
    return DeliveryState(DeliveryStatus.QUEUED, 0, state.last_error, now)


INBOX_LIMIT: Final = 200
