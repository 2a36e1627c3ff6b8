"""Service-layer tests of the enrolment use cases, on the in-memory fake repository.

The same use cases the nameko service calls, with a fixed clock and the events
dispatched collected; no servers, no mocks (see ``fakes.py``). Requests are decided
the way the service decides them, from a partition's batch (``admission``); the
guarantees of batches themselves are in ``test_enrolment_admission.py``.
"""

from datetime import date, timedelta
from typing import Any

import pytest

from conciliare.chassis import concurrency
from conciliare.chassis.validation import parse_event
from conciliare.contracts.catalog import OfferingPublished, OfferingSuspended, OfferingUpdated
from conciliare.contracts.enrolment import AttendanceRecord, ChildCreate, HouseholdCreate
from conciliare.contracts.identity import Role
from conciliare.contracts.partners import AllianceCreated, MembershipChanged, MembershipRole, MembershipStatus
from conciliare.demo.families import GIULIA, ROSSI_HOUSEHOLD, synthetic_child, synthetic_household
from conciliare.errors import Conflict, Forbidden, NotFound, Unavailable, ValidationFailed
from services.enrolment import enrolments, households, projections, registers, relay, seating
from services.enrolment.domain import Period
from services.enrolment.records import AuditPurpose, ListedEnrolment
from services.enrolment.seats import OfferingSeats
from tests.unit.enrolment.world import (
    ADMIN,
    ALLIANCE,
    CREMA,
    FAMILY,
    MANAGER,
    MARNATE,
    OFFERING,
    OTHER_FAMILY,
    OTHER_MANAGER,
    OTHER_OPERATOR,
    PROVIDER,
    TOTEM,
    World,
    codes,
)


@pytest.fixture
def world() -> World:
    return World()


# --- requests, seats and the waitlist ----------------------------------------------------------------


def test_requests_are_confirmed_then_waitlisted_in_arrival_order(world: World) -> None:
    results = [world.enrol(kid) for kid in world.children(4)]
    assert [r.status for r in results] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [r.sequence for r in results] == [1, 2, 3, 4]
    assert [r.waitlist_position for r in results] == [None, None, 1, 2]
    assert [r.status_label for r in results][2] == "in lista d'attesa"
    assert all(r.refusal_reasons == [] and r.decided_at is not None for r in results)
    assert enrolments.seat_counts(world.repo, OFFERING).model_dump() == {"confirmed": 2, "waitlisted": 2}
    assert world.published.types() == ["enrolment.confirmed"] * 2 + ["enrolment.waitlisted"] * 2
    waitlisted = world.published.events[3][1]
    assert waitlisted["position"] == 2 and waitlisted["child_id"] == results[3].child_id
    assert not world.repo.outbox[OFFERING]  # published right after the decision


def test_the_outcome_carries_the_receipt_of_the_request(world: World) -> None:
    [kid] = world.children(1)
    command = world.command(kid)
    world.clock.advance(5)  # decided a while after the gateway accepted it
    world.decide(command)
    out = world.get(command.request_id)
    assert (out.id, out.protocol) == (command.request_id, command.protocol)
    assert out.accepted_at == out.requested_at == command.accepted_at
    assert out.decided_at == world.clock.now
    assert out.offering_title == "Post scuola DSA alla primaria Manzoni" and out.child_id == kid
    assert world.repo.enrolment(command.request_id).protocol == command.protocol  # type: ignore[union-attr]


def test_a_request_not_decided_yet_is_read_as_requested(world: World) -> None:
    [kid] = world.children(1)
    command = world.command(kid)
    with pytest.raises(NotFound):  # the gateway answers "requested" from its receipt until then
        world.get(command.request_id)
    world.repo.before_seats_write = lambda seats: False  # every write loses: the batch stays undecided
    with pytest.raises(Unavailable):
        world.decide(command)
    waiting = world.get(command.request_id)
    assert (waiting.status, waiting.sequence, waiting.decided_at) == ("requested", None, None)
    assert waiting.status_label == "richiesta" and waiting.protocol == command.protocol


