"""Interface tests of the enrolment service: real containers on RabbitMQ and the MongoDB-wire server.

Catalog and partners events are published to the real broker with nameko's
standalone dispatcher, built from the contract models, exactly as those services
publish them; enrolment requests go through the partition exchange as the gateway
sends them (``tests.integration.requesting``); the enrolment service's own events are
received by a recorder service. Nothing is mocked.
"""

import ast
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import eventlet
import pytest
from nameko.events import event_handler
from nameko.exceptions import RemoteError
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_waiter
from pymongo import MongoClient
from pymongo.database import Database

from conciliare.contracts.catalog import OfferingPublished, OfferingSnapshot, OfferingUpdated, SnapshotPeriod
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.partners import AllianceCreated, MembershipChanged, MembershipRole, MembershipStatus
from conciliare.contracts.taxonomy import AttendanceMode
from conciliare.demo.data import PARTNER_BY_KEY
from conciliare.demo.families import GIULIA, ROSSI_HOUSEHOLD, synthetic_child, synthetic_household
from services.enrolment import seating
from services.enrolment.domain import Period, today_in_rome
from services.enrolment.ports import Runtime
from services.enrolment.records import AuditPurpose, Enrolment
from services.enrolment.repository import MongoRepository
from services.enrolment.service import EnrolmentService
from services.partners.service import PartnersService
from tests.integration.requesting import RequestPublisher, command, decision, decisions

pytestmark = pytest.mark.integration

MARNATE = "012098"
CASTELLANZA = "012042"
CREMA = "019035"  # outside the alliance
ALLIANCE = "all-marnate"
TOTEM = "p-totem"
OTHER_PROVIDER = "p-rembrandt"
TODAY = today_in_rome()
# Open from today for three months: requests may start today, attendance is for past days.
OPEN_FROM, OPEN_TO = TODAY, TODAY + timedelta(days=90)
PRIMARY_SCHOOL_CHILD_BORN = date(TODAY.year - 8, 1, 10)
FAMILY = {"subject": "user:famiglia.rossi", "role": "family"}
OTHER_FAMILY = {"subject": "user:famiglia.verdi", "role": "family"}
ADMIN = {"subject": "user:regione.admin", "role": "platform_admin"}
PROVIDER = {"subject": "user:totem.operatore", "role": "partner_operator", "partner_id": TOTEM}
OTHER_OPERATOR = {"subject": "user:rembrandt.operatore", "role": "partner_operator", "partner_id": OTHER_PROVIDER}
MANAGER = {"subject": "user:marnate.staff", "role": "alliance_manager", "alliance_ids": [ALLIANCE]}

Handler = Callable[[Any, dict[str, Any]], None]


def on_enrolment_event(event_type: str) -> Callable[[Handler], Handler]:
    decorator: Callable[[Handler], Handler] = event_handler("enrolment", event_type)
    return decorator


class EnrolmentEventRecorder:
    """A consumer of the enrolment service's events, as notifications will be."""

    name = "enrolment_event_recorder"
    received: list[tuple[str, dict[str, Any]]] = []

    @on_enrolment_event("enrolment.confirmed")
    def on_confirmed(self, payload: dict[str, Any]) -> None:
        EnrolmentEventRecorder.received.append(("enrolment.confirmed", payload))

    @on_enrolment_event("enrolment.waitlisted")
    def on_waitlisted(self, payload: dict[str, Any]) -> None:
        EnrolmentEventRecorder.received.append(("enrolment.waitlisted", payload))

    @on_enrolment_event("enrolment.promoted")
    def on_promoted(self, payload: dict[str, Any]) -> None:
        EnrolmentEventRecorder.received.append(("enrolment.promoted", payload))

    @on_enrolment_event("enrolment.cancelled")
    def on_cancelled(self, payload: dict[str, Any]) -> None:
        EnrolmentEventRecorder.received.append(("enrolment.cancelled", payload))

    @on_enrolment_event("enrolment.refused")
    def on_refused(self, payload: dict[str, Any]) -> None:
        EnrolmentEventRecorder.received.append(("enrolment.refused", payload))


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def db(mongo_client: MongoClient[dict[str, Any]], fresh_database: str) -> Database[dict[str, Any]]:
    return mongo_client[fresh_database]


@pytest.fixture
def service(container_factory: Any, config: dict[str, Any]) -> Any:
    container = container_factory(EnrolmentService, config)
    container.start()
    return container


@pytest.fixture
def recorder(container_factory: Any, rabbit_uri: str, service: Any) -> Any:
    EnrolmentEventRecorder.received = []
    container = container_factory(EnrolmentEventRecorder, {"AMQP_URI": rabbit_uri})
    container.start()
    return container


@pytest.fixture
def enrolment(service: Any) -> Iterator[Any]:
    with ServiceRpcClient("enrolment") as client:
        yield client


@pytest.fixture
def requests(rabbit_uri: str) -> Iterator[RequestPublisher]:
    """Publishes enrolment requests to the partition exchange, as the gateway does."""
    publisher = RequestPublisher(rabbit_uri)
    yield publisher
    publisher.close()


Ask = Callable[..., dict[str, Any]]


@pytest.fixture
def ask(requests: RequestPublisher, enrolment: Any) -> Ask:
    """Send one request (as FAMILY unless told) and wait for its decision."""

    def send(body: dict[str, Any], viewer: dict[str, Any] = FAMILY) -> dict[str, Any]:
        sent = command(viewer, body)
        requests.publish(sent)
        return decision(enrolment, sent.request_id, viewer)

    return send


