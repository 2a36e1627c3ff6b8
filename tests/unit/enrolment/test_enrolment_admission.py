"""Deciding batches of enrolment requests (``admission.decide_requests``), on the fake repository.

A partition's consumer hands over its messages in queue order and acknowledges them
only once the batch is decided, so a batch may come again (redelivery after a crash,
the next active consumer): deciding it again must change nothing, and a crash half
way must lose nothing.
"""

from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.enrolment_requests import EnrolmentRequested
from conciliare.demo.families import synthetic_child
from conciliare.errors import Conflict, NotFound
from services.enrolment import enrolments
from services.enrolment.records import AuditPurpose, RefusedRequest
from services.enrolment.seats import OfferingSeats
from tests.unit.enrolment.fakes import FakeRepository
from tests.unit.enrolment.world import (
    ADMIN,
    ALLIANCE,
    FAMILY,
    MANAGER,
    OFFERING,
    OTHER_FAMILY,
    PROVIDER,
    World,
    codes,
)

COMPITI = "off-compiti"


@pytest.fixture
def world() -> World:
    return World()


def decided_once(world: World, commands: list[EnrolmentRequested]) -> None:
    """Every request has exactly one outcome event, and the seats took each at most once."""
    ids = [c.request_id for c in commands]
    outcomes = [p["enrolment_id"] for t, p in world.published.events if t != "enrolment.cancelled"]
    assert sorted(outcomes) == sorted(ids)
    seats = world.repo.seats(OFFERING)
    assert seats is not None and len(set(seats.arrivals)) == len(seats.arrivals)


# --- order -------------------------------------------------------------------------------------


def test_a_batch_is_decided_in_the_given_order(world: World) -> None:
    kids = world.children(5)
    commands = [world.command(kid) for kid in kids]
    # Queue order is the order of the batch, whatever the acceptance times say.
    batch = list(reversed(commands))
    assert world.decide(*batch) == 5
    outs = [world.get(c.request_id) for c in batch]
    assert [o.sequence for o in outs] == [1, 2, 3, 4, 5]
    assert [o.status for o in outs] == ["confirmed"] * 2 + ["waitlisted"] * 3
    assert [o.waitlist_position for o in outs] == [None, None, 1, 2, 3]
    seats = world.repo.seats(OFFERING)
    assert seats is not None and list(seats.arrivals) == [c.request_id for c in batch]
    assert list(seats.confirmed) == [c.request_id for c in batch[:2]]
    assert list(seats.waitlist) == [c.request_id for c in batch[2:]]
    assert [p["enrolment_id"] for _, p in world.published.events] == [c.request_id for c in batch]
    assert [p["position"] for t, p in world.published.events if t == "enrolment.waitlisted"] == [1, 2, 3]
    # One write for the whole batch, decided at one time.
    assert seats.decision_times == ((1, world.clock.now),)


def test_later_batches_queue_behind_earlier_ones(world: World) -> None:
    kids = world.children(5)
    first, second = [world.command(k) for k in kids[:3]], [world.command(k) for k in kids[3:]]
    world.decide(*first)
    world.decide(*second)
    outs = [world.get(c.request_id) for c in first + second]
    assert [o.sequence for o in outs] == [1, 2, 3, 4, 5]
    assert [o.waitlist_position for o in outs] == [None, None, 1, 2, 3]


def test_a_mixed_batch_decides_each_offering_on_its_own_in_order(world: World) -> None:
    world.publish_offering(offering_id=COMPITI, title="Spazio compiti", capacity=1)
    kids = world.children(3)
    [other] = world.children(1, OTHER_FAMILY)
    later = world.today + timedelta(days=40)
    batch = [
        world.command(kids[0]),  # post scuola 1
        world.command(kids[1], start=later, offering_id=COMPITI),  # compiti 1
        world.command(kids[1]),  # post scuola 2
        world.command(other, OTHER_FAMILY, start=later, offering_id=COMPITI),  # compiti 2
        world.command(kids[2]),  # post scuola 3
        world.command(kids[0], start=later, offering_id=COMPITI),  # compiti 3
    ]
    assert world.decide(*batch) == 6
    outs = {c.request_id: world.get(c.request_id, c.viewer) for c in batch}
    post = [outs[c.request_id] for c in batch if c.request.offering_id == OFFERING]
    compiti = [outs[c.request_id] for c in batch if c.request.offering_id == COMPITI]
    assert [(o.sequence, o.status, o.waitlist_position) for o in post] == [
        (1, "confirmed", None),
        (2, "confirmed", None),
        (3, "waitlisted", 1),
    ]
    assert [(o.sequence, o.status, o.waitlist_position) for o in compiti] == [
        (1, "confirmed", None),
        (2, "waitlisted", 1),
        (3, "waitlisted", 2),
    ]
    assert enrolments.seat_counts(world.repo, COMPITI).model_dump() == {"confirmed": 1, "waitlisted": 2}
    by_offering = [(p["offering_id"], p["enrolment_id"]) for _, p in world.published.events]
    for offering_id in (OFFERING, COMPITI):
        expected = [c.request_id for c in batch if c.request.offering_id == offering_id]
        assert [e for o, e in by_offering if o == offering_id] == expected


