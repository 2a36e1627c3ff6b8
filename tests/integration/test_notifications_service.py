"""Interface tests of the notifications service: real RabbitMQ, MongoDB-wire server, SMTP, HTTP.

The SMTP sink is the project's own (``scripts/infra/smtp_sink.py``, aiosmtpd) run on a
free port for the test; the webhook receiver is a local HTTP server whose requests
are checked with the ``standardwebhooks`` verifier. The enrolment and partners
services are stood in for by small nameko services answering the RPCs this service
makes (its recipient data comes from them).
"""

import email
import email.policy
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import eventlet
import pytest
from nameko.exceptions import RemoteError
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcClient
from pymongo import MongoClient
from standardwebhooks.webhooks import Webhook

from conciliare.contracts.enrolment import EnrolmentCancelled, EnrolmentConfirmed, EnrolmentWaitlisted
from conciliare.contracts.partners import MembershipChanged, MembershipRole, MembershipStatus
from services.notifications.service import NotificationsService

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALLIANCE = "alliance-marnate"
OTHER_ALLIANCE = "alliance-castellanza"
PARTNER = "partner-totem"
HOUSEHOLD = "household-rossi"
FAMILY = {"subject": "famiglia.rossi", "role": "family", "alliance_ids": []}
OPERATOR = {"subject": "totem-gestionale", "role": "partner_operator", "partner_id": PARTNER, "alliance_ids": []}
STAFF = {"subject": "marnate.staff", "role": "alliance_manager", "alliance_ids": [ALLIANCE]}
OTHER_STAFF = {"subject": "castellanza.staff", "role": "alliance_manager", "alliance_ids": [OTHER_ALLIANCE]}


# --- stand-ins for the services that own the recipient data ------------------------------------