@pytest.fixture
def publish(rabbit_uri: str, service: Any) -> Callable[[str, IntegrationEvent, str], None]:
    """Publish an event as its producer would, and wait until the service handled it."""
    dispatch = event_dispatcher(uri=rabbit_uri)

    def send(source: str, event: IntegrationEvent, handler: str) -> None:
        payload = event.model_dump(mode="json")
        failures: list[Any] = []

        def handled(worker_ctx: Any, result: Any, exc_info: Any) -> bool:
            if worker_ctx.args[0] != payload:
                return False
            if exc_info is not None:
                failures.append(exc_info[1])
            return True

        with entrypoint_waiter(service, handler, timeout=15, callback=handled):
            dispatch(source, event.event_type, payload)
        assert not failures, f"{handler} failed: {failures[0]!r}"

    return send


def snapshot(offering_id: str = "off-post-scuola", **overrides: Any) -> OfferingSnapshot:
    data: dict[str, Any] = {
        "offering_id": offering_id,
        "alliance_id": ALLIANCE,
        "provider_partner_id": TOTEM,
        "status": "published",
        "type": "post_scuola_dsa_adhd_bes",
        "title": "Post scuola DSA alla primaria Manzoni",
        "comune_istat": MARNATE,
        "capacity": 2,
        "age_min_months": 72,
        "age_max_months": 143,
        "special_needs_supported": ["dsa", "adhd", "bes"],
        "attendance_modes": ["full", "hour_package"],
        "periods": [SnapshotPeriod(kind="term_time", start=OPEN_FROM, end=OPEN_TO)],
        "weekdays": [1, 2, 3, 4, 5],
        "price_cents": 250,
        "price_unit": "hour",
        "version": 1,
    }
    data.update(overrides)
    return OfferingSnapshot.model_validate(data)


@pytest.fixture
def world(publish: Callable[[str, IntegrationEvent, str], None]) -> None:
    """The alliance (Marnate, Castellanza) with Totem formalized, and an offering of 2 seats."""
    publish(
        "partners",
        AllianceCreated(
            alliance_id=ALLIANCE,
            code="MARNATE-WLB",
            name="Partenariato Work Life Balance - Marnate",
            comuni_istat=[MARNATE, CASTELLANZA],
            capofila_partner_id="p-comune-marnate",
        ),
        "on_alliance_created",
    )
    publish(
        "partners",
        MembershipChanged(
            alliance_id=ALLIANCE,
            partner_id=TOTEM,
            role=MembershipRole.PARTNER,
            status=MembershipStatus.FORMALIZED,
            previous_status=None,
        ),
        "on_membership_changed",
    )
    publish("catalog", OfferingPublished(alliance_id=ALLIANCE, offering=snapshot()), "on_offering_published")


def household(enrolment: Any, viewer: dict[str, Any], payload: dict[str, Any] | None = None) -> str:
    return str(enrolment.create_household(viewer=viewer, payload=payload or ROSSI_HOUSEHOLD)["id"])


def child(enrolment: Any, household_id: str, viewer: dict[str, Any], payload: dict[str, Any]) -> str:
    return str(enrolment.add_child(household_id=household_id, viewer=viewer, payload=payload)["id"])


def request(
    child_id: str, offering_id: str = "off-post-scuola", start: date = OPEN_FROM, days: int = 30, **extra: Any
) -> dict[str, Any]:
    period = {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()}
    return {"child_id": child_id, "offering_id": offering_id, "period": period, "attendance_mode": "full", **extra}


def many_children(enrolment: Any, count: int, viewer: dict[str, Any] = FAMILY) -> list[str]:
    household_id = household(enrolment, viewer)
    return [child(enrolment, household_id, viewer, synthetic_child(i, PRIMARY_SCHOOL_CHILD_BORN)) for i in range(count)]


def error_of(exc: RemoteError) -> tuple[str, list[dict[str, str]]]:
    """Type and field errors of a remote domain error (its args travel as their repr)."""
    try:
        args = ast.literal_eval(str(exc.value))
    except (ValueError, SyntaxError):
        return str(exc.exc_type), []
    errors = args[1] if isinstance(args, tuple) and len(args) > 1 else []
    return str(exc.exc_type), list(errors)


def repo(db: Database[dict[str, Any]]) -> MongoRepository:
    """The service's own storage, read the way the service reads it."""
    return MongoRepository(db)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not condition():
        assert datetime.now(UTC) < deadline, "condition not reached in time"
        eventlet.sleep(0.1)


# --- households, children, needs ------------------------------------------------------------


def test_household_children_and_needs_kept_apart_with_audit(enrolment: Any, db: Database[dict[str, Any]]) -> None:
    household_id = household(enrolment, FAMILY)
    with pytest.raises(RemoteError) as raised:
        household(enrolment, FAMILY)
    assert error_of(raised.value)[0] == "Conflict"

    created = enrolment.add_child(household_id=household_id, viewer=FAMILY, payload=GIULIA)
    assert created["needs"] == ["dsa"] and created["codice_fiscale"] == GIULIA["codice_fiscale"]

    identity = db.children.find_one({"_id": created["id"]})
    assert identity is not None and "needs" not in identity
    assert repo(db).needs_of([created["id"]])[created["id"]].needs == {"dsa"}

    listed = enrolment.list_children(household_id=household_id, viewer=FAMILY)
    assert [c["needs"] for c in listed] == [["dsa"]]
    by_admin = enrolment.list_children(household_id=household_id, viewer=ADMIN)
    assert [c["needs"] for c in by_admin] == [None]
    with pytest.raises(RemoteError) as raised:
        enrolment.list_children(household_id=household_id, viewer=OTHER_FAMILY)
    assert error_of(raised.value)[0] == "NotFound"

    audit = repo(db).audit_trail(created["id"])
    assert [(a.reader_subject, a.purpose) for a in audit] == [
        (FAMILY["subject"], AuditPurpose.REGISTRATION),
        (FAMILY["subject"], AuditPurpose.FAMILY_VIEW),
    ]
    assert all(a.reader_role == "family" and a.at for a in audit)

    with pytest.raises(RemoteError) as raised:
        enrolment.add_child(household_id=household_id, viewer=FAMILY, payload=GIULIA)
    assert error_of(raised.value)[0] == "Conflict"
    assert db.children.count_documents({}) == 1 and db.child_needs.count_documents({}) == 1


