"""Contracts of the notifications service (schema version 1).

Recipients are organisational mailboxes, each named by a key: ``household:<id>``
(the family's guardians), ``partner:<id>`` (the partner's operators), ``alliance:<id>``
(the alliance staff). Integrators receive webhooks through subscriptions of their
partner. The rules live in ``services/notifications/domain.py``.
"""

from datetime import datetime

from pydantic import Field

from conciliare.contracts.common import Contract, EntityId

SCHEMA_VERSION = 1

CHANNELS = ("email", "inbox", "webhook")


class PreferencesIn(Contract):
    channels: list[str] = Field(description="email | inbox (i webhook si gestiscono con le sottoscrizioni)")
    muted_event_kinds: list[str] = Field(
        default_factory=list, description="Tipi di evento da non ricevere (gli esiti non si possono silenziare)"
    )
    language: str = Field("it", description="it | en")


class PreferencesOut(Contract):
    recipient: str
    channels: list[str]
    muted_event_kinds: list[str]
    language: str
    version: int


class InboxItemOut(Contract):
    id: str
    recipient: str
    event_id: str
    event_type: str
    title: str
    body: str
    read: bool
    created_at: datetime


class InboxPage(Contract):
    items: list[InboxItemOut]
    unread: int
    total: int
    limit: int
    offset: int


class InboxQuery(Contract):
    unread_only: bool = False
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class SubscriptionCreate(Contract):
    url: str = Field(min_length=8, max_length=2000, description="URL https (http solo in locale)")
    event_kinds: list[str] = Field(min_length=1, max_length=20)
    description: str | None = Field(None, max_length=200)


class SubscriptionOut(Contract):
    id: EntityId
    partner_id: str
    url: str
    event_kinds: list[str]
    description: str | None
    active: bool
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="Segreto di firma whsec_...: mostrato solo ora")


class SubscriptionPage(Contract):
    items: list[SubscriptionOut]
    total: int
    limit: int
    offset: int


class DeliveryOut(Contract):
    id: str
    event_id: str
    event_type: str
    alliance_id: str
    recipient: str
    channel: str
    target: str = Field(description="Indirizzo email, URL del webhook o casella La Posta")
    subscription_id: str | None
    status: str = Field(description="queued | sent | failed")
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeliveryQuery(Contract):
    alliance_ids: list[str] | None = Field(None, description="Solo le consegne di queste alleanze")
    subscription_id: str | None = None
    status: str | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class DeliveryPage(Contract):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int