class EnrolmentStandIn:
    name = "enrolment"

    @rpc  # type: ignore[untyped-decorator]
    def get_enrolment(self, enrolment_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        assert viewer["role"] == "platform_admin"
        return {
            "id": enrolment_id,
            "child_name": "Giulia Rossi",
            "offering_title": "Spazio compiti DSA",
            "period": {"start": "2027-03-25", "end": "2027-03-30"},
        }

    @rpc  # type: ignore[untyped-decorator]
    def get_household(self, household_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": household_id,
            "guardians": [
                {"first_name": "Maria", "email": "maria.rossi@example.it"},
                {"first_name": "Luca", "email": "luca.rossi@example.it"},
            ],
        }

    @rpc  # type: ignore[untyped-decorator]
    def list_households(self, viewer: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
        items = [{"id": HOUSEHOLD}] if viewer["subject"] == "famiglia.rossi" else []
        return {"items": items, "total": len(items), "limit": 1, "offset": 0}


class PartnersStandIn:
    name = "partners"

    @rpc  # type: ignore[untyped-decorator]
    def get_partner(self, partner_id: str) -> dict[str, Any]:
        return {"id": partner_id, "name": "Coop. Totem", "email": "segreteria@totem.example.it"}

    @rpc  # type: ignore[untyped-decorator]
    def get_alliance(self, alliance_id: str) -> dict[str, Any]:
        return {"id": alliance_id, "name": "Alleanza di Marnate"}


# --- real SMTP sink and webhook receiver ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(self.directory.glob("*.eml"))
        ]


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[Sink]:
    port = free_port()
    directory = tmp_path / "mail"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/infra/smtp_sink.py"), "--port", str(port), "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert datetime.now(UTC) < deadline, "smtp sink did not start"
                eventlet.sleep(0.1)
        yield Sink(directory, port)
    finally:
        process.terminate()
        process.wait(timeout=10)


class Receiver:
    """An integrator's endpoint: answers 500 to the first ``failures`` requests, then 204."""

    def __init__(self) -> None:
        self.failures = 0
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 500 if receiver.failures > 0 else 204
                receiver.failures -= 1
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/conciliare"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def succeeded(self) -> list[tuple[dict[str, str], bytes, int]]:
        return [r for r in self.requests if r[2] == 204]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# --- the service -------------------------------------------------------------------------------


@pytest.fixture
def config(rabbit_uri: str, fresh_database: str, smtp_sink: Sink) -> dict[str, Any]:
    return {
        "AMQP_URI": rabbit_uri,
        "MONGO_DATABASE": fresh_database,
        "NOTIFICATIONS": {
            "smtp_port": smtp_sink.port,
            "retry_base_seconds": 0.2,
            "retry_factor": 1.5,
            "retry_max_attempts": 4,
            "webhook_timeout_seconds": 10,
        },
    }


@pytest.fixture
def stand_ins(container_factory: Any, config: dict[str, Any]) -> None:
    for cls in (EnrolmentStandIn, PartnersStandIn):
        container_factory(cls, config).start()


@pytest.fixture
def container(container_factory: Any, config: dict[str, Any], stand_ins: None) -> Any:
    c = container_factory(NotificationsService, config)
    c.start()
    return c


@pytest.fixture
def notifications(container: Any) -> Iterator[Any]:
    with ServiceRpcClient("notifications") as client:
        yield client


@pytest.fixture
def publish(rabbit_uri: str) -> Callable[[str, Any], dict[str, Any]]:
    dispatch = event_dispatcher(uri=rabbit_uri)

    def send(source: str, event: Any) -> dict[str, Any]:
        payload: dict[str, Any] = event.model_dump(mode="json")
        dispatch(source, event.event_type, payload)
        return payload

    return send


@pytest.fixture
def db(mongo_client: MongoClient[dict[str, Any]], fresh_database: str) -> Any:
    return mongo_client[fresh_database]


def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not condition():
        assert datetime.now(UTC) < deadline, "condition not reached in time"
        eventlet.sleep(0.1)


def confirmed(enrolment_id: str = "enr-1") -> EnrolmentConfirmed:
    return EnrolmentConfirmed(
        alliance_id=ALLIANCE,
        offering_id="off-1",
        enrolment_id=enrolment_id,
        child_id="child-giulia",
        household_id=HOUSEHOLD,
        provider_partner_id=PARTNER,
        sequence=1,
    )


def subscribe(notifications: Any, url: str, kinds: list[str] | None = None) -> dict[str, Any]:
    return dict(
        notifications.create_subscription(
            viewer=OPERATOR, payload={"url": url, "event_kinds": kinds or ["enrolment.confirmed"]}
        )
    )


# --- tests -------------------------------------------------------------------------------------


def test_confirmed_enrolment_reaches_email_inbox_and_webhook_exactly_once(
    notifications: Any, publish: Any, smtp_sink: Sink, receiver: Receiver, db: Any
) -> None:
    subscription = subscribe(notifications, receiver.url)
    assert subscription["secret"].startswith("whsec_")
    payload = publish("enrolment", confirmed())
    wait_for(lambda: len(smtp_sink.messages()) == 2 and len(receiver.succeeded()) == 1)
    publish("enrolment", confirmed())  # another event, new id
    # The broker redelivering the first event must create nothing new.
    publish("enrolment", EnrolmentConfirmed.model_validate(payload))
    wait_for(lambda: len(smtp_sink.messages()) == 4 and len(receiver.succeeded()) == 2)
    eventlet.sleep(1.5)
    assert len(smtp_sink.messages()) == 4
    assert len(receiver.requests) == 2

    family_mail = [m for m in smtp_sink.messages() if "maria.rossi@example.it" in str(m["To"])]
    assert len(family_mail) == 2
    message = family_mail[0]
    assert message["Subject"] == "Iscrizione confermata: Giulia Rossi, «Spazio compiti DSA»"
    assert "luca.rossi@example.it" in str(message["To"])
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and "dal 25/03/2027 al 30/03/2027" in text.get_content()
    assert html is not None and "<p>" in html.get_content()

    headers, body, _ = receiver.succeeded()[0]
    verified = Webhook(subscription["secret"]).verify(body, headers)
    assert verified["type"] == "enrolment.confirmed"
    assert verified["event_id"] == payload["event_id"]
    assert verified["data"]["enrolment_id"] == "enr-1"

    inbox = notifications.list_inbox(viewer=FAMILY, query={})
    assert inbox["unread"] == 2
    assert inbox["items"][0]["title"].startswith("Iscrizione confermata")
    assert notifications.unread_count(viewer=OPERATOR) == 2
    assert db["deliveries"].count_documents({"event_id": payload["event_id"]}) == 5


def test_la_posta_lists_counts_and_marks_read(notifications: Any, publish: Any) -> None:
    publish("enrolment", confirmed())
    wait_for(lambda: notifications.unread_count(viewer=FAMILY) == 1)
    waitlisted = EnrolmentWaitlisted(**{**confirmed("enr-2").model_dump(), "position": 4})
    publish("enrolment", waitlisted)
    wait_for(lambda: notifications.unread_count(viewer=FAMILY) == 2)
    page = notifications.list_inbox(viewer=FAMILY, query={"limit": 10})
    newest = page["items"][0]
    assert "posizione 4" in newest["body"]
    notifications.mark_read(viewer=FAMILY, item_id=newest["id"])
    notifications.mark_read(viewer=FAMILY, item_id=newest["id"])  # idempotent
    assert notifications.unread_count(viewer=FAMILY) == 1
    unread = notifications.list_inbox(viewer=FAMILY, query={"unread_only": True})
    assert [i["read"] for i in unread["items"]] == [False]
    with pytest.raises(RemoteError) as raised:
        notifications.mark_read(viewer=STAFF, item_id=newest["id"])  # not staff's mailbox
    assert raised.value.exc_type == "NotFound"


def test_preferences_choose_channels_but_outcomes_cannot_be_muted(
    notifications: Any, publish: Any, smtp_sink: Sink
) -> None:
    prefs = notifications.get_preferences(viewer=FAMILY)
    assert prefs == {
        "recipient": f"household:{HOUSEHOLD}",
        "channels": ["email", "inbox"],
        "muted_event_kinds": [],
        "language": "it",
        "version": 0,
    }
    with pytest.raises(RemoteError) as raised:
        notifications.set_preferences(
            viewer=FAMILY, payload={"channels": ["inbox"], "muted_event_kinds": ["enrolment.cancelled"]}
        )
    assert raised.value.exc_type == "ValidationFailed"
    saved = notifications.set_preferences(
        viewer=FAMILY, payload={"channels": ["inbox"], "language": "en", "muted_event_kinds": ["offering.published"]}
    )
    assert saved["version"] == 1
    assert saved["muted_event_kinds"] == ["offering.published"]
    assert notifications.get_preferences(viewer=FAMILY) == saved
    publish("enrolment", EnrolmentCancelled(**confirmed().model_dump(), previous_status="confirmed"))
    wait_for(lambda: notifications.unread_count(viewer=FAMILY) == 1 and len(smtp_sink.messages()) == 1)
    eventlet.sleep(0.5)
    # The family chose La Posta only (in English); the provider still gets its email.
    assert [str(m["To"]) for m in smtp_sink.messages()] == ["segreteria@totem.example.it"]
    item = notifications.list_inbox(viewer=FAMILY, query={})["items"][0]
    assert item["title"].startswith("Enrolment cancelled")


def test_a_receiver_that_fails_twice_gets_exactly_one_successful_delivery(
    notifications: Any, publish: Any, receiver: Receiver
) -> None:
    subscription = subscribe(notifications, receiver.url)
    receiver.failures = 2
    publish("enrolment", confirmed())
    wait_for(lambda: len(receiver.succeeded()) == 1)
    eventlet.sleep(1.5)
    log = notifications.subscription_deliveries(viewer=OPERATOR, subscription_id=subscription["id"], page={})
    assert [status for _, _, status in receiver.requests] == [500, 500, 204], log
    ids = {headers["webhook-id"] for headers, _, _ in receiver.requests}
    assert len(ids) == 1  # the same message id on every attempt
    (delivery,) = log["items"]
    assert delivery["status"] == "sent"
    assert delivery["attempts"] == 3
    assert delivery["last_error"] == "WebhookRefused: HTTP 500"


def test_failed_after_max_attempts_then_redelivered_by_hand(
    notifications: Any, publish: Any, receiver: Receiver
) -> None:
    subscription = subscribe(notifications, receiver.url)
    receiver.failures = 100
    publish("enrolment", confirmed())

    def delivery() -> dict[str, Any]:
        page = notifications.subscription_deliveries(viewer=OPERATOR, subscription_id=subscription["id"], page={})
        return dict(page["items"][0]) if page["items"] else {}

    wait_for(lambda: delivery().get("status") == "failed")
    assert delivery()["attempts"] == 4
    assert len(receiver.requests) == 4
    receiver.failures = 0
    with pytest.raises(RemoteError) as raised:
        notifications.redeliver(viewer={**OPERATOR, "partner_id": "someone-else"}, delivery_id=delivery()["id"])
    assert raised.value.exc_type == "NotFound"
    again = notifications.redeliver(viewer=OPERATOR, delivery_id=delivery()["id"])
    assert again["status"] == "sent"
    assert len(receiver.succeeded()) == 1
    assert Webhook(subscription["secret"]).verify(receiver.succeeded()[0][1], receiver.succeeded()[0][0])


def test_events_published_while_the_service_is_down_are_delivered_when_it_starts(
    container_factory: Any, config: dict[str, Any], stand_ins: None, publish: Any, smtp_sink: Sink
) -> None:
    first = container_factory(NotificationsService, config)
    first.start()  # declares its durable queues
    first.stop()
    for number in range(5):
        publish("enrolment", confirmed(f"enr-{number}"))
    assert smtp_sink.messages() == []
    container_factory(NotificationsService, config).start()
    wait_for(lambda: len(smtp_sink.messages()) == 10)
    with ServiceRpcClient("notifications") as client:
        wait_for(lambda: client.unread_count(viewer=FAMILY) == 5)


def test_membership_formalized_reaches_the_partner_and_the_alliance_staff_log(
    notifications: Any, publish: Any, smtp_sink: Sink
) -> None:
    event = MembershipChanged(
        alliance_id=ALLIANCE,
        partner_id=PARTNER,
        role=MembershipRole.PARTNER,
        status=MembershipStatus.FORMALIZED,
        previous_status=MembershipStatus.PENDING,
    )
    publish("partners", event)
    wait_for(lambda: notifications.unread_count(viewer=STAFF) == 1 and len(smtp_sink.messages()) == 1)
    item = notifications.list_inbox(viewer=STAFF, query={})["items"][0]
    assert item["title"] == "Adesione formalizzata: Coop. Totem in Alleanza di Marnate"
    log = notifications.list_deliveries(viewer=STAFF, query={})
    assert {(d["recipient"], d["channel"], d["status"]) for d in log["items"]} == {
        (f"alliance:{ALLIANCE}", "inbox", "sent"),
        (f"partner:{PARTNER}", "inbox", "sent"),
        (f"partner:{PARTNER}", "email", "sent"),
    }
    assert notifications.list_deliveries(viewer=OTHER_STAFF, query={})["total"] == 0
    with pytest.raises(RemoteError) as raised:
        notifications.list_deliveries(viewer=FAMILY, query={})
    assert raised.value.exc_type == "Forbidden"


def test_subscriptions_are_the_integrators_own_and_never_show_the_secret_again(
    notifications: Any, receiver: Receiver
) -> None:
    created = subscribe(notifications, receiver.url, ["enrolment.confirmed", "offering.published"])
    listed = notifications.list_subscriptions(viewer=OPERATOR, page={})
    assert listed["total"] == 1
    assert "secret" not in listed["items"][0]
    assert "secret" not in notifications.get_subscription(viewer=OPERATOR, subscription_id=created["id"])
    with pytest.raises(RemoteError) as raised:
        notifications.get_subscription(viewer={**OPERATOR, "partner_id": "other"}, subscription_id=created["id"])
    assert raised.value.exc_type == "NotFound"
    with pytest.raises(RemoteError) as raised:
        subscribe(notifications, "http://example.com/hook")
    assert raised.value.exc_type == "ValidationFailed"
    with pytest.raises(RemoteError) as raised:
        notifications.create_subscription(viewer=FAMILY, payload={"url": receiver.url, "event_kinds": ["*"]})
    assert raised.value.exc_type == "Forbidden"
    notifications.delete_subscription(viewer=OPERATOR, subscription_id=created["id"])
    assert notifications.list_subscriptions(viewer=OPERATOR, page={})["total"] == 0