def test_invalid_child_is_refused_in_italian(enrolment: Any) -> None:
    household_id = household(enrolment, FAMILY)
    wrong_birth = {**GIULIA, "birth_date": "2019-09-15"}
    with pytest.raises(RemoteError) as raised:
        enrolment.add_child(household_id=household_id, viewer=FAMILY, payload=wrong_birth)
    kind, errors = error_of(raised.value)
    assert kind == "ValidationFailed"
    assert errors[0]["field"] == "birth_date" and "non corrisponde" in errors[0]["message"]


# --- eligibility -------------------------------------------------------------------------------


def test_every_refusal_reason_is_given_and_no_seat_is_taken(
    enrolment: Any, world: None, ask: Ask, recorder: Any, db: Database[dict[str, Any]]
) -> None:
    far_away = {**synthetic_household(7, residence_istat=CREMA)}
    household_id = household(enrolment, FAMILY, far_away)
    teenager = child(
        enrolment,
        household_id,
        FAMILY,
        {**synthetic_child(1, date(TODAY.year - 13, 1, 10)), "needs": ["disabilita"]},
    )
    outside_calendar = request(teenager, start=OPEN_TO - timedelta(days=5), days=20, attendance_mode="chosen_days")
    outside_calendar["chosen_weekdays"] = [1, 3]
    refused = ask(outside_calendar)
    assert refused["status"] == "refused" and refused["sequence"] is None and refused["waitlist_position"] is None
    codes = [
        "period_outside_calendar",
        "age_out_of_range",
        "needs_not_supported",
        "not_in_alliance",
        "attendance_mode_not_offered",
    ]
    assert [r["code"] for r in refused["refusal_reasons"]] == codes
    assert all(r["message"] for r in refused["refusal_reasons"])
    assert refused["child_id"] == teenager and refused["offering_id"] == "off-post-scuola"
    # The refusal is kept (it is read again), but it holds no seat and no period of the child.
    assert enrolment.get_enrolment(enrolment_id=refused["id"], viewer=FAMILY)["status"] == "refused"
    assert enrolment.seat_counts(offering_id="off-post-scuola") == {"confirmed": 0, "waitlisted": 0}
    assert repo(db).child(teenager).enrolments == ()  # type: ignore[union-attr]
    wait_for(lambda: len(EnrolmentEventRecorder.received) >= 1)
    [(kind, event)] = EnrolmentEventRecorder.received
    assert kind == "enrolment.refused" and event["enrolment_id"] == refused["id"]
    assert [r["code"] for r in event["reasons"]] == codes


def test_someone_elses_child_and_unknown_offering(enrolment: Any, world: None, ask: Ask) -> None:
    [kid] = many_children(enrolment, 1)
    theirs = ask(request(kid), viewer=OTHER_FAMILY)
    assert theirs["status"] == "refused"
    assert [r["code"] for r in theirs["refusal_reasons"]] == ["child_not_found"]
    # Nothing about the child leaks to the family that asked for it.
    assert theirs["child_name"] is None and theirs["household_id"] is None and theirs["child_codice_fiscale"] is None
    # The refusal is readable only by whoever asked (and the platform).
    with pytest.raises(RemoteError) as raised:
        enrolment.get_enrolment(enrolment_id=theirs["id"], viewer=FAMILY)
    assert error_of(raised.value)[0] == "NotFound"
    assert enrolment.get_enrolment(enrolment_id=theirs["id"], viewer=ADMIN)["status"] == "refused"
    # No catalog runs here: the fall-back cannot find it either.
    unknown = ask(request(kid, offering_id="off-unknown"))
    assert unknown["status"] == "refused"
    assert [r["code"] for r in unknown["refusal_reasons"]] == ["offering_not_found"]
    assert enrolment.list_enrolments(viewer=FAMILY, query={})["total"] == 0


def test_overlapping_enrolment_is_refused(enrolment: Any, world: None, publish: Any, ask: Ask) -> None:
    publish(
        "catalog",
        OfferingPublished(alliance_id=ALLIANCE, offering=snapshot("off-compiti", title="Spazio compiti")),
        "on_offering_published",
    )
    [kid] = many_children(enrolment, 1)
    first = ask(request(kid))
    assert first["status"] == "confirmed"
    overlapping = ask(request(kid, "off-compiti", start=OPEN_FROM + timedelta(10)))
    assert overlapping["status"] == "refused"
    assert [r["code"] for r in overlapping["refusal_reasons"]] == ["overlapping_enrolment"]
    # Once cancelled, the period is free again.
    enrolment.cancel_enrolment(enrolment_id=first["id"], viewer=FAMILY, payload={})
    second = ask(request(kid, "off-compiti"))
    assert second["status"] == "confirmed"


