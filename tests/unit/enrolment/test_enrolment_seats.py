"""Unit tests of the seat rule: the ``OfferingSeats`` aggregate (no servers)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from conciliare.errors import Conflict
from services.enrolment.domain import EnrolmentStatus, InvalidTransition
from services.enrolment.seats import (
    NOT_ACCEPTING,
    NOT_ACCEPTING_REASON,
    UNDECIDED,
    Cancelled,
    CapacityBelowConfirmed,
    Confirmed,
    OfferingSeats,
    Promoted,
    Reason,
    Refused,
    Rejection,
    SeatEvent,
    Waitlisted,
)

AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def open_seats(capacity: int) -> OfferingSeats:
    return OfferingSeats("off-1", capacity, accepting=True)


def requested(seats: OfferingSeats, *ids: str) -> list[SeatEvent]:
    return seats.request_many(ids, AT)


# --- requests ---------------------------------------------------------------------------------


def test_requests_are_confirmed_while_seats_are_free_then_waitlisted_in_order() -> None:
    seats = open_seats(2)
    events = requested(seats, "a", "b", "c", "d")
    assert events == [
        Confirmed("a", 1),
        Confirmed("b", 2),
        Waitlisted("c", 3, position=1),
        Waitlisted("d", 4, position=2),
    ]
    assert seats.confirmed == ("a", "b") and seats.waitlist == ("c", "d")
    assert [seats.status_of(i) for i in "abcde"] == [
        EnrolmentStatus.CONFIRMED,
        EnrolmentStatus.CONFIRMED,
        EnrolmentStatus.WAITLISTED,
        EnrolmentStatus.WAITLISTED,
        EnrolmentStatus.REQUESTED,
    ]
    assert [seats.sequence_of(i) for i in "abcde"] == [1, 2, 3, 4, None]
    assert [seats.waitlist_position(i) for i in "abcd"] == [None, None, 1, 2]


def test_a_request_already_taken_changes_nothing() -> None:
    seats = open_seats(1)
    requested(seats, "a", "b")
    reloaded = OfferingSeats(
        "off-1",
        1,
        True,
        arrivals=seats.arrivals,
        decision_times=seats.decision_times,
        confirmed=seats.confirmed,
        waitlist=seats.waitlist,
    )
    assert reloaded.request("a", AT + timedelta(hours=1)) == []
    assert reloaded.request_many(["b", "a"], AT) == []
    assert not reloaded.changed
    assert reloaded.placement("a").decided_at == AT and reloaded.sequence_of("b") == 2


def test_a_new_request_never_jumps_the_queue() -> None:
    # A free seat while someone waits (the offering was closed when the seat freed):
    # a newcomer queues behind, it does not take the seat.
    seats = OfferingSeats(
        "off-1",
        2,
        accepting=True,
        arrivals=["a", "b"],
        confirmed=["a"],
        waitlist=["b"],
    )
    assert seats.request("c", AT) == [Waitlisted("c", 3, position=2)]
    assert seats.confirmed == ("a",)
    assert seats.promote(AT) == [Promoted("b", 2, position=1)]
    assert seats.waitlist == ("c",)


def test_each_request_remembers_when_it_was_decided() -> None:
    seats = open_seats(1)
    seats.request_many(["a", "b"], AT)
    later = AT + timedelta(minutes=1)
    seats.request("c", later)
    assert [seats.decided_at(i) for i in "abcx"] == [AT, AT, later, None]
    assert seats.decision_times == ((1, AT), (3, later))  # one entry per batch
    assert seats.placement("c").decided_at == later


def test_zero_capacity_waitlists_everyone() -> None:
    seats = open_seats(0)
    assert requested(seats, "a") == [Waitlisted("a", 1, position=1)]


# --- cancellations and promotions ----------------------------------------------------------------


def test_cancelling_a_confirmed_enrolment_promotes_the_head_of_the_waitlist() -> None:
    seats = open_seats(2)
    requested(seats, "a", "b", "c", "d")
    later = AT + timedelta(days=1)
    events = seats.cancel("a", later, reason="Trasferimento", by="user:rossi")
    assert events == [
        Cancelled("a", 1, EnrolmentStatus.CONFIRMED, "Trasferimento"),
        Promoted("c", 3, position=1),
    ]
    assert seats.confirmed == ("b", "c") and seats.waitlist == ("d",)
    placement = seats.placement("a")
    assert (placement.status, placement.cancelled_at, placement.cancel_reason) == (
        EnrolmentStatus.CANCELLED,
        later,
        "Trasferimento",
    )
    assert seats.cancelled["a"].by == "user:rossi"
    promoted = seats.placement("c")
    assert promoted.status is EnrolmentStatus.CONFIRMED and promoted.promoted and promoted.sequence == 3
    assert seats.placement("d").waitlist_position == 1


def test_cancelling_a_waitlisted_enrolment_moves_the_others_up_without_promoting() -> None:
    seats = open_seats(1)
    requested(seats, "a", "b", "c")
    assert seats.cancel("b", AT) == [Cancelled("b", 2, EnrolmentStatus.WAITLISTED, None)]
    assert seats.confirmed == ("a",) and seats.waitlist == ("c",)
    assert seats.waitlist_position("c") == 1


def test_a_promoted_enrolment_stays_marked_promoted_after_cancelling() -> None:
    seats = open_seats(1)
    requested(seats, "a", "b")
    seats.cancel("a", AT)
    seats.cancel("b", AT)
    assert seats.placement("b").promoted and seats.status_of("b") is EnrolmentStatus.CANCELLED


def test_cancelling_twice_is_a_conflict_and_changes_nothing() -> None:
    seats = open_seats(1)
    requested(seats, "a", "b")
    seats.cancel("a", AT)
    with pytest.raises(InvalidTransition) as raised:
        seats.cancel("a", AT)
    assert isinstance(raised.value, Conflict)
    assert seats.confirmed == ("b",)


def test_cancelling_an_unknown_enrolment_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        open_seats(1).cancel("ghost", AT)


def test_more_capacity_promotes_as_many_as_fit_in_order() -> None:
    seats = open_seats(1)
    requested(seats, "a", "b", "c", "d")
    assert seats.change_capacity(3, AT) == [Promoted("b", 2, position=1), Promoted("c", 3, position=2)]
    assert seats.waitlist == ("d",) and seats.capacity == 3


def test_capacity_below_the_confirmed_seats_is_refused() -> None:
    seats = open_seats(3)
    requested(seats, "a", "b", "c")
    with pytest.raises(CapacityBelowConfirmed) as raised:
        seats.change_capacity(2, AT)
    assert isinstance(raised.value, Conflict) and "3 iscrizioni confermate" in raised.value.detail
    assert seats.capacity == 3 and seats.confirmed == ("a", "b", "c")
    # Down to exactly the confirmed seats is fine: the next request waits.
    assert seats.change_capacity(3, AT) == []
    assert requested(seats, "d") == [Waitlisted("d", 4, position=1)]


# --- an offering that stops accepting requests ---------------------------------------------------


def test_a_closed_offering_refuses_requests_and_promotes_nobody_until_it_reopens() -> None:
    seats = open_seats(1)
    requested(seats, "a", "b")
    seats.close()
    assert seats.request("c", AT) == [Refused("c", (NOT_ACCEPTING,))]
    assert NOT_ACCEPTING == Reason("offering_not_published", NOT_ACCEPTING_REASON)
    refused = seats.placement("c")
    assert refused.status is EnrolmentStatus.REFUSED and refused.sequence is None
    assert refused.refusal_reasons == (NOT_ACCEPTING,) and refused.decided_at == AT
    assert seats.status_of("c") is EnrolmentStatus.REFUSED and seats.knows("c")
    assert "c" not in seats.arrivals and seats.waitlist == ("b",)
    assert seats.request("c", AT) == []  # refused once, for good
    assert seats.cancel("a", AT) == [Cancelled("a", 1, EnrolmentStatus.CONFIRMED, None)]
    assert seats.waitlist == ("b",) and seats.free_seats == 1
    assert seats.open(AT) == [Promoted("b", 2, position=1)]
    assert seats.request("c", AT) == []  # reopening does not revive a refused request
    with pytest.raises(InvalidTransition):
        seats.cancel("c", AT)


# --- refusals (not eligible) ------------------------------------------------------------------


AGE = Reason("age_out_of_range", "Età fuori dall'intervallo previsto.")
NEEDS = Reason("needs_not_supported", "Bisogni non supportati.")


def test_a_refusal_keeps_every_reason_and_takes_no_place_in_the_order_of_arrival() -> None:
    seats = open_seats(1)
    assert seats.refuse("a", AT, [AGE, NEEDS]) == [Refused("a", (AGE, NEEDS))]
    assert seats.changed and seats.knows("a")
    assert seats.rejected == {"a": Rejection(AT, (AGE, NEEDS))}
    placement = seats.placement("a")
    assert (placement.status, placement.refusal_reasons, placement.decided_at) == (
        EnrolmentStatus.REFUSED,
        (AGE, NEEDS),
        AT,
    )
    assert placement.sequence is None and placement.waitlist_position is None and not placement.promoted
    # The seat is still free: the next request is the first to arrive.
    assert requested(seats, "b") == [Confirmed("b", 1)]
    assert seats.arrivals == ("b",)


def test_a_request_already_decided_is_neither_refused_nor_requested_again() -> None:
    seats = open_seats(1)
    requested(seats, "a")
    assert seats.refuse("a", AT, [AGE]) == []
    assert seats.status_of("a") is EnrolmentStatus.CONFIRMED
    seats.refuse("b", AT, [AGE])
    assert seats.refuse("b", AT, [NEEDS]) == [] and seats.request("b", AT) == []
    assert seats.placement("b").refusal_reasons == (AGE,)
    assert seats.arrivals == ("a",)


def test_a_refusal_needs_a_reason() -> None:
    seats = open_seats(1)
    with pytest.raises(ValueError):
        seats.refuse("a", AT, [])
    assert not seats.changed and not seats.knows("a")


def test_refusals_survive_a_reload() -> None:
    seats = open_seats(1)
    seats.refuse("a", AT, [AGE])
    requested(seats, "b")
    reloaded = OfferingSeats(
        "off-1", 1, True, arrivals=seats.arrivals, confirmed=seats.confirmed, rejected=seats.rejected
    )
    assert reloaded.status_of("a") is EnrolmentStatus.REFUSED and reloaded.refuse("a", AT, [NEEDS]) == []
    assert not reloaded.changed


def test_following_the_catalog_ignores_older_revisions() -> None:
    seats = OfferingSeats("off-1")
    assert seats.follow_offering(2, capacity=1, accepting=True, at=AT) == []
    requested(seats, "a", "b", "c")
    assert seats.follow_offering(1, capacity=5, accepting=True, at=AT) == []
    assert seats.capacity == 1 and not seats.follow_offering(2, capacity=5, accepting=True, at=AT)
    assert seats.follow_offering(3, capacity=2, accepting=True, at=AT) == [Promoted("b", 2, position=1)]
    assert seats.offering_version == 3


def test_following_the_catalog_keeps_confirmed_families_when_a_race_lowers_the_capacity() -> None:
    seats = OfferingSeats("off-1", 3, True, offering_version=1)
    requested(seats, "a", "b", "c", "d")
    assert seats.follow_offering(2, capacity=1, accepting=True, at=AT) == []
    assert seats.capacity == 3 and seats.confirmed == ("a", "b", "c")


def test_following_a_suspension_closes_the_offering() -> None:
    seats = OfferingSeats("off-1", 1, True, offering_version=1)
    requested(seats, "a", "b")
    seats.follow_offering(2, capacity=2, accepting=False, at=AT)
    assert not seats.accepting and seats.waitlist == ("b",)  # no promotion while suspended
    assert seats.follow_offering(3, capacity=2, accepting=True, at=AT) == [Promoted("b", 2, position=1)]


# --- reading and change tracking ---------------------------------------------------------------


def test_placement_of_an_unknown_enrolment_is_undecided() -> None:
    assert open_seats(1).placement("x") == UNDECIDED and UNDECIDED.status is EnrolmentStatus.REQUESTED


def test_changed_tells_whether_anything_needs_saving() -> None:
    seats = open_seats(1)
    assert not seats.changed
    seats.change_capacity(1, AT)
    seats.open(AT)
    assert not seats.changed
    seats.close()
    assert seats.changed


@pytest.mark.parametrize(
    "state",
    [
        {"capacity": -1},
        {"capacity": 1, "confirmed": ["a", "b"], "arrivals": ["a", "b"]},
        {"capacity": 2, "confirmed": ["a"], "waitlist": ["a"], "arrivals": ["a"]},
        {"capacity": 2, "arrivals": ["a", "a"]},
        {"capacity": 2, "confirmed": ["a"]},
        {"capacity": 2, "arrivals": ["a"]},
        {"capacity": 2, "arrivals": ["a"], "confirmed": ["a"], "decision_times": [(2, AT)]},
        {"capacity": 2, "arrivals": ["a", "b"], "confirmed": ["a", "b"], "decision_times": [(2, AT), (1, AT)]},
        {"capacity": 2, "arrivals": ["a"], "confirmed": ["a"], "rejected": {"a": Rejection(AT, (NOT_ACCEPTING,))}},
    ],
)
def test_an_inconsistent_state_is_refused(state: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        OfferingSeats("off-1", **state)  # type: ignore[arg-type]


# --- properties over random histories ------------------------------------------------------------


def check_invariants(seats: OfferingSeats, requested_ids: list[str]) -> None:
    confirmed, waitlist = list(seats.confirmed), list(seats.waitlist)
    assert len(confirmed) <= seats.capacity, "more confirmed than capacity"
    if seats.accepting:
        assert not (seats.free_seats > 0 and waitlist), "a free seat while someone waits"
    sequences = [seats.sequence_of(i) or 0 for i in waitlist]
    assert sequences == sorted(sequences), "waitlist out of arrival order"
    assert not set(confirmed) & set(waitlist)
    # Every request is in exactly one place, and sequences are 1..n in request order.
    taken = [i for i in requested_ids if i in seats.arrivals]
    assert [seats.sequence_of(i) for i in taken] == list(range(1, len(taken) + 1))
    for enrolment_id in requested_ids:
        places = [enrolment_id in confirmed, enrolment_id in waitlist, enrolment_id in seats.cancelled]
        places.append(enrolment_id in seats.rejected)
        assert sum(places) == 1, enrolment_id


@pytest.mark.parametrize("seed", range(40))
def test_random_histories_keep_capacity_and_strict_fifo(seed: int) -> None:
    rng = random.Random(seed)
    seats = OfferingSeats("off-1", rng.randint(0, 5), accepting=True)
    requested_ids: list[str] = []
    for step in range(300):
        at = AT + timedelta(seconds=step)
        waiting_before = list(seats.waitlist)
        roll = rng.random()
        if roll < 0.45 or not requested_ids:
            new_id = f"e{len(requested_ids)}"
            requested_ids.append(new_id)
            events = seats.request(new_id, at)
            if seats.accepting:
                assert seats.sequence_of(new_id) == len(seats.arrivals)
        elif roll < 0.55:
            before = (seats.confirmed, seats.waitlist, seats.capacity)
            assert seats.request(rng.choice(requested_ids), at) == []
            assert (seats.confirmed, seats.waitlist, seats.capacity) == before
            events = []
        elif roll < 0.8:
            active = [*seats.confirmed, *seats.waitlist]
            if not active:
                continue
            events = seats.cancel(rng.choice(active), at)
        elif roll < 0.92:
            target = max(0, seats.capacity + rng.randint(-3, 3))
            try:
                events = seats.change_capacity(target, at)
            except CapacityBelowConfirmed:
                assert target < len(seats.confirmed)
                events = []
        else:
            events = seats.close() if seats.accepting else seats.open(at)
        promoted = [e.enrolment_id for e in events if isinstance(e, Promoted)]
        cancelled = {e.enrolment_id for e in events if isinstance(e, Cancelled)}
        # Promotions always take the head of the waitlist, in order.
        assert promoted == [i for i in waiting_before if i not in cancelled][: len(promoted)]
        assert [e.position for e in events if isinstance(e, Promoted)] == list(range(1, len(promoted) + 1))
        assert all(i in seats.confirmed for i in promoted)
        check_invariants(seats, requested_ids)


def test_random_bursts_for_few_seats_confirm_exactly_the_first_arrivals() -> None:
    rng = random.Random(2027)
    for _ in range(50):
        capacity = rng.randint(0, 20)
        ids = [f"e{i}" for i in range(rng.randint(0, 100))]
        seats = open_seats(capacity)
        batches: list[list[str]] = []
        rest = list(ids)
        while rest:
            size = rng.randint(1, 10)
            batches.append(rest[:size])
            rest = rest[size:]
        for batch in batches:
            seats.request_many(batch, AT)
        assert list(seats.confirmed) == ids[:capacity]
        assert list(seats.waitlist) == ids[capacity:]
        assert [seats.waitlist_position(i) for i in ids[capacity:]] == list(range(1, len(ids) - capacity + 1))