def test_cancelling_promotes_the_first_waitlisted_child(world: World) -> None:
    results = [world.enrol(kid) for kid in world.children(4)]
    world.published.events.clear()
    cancelled = world.cancel(results[0].id, reason="Trasferimento")
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "Trasferimento")
    assert cancelled.cancelled_at == world.clock.now
    promoted = world.get(results[2].id)
    assert promoted.status == "confirmed" and promoted.promoted is True
    assert world.get(results[3].id).waitlist_position == 1
    assert world.published.types() == ["enrolment.cancelled", "enrolment.promoted"]
    assert world.published.events[1][1]["position"] == 1
    with pytest.raises(Conflict):
        world.cancel(results[0].id)


def test_cancel_is_for_the_family_and_the_provider_not_for_other_tenants_or_read_only_staff(world: World) -> None:
    [kid] = world.children(1)
    created = world.enrol(kid)
    with pytest.raises(Forbidden):
        world.cancel(created.id, MANAGER)
    for stranger in (OTHER_OPERATOR, OTHER_FAMILY, OTHER_MANAGER):
        with pytest.raises(NotFound):
            world.cancel(created.id, stranger)
    assert world.cancel(created.id, PROVIDER).status == "cancelled"


def test_capacity_increase_promotes_as_many_as_fit_and_late_revisions_are_ignored(world: World) -> None:
    results = [world.enrol(kid) for kid in world.children(6)]
    world.update_offering(capacity=5)
    assert [world.get(r.id).status for r in results] == ["confirmed"] * 5 + ["waitlisted"]
    promotions = [p for t, p in world.published.events if t == "enrolment.promoted"]
    assert [p["position"] for p in promotions] == [1, 2, 3]
    # A late, older revision (capacity 2) changes nothing.
    stale = world.snapshot(capacity=2, version=world.catalog_version - 1)
    projections.offering_changed(world.repo, world.rt(), OfferingUpdated(alliance_id=ALLIANCE, offering=stale))
    assert enrolments.seat_counts(world.repo, OFFERING).confirmed == 5
    assert enrolments.offering_roster(world.repo, OFFERING, PROVIDER, world.clock()).capacity == 5


def test_a_request_decided_after_the_offering_closed_is_refused(world: World) -> None:
    [kid] = world.children(1)

    def suspend_first(seats: OfferingSeats) -> bool:
        # The catalog suspends the offering between the eligibility check and the seats' write.
        world.repo.before_seats_write = None
        world.update_offering(OfferingSuspended, status="suspended")
        return False  # so the decision loses the race, loads again and finds it closed

    world.repo.before_seats_write = suspend_first
    refused = world.enrol(kid)
    assert (refused.status, refused.status_label, codes(refused)) == ("refused", "respinta", ["offering_not_published"])
    assert refused.sequence is None and refused.waitlist_position is None
    assert world.published.types() == ["enrolment.refused"]
    assert world.published.events[0][1]["reasons"][0]["code"] == "offering_not_published"
    # Once suspended, a request is refused by the eligibility check itself.
    [other] = world.children(1, OTHER_FAMILY)
    again = world.enrol(other, OTHER_FAMILY)
    assert (again.status, codes(again)) == ("refused", ["offering_not_published"])
    assert enrolments.seat_counts(world.repo, OFFERING).model_dump() == {"confirmed": 0, "waitlisted": 0}


# --- crash safety ----------------------------------------------------------------------------------