def test_simultaneous_overlapping_requests_for_one_child_admit_one(
    enrolment: Any, world: None, publish: Any, requests: RequestPublisher, db: Database[dict[str, Any]]
) -> None:
    publish(
        "catalog",
        OfferingPublished(alliance_id=ALLIANCE, offering=snapshot("off-compiti", title="Spazio compiti")),
        "on_offering_published",
    )
    [kid] = many_children(enrolment, 1)
    # Alternating offerings: two partitions, decided at the same time.
    sent = [
        command(FAMILY, request(kid, "off-post-scuola" if index % 2 else "off-compiti", days=10 + index))
        for index in range(6)
    ]
    requests.publish(*sent)
    outcomes = decisions(enrolment, [c.request_id for c in sent], FAMILY)
    admitted = [o for o in outcomes if o["status"] == "confirmed"]
    assert len(admitted) == 1, [o["status"] for o in outcomes]
    refused = [o for o in outcomes if o["status"] == "refused"]
    assert len(refused) == 5
    assert all([r["code"] for r in o["refusal_reasons"]] == ["overlapping_enrolment"] for o in refused)
    listed = repo(db).child(kid).enrolments  # type: ignore[union-attr]
    assert [entry.enrolment_id for entry in listed] == [admitted[0]["id"]]
    counts = [enrolment.seat_counts(offering_id=o)["confirmed"] for o in ("off-post-scuola", "off-compiti")]
    assert sum(counts) == 1


# --- seats, waitlist, promotions -----------------------------------------------------------------


def test_capacity_waitlist_and_fifo_promotion_on_cancel(
    enrolment: Any, world: None, recorder: Any, ask: Ask, db: Database[dict[str, Any]]
) -> None:
    kids = many_children(enrolment, 4)
    results = [ask(request(k)) for k in kids]
    assert [r["status"] for r in results] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [r["sequence"] for r in results] == [1, 2, 3, 4]
    assert [r["waitlist_position"] for r in results] == [None, None, 1, 2]
    assert enrolment.seat_counts(offering_id="off-post-scuola") == {"confirmed": 2, "waitlisted": 2}

    with entrypoint_waiter(recorder, "on_promoted", timeout=10):
        cancelled = enrolment.cancel_enrolment(
            enrolment_id=results[0]["id"], viewer=FAMILY, payload={"reason": "Trasferimento"}
        )
    assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "Trasferimento"
    promoted = enrolment.get_enrolment(enrolment_id=results[2]["id"], viewer=FAMILY)
    assert promoted["status"] == "confirmed" and promoted["promoted"] is True
    still_waiting = enrolment.get_enrolment(enrolment_id=results[3]["id"], viewer=FAMILY)
    assert still_waiting["waitlist_position"] == 1
    assert enrolment.seat_counts(offering_id="off-post-scuola") == {"confirmed": 2, "waitlisted": 1}

    with pytest.raises(RemoteError) as raised:
        enrolment.cancel_enrolment(enrolment_id=results[0]["id"], viewer=FAMILY, payload={})
    kind, _ = error_of(raised.value)
    assert kind == "Conflict"

    wait_for(lambda: len(EnrolmentEventRecorder.received) >= 6)
    kinds = [kind for kind, _ in EnrolmentEventRecorder.received]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "enrolment.confirmed": 2,
        "enrolment.waitlisted": 2,
        "enrolment.cancelled": 1,
        "enrolment.promoted": 1,
    }
    promoted_event = next(p for k, p in EnrolmentEventRecorder.received if k == "enrolment.promoted")
    assert promoted_event["enrolment_id"] == results[2]["id"] and promoted_event["position"] == 1
    assert {"event_id", "occurred_at", "alliance_id", "offering_id", "child_id", "household_id"} <= set(promoted_event)
    # Nothing left half-done: no event waits in the seats' outbox.
    seats = db.seats.find_one({"_id": "off-post-scuola"})
    assert seats is not None and seats["_outbox"] == []


def test_capacity_increase_promotes_as_many_as_fit_and_old_versions_are_ignored(
    enrolment: Any, world: None, publish: Any, ask: Ask
) -> None:
    kids = many_children(enrolment, 6)
    results = [ask(request(k)) for k in kids]
    assert [r["status"] for r in results].count("waitlisted") == 4

    publish(
        "catalog",
        OfferingUpdated(alliance_id=ALLIANCE, offering=snapshot(capacity=5, version=3)),
        "on_offering_updated",
    )
    statuses = [enrolment.get_enrolment(enrolment_id=r["id"], viewer=FAMILY)["status"] for r in results]
    assert statuses == ["confirmed"] * 5 + ["waitlisted"]
    assert enrolment.seat_counts(offering_id="off-post-scuola") == {"confirmed": 5, "waitlisted": 1}

    # A late, older snapshot (capacity 2) changes nothing.
    publish(
        "catalog",
        OfferingUpdated(alliance_id=ALLIANCE, offering=snapshot(capacity=2, version=2)),
        "on_offering_updated",
    )
    roster = enrolment.offering_roster(offering_id="off-post-scuola", viewer=PROVIDER)
    assert roster["capacity"] == 5 and roster["confirmed_count"] == 5


# --- the partitions: order, one active consumer, at most once ---------------------------------------


@pytest.fixture
def second(container_factory: Any, config: dict[str, Any], service: Any) -> Any:
    """Another enrolment instance on the same broker and database, started after the first."""
    container = container_factory(EnrolmentService, config)
    container.start()
    return container


def ten_seats(publish: Any) -> None:
    publish(
        "catalog",
        OfferingUpdated(alliance_id=ALLIANCE, offering=snapshot(capacity=10, version=2)),
        "on_offering_updated",
    )


