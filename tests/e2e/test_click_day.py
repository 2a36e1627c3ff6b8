"""Click day: 300 simultaneous enrolment requests for 20 seats, through the gateway.

Two instances of the enrolment service run (``scripts/stack.py`` starts two) and
share the broker queue and the database; the test checks they both consume it.
"""

import os
import time
import uuid
from typing import Any
from urllib.parse import quote, urlparse

import eventlet
import httpx
import pytest
from eventlet.event import Event

from conciliare.demo.data import MARNATE
from conciliare.demo.families import synthetic_child, synthetic_household
from tests.e2e.builders import build_alliance, ok, register_demo_partners
from tests.e2e.conftest import Stack
from tests.e2e.test_enrolment_api import (
    PRIMARY_SCHOOL_CHILD_BORN,
    enrolment_body,
    offering_body,
    publish_offering,
)

pytestmark = pytest.mark.e2e

SEATS = 20
FAMILIES = 10
CHILDREN_PER_FAMILY = 30
REQUESTS = FAMILIES * CHILDREN_PER_FAMILY
CANCELLED = 5


def enrolment_consumers(stack: Stack, expected: int) -> int:
    """How many enrolment instances listen on the stack's RPC queue (RabbitMQ management API).

    The management API refreshes its statistics every few seconds: poll a while.
    """
    api = os.environ.get("RABBIT_MANAGEMENT_URI", "http://guest:guest@127.0.0.1:15672")
    vhost = urlparse(stack.env["AMQP_URI"]).path.lstrip("/")
    deadline = time.monotonic() + 20
    while True:
        consumers = httpx.get(f"{api}/api/consumers/{quote(vhost, safe='')}", timeout=10)
        consumers.raise_for_status()
        count = sum(1 for c in consumers.json() if c["queue"]["name"] == "rpc-enrolment")
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(1)


def test_click_day_300_requests_for_20_seats(stack: Stack, admin: httpx.Client) -> None:
    assert enrolment_consumers(stack, 2) == 2

    partner_ids = register_demo_partners(admin)
    alliance_id = build_alliance(admin, MARNATE, partner_ids, f"CLICK-{uuid.uuid4().hex[:6].upper()}")
    operator = stack.user("totem.clickday.e2e", "partner_operator", partner=partner_ids["coop_totem"])
    offering_id = publish_offering(operator, offering_body(alliance_id, capacity=SEATS, title="Post scuola click day"))

    # Ten families of thirty children each: distinct, eligible children (resident in
    # Marnate, six to eleven years old), registered in parallel.
    pool = eventlet.GreenPool(FAMILIES)
    families = list(
        pool.imap(lambda i: stack.user(f"famiglia.click.{i}.{uuid.uuid4().hex[:6]}", "family"), range(FAMILIES))
    )
    households = list(
        pool.imap(
            lambda i: str(ok(families[i].post("/v1/households", json=synthetic_household(i)), 201)["id"]),
            range(FAMILIES),
        )
    )

    def register(index: int) -> tuple[httpx.Client, str]:
        family = index % FAMILIES
        child = synthetic_child(index, PRIMARY_SCHOOL_CHILD_BORN)
        created = ok(families[family].post(f"/v1/households/{households[family]}/children", json=child), 201)
        return families[family], str(created["id"])

    children = list(eventlet.GreenPool(20).imap(register, range(REQUESTS)))
    assert len({child_id for _, child_id in children}) == REQUESTS

    # All at once: every green thread waits for the start signal, then posts.
    start = Event()

    def enrol(entry: tuple[httpx.Client, str]) -> dict[str, Any]:
        family, child_id = entry
        start.wait()
        response = family.post("/v1/enrolments", json=enrolment_body(child_id, offering_id))
        assert response.status_code in (201, 202), response.text
        return dict(response.json())

    burst = eventlet.GreenPool(REQUESTS)
    running = [burst.spawn(enrol, entry) for entry in children]
    eventlet.sleep(0.5)
    start.send(True)
    results = [thread.wait() for thread in running]

    assert sum(r["status"] == "confirmed" for r in results) == SEATS
    assert sum(r["status"] == "waitlisted" for r in results) == REQUESTS - SEATS
    assert sorted(r["sequence"] for r in results) == list(range(1, REQUESTS + 1))
    # Seats went to the first twenty requests; everyone else queued in arrival order.
    assert sorted(r["sequence"] for r in results if r["status"] == "confirmed") == list(range(1, SEATS + 1))
    assert all(r["waitlist_position"] == r["sequence"] - SEATS for r in results if r["status"] == "waitlisted")

    roster = ok(operator.get(f"/v1/offerings/{offering_id}/enrolments"))
    assert roster["confirmed_count"] == SEATS and len(roster["confirmed"]) == SEATS
    assert roster["waitlisted_count"] == REQUESTS - SEATS
    waitlist = roster["waitlist"]
    assert [e["waitlist_position"] for e in waitlist] == list(range(1, REQUESTS - SEATS + 1))
    assert [e["sequence"] for e in waitlist] == list(range(SEATS + 1, REQUESTS + 1))
    assert all("*" in e["child_codice_fiscale"] for e in roster["confirmed"] + waitlist)

    # Five families cancel at the same moment: exactly the next five are promoted.
    by_enrolment = {r["id"]: families[i % FAMILIES] for i, r in enumerate(results)}
    to_cancel = [e["enrolment_id"] for e in roster["confirmed"][:CANCELLED]]

    def cancel(enrolment_id: str) -> httpx.Response:
        # A fresh connection each: the burst's pooled ones may have idled out.
        with httpx.Client(base_url=stack.url, headers=by_enrolment[enrolment_id].headers, timeout=60) as client:
            return client.post(f"/v1/enrolments/{enrolment_id}/cancel")

    cancels = list(eventlet.GreenPool(CANCELLED).imap(cancel, to_cancel))
    assert [c.status_code for c in cancels] == [200] * CANCELLED
    after = ok(operator.get(f"/v1/offerings/{offering_id}/enrolments"))
    promoted = {e["enrolment_id"] for e in waitlist[:CANCELLED]}
    confirmed_now = {e["enrolment_id"] for e in after["confirmed"]}
    assert after["confirmed_count"] == SEATS and promoted <= confirmed_now
    assert not confirmed_now & set(to_cancel)
    assert [e["enrolment_id"] for e in after["waitlist"]] == [e["enrolment_id"] for e in waitlist[CANCELLED:]]
    assert [e["waitlist_position"] for e in after["waitlist"]] == list(range(1, REQUESTS - SEATS - CANCELLED + 1))
    for enrolment_id in promoted:
        assert ok(operator.get(f"/v1/enrolments/{enrolment_id}"))["promoted"] is True
