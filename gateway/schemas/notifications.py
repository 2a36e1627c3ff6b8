"""Shapes of La Posta, notification preferences, webhooks and the delivery log (from the contracts)."""

from typing import Annotated

from fastapi import Path, Query

from conciliare.contracts.common import Contract
from conciliare.contracts.notifications import (
    DeliveryOut,
    DeliveryPage,
    InboxItemOut,
    InboxPage,
    PreferencesIn,
    PreferencesOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionPage,
)
from gateway.schemas.common import ID_MAX_LENGTH

__all__ = [
    "DeliveryId",
    "DeliveryOut",
    "DeliveryPage",
    "DeliveryStatusFilter",
    "InboxItemId",
    "InboxItemOut",
    "InboxPage",
    "PreferencesIn",
    "PreferencesOut",
    "SubscriptionCreate",
    "SubscriptionCreated",
    "SubscriptionId",
    "SubscriptionOut",
    "SubscriptionPage",
    "UnreadCount",
]

# Delivery and inbox ids are "<event id>:<recipient>:<channel>": longer than entity ids.
DELIVERY_ID_MAX_LENGTH = 200

SubscriptionId = Annotated[
    str, Path(min_length=1, max_length=ID_MAX_LENGTH, description="Identificativo della sottoscrizione")
]
DeliveryId = Annotated[
    str, Path(min_length=1, max_length=DELIVERY_ID_MAX_LENGTH, description="Identificativo della consegna")
]
InboxItemId = Annotated[
    str, Path(min_length=1, max_length=DELIVERY_ID_MAX_LENGTH, description="Identificativo del messaggio")
]
DeliveryStatusFilter = Annotated[
    str | None, Query(alias="status", pattern="^(queued|sent|failed)$", description="queued | sent | failed")
]


class UnreadCount(Contract):
    unread: int
