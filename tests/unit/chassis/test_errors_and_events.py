"""How errors cross RPC and how consumers read events: the chassis rules every service relies on."""

from datetime import datetime

import pytest

from conciliare.chassis.outbox import OUTBOX_FIELD, PENDING_FLAG, attach_events, push_events
from conciliare.chassis.validation import parse, parse_event
from conciliare.contracts.common import Contract, IntegrationEvent
from conciliare.errors import (
    DOMAIN_ERRORS,
    Conflict,
    DomainError,
    NotFound,
    Unavailable,
    ValidationFailed,
    as_registered,
)


class SeatsTaken(Conflict):
    """A service's own refinement of a registered error."""


class DeeperStill(SeatsTaken):
    pass


def test_a_registered_error_crosses_unchanged() -> None:
    error = NotFound("Non trovato.")
    assert as_registered(error) is error


@pytest.mark.parametrize("cls", [SeatsTaken, DeeperStill])
def test_a_subclass_crosses_as_its_registered_base_with_message_and_fields(cls: type[Conflict]) -> None:
    error = as_registered(cls("Posti esauriti.", [{"field": "offering_id", "message": "pieno"}]))
    assert type(error) is Conflict
    assert error.detail == "Posti esauriti."
    assert error.errors == [{"field": "offering_id", "message": "pieno"}]
    assert type(error).__name__ in DOMAIN_ERRORS


def test_an_unregistered_direct_subclass_of_the_base_still_has_a_known_shape() -> None:
    class Odd(DomainError):
        pass

    error = as_registered(Odd("Strano."))
    assert type(error) is DomainError
    assert error.detail == "Strano."


def test_unavailable_is_registered_so_the_gateway_can_answer_503() -> None:
    assert DOMAIN_ERRORS["Unavailable"] is Unavailable


class Address(Contract):
    comune_istat: str


class PartnerJoined(IntegrationEvent):
    event_type = "partner.joined"
    partner_id: str
    address: Address


def _payload() -> dict[str, object]:
    return PartnerJoined(alliance_id="a1", partner_id="p1", address=Address(comune_istat="012098")).model_dump(
        mode="json"
    )


def test_a_consumer_ignores_fields_a_newer_producer_added_at_any_depth() -> None:
    payload = _payload()
    payload["added_later"] = "x"
    payload["address"] = {**payload["address"], "cap": "21040"}  # type: ignore[dict-item]
    event = parse_event(PartnerJoined, payload)
    assert event.partner_id == "p1"
    assert event.address.comune_istat == "012098"
    assert isinstance(event.occurred_at, datetime)


def test_a_consumer_still_refuses_an_event_missing_what_it_needs() -> None:
    payload = _payload()
    del payload["partner_id"]
    with pytest.raises(ValidationFailed) as caught:
        parse_event(PartnerJoined, payload)
    assert caught.value.errors[0]["field"] == "partner_id"


def test_rpc_payloads_stay_strict() -> None:
    payload = _payload()
    payload["typo_field"] = 1
    with pytest.raises(ValidationFailed):
        parse(PartnerJoined, payload)


def test_events_ride_in_the_same_insert_or_update_as_the_state_change() -> None:
    event = PartnerJoined(alliance_id="a1", partner_id="p1", address=Address(comune_istat="012098"))
    document = attach_events({"_id": "x", "name": "n"}, [event])
    assert document[PENDING_FLAG] is True
    assert document[OUTBOX_FIELD][0]["event_id"] == event.event_id
    update = push_events({"$set": {"name": "m"}, "$inc": {"version": 1}}, [event])
    assert update["$set"] == {"name": "m", PENDING_FLAG: True}
    assert update["$inc"] == {"version": 1}
    assert update["$push"][OUTBOX_FIELD]["$each"][0]["event_type"] == "partner.joined"