def test_requests_are_decided_in_the_order_they_were_published(
    enrolment: Any, world: None, publish: Any, requests: RequestPublisher, second: Any
) -> None:
    ten_seats(publish)
    kids = many_children(enrolment, 60)
    sent = [command(FAMILY, request(kid)) for kid in kids]
    requests.publish(*sent)

    results = decisions(enrolment, [c.request_id for c in sent], FAMILY, timeout=60)
    assert [r["sequence"] for r in results] == list(range(1, 61))
    assert [r["status"] for r in results] == ["confirmed"] * 10 + ["waitlisted"] * 50
    assert [r["waitlist_position"] for r in results] == [None] * 10 + list(range(1, 51))
    assert [r["protocol"] for r in results] == [c.protocol for c in sent]
    assert enrolment.seat_counts(offering_id="off-post-scuola") == {"confirmed": 10, "waitlisted": 50}
    roster = enrolment.offering_roster(offering_id="off-post-scuola", viewer=PROVIDER)
    assert [e["enrolment_id"] for e in roster["confirmed"] + roster["waitlist"]] == [c.request_id for c in sent]


def decision_events(enrolment_id: str) -> set[str]:
    """The distinct confirmed/waitlisted events received about one enrolment (by event id)."""
    return {
        payload["event_id"]
        for kind, payload in EnrolmentEventRecorder.received
        if kind in {"enrolment.confirmed", "enrolment.waitlisted"} and payload["enrolment_id"] == enrolment_id
    }


def test_killing_the_active_instance_mid_stream_decides_every_request_exactly_once(
    service: Any,
    second: Any,
    enrolment: Any,
    world: None,
    publish: Any,
    recorder: Any,
    requests: RequestPublisher,
    db: Database[dict[str, Any]],
) -> None:
    ten_seats(publish)
    kids = many_children(enrolment, 120)
    sent = [command(FAMILY, request(kid)) for kid in kids]
    early, late = sent[:80], sent[80:]
    # The first instance (first to subscribe, so the active consumer) decides the first
    # request, then gets the next 79 ...
    requests.publish(early[0])
    assert decision(enrolment, early[0].request_id, FAMILY)["sequence"] == 1
    requests.publish(*early[1:])

    def decided() -> int:
        seats = repo(db).seats_snapshot("off-post-scuola")
        return 0 if seats is None else len(seats.confirmed) + len(seats.waitlist)

    # ... and dies while deciding them: some enrolments stored, their seats not yet.
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while db.enrolments.count_documents({}) <= decided() and datetime.now(UTC) < deadline:
        eventlet.sleep(0.01)
    service.kill()
    decided_at_kill = decided()
    # These reach only the second instance.
    requests.publish(*late)

    with ServiceRpcClient("enrolment") as client:
        results = decisions(client, [c.request_id for c in sent], FAMILY, timeout=90)
        counts = client.seat_counts(offering_id="off-post-scuola")
    assert decided_at_kill < len(sent)
    sequences = [r["sequence"] for r in results]
    # Every request decided once, in the order it was published: the killed instance's
    # unacknowledged requests went back to the queue, in order, before the other took over.
    assert sequences == list(range(1, 121))
    assert sorted(r["sequence"] for r in results if r["status"] == "confirmed") == list(range(1, 11))
    assert all(r["waitlist_position"] == r["sequence"] - 10 for r in results if r["status"] == "waitlisted")
    assert counts == {"confirmed": 10, "waitlisted": 110}
    assert db.enrolments.count_documents({}) == 120
    assert all(len(repo(db).child(kid).enrolments) == 1 for kid in kids)  # type: ignore[union-attr]
    # One decision (one event id) per request, whatever was sent again after the crash.
    wait_for(lambda: all(decision_events(c.request_id) for c in sent), timeout=30)
    assert all(len(decision_events(c.request_id)) == 1 for c in sent)


def test_two_instances_cancelling_and_requesting_at_once_keep_capacity_and_fifo(
    second: Any, enrolment: Any, world: None, requests: RequestPublisher
) -> None:
    kids = many_children(enrolment, 50)
    first_wave, latecomers = kids[:40], kids[40:]

    def cancel(enrolment_id: str) -> str:
        with ServiceRpcClient("enrolment") as client:
            return str(client.cancel_enrolment(enrolment_id=enrolment_id, viewer=FAMILY, payload={})["status"])

    sent = [command(FAMILY, request(kid)) for kid in first_wave]
    requests.publish(*sent)
    results = decisions(enrolment, [c.request_id for c in sent], FAMILY, timeout=60)
    assert [r["sequence"] for r in results] == list(range(1, 41))
    assert [r["status"] for r in results] == ["confirmed"] * 2 + ["waitlisted"] * 38
    # Both confirmed families and five in the waitlist cancel while ten more requests arrive.
    leaving = [results[0]["id"], results[1]["id"], *(r["id"] for r in results[5:10])]
    pool = eventlet.GreenPool(20)
    cancelled = [pool.spawn(cancel, enrolment_id) for enrolment_id in leaving]
    arriving = [command(FAMILY, request(kid)) for kid in latecomers]
    requests.publish(*arriving)
    assert [c.wait() for c in cancelled] == ["cancelled"] * 7
    late = decisions(enrolment, [c.request_id for c in arriving], FAMILY, timeout=60)
    assert [r["sequence"] for r in late] == list(range(41, 51))
    assert all(r["status"] == "waitlisted" for r in late)

    roster = enrolment.offering_roster(offering_id="off-post-scuola", viewer=PROVIDER)
    # The seats went to the head of the waitlist: sequences 3 and 4.
    assert [e["sequence"] for e in roster["confirmed"]] == [3, 4]
    waiting = [e["sequence"] for e in roster["waitlist"]]
    # Then 5 and 11..40 in arrival order (6..10 left), then the latecomers.
    assert waiting == [5, *range(11, 51)]
    assert [e["waitlist_position"] for e in roster["waitlist"]] == list(range(1, len(waiting) + 1))
    assert enrolment.seat_counts(offering_id="off-post-scuola") == {"confirmed": 2, "waitlisted": 41}