# --- idempotency -------------------------------------------------------------------------------


def test_a_batch_delivered_twice_decides_nothing_new(world: World) -> None:
    kids = world.children(3)
    [other] = world.children(1, OTHER_FAMILY)
    batch = [
        *(world.command(kid) for kid in kids),
        world.command(other, FAMILY),  # not FAMILY's child: refused outright
        world.command(kids[0], start=world.today + timedelta(days=40), offering_id="off-unknown"),
        world.command(kids[1], start=world.today + timedelta(days=40), attendance_mode="chosen_days"),
    ]
    assert world.decide(*batch) == 6
    before = (
        [world.get(c.request_id) for c in batch],
        list(world.published.events),
        dict(world.repo.enrolments_by_id),
        dict(world.repo.refusals_by_id),
        len(world.repo.audit_log),
        world.repo.seats(OFFERING).version,  # type: ignore[union-attr]
    )
    world.clock.advance(60)
    assert world.decide(*batch) == 0
    assert world.decide(batch[1]) == 0 and world.decide(batch[4]) == 0  # single messages again
    after = (
        [world.get(c.request_id) for c in batch],
        list(world.published.events),
        dict(world.repo.enrolments_by_id),
        dict(world.repo.refusals_by_id),
        len(world.repo.audit_log),
        world.repo.seats(OFFERING).version,  # type: ignore[union-attr]
    )
    assert after == before
    assert [t for t, _ in world.published.events].count("enrolment.refused") == 3


def test_a_redelivered_message_in_a_new_batch_is_skipped_and_the_rest_decided(world: World) -> None:
    kids = world.children(3)
    first = world.command(kids[0])
    world.decide(first)
    second, third = world.command(kids[1]), world.command(kids[2])
    assert world.decide(first, second, third) == 2
    assert [world.get(c.request_id).sequence for c in (first, second, third)] == [1, 2, 3]
    decided_once(world, [first, second, third])


def test_the_same_request_twice_in_one_batch_counts_once(world: World) -> None:
    kids = world.children(2)
    a, b = world.command(kids[0]), world.command(kids[1])
    assert world.decide(a, b, a, b, a) == 2
    assert [world.get(c.request_id).sequence for c in (a, b)] == [1, 2]
    assert enrolments.seat_counts(world.repo, OFFERING).confirmed == 2
    decided_once(world, [a, b])
    # Also a request refused outright: stored and announced once.
    stray = world.command("no-such-child")
    assert world.decide(stray, stray) == 1
    assert list(world.repo.refusals_by_id) == [stray.request_id]
    assert world.published.types().count("enrolment.refused") == 1


def test_a_refusal_announced_again_after_a_redelivery_is_the_same_event(world: World) -> None:
    stray = world.command("no-such-child")
    world.decide(stray)
    world.repo.refusals_by_id.clear()  # as if the consumer died after announcing, before storing
    world.decide(stray)
    ids = [p["event_id"] for t, p in world.published.events if t == "enrolment.refused"]
    assert ids == [f"refused-{stray.request_id}"] * 2  # consumers de-duplicate by id


# --- crash safety ------------------------------------------------------------------------------