def test_events_left_by_a_crash_after_the_decision_are_published_by_the_relay(world: World) -> None:
    kids = world.children(3)

    def crash(event_type: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("broker away")

    world.decide(*(world.command(kid) for kid in kids[:2]))
    command = world.command(kids[2])
    assert world.decide(command, rt=world.rt(dispatch=crash)) == 1
    # The decision is stored: it does not wait for the broker.
    assert world.get(command.request_id).status == "waitlisted"
    assert len(world.repo.outbox[OFFERING]) == 1
    assert relay.run(world.repo, world.rt()) == 1
    assert world.published.types()[-1] == "enrolment.waitlisted" and not world.repo.outbox[OFFERING]
    assert relay.run(world.repo, world.rt()) == 0  # published once


def test_a_lost_race_is_retried_and_too_many_give_up_as_unavailable(world: World) -> None:
    kids = world.children(2)
    losses = iter([False, False])
    world.repo.before_seats_write = lambda seats: next(losses, True)
    assert world.enrol(kids[0]).status == "confirmed"
    # Two lost races, two jittered pauses (the chassis' retry loop) before the third try wins.
    assert len(world.sleeps) == 2 and all(0 <= pause <= concurrency.RETRY_CAP_SECONDS for pause in world.sleeps)

    world.repo.before_seats_write = lambda seats: False
    busy = world.command(kids[1])
    with pytest.raises(Unavailable):
        world.decide(busy)
    assert len(world.sleeps) == 2 + seating.MAX_ATTEMPTS - 1
    assert world.get(busy.request_id).status == "requested"  # stored, not decided
    # The batch was not acknowledged: delivered again, it is decided once.
    world.repo.before_seats_write = None
    assert world.decide(busy) == 1
    out = world.get(busy.request_id)
    assert (out.status, out.sequence) == ("confirmed", 2)
    assert world.published.types() == ["enrolment.confirmed"] * 2


# --- eligibility -------------------------------------------------------------------------------


def test_every_refusal_reason_is_kept_and_the_child_holds_nothing(world: World) -> None:
    household_id = world.household(FAMILY, synthetic_household(7, residence_istat=CREMA))
    teenager = world.child(
        household_id, {**synthetic_child(1, date(world.today.year - 13, 1, 10)), "needs": ["disabilita"]}
    )
    command = world.command(
        teenager, start=world.today + timedelta(days=85), days=20, attendance_mode="chosen_days", chosen_weekdays=[1, 3]
    )
    assert world.decide(command) == 1
    refused = world.get(command.request_id)
    assert (refused.status, refused.status_label, refused.sequence) == ("refused", "respinta", None)
    assert codes(refused) == [
        "period_outside_calendar",
        "age_out_of_range",
        "needs_not_supported",
        "not_in_alliance",
        "attendance_mode_not_offered",
    ]
    assert "disabilità" in refused.refusal_reasons[2].message
    assert refused.decided_at == world.clock.now and refused.protocol == command.protocol
    # The request is on record (the family reads why), but it holds no seat and no period.
    assert world.repo.child(teenager).enrolments == ()  # type: ignore[union-attr]
    assert enrolments.seat_counts(world.repo, OFFERING).model_dump() == {"confirmed": 0, "waitlisted": 0}
    [(event_type, event)] = world.published.events
    assert event_type == "enrolment.refused" and event["enrolment_id"] == command.request_id
    assert [r["code"] for r in event["reasons"]] == codes(refused)
    assert event["household_id"] == household_id and event["alliance_id"] == ALLIANCE
    # Eligibility read the child's needs: audited.
    assert world.repo.audit_trail(teenager)[-1].purpose is AuditPurpose.ELIGIBILITY
    with pytest.raises(Conflict):  # refused is final
        world.cancel(command.request_id)


def test_an_employee_of_a_formalized_partner_is_eligible_without_living_there(world: World) -> None:
    projections.membership_changed(
        world.repo,
        world.rt(),
        MembershipChanged(
            alliance_id=ALLIANCE,
            partner_id=TOTEM,
            role=MembershipRole.PARTNER,
            status=MembershipStatus.FORMALIZED,
            previous_status=None,
        ),
    )
    commuter = synthetic_household(3, residence_istat=CREMA)
    commuter["guardians"][0] |= {"employment": "employed_by_partner", "employer_partner_id": TOTEM}
    household_id = world.household(FAMILY, commuter)
    kid = world.child(household_id, synthetic_child(1, date(world.today.year - 8, 1, 10)))
    assert world.enrol(kid).status == "confirmed"


def test_overlapping_requests_of_one_child(world: World) -> None:
    world.publish_offering(offering_id="off-compiti", title="Spazio compiti")
    [kid] = world.children(1)
    first = world.enrol(kid)
    second = world.enrol(kid, start=world.today + timedelta(days=10), offering_id="off-compiti")
    assert (second.status, codes(second)) == ("refused", ["overlapping_enrolment"])
    assert [e.enrolment_id for e in world.repo.child(kid).enrolments] == [first.id]  # type: ignore[union-attr]
    assert world.enrol(kid, start=world.today + timedelta(days=31), offering_id="off-compiti").status == "confirmed"
    world.cancel(first.id)
    assert world.enrol(kid).status == "confirmed"  # once cancelled, the period is free again


def test_a_request_listed_a_moment_earlier_wins_and_a_dead_one_holds_nothing(world: World) -> None:
    [kid] = world.children(1)
    # Another request of this child (another partition) listed itself first and is being stored right now.
    period = Period(start=world.today, end=world.today + timedelta(days=5))
    world.repo.list_enrolment(kid, ListedEnrolment("in-flight", OFFERING, period, world.clock()))
    refused = world.enrol(kid)
    assert (refused.status, codes(refused)) == ("refused", ["overlapping_enrolment"])
    assert [e.enrolment_id for e in world.repo.child(kid).enrolments] == ["in-flight"]  # type: ignore[union-attr]
    # That attempt died before storing its enrolment: after a while it blocks nothing.
    world.clock.advance(seating.IN_FLIGHT_SECONDS + 1)
    assert world.enrol(kid).status == "confirmed"


# --- access per role and tenant ----------------------------------------------------------------


def test_only_a_family_enrols_and_only_its_own_child(world: World) -> None:
    [kid] = world.children(1)
    for viewer in (PROVIDER, OTHER_FAMILY):
        refused = world.enrol(kid, viewer)
        assert (refused.status, codes(refused), refused.child_id) == ("refused", ["child_not_found"], kid)
        assert refused.child_name is None and refused.household_id is None  # nothing about the child leaks
    unknown = world.enrol(kid, offering_id="off-unknown")
    assert (unknown.status, codes(unknown)) == ("refused", ["offering_not_found"])
    assert not world.repo.enrolments_by_id and world.repo.child(kid).enrolments == ()  # type: ignore[union-attr]
    assert world.published.types() == ["enrolment.refused"] * 3


def test_reads_and_lists_are_scoped_to_the_tenant(world: World) -> None:
    [kid] = world.children(1)
    created = world.enrol(kid)
    [other_kid] = world.children(1, OTHER_FAMILY)
    other = world.enrol(other_kid, OTHER_FAMILY)
    for viewer in (FAMILY, PROVIDER, MANAGER, ADMIN):
        assert world.get(created.id, viewer).id == created.id
    for stranger in (OTHER_FAMILY, OTHER_OPERATOR, OTHER_MANAGER):
        with pytest.raises(NotFound):
            world.get(created.id, stranger)
    assert world.listed(FAMILY) == [created.id]
    assert world.listed(OTHER_FAMILY) == [other.id]
    assert world.listed(PROVIDER) == world.listed(MANAGER) == world.listed(ADMIN) == [other.id, created.id]
    assert world.listed(PROVIDER, status="confirmed", child_id=kid) == [created.id]
    assert world.listed(OTHER_OPERATOR) == world.listed(OTHER_MANAGER) == []
    with pytest.raises(ValidationFailed):
        world.listed(FAMILY, status="sospesa")


def test_roster_shows_needs_only_to_the_provider_and_audits_each_read(world: World) -> None:
    household_id = world.household()
    giulia = world.child(household_id, GIULIA)
    others = [world.child(household_id, synthetic_child(i, date(world.today.year - 8, 1, 10))) for i in range(2)]
    for kid in [giulia, *others]:
        world.enrol(kid)
    before = len(world.repo.audit_log)

    roster = enrolments.offering_roster(world.repo, OFFERING, PROVIDER, world.clock())
    assert roster.needs_disclosed and roster.confirmed_count == 2 and roster.waitlisted_count == 1
    assert [e.waitlist_position for e in roster.waitlist] == [1]
    assert next(e for e in roster.confirmed if e.child_id == giulia).needs == ["dsa"]
    assert all("*" in e.child_codice_fiscale for e in roster.confirmed + roster.waitlist)
    reads = world.repo.audit_log[before:]
    assert {r.child_id for r in reads} == {giulia, *others}
    assert all(r.purpose is AuditPurpose.PROVIDER_ROSTER and r.reader_role is Role.PARTNER_OPERATOR for r in reads)

    by_manager = enrolments.offering_roster(world.repo, OFFERING, MANAGER, world.clock())
    assert not by_manager.needs_disclosed and all(e.needs is None for e in by_manager.confirmed)
    assert len(world.repo.audit_log) == before + 3
    for stranger in (OTHER_OPERATOR, FAMILY, OTHER_MANAGER):
        with pytest.raises(NotFound):
            enrolments.offering_roster(world.repo, OFFERING, stranger, world.clock())


# --- households, children and their needs ----------------------------------------------------------


def test_children_needs_are_kept_apart_and_every_read_is_audited(world: World) -> None:
    household_id = world.household()
    with pytest.raises(Conflict):
        world.household()
    created = households.add_child(world.repo, household_id, FAMILY, ChildCreate.model_validate(GIULIA), world.rt())
    assert created.needs == ["dsa"]
    assert world.repo.needs[created.id].needs == {"dsa"}
    listed = households.list_children(world.repo, household_id, FAMILY, world.clock())
    assert [c.needs for c in listed] == [["dsa"]]
    assert [c.needs for c in households.list_children(world.repo, household_id, ADMIN, world.clock())] == [None]
    with pytest.raises(NotFound):
        households.list_children(world.repo, household_id, OTHER_FAMILY, world.clock())
    with pytest.raises(NotFound):
        households.list_children(world.repo, household_id, PROVIDER, world.clock())
    trail = world.repo.audit_trail(created.id)
    assert [(a.reader_subject, a.purpose) for a in trail] == [
        (FAMILY.subject, AuditPurpose.REGISTRATION),
        (FAMILY.subject, AuditPurpose.FAMILY_VIEW),
    ]
    world.enrol(created.id)
    assert world.repo.audit_trail(created.id)[-1].purpose is AuditPurpose.ELIGIBILITY
    with pytest.raises(Conflict):
        world.child(household_id, GIULIA)
    assert len(world.repo.children_by_id) == 1


def test_households_belong_to_their_family(world: World) -> None:
    household_id = world.household()
    assert households.get_household(world.repo, household_id, ADMIN).residence_comune_name == "Marnate"
    with pytest.raises(NotFound):
        households.get_household(world.repo, household_id, OTHER_FAMILY)
    with pytest.raises(Forbidden):
        households.create_household(
            world.repo, PROVIDER, HouseholdCreate.model_validate(ROSSI_HOUSEHOLD), world.clock()
        )
    with pytest.raises(Forbidden):
        households.list_households(world.repo, MANAGER, 10, 0)
    with pytest.raises(Forbidden):
        households.add_child(world.repo, household_id, ADMIN, ChildCreate.model_validate(GIULIA), world.rt())
    assert households.list_households(world.repo, FAMILY, 10, 0).total == 1
    assert households.list_households(world.repo, OTHER_FAMILY, 10, 0).total == 0
    assert households.list_households(world.repo, ADMIN, 10, 0).items[0].id == household_id


# --- projections ----------------------------------------------------------------------------------


def test_an_event_with_fields_this_service_does_not_know_is_still_applied(world: World) -> None:
    payload = OfferingPublished(alliance_id=ALLIANCE, offering=world.snapshot(offering_id="off-new")).model_dump(
        mode="json"
    )
    payload["channel"] = "app"  # a field a newer producer added ...
    payload["offering"]["accessibility"] = {"ramp": True}  # ... at top level and nested
    payload["offering"]["periods"][0]["label"] = "anno scolastico"
    projections.offering_changed(world.repo, world.rt(), parse_event(OfferingPublished, payload))
    assert world.repo.offering("off-new") is not None
    assert world.repo.seats("off-new") is not None and world.repo.seats("off-new").capacity == 2  # type: ignore[union-attr]


def test_the_same_event_twice_is_applied_once_and_a_late_membership_change_loses(world: World) -> None:
    created = AllianceCreated(
        alliance_id="all-x", code="X", name="Alleanza X", comuni_istat=[MARNATE], capofila_partner_id="p-1"
    )
    projections.alliance_created(world.repo, world.rt(), created)
    projections.alliance_created(world.repo, world.rt(), created.model_copy(update={"comuni_istat": [CREMA]}))
    assert world.repo.territory("all-x").comuni_istat == {MARNATE}  # type: ignore[union-attr]

    def change(status: MembershipStatus, minutes_ago: int) -> MembershipChanged:
        return MembershipChanged(
            alliance_id="all-x",
            partner_id=TOTEM,
            role=MembershipRole.PARTNER,
            status=status,
            previous_status=None,
            occurred_at=world.clock.now - timedelta(minutes=minutes_ago),
        )

    projections.membership_changed(world.repo, world.rt(), change(MembershipStatus.FORMALIZED, 0))
    projections.membership_changed(world.repo, world.rt(), change(MembershipStatus.WITHDRAWN, 5))
    assert world.repo.territory("all-x").formalized_partner_ids == {TOTEM}  # type: ignore[union-attr]


def test_missing_projections_are_fetched_from_their_owners(world: World) -> None:
    snapshot = world.snapshot(offering_id="off-late", alliance_id="all-late")
    rt = world.rt(
        fetch_offering=lambda offering_id: snapshot.model_dump(mode="json") if offering_id == "off-late" else None,
        fetch_territory=lambda alliance_id: {"comuni_istat": [MARNATE], "formalized_partner_ids": [TOTEM]},
    )
    [kid] = world.children(1)
    late = world.command(kid, offering_id="off-late")
    assert world.decide(late, rt=rt) == 1
    assert world.get(late.request_id).status == "confirmed"
    assert world.repo.territory("all-late").formalized_partner_ids == {TOTEM}  # type: ignore[union-attr]
    # An alliance never heard of, with the partners service away: the batch is not
    # acknowledged (decided on its next delivery), nothing is refused.
    world.publish_offering(offering_id="off-orphan", alliance_id="all-unknown")
    [other] = world.children(1, OTHER_FAMILY)
    orphan = world.command(other, OTHER_FAMILY, offering_id="off-orphan")
    with pytest.raises(Unavailable):
        world.decide(orphan)
    assert not world.repo.refusals([orphan.request_id]) and world.repo.enrolment(orphan.request_id) is None
    # The catalog away too: the offering is not found, and that is the answer.
    unknown = world.command(other, OTHER_FAMILY, offering_id="off-unknown")
    world.decide(unknown)
    assert codes(world.get(unknown.request_id, OTHER_FAMILY)) == ["offering_not_found"]


# --- attendance -----------------------------------------------------------------------------------


def test_attendance_is_recorded_by_the_provider_and_exported_masked(world: World) -> None:
    household_id = world.household()
    giulia = world.child(household_id, GIULIA)
    kid = world.child(household_id, synthetic_child(3, date(world.today.year - 8, 1, 10)))
    confirmed = world.enrol(giulia)
    world.enrol(kid)
    world.clock.advance(3 * 86_400)
    days = [world.today + timedelta(days=i) for i in range(3)]
    record = AttendanceRecord.model_validate(
        {"entries": [{"day": d.isoformat(), "present": i != 1} for i, d in enumerate(days)]}
    )
    out = registers.record_attendance(world.repo, confirmed.id, PROVIDER, record, world.rt())
    assert out.totals.days_present == 2
    again = AttendanceRecord.model_validate({"entries": [{"day": days[1].isoformat(), "present": True}]})
    assert registers.record_attendance(world.repo, confirmed.id, PROVIDER, again, world.rt()).totals.days_present == 3
    with pytest.raises(Forbidden):
        registers.record_attendance(world.repo, confirmed.id, MANAGER, again, world.rt())
    with pytest.raises(NotFound):
        registers.record_attendance(world.repo, confirmed.id, OTHER_OPERATOR, again, world.rt())
    assert registers.get_attendance(world.repo, confirmed.id, MANAGER).totals.days_present == 3

    export = registers.attendance_register(world.repo, OFFERING, world.today.strftime("%Y-%m"), PROVIDER)
    lines = export.content.lstrip("\ufeff").split("\r\n")
    assert export.filename == f"registro-presenze-post-scuola-dsa-alla-primaria-manzoni-{world.today:%Y-%m}.csv"
    assert any(line.startswith("Rossi Giulia;RSS************") for line in lines)
    assert GIULIA["codice_fiscale"] not in export.content
    with pytest.raises(ValidationFailed):
        registers.attendance_register(world.repo, OFFERING, "2027-13", PROVIDER)
