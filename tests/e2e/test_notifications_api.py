"""Notifications over the running stack: an enrolment decided through the gateway reaches
the family by email (the SMTP sink really receives it) and in La Posta, and the provider's
integrator by a signed webhook that verifies with the Standard Webhooks verifier."""

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from conciliare.demo.families import GIULIA, ROSSI_HOUSEHOLD
from tests.e2e.builders import enrol_and_wait, ok
from tests.e2e.conftest import Stack, _free_port
from tests.e2e.test_enrolment_api import (
    EASTER_2027,
    enrolment_body,
    offering_body,
    publish_offering,
    register_child,
    register_household,
)

pytestmark = pytest.mark.e2e

MAIL_DIR = Path(os.environ.get("CONCILIARE_STATE", Path.home() / ".local/state/conciliare")) / "smtp" / "mail"


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = HTTPServer(("127.0.0.1", _free_port()), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks"
    server.shutdown()


def wait_for(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "not delivered in time"
        time.sleep(0.3)


def mails_for(household_id: str) -> list[str]:
    texts = [path.read_text(errors="replace") for path in MAIL_DIR.glob("*.eml")] if MAIL_DIR.is_dir() else []
    return [text for text in texts if f":household:{household_id}:email" in text]


def test_a_confirmed_enrolment_reaches_the_family_and_the_integrator_once(
    stack: Stack, partner_ids: dict[str, str], marnate: str, receiver: str
) -> None:
    totem = stack.user(f"totem.notify.{uuid.uuid4().hex[:6]}", "partner_operator", partner=partner_ids["coop_totem"])
    subscription = ok(totem.post("/v1/webhooks", json={"url": receiver, "event_kinds": ["enrolment.confirmed"]}), 201)
    assert subscription["secret"].startswith("whsec_")
    assert "secret" not in ok(totem.get(f"/v1/webhooks/{subscription['id']}"))  # shown once only

    body = offering_body(marnate, capacity=5, start=EASTER_2027[0], end=EASTER_2027[1], kind="easter")
    body["type"] = "attivita_vacanze_scolastiche"
    offering_id = publish_offering(totem, body)
    family = stack.user(f"famiglia.{uuid.uuid4().hex[:8]}", "family")
    household_id = register_household(family, ROSSI_HOUSEHOLD)
    child_id = register_child(family, household_id, GIULIA)
    enrolment = enrol_and_wait(family, enrolment_body(child_id, offering_id, start=EASTER_2027[0], days=5))
    assert enrolment["status"] == "confirmed"

    # La Posta
    inbox = wait_for(lambda: ok(family.get("/v1/me/inbox"))["items"])
    assert len(inbox) == 1 and ok(family.get("/v1/me/inbox/unread-count"))["unread"] == 1
    # Email: exactly one, to the guardian, in Italian, naming the child's offering
    [mail] = wait_for(lambda: mails_for(household_id))
    assert ROSSI_HOUSEHOLD["guardians"][0]["email"] in mail
    # Webhook: signed per Standard Webhooks, verifies with the secret shown at creation
    [(headers, raw)] = wait_for(lambda: Receiver.received)
    payload = Webhook(subscription["secret"]).verify(raw, headers)
    assert payload["type"] == "enrolment.confirmed"
    assert json.loads(raw)["data"]["enrolment_id"] == enrolment["id"]

    time.sleep(3)  # a redelivered event would have arrived by now: still exactly once
    assert len(mails_for(household_id)) == 1 and len(Receiver.received) == 1
    assert len(ok(family.get("/v1/me/inbox"))["items"]) == 1
    deliveries = ok(totem.get(f"/v1/webhooks/{subscription['id']}/deliveries"))["items"]
    assert [d["status"] for d in deliveries] == ["sent"]


def test_another_partner_cannot_see_a_subscription(stack: Stack, partner_ids: dict[str, str], receiver: str) -> None:
    totem = stack.user(f"totem.notify.{uuid.uuid4().hex[:6]}", "partner_operator", partner=partner_ids["coop_totem"])
    other = stack.user(
        f"rembrandt.notify.{uuid.uuid4().hex[:6]}", "partner_operator", partner=partner_ids["coop_rembrandt"]
    )
    created = ok(totem.post("/v1/webhooks", json={"url": receiver, "event_kinds": ["enrolment.confirmed"]}), 201)
    assert other.get(f"/v1/webhooks/{created['id']}").status_code == 404
    assert httpx.get(f"{stack.url}/v1/webhooks").status_code == 401