class CrashingRepository(FakeRepository):
    """Dies once, when armed, as it is about to write the seats (after the batch's records are stored)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def save_seats(self, seats: OfferingSeats, events: Sequence[IntegrationEvent]) -> bool:
        if self.armed:
            self.armed = False
            raise RuntimeError("the process dies before the seats' write")
        return super().save_seats(seats, events)


@pytest.fixture
def crashing() -> CrashingRepository:
    return CrashingRepository()


def test_a_crash_before_the_seats_write_loses_nothing_and_decides_each_request_once(
    crashing: CrashingRepository,
) -> None:
    world = World(crashing)
    kids = world.children(4)
    household_id = world.household(OTHER_FAMILY)
    teenager = world.child(household_id, synthetic_child(9, date(world.today.year - 13, 1, 10)), OTHER_FAMILY)
    batch = [
        world.command(kids[0]),
        world.command(teenager, OTHER_FAMILY),  # not eligible: age
        world.command(kids[1]),
        world.command(kids[0], start=world.today + timedelta(days=5)),  # overlaps the first
        world.command(kids[2]),
        world.command(kids[3], viewer=OTHER_FAMILY),  # not the caller's child
        world.command(kids[3]),
    ]
    crashing.armed = True
    with pytest.raises(RuntimeError):
        world.decide(*batch)
    # Known children's requests are stored, none decided, nothing announced.
    assert {c.request_id for c in batch} - set(crashing.enrolments_by_id) == {batch[5].request_id}
    assert all(world.get(c.request_id, c.viewer).status == "requested" for c in batch if c is not batch[5])
    assert world.published.events == [] and not crashing.refusals_by_id
    with pytest.raises(Conflict):  # its batch is still being decided
        world.cancel(batch[0].request_id)

    # The batch comes again (it was never acknowledged).
    assert world.decide(*batch) == len(batch)
    outs = [world.get(c.request_id, c.viewer) for c in batch]
    assert [(o.status, o.sequence) for o in outs] == [
        ("confirmed", 1),
        ("refused", None),
        ("confirmed", 2),
        ("refused", None),
        ("waitlisted", 3),
        ("refused", None),
        ("waitlisted", 4),
    ]
    assert codes(outs[1]) == ["age_out_of_range"]
    assert codes(outs[3]) == ["overlapping_enrolment"]
    assert codes(outs[5]) == ["child_not_found"]
    assert [e.enrolment_id for e in crashing.child(kids[0]).enrolments] == [batch[0].request_id]  # type: ignore[union-attr]
    decided_once(world, batch)
    # And once more: nothing new.
    assert world.decide(*batch) == 0
    decided_once(world, batch)


# --- refusals ----------------------------------------------------------------------------------


def test_an_ineligible_request_is_refused_and_holds_nothing_for_a_later_one(world: World) -> None:
    world.publish_offering(offering_id="off-medie", title="Doposcuola medie", age_min_months=120, age_max_months=180)
    household_id = world.household()
    teenager = world.child(household_id, synthetic_child(1, date(world.today.year - 13, 1, 10)))
    kid = world.child(household_id, synthetic_child(2, date(world.today.year - 8, 1, 10)))
    too_old = world.command(teenager)
    no_mode = world.command(kid, attendance_mode="chosen_days", chosen_weekdays=[1, 3])
    world.decide(too_old, no_mode)
    assert [(o.status, codes(o)) for o in map(world.get, (too_old.request_id, no_mode.request_id))] == [
        ("refused", ["age_out_of_range"]),
        ("refused", ["attendance_mode_not_offered"]),
    ]
    assert [t for t, _ in world.published.events] == ["enrolment.refused"] * 2
    assert world.repo.child(teenager).enrolments == () and world.repo.child(kid).enrolments == ()  # type: ignore[union-attr]
    # The same periods, asked again the right way: accepted, nothing overlaps.
    fitting = world.command(teenager, offering_id="off-medie")
    full = world.command(kid)
    world.decide(fitting, full)
    assert world.get(fitting.request_id).status == "confirmed"
    assert (world.get(full.request_id).status, world.get(full.request_id).sequence) == ("confirmed", 1)
    # Read by the staff as refused, with its reasons.
    assert world.get(too_old.request_id, PROVIDER).refusal_reasons == world.get(too_old.request_id).refusal_reasons
    assert world.listed(PROVIDER, status="refused") == [no_mode.request_id, too_old.request_id]


def test_a_request_for_another_familys_child_is_refused_as_not_found_and_only_its_owner_reads_it(
    world: World,
) -> None:
    [kid] = world.children(1, OTHER_FAMILY)
    command = world.command(kid, FAMILY)
    assert world.decide(command) == 1
    refused = world.get(command.request_id, FAMILY)
    assert (refused.status, codes(refused), refused.protocol) == ("refused", ["child_not_found"], command.protocol)
    assert refused.accepted_at == command.accepted_at and refused.decided_at == world.clock.now
    assert refused.child_name is None and refused.household_id is None and refused.period is None
    assert world.get(command.request_id, ADMIN).status == "refused"
    for stranger in (OTHER_FAMILY, PROVIDER, MANAGER):  # the child's own family learns nothing either
        with pytest.raises(NotFound):
            world.get(command.request_id, stranger)
    with pytest.raises(Conflict, match="respinta"):  # its family: there is nothing to cancel
        world.cancel(command.request_id)
    with pytest.raises(NotFound):
        world.cancel(command.request_id, OTHER_FAMILY)
    assert world.repo.refusals([command.request_id]) == [
        RefusedRequest(
            id=command.request_id,
            owner_subject=FAMILY.subject,
            protocol=command.protocol,
            offering_id=OFFERING,
            child_id=kid,
            reasons=tuple(world.repo.refusals_by_id[command.request_id].reasons),
            requested_at=command.accepted_at,
            decided_at=world.clock.now,
        )
    ]
    assert not world.repo.enrolments_by_id and world.repo.child(kid).enrolments == ()  # type: ignore[union-attr]
    [(event_type, event)] = world.published.events
    assert event_type == "enrolment.refused"
    assert event["event_id"] == f"refused-{command.request_id}"
    assert (event["enrolment_id"], event["child_id"], event["offering_id"]) == (command.request_id, kid, OFFERING)
    assert [r["code"] for r in event["reasons"]] == ["child_not_found"]
    # The other family's child was never read for this request: nothing audited.
    assert all(a.purpose is not AuditPurpose.ELIGIBILITY for a in world.repo.audit_trail(kid))


def test_a_request_for_an_unknown_offering_is_refused_as_not_found(world: World) -> None:
    [kid] = world.children(1)
    command = world.command(kid, offering_id="off-unknown")
    assert world.decide(command) == 1
    refused = world.get(command.request_id)
    assert (refused.status, codes(refused), refused.offering_id) == ("refused", ["offering_not_found"], "off-unknown")
    [(event_type, event)] = world.published.events
    assert (event_type, event["event_id"], event["alliance_id"]) == (
        "enrolment.refused",
        f"refused-{command.request_id}",
        "",
    )
    assert world.repo.seats("off-unknown") is None and world.repo.child(kid).enrolments == ()  # type: ignore[union-attr]
    # An unknown offering does not stop the rest of the batch.
    fine = world.command(kid)
    stray = world.command(kid, offering_id="off-unknown-2")
    assert world.decide(stray, fine) == 2
    assert world.get(fine.request_id).status == "confirmed"
    assert codes(world.get(stray.request_id)) == ["offering_not_found"]


def test_a_request_for_an_offering_not_accepting_is_refused(world: World) -> None:
    kids = world.children(3)
    first = world.command(kids[0])
    world.decide(first)
    world.update_offering(status="suspended")
    late = world.command(kids[1])
    world.decide(late)
    refused = world.get(late.request_id)
    assert (refused.status, codes(refused), refused.sequence) == ("refused", ["offering_not_published"], None)
    assert world.published.types()[-1] == "enrolment.refused"
    assert world.get(first.request_id).status == "confirmed"  # those already seated keep their seat
    # Reopened: a new request is taken after the refused one, which stays refused.
    world.update_offering(status="published")
    after = world.command(kids[2])
    world.decide(after, late)
    assert (world.get(after.request_id).status, world.get(after.request_id).sequence) == ("confirmed", 2)
    assert world.get(late.request_id).status == "refused"


def test_a_request_the_domain_rejects_is_refused_as_invalid(world: World) -> None:
    [kid] = world.children(1)
    command = world.command(kid, attendance_mode="chosen_days")  # no weekdays chosen
    assert world.decide(command) == 1
    refused = world.get(command.request_id)
    assert (refused.status, codes(refused)) == ("refused", ["invalid_request"])
    assert refused.refusal_reasons[0].message
    assert world.published.types() == ["enrolment.refused"]
    assert world.repo.child(kid).enrolments == ()  # type: ignore[union-attr]


def test_overlapping_requests_of_one_child_in_one_batch_the_first_wins(world: World) -> None:
    kids = world.children(2)
    first = world.command(kids[0])
    overlapping = world.command(kids[0], start=world.today + timedelta(days=10))
    other = world.command(kids[1])
    apart = world.command(kids[0], start=world.today + timedelta(days=31), days=20)
    assert world.decide(first, overlapping, other, apart) == 4
    outs = [world.get(c.request_id) for c in (first, overlapping, other, apart)]
    assert [(o.status, o.sequence) for o in outs] == [
        ("confirmed", 1),
        ("refused", None),
        ("confirmed", 2),
        ("waitlisted", 3),
    ]
    assert codes(outs[1]) == ["overlapping_enrolment"]
    listed = [e.enrolment_id for e in world.repo.child(kids[0]).enrolments]  # type: ignore[union-attr]
    assert listed == [first.request_id, apart.request_id]
    assert world.published.types() == [
        "enrolment.confirmed",
        "enrolment.refused",
        "enrolment.confirmed",
        "enrolment.waitlisted",
    ]


def test_the_audit_trail_records_each_eligibility_check(world: World) -> None:
    [kid] = world.children(1)
    world.decide(world.command(kid), world.command(kid, start=world.today + timedelta(days=40)))
    reads = [a for a in world.repo.audit_trail(kid) if a.purpose is AuditPurpose.ELIGIBILITY]
    assert len(reads) == 2 and all(a.reader_subject == FAMILY.subject for a in reads)


# --- cancellations -----------------------------------------------------------------------------


def test_cancel_of_a_confirmed_request_promotes_the_head_of_the_waitlist(world: World) -> None:
    kids = world.children(4)
    batch = [world.command(kid) for kid in kids]
    world.decide(*batch)
    world.published.events.clear()
    cancelled = world.cancel(batch[1].request_id, PROVIDER, reason="Rinuncia")
    assert (cancelled.status, cancelled.cancel_reason, cancelled.sequence) == ("cancelled", "Rinuncia", 2)
    promoted = world.get(batch[2].request_id)
    assert (promoted.status, promoted.promoted, promoted.sequence) == ("confirmed", True, 3)
    assert world.get(batch[3].request_id).waitlist_position == 1
    assert world.published.types() == ["enrolment.cancelled", "enrolment.promoted"]
    assert world.published.events[1][1]["enrolment_id"] == batch[2].request_id
    assert world.published.events[1][1]["alliance_id"] == ALLIANCE


def test_cancel_before_the_request_is_decided_is_a_conflict(crashing: CrashingRepository) -> None:
    world = World(crashing)
    [kid] = world.children(1)
    command = world.command(kid)
    crashing.armed = True
    with pytest.raises(RuntimeError):
        world.decide(command)
    with pytest.raises(Conflict) as raised:
        world.cancel(command.request_id)
    assert raised.value.detail == enrolments.STILL_DECIDING
    assert world.published.events == []
    world.decide(command)  # redelivered: decided; now it can be cancelled
    assert world.cancel(command.request_id).status == "cancelled"
    assert world.published.types() == ["enrolment.confirmed", "enrolment.cancelled"]


def test_a_childs_requests_for_two_offerings_in_one_batch_are_settled_in_queue_order(world: World) -> None:
    # Interleaved in one partition: the later request (offering A) must not overtake the
    # earlier, overlapping one (offering B) of the same child.
    world.publish_offering(offering_id=COMPITI, title="Spazio compiti", capacity=1)
    kids = world.children(2)
    other_child_first = world.command(kids[0])
    earlier = world.command(kids[1], offering_id=COMPITI)
    later_overlapping = world.command(kids[1], start=world.today + timedelta(days=5))
    assert world.decide(other_child_first, earlier, later_overlapping) == 3
    assert world.get(earlier.request_id).status == "confirmed"
    refused = world.get(later_overlapping.request_id)
    assert (refused.status, codes(refused)) == ("refused", ["overlapping_enrolment"])
    assert world.get(other_child_first.request_id).status == "confirmed"