def test_the_same_request_published_twice_is_decided_once(
    enrolment: Any, world: None, recorder: Any, requests: RequestPublisher, db: Database[dict[str, Any]]
) -> None:
    kids = many_children(enrolment, 3)
    first = command(FAMILY, request(kids[0]))
    requests.publish(first)
    decided = decision(enrolment, first.request_id, FAMILY)
    assert (decided["status"], decided["sequence"]) == ("confirmed", 1)

    # Sent again later (a redelivery), and another one twice in a row (one batch); a
    # refusal twice; then a last request: the partition keeps the order, so once that
    # one is decided every copy before it was handled.
    twice = command(FAMILY, request(kids[1]))
    not_theirs = command(OTHER_FAMILY, request(kids[2]))
    last = command(FAMILY, request(kids[2]))
    requests.publish(first, twice, twice, not_theirs, not_theirs, first, last)
    assert decision(enrolment, last.request_id, FAMILY)["sequence"] == 3

    assert decision(enrolment, first.request_id, FAMILY) == decided
    again = decision(enrolment, twice.request_id, FAMILY)
    assert (again["status"], again["sequence"]) == ("confirmed", 2)
    refused = decision(enrolment, not_theirs.request_id, OTHER_FAMILY)
    assert [r["code"] for r in refused["refusal_reasons"]] == ["child_not_found"]
    assert enrolment.seat_counts(offering_id="off-post-scuola") == {"confirmed": 2, "waitlisted": 1}
    assert db.enrolments.count_documents({}) == 3

    wait_for(lambda: len(EnrolmentEventRecorder.received) >= 4)
    eventlet.sleep(3)  # a relay pass too: nothing more comes
    received = sorted((kind, payload["enrolment_id"]) for kind, payload in EnrolmentEventRecorder.received)
    assert received == sorted(
        [
            ("enrolment.confirmed", first.request_id),
            ("enrolment.confirmed", twice.request_id),
            ("enrolment.refused", not_theirs.request_id),
            ("enrolment.waitlisted", last.request_id),
        ]
    )


# --- events applied once ----------------------------------------------------------------------------


