"""From a consumed event to a ``Prepared`` notice: template context, webhook data, addresses.

Recipient data comes from the services that own it, through the ``Lookups`` a caller
hands in (RPC in the service): the enrolment (child's name, offering title, period),
the household's guardians' addresses, the partner's address and name, the
alliance's name. Nothing here reads another service's database.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from conciliare.contracts.catalog import OfferingPublished
from conciliare.contracts.enrolment import (
    EnrolmentCancelled,
    EnrolmentEvent,
    EnrolmentPromoted,
    EnrolmentRefused,
    EnrolmentWaitlisted,
)
from conciliare.contracts.partners import MembershipChanged, MembershipStatus
from services.notifications.domain import EventKind, Notice, RecipientKind, recipient_key
from services.notifications.usecases import Prepared

Lookup = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class Lookups:
    enrolment: Lookup
    household: Lookup
    partner: Lookup
    alliance: Lookup


def _guardian_addresses(household: dict[str, Any]) -> list[str]:
    return [g["email"] for g in household.get("guardians", []) if g.get("email")]


def _day(value: str) -> str:
    return date.fromisoformat(value).strftime("%d/%m/%Y")


def _partner_addresses(lookups: Lookups, partner_id: str) -> tuple[dict[str, Any], list[str]]:
    partner = lookups.partner(partner_id) or {}
    email = partner.get("email")
    return partner, [email] if email else []


def enrolment_notice(kind: EventKind, event: EnrolmentEvent, lookups: Lookups) -> Prepared:
    enrolment = lookups.enrolment(event.enrolment_id) or {}
    household = lookups.household(event.household_id) or {}
    _, partner_addresses = _partner_addresses(lookups, event.provider_partner_id)
    position = event.position if isinstance(event, EnrolmentWaitlisted | EnrolmentPromoted) else None
    period = enrolment.get("period") or {}
    context = {
        "child_name": enrolment.get("child_name", "vostro figlio/a"),
        "offering_title": enrolment.get("offering_title", "servizio"),
        "period_start": _day(period["start"]) if "start" in period else "",
        "period_end": _day(period["end"]) if "end" in period else "",
        "position": position,
        "reason": event.reason if isinstance(event, EnrolmentCancelled) else None,
    }
    guardians = _guardian_addresses(household)
    webhook_data = {
        "alliance_id": event.alliance_id,
        "enrolment_id": event.enrolment_id,
        "offering_id": event.offering_id,
        "provider_partner_id": event.provider_partner_id,
        "status": kind.value.removeprefix("enrolment."),
        "position": position,
    }
    return Prepared(
        notice=Notice(
            kind=kind,
            event_id=event.event_id,
            alliance_id=event.alliance_id,
            occurred_at=event.occurred_at,
            household_id=event.household_id,
            partner_id=event.provider_partner_id,
        ),
        context=context,
        webhook_data=webhook_data,
        addresses={
            recipient_key(RecipientKind.HOUSEHOLD, event.household_id): guardians,
            recipient_key(RecipientKind.PARTNER, event.provider_partner_id): partner_addresses,
        },
    )


def offering_notice(event: OfferingPublished) -> Prepared:
    offering = event.offering
    return Prepared(
        notice=Notice(
            kind=EventKind.OFFERING_PUBLISHED,
            event_id=event.event_id,
            alliance_id=event.alliance_id,
            occurred_at=event.occurred_at,
            partner_id=offering.provider_partner_id,
        ),
        context={"offering_title": offering.title, "offering_type": offering.type.replace("_", " ")},
        webhook_data={
            "alliance_id": event.alliance_id,
            "offering_id": offering.offering_id,
            "provider_partner_id": offering.provider_partner_id,
            "title": offering.title,
            "type": offering.type,
            "version": offering.version,
        },
        addresses={},
    )


def membership_notice(event: MembershipChanged, lookups: Lookups) -> Prepared | None:
    """Only a membership that became formalized is told; other changes are not notices."""
    if event.status is not MembershipStatus.FORMALIZED or event.previous_status is MembershipStatus.FORMALIZED:
        return None
    partner, addresses = _partner_addresses(lookups, event.partner_id)
    alliance = lookups.alliance(event.alliance_id) or {}
    return Prepared(
        notice=Notice(
            kind=EventKind.MEMBERSHIP_FORMALIZED,
            event_id=event.event_id,
            alliance_id=event.alliance_id,
            occurred_at=event.occurred_at,
            partner_id=event.partner_id,
        ),
        context={
            "partner_name": partner.get("name", "l'ente"),
            "alliance_name": alliance.get("name", "l'alleanza"),
        },
        webhook_data={
            "alliance_id": event.alliance_id,
            "partner_id": event.partner_id,
            "role": event.role.value,
            "status": event.status.value,
        },
        addresses={recipient_key(RecipientKind.PARTNER, event.partner_id): addresses},
    )


def refusal_notice(event: EnrolmentRefused, lookups: Lookups) -> Prepared | None:
    """The family is told why its request was refused (None: no household of ours to tell)."""
    if event.household_id is None:  # the request named a child that is not the caller's
        return None
    enrolment = lookups.enrolment(event.enrolment_id) or {}
    household = lookups.household(event.household_id) or {}
    context = {
        "child_name": enrolment.get("child_name") or "vostro figlio/a",
        "offering_title": enrolment.get("offering_title") or "servizio",
        "reasons": [reason.message for reason in event.reasons],
    }
    guardians = _guardian_addresses(household)
    return Prepared(
        notice=Notice(
            kind=EventKind.ENROLMENT_REFUSED,
            event_id=event.event_id,
            alliance_id=event.alliance_id,
            occurred_at=event.occurred_at,
            household_id=event.household_id,
        ),
        context=context,
        webhook_data={"alliance_id": event.alliance_id, "enrolment_id": event.enrolment_id, "status": "refused"},
        addresses={recipient_key(RecipientKind.HOUSEHOLD, event.household_id): guardians},
    )