def test_the_same_event_twice_is_applied_once(enrolment: Any, publish: Any, db: Database[dict[str, Any]]) -> None:
    created = AllianceCreated(
        alliance_id="all-x", code="X", name="Alleanza X", comuni_istat=[MARNATE], capofila_partner_id="p-1"
    )
    publish("partners", created, "on_alliance_created")
    # Same event id, different content: a redelivery must not be applied again.
    replay = created.model_copy(update={"comuni_istat": [CREMA]})
    publish("partners", replay, "on_alliance_created")
    assert db.alliances.find_one({"_id": "all-x"})["comuni_istat"] == [MARNATE]  # type: ignore[index]
    assert db.processed_events.count_documents({}) == 1

    withdrawn = MembershipChanged(
        alliance_id="all-x",
        partner_id=TOTEM,
        role=MembershipRole.PARTNER,
        status=MembershipStatus.WITHDRAWN,
        previous_status=MembershipStatus.FORMALIZED,
        occurred_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    formalized = MembershipChanged(
        alliance_id="all-x",
        partner_id=TOTEM,
        role=MembershipRole.PARTNER,
        status=MembershipStatus.FORMALIZED,
        previous_status=None,
    )
    publish("partners", formalized, "on_membership_changed")
    # Out of order: an older change arriving late does not win.
    publish("partners", withdrawn, "on_membership_changed")
    members = db.alliances.find_one({"_id": "all-x"})["members"]  # type: ignore[index]
    assert members[TOTEM]["status"] == "formalized"


def test_alliance_missing_from_the_projection_is_fetched_once(
    container_factory: Any, rabbit_uri: str, fresh_database: str, mongo_client: MongoClient[dict[str, Any]]
) -> None:
    # The partners service creates the alliance before the enrolment service ever ran:
    # the events went to nobody, so the territory is fetched by RPC and kept.
    partners_db = f"{fresh_database}_partners"
    try:
        container_factory(PartnersService, {"AMQP_URI": rabbit_uri, "MONGO_DATABASE": partners_db}).start()
        with ServiceRpcClient("partners") as partners:
            ids = {}
            for key in ("comune_marnate", "coop_totem"):
                demo = PARTNER_BY_KEY[key]
                ids[key] = partners.register_partner(
                    payload={
                        "kind": demo.kind,
                        "name": demo.name,
                        "tax_code": demo.tax_code,
                        "comune_istat": demo.comune_istat,
                    }
                )["id"]
            alliance = partners.create_alliance(
                payload={
                    "code": "MARNATE-WLB",
                    "name": "Partenariato Work Life Balance - Marnate",
                    "ambiti": [{"name": "Ambito di Castellanza", "comuni_istat": [MARNATE, CASTELLANZA]}],
                    "capofila_partner_id": ids["comune_marnate"],
                }
            )
        service = container_factory(EnrolmentService, {"AMQP_URI": rabbit_uri, "MONGO_DATABASE": fresh_database})
        service.start()
        offering = snapshot(alliance_id=alliance["id"], provider_partner_id=ids["coop_totem"])
        dispatch = event_dispatcher(uri=rabbit_uri)
        payload = OfferingPublished(alliance_id=alliance["id"], offering=offering).model_dump(mode="json")
        with entrypoint_waiter(service, "on_offering_published", timeout=15):
            dispatch("catalog", "offering.published", payload)
        publisher = RequestPublisher(rabbit_uri)
        try:
            with ServiceRpcClient("enrolment") as enrolment:
                [kid] = many_children(enrolment, 1)
                sent = command(FAMILY, request(kid, offering_id=offering.offering_id))
                publisher.publish(sent)
                assert decision(enrolment, sent.request_id, FAMILY)["status"] == "confirmed"
        finally:
            publisher.close()
        stored = mongo_client[fresh_database].alliances.find_one({"_id": alliance["id"]})
        assert stored is not None and set(stored["comuni_istat"]) == {MARNATE, CASTELLANZA}
        assert stored["members"][ids["comune_marnate"]]["status"] == "formalized"
    finally:
        mongo_client.drop_database(partners_db)


# --- provider view, tenants, audit -------------------------------------------------------------------


def test_roster_shows_needs_only_to_the_provider_and_audits_each_read(
    enrolment: Any, world: None, ask: Ask, db: Database[dict[str, Any]]
) -> None:
    household_id = household(enrolment, FAMILY)
    giulia = child(enrolment, household_id, FAMILY, GIULIA)
    others = [child(enrolment, household_id, FAMILY, synthetic_child(i, PRIMARY_SCHOOL_CHILD_BORN)) for i in range(2)]
    for kid in [giulia, *others]:
        ask(request(kid))
    audit_before = db.audit_log.count_documents({})

    roster = enrolment.offering_roster(offering_id="off-post-scuola", viewer=PROVIDER)
    assert roster["needs_disclosed"] is True and roster["confirmed_count"] == 2
    assert [e["waitlist_position"] for e in roster["waitlist"]] == [1]
    giulia_row = next(e for e in roster["confirmed"] if e["child_id"] == giulia)
    assert giulia_row["needs"] == ["dsa"]
    assert (
        giulia_row["child_codice_fiscale"] == "RSS************N"
        and "*" in roster["waitlist"][0]["child_codice_fiscale"]
    )
    reads = list(db.audit_log.find({"purpose": AuditPurpose.PROVIDER_ROSTER.value}))
    assert {r["child_id"] for r in reads} == {giulia, *others} and len(reads) == 3
    assert all(r["reader_partner_id"] == TOTEM and r["reader_role"] == "partner_operator" for r in reads)

    by_manager = enrolment.offering_roster(offering_id="off-post-scuola", viewer=MANAGER)
    assert by_manager["needs_disclosed"] is False and all(e["needs"] is None for e in by_manager["confirmed"])
    assert db.audit_log.count_documents({}) == audit_before + 3
    for stranger in (OTHER_OPERATOR, FAMILY, {**MANAGER, "alliance_ids": ["all-other"]}):
        with pytest.raises(RemoteError) as raised:
            enrolment.offering_roster(offering_id="off-post-scuola", viewer=stranger)
        assert error_of(raised.value)[0] == "NotFound"


def test_lists_are_scoped_to_the_tenant(enrolment: Any, world: None, ask: Ask) -> None:
    [kid] = many_children(enrolment, 1)
    created = ask(request(kid))
    assert enrolment.list_enrolments(viewer=FAMILY, query={})["total"] == 1
    assert enrolment.list_enrolments(viewer=PROVIDER, query={"status": "confirmed"})["total"] == 1
    assert enrolment.list_enrolments(viewer=MANAGER, query={})["total"] == 1
    assert enrolment.list_enrolments(viewer=OTHER_FAMILY, query={})["total"] == 0
    assert enrolment.list_enrolments(viewer=OTHER_OPERATOR, query={})["total"] == 0
    with pytest.raises(RemoteError) as raised:
        enrolment.get_enrolment(enrolment_id=created["id"], viewer=OTHER_OPERATOR)
    assert error_of(raised.value)[0] == "NotFound"


# --- attendance ---------------------------------------------------------------------------------------


def test_attendance_register_totals_and_csv(
    enrolment: Any, world: None, ask: Ask, db: Database[dict[str, Any]]
) -> None:
    household_id = household(enrolment, FAMILY)
    giulia = child(enrolment, household_id, FAMILY, GIULIA)
    hours_kid = child(enrolment, household_id, FAMILY, synthetic_child(3, PRIMARY_SCHOOL_CHILD_BORN))
    full = ask(request(giulia))
    package = ask(request(hours_kid, attendance_mode="hour_package", hours=20))
    assert full["status"] == package["status"] == "confirmed"
    # Time passes: both enrolments started three days ago (dates are stored as data).
    start = TODAY - timedelta(days=3)
    db.enrolments.update_many({}, {"$set": {"period.start": start.isoformat()}})

    days = [start + timedelta(days=i) for i in range(4)]
    recorded = enrolment.record_attendance(
        enrolment_id=full["id"],
        viewer=PROVIDER,
        payload={"entries": [{"day": d.isoformat(), "present": i != 1} for i, d in enumerate(days)]},
    )
    assert recorded["totals"]["days_present"] == 3
    enrolment.record_attendance(
        enrolment_id=package["id"],
        viewer=PROVIDER,
        payload={"entries": [{"day": days[0].isoformat(), "present": True, "hours": 2.5}]},
    )
    # Recording a day again replaces it.
    again = enrolment.record_attendance(
        enrolment_id=full["id"], viewer=PROVIDER, payload={"entries": [{"day": days[1].isoformat(), "present": True}]}
    )
    assert again["totals"]["days_present"] == 4 and len(again["entries"]) == 4

    with pytest.raises(RemoteError) as raised:
        enrolment.record_attendance(
            enrolment_id=package["id"],
            viewer=PROVIDER,
            payload={
                "entries": [
                    {"day": (TODAY + timedelta(days=1)).isoformat(), "present": True, "hours": 1},
                    {"day": days[1].isoformat(), "present": True},
                    {"day": days[2].isoformat(), "present": True, "hours": 13},
                ]
            },
        )
    kind, errors = error_of(raised.value)
    assert kind == "ValidationFailed"
    assert [e["field"] for e in errors] == ["entries.0.day", "entries.1.day", "entries.2.hours"]
    for stranger in (OTHER_OPERATOR, MANAGER):
        with pytest.raises(RemoteError) as raised:
            enrolment.record_attendance(
                enrolment_id=full["id"],
                viewer=stranger,
                payload={"entries": [{"day": days[0].isoformat(), "present": True}]},
            )
        assert error_of(raised.value)[0] in {"NotFound", "Forbidden"}

    totals = enrolment.get_attendance(enrolment_id=package["id"], viewer=MANAGER)
    assert totals["totals"] == {"days_present": 1, "hours": 2.5}

    month = days[0].strftime("%Y-%m")
    export = enrolment.attendance_register(offering_id="off-post-scuola", month=month, viewer=PROVIDER)
    assert export["filename"].endswith(f"-{month}.csv")
    lines = export["content"].lstrip("\ufeff").split("\r\n")
    assert lines[0].startswith("Bambino;Codice fiscale;01/")
    giulia_line = next(line for line in lines if line.startswith("Rossi Giulia"))
    assert giulia_line.split(";")[1] == "RSS************N"
    assert GIULIA["codice_fiscale"] not in export["content"]
    assert lines[-2].startswith("Totale;") and lines[-1] == ""
    with pytest.raises(RemoteError) as raised:
        enrolment.attendance_register(offering_id="off-post-scuola", month="2027-13", viewer=PROVIDER)
    assert error_of(raised.value)[0] == "ValidationFailed"


# --- crash recovery -------------------------------------------------------------------------------------


class Crash(Exception):
    """Stands for the process dying at that point."""


def stored_request(db: Database[dict[str, Any]], enrolment_id: str, kid: str) -> Enrolment:
    """A request as admission stores it, before its seat is decided."""
    child = repo(db).child(kid)
    assert child is not None
    record = Enrolment(
        id=enrolment_id,
        offering_id="off-post-scuola",
        offering_title="Post scuola",
        alliance_id=ALLIANCE,
        provider_partner_id=TOTEM,
        child_id=kid,
        child_first_name=child.first_name,
        child_last_name=child.last_name,
        child_codice_fiscale="XXX************X",
        child_birth_date=child.birth_date,
        household_id=child.household_id,
        owner_subject=FAMILY["subject"],
        period=Period(start=OPEN_FROM, end=OPEN_FROM + timedelta(days=5)),
        attendance_mode=AttendanceMode.FULL,
        chosen_weekdays=None,
        hours=None,
        requested_at=datetime.now(UTC),
    )
    assert repo(db).add_enrolment(record)
    return record


def test_events_of_a_decision_whose_publishing_crashed_are_published_by_the_relay(
    db: Database[dict[str, Any]], service: Any, enrolment: Any, world: None, recorder: Any
) -> None:
    kids = many_children(enrolment, 3)
    records = [stored_request(db, f"crash-{index}", kid) for index, kid in enumerate(kids)]

    def crash(event_type: str, payload: dict[str, Any]) -> None:
        raise Crash(event_type)

    # Right after a relay pass, so the next one (2 s later) finds the events left behind.
    with entrypoint_waiter(service, "relay_outbox", timeout=10):
        pass
    seating.decide(repo(db), Runtime(dispatch=crash), "off-post-scuola", [(record, ()) for record in records])
    stored = db.seats.find_one({"_id": "off-post-scuola"})
    assert stored is not None and len(stored["_outbox"]) == 3

    wait_for(lambda: len(EnrolmentEventRecorder.received) >= 3, timeout=10)
    assert sorted(kind for kind, _ in EnrolmentEventRecorder.received) == [
        "enrolment.confirmed",
        "enrolment.confirmed",
        "enrolment.waitlisted",
    ]
    statuses = [enrolment.get_enrolment(enrolment_id=f"crash-{i}", viewer=FAMILY)["status"] for i in range(3)]
    assert statuses == ["confirmed", "confirmed", "waitlisted"]
    assert enrolment.seat_counts(offering_id="off-post-scuola") == {"confirmed": 2, "waitlisted": 1}
    wait_for(lambda: db.seats.find_one({"_id": "off-post-scuola"})["_outbox"] == [])  # type: ignore[index]


# --- tolerant reader ---------------------------------------------------------------------------------------


def test_an_event_with_fields_this_service_does_not_know_is_applied(
    enrolment: Any, publish: Any, rabbit_uri: str, service: Any, db: Database[dict[str, Any]]
) -> None:
    payload = OfferingPublished(alliance_id=ALLIANCE, offering=snapshot("off-newer")).model_dump(mode="json")
    payload["channel"] = "app"  # added by a newer catalog, at top level ...
    payload["offering"]["accessibility"] = {"ramp": True}  # ... and nested
    payload["offering"]["periods"][0]["label"] = "anno scolastico"
    dispatch = event_dispatcher(uri=rabbit_uri)
    with entrypoint_waiter(service, "on_offering_published", timeout=15):
        dispatch("catalog", "offering.published", payload)
    projected = repo(db).offering("off-newer")
    assert projected is not None and projected.capacity == 2
    roster = enrolment.offering_roster(offering_id="off-newer", viewer=PROVIDER)
    assert roster["capacity"] == 2 and roster["confirmed_count"] == 0
