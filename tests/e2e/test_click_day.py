"""Click day: 300 simultaneous enrolment requests for 20 seats, through the gateway (issue 10).

Two instances of the enrolment service run (``scripts/stack.py`` starts two). Both
consume every partition queue ``enrolment.requests.0..7``; each queue has
``x-single-active-consumer``, so one of them decides an offering's requests at a
time. Requests are sent without ``Prefer``: each is answered 202 at once, and the
test polls until every one is decided.

- ``test_click_day_300_requests_for_20_seats``: exactly 20 confirmed, 280 waitlisted
  in the order the broker accepted them (the decided ``sequence``), none still
  ``requested`` 30 s after the last 202; five cancellations promote exactly the next five.
- ``test_click_day_survives_a_killed_decider``: the same burst while the instance
  that is the active consumer of the offering's partition is killed with SIGKILL
  half-way: every accepted request decided exactly once (it runs last: ``disruptive``).
"""

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import eventlet
import httpx
import pytest
from eventlet.event import Event

from conciliare.contracts.enrolment_requests import PARTITION_QUEUES
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

ROOT = Path(__file__).resolve().parents[2]
SEATS = 20
FAMILIES = 10
CHILDREN_PER_FAMILY = 30
REQUESTS = FAMILIES * CHILDREN_PER_FAMILY
CANCELLED = 5
ENROLMENT_INSTANCES = 2
DECIDED_WITHIN_SECONDS = 30  # the bound, from the last 202
POLL_LIMIT_SECONDS = 180  # how long the test keeps looking (to report how late, not only "late")
# Two gateway worker processes stamp ``accepted_at`` with their own event loops, so two
# requests stamped close together may reach the broker in either order (an
# "inversion"). How close depends on how far behind a loop is on a loaded machine:
# 21-27 ms in quiet runs, 120 ms once in a CI run; a decider that reordered requests
# would swap requests a batch apart. The bound is for that, not for the loops' lag.
INVERSION_TOLERANCE = timedelta(seconds=1)
MANAGEMENT_API = os.environ.get("RABBIT_MANAGEMENT_URI", "http://guest:guest@127.0.0.1:15672")


# --- the stack's processes and the broker's view of them ------------------------------------


def vhost_of(stack: Stack) -> str:
    return urlparse(stack.env["AMQP_URI"]).path.lstrip("/")


def management(path: str) -> Any:
    response = httpx.get(f"{MANAGEMENT_API}/api{path}", timeout=20)
    response.raise_for_status()
    return response.json()


def enrolment_pids(stack: Stack) -> dict[int, str]:
    """Pid -> name of each running enrolment instance."""
    found = {c["pid"]: name for name, c in stack.children().items() if name.startswith("enrolment-") and c["pid"]}
    return found


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process ``pid`` holds (its connections to the broker among them)."""
    inodes: set[str] = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir() if fds.exists() else ():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass(frozen=True)
class PartitionConsumers:
    queue: str
    pids: tuple[int | None, ...]  # the enrolment instance of each consumer (None: not one of them)
    active: int | None  # the instance whose consumer is the single active one


def partition_consumers(stack: Stack, queue: str, pids: dict[int, str]) -> PartitionConsumers:
    """Who consumes ``queue``, from the management API's consumer details (peer port -> pid)."""
    details = management(f"/queues/{quote(vhost_of(stack), safe='')}/{quote(queue, safe='')}")["consumer_details"]
    owner = {port: pid for pid in pids for port in local_ports(pid)}
    consumers = tuple(owner.get(c["channel_details"]["peer_port"]) for c in details)
    active = [owner.get(c["channel_details"]["peer_port"]) for c in details if c.get("active")]
    return PartitionConsumers(queue, consumers, active[0] if len(active) == 1 else None)


def every_partition_consumed_by_both(stack: Stack, within: float = 60) -> dict[str, PartitionConsumers]:
    """Each partition queue with one consumer from each enrolment instance, exactly one active.

    The management API refreshes what it shows every few seconds: poll a while, and
    return what was seen last (the caller asserts).
    """
    deadline = time.monotonic() + within
    while True:
        pids = enrolment_pids(stack)
        seen = {queue: partition_consumers(stack, queue, pids) for queue in PARTITION_QUEUES}
        good = len(pids) == ENROLMENT_INSTANCES and all(
            sorted(p for p in c.pids if p) == sorted(pids) and len(c.pids) == ENROLMENT_INSTANCES and c.active
            for c in seen.values()
        )
        if good or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def published_per_partition(stack: Stack, counter: str = "publish") -> dict[str, int]:
    """How many messages each partition queue has taken (or redelivered...) so far (management statistics)."""
    vhost = quote(vhost_of(stack), safe="")
    counts: dict[str, int] = {}
    for queue in PARTITION_QUEUES:
        stats = management(f"/queues/{vhost}/{quote(queue, safe='')}").get("message_stats") or {}
        counts[queue] = int(stats.get(counter, 0))
    return counts


def redelivered(stack: Stack, queue: str, within: float = 30) -> int:
    """Messages of ``queue`` the broker delivered again (statistics lag a few seconds: poll)."""
    deadline = time.monotonic() + within
    while (count := published_per_partition(stack, "redeliver")[queue]) == 0 and time.monotonic() < deadline:
        time.sleep(1)
    return count


# --- a click day: families, children, an offering, a burst -------------------------------------


@dataclass
class ClickDay:
    stack: Stack
    operator: httpx.Client
    offering_id: str
    families: list[httpx.Client]
    children: list[tuple[int, str]]  # (family index, child id), one per request
    owner: dict[str, int] = field(default_factory=dict)  # enrolment id -> family index

    def family_client(self, family: int) -> httpx.Client:
        """A fresh client of a family (pooled connections of a burst may have idled out)."""
        return httpx.Client(base_url=self.stack.url, headers=self.families[family].headers, timeout=60)


def prepare(
    stack: Stack, admin: httpx.Client, *, seats: int, families: int, children_per_family: int, tag: str
) -> ClickDay:
    """An offering with ``seats`` seats, ``families`` families with distinct eligible children each."""
    partner_ids = register_demo_partners(admin)
    alliance_id = build_alliance(admin, MARNATE, partner_ids, f"{tag}-{uuid.uuid4().hex[:6].upper()}")
    operator = stack.user(
        f"totem.{tag.lower()}.{uuid.uuid4().hex[:6]}", "partner_operator", partner=partner_ids["coop_totem"]
    )
    offering_id = publish_offering(operator, offering_body(alliance_id, capacity=seats, title=f"Post scuola {tag}"))

    # Distinct, eligible children (resident in Marnate, six to eleven years old), registered in parallel.
    pool = eventlet.GreenPool(families)
    clients = list(
        pool.imap(lambda i: stack.user(f"famiglia.{tag.lower()}.{i}.{uuid.uuid4().hex[:6]}", "family"), range(families))
    )
    households = list(
        pool.imap(
            lambda i: str(ok(clients[i].post("/v1/households", json=synthetic_household(i)), 201)["id"]),
            range(families),
        )
    )

    def register(index: int) -> tuple[int, str]:
        family = index % families
        child = synthetic_child(index, PRIMARY_SCHOOL_CHILD_BORN)
        created = ok(clients[family].post(f"/v1/households/{households[family]}/children", json=child), 201)
        return family, str(created["id"])

    children = list(eventlet.GreenPool(20).imap(register, range(families * children_per_family)))
    assert len({child_id for _, child_id in children}) == len(children)
    return ClickDay(stack, operator, offering_id, clients, children)


@dataclass(frozen=True)
class Accepted:
    """A 202: the request's receipt."""

    id: str
    family: int
    accepted_at: datetime
    answered: float  # time.monotonic() of the answer
    body: dict[str, Any]


def burst(day: ClickDay, on_answer: Callable[[int], None] = lambda _: None) -> tuple[list[Accepted], float]:
    """Every child's request at once, without ``Prefer``; each must be answered 202 with a receipt.

    ``on_answer(n)`` is called after the n-th answer. Returns the receipts and how long
    the burst took, from the start signal to the last answer.
    """
    start = Event()
    answered = [0]

    def enrol(entry: tuple[int, str]) -> tuple[int, httpx.Response, float]:
        family, child_id = entry
        start.wait()
        response = day.families[family].post("/v1/enrolments", json=enrolment_body(child_id, day.offering_id))
        answered[0] += 1
        on_answer(answered[0])
        return family, response, time.monotonic()

    pool = eventlet.GreenPool(len(day.children))
    running = [pool.spawn(enrol, entry) for entry in day.children]
    eventlet.sleep(0.5)  # every green thread is waiting for the signal
    started = time.monotonic()
    start.send(True)
    answers = [thread.wait() for thread in running]
    took = max(at for _, _, at in answers) - started

    unexpected = [(r.status_code, r.text[:300]) for _, r, _ in answers if r.status_code != 202]
    assert unexpected == [], f"{len(unexpected)} answers were not 202: {unexpected[:5]}"
    receipts: list[Accepted] = []
    for family, response, at in answers:
        body = response.json()
        assert body["status"] == "requested" and body["sequence"] is None, body
        assert response.headers["Location"] == f"/v1/enrolments/{body['id']}"
        assert body["protocol"].startswith("ISC-") and body["accepted_at"] == body["requested_at"]
        assert body["offering_id"] == day.offering_id
        assert "Preference-Applied" not in response.headers
        receipts.append(Accepted(body["id"], family, datetime.fromisoformat(body["accepted_at"]), at, body))
        day.owner[body["id"]] = family
    assert len({r.id for r in receipts}) == len(receipts), "two requests got the same id"
    assert len({r.body["protocol"] for r in receipts}) == len(receipts), "two requests got the same protocol"
    return receipts, took


def roster(day: ClickDay) -> dict[str, Any] | None:
    """The offering's roster, or None if it cannot be read right now (a 503 while an instance restarts)."""
    try:
        response = day.operator.get(f"/v1/offerings/{day.offering_id}/enrolments", timeout=30)
    except httpx.TransportError:
        return None
    if response.status_code in (502, 503, 504):
        return None
    found: dict[str, Any] = ok(response)
    return found


def wait_decided(day: ClickDay, count: int, since: float) -> float:
    """Seconds from ``since`` until the roster holds ``count`` decided requests (fails after the poll limit)."""
    seen: dict[str, Any] | None = None
    while time.monotonic() - since < POLL_LIMIT_SECONDS:
        seen = roster(day) or seen
        if seen and seen["confirmed_count"] + seen["waitlisted_count"] >= count:
            return time.monotonic() - since
        time.sleep(0.5)
    counts = (seen["confirmed_count"], seen["waitlisted_count"]) if seen else None
    raise AssertionError(f"only (confirmed, waitlisted) = {counts} of {count} decided after {POLL_LIMIT_SECONDS}s")


def read_each(day: ClickDay, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each enrolment as its family reads it (``GET /v1/enrolments/{id}``)."""
    clients = {family: day.family_client(family) for family in range(len(day.families))}

    def read(enrolment_id: str) -> tuple[str, dict[str, Any]]:
        client = clients[day.owner[enrolment_id]]
        for attempt in range(5):
            try:
                response = client.get(f"/v1/enrolments/{enrolment_id}")
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(1)
                continue
            if response.status_code != 503 or attempt == 4:
                break
            time.sleep(1)
        return enrolment_id, dict(ok(response))

    try:
        return dict(eventlet.GreenPool(20).imap(read, list(ids)))
    finally:
        for client in clients.values():
            client.close()


def assert_decided_in_order(receipts: list[Accepted], decided: dict[str, dict[str, Any]], seats: int) -> None:
    """Every receipt decided once: sequences 1..n, the first ``seats`` confirmed, the rest waitlisted in order."""
    n = len(receipts)
    still = [i for i, e in decided.items() if e["status"] == "requested"]
    assert still == [], f"{len(still)} requests still requested"
    assert sorted(e["sequence"] for e in decided.values()) == list(range(1, n + 1))
    confirmed = [e for e in decided.values() if e["status"] == "confirmed"]
    waitlisted = [e for e in decided.values() if e["status"] == "waitlisted"]
    assert len(confirmed) == seats and len(waitlisted) == n - seats, {e["status"] for e in decided.values()}
    assert sorted(e["sequence"] for e in confirmed) == list(range(1, seats + 1))
    assert all(e["waitlist_position"] == e["sequence"] - seats for e in waitlisted)
    assert all(e["decided_at"] and e["waitlist_position"] is None for e in confirmed)
    for receipt in receipts:  # the receipt the family was given is the decided enrolment's
        found = decided[receipt.id]
        assert found["protocol"] == receipt.body["protocol"]
        assert datetime.fromisoformat(found["accepted_at"]) == receipt.accepted_at


def assert_roster(day: ClickDay, receipts: list[Accepted], seats: int) -> dict[str, Any]:
    """The provider's roster: every receipt exactly once, in order, codici fiscali masked."""
    n = len(receipts)
    seen = roster(day)
    assert seen is not None
    assert seen["confirmed_count"] == seats and len(seen["confirmed"]) == seats
    assert seen["waitlisted_count"] == n - seats
    waitlist = seen["waitlist"]
    assert [e["waitlist_position"] for e in waitlist] == list(range(1, n - seats + 1))
    assert [e["sequence"] for e in waitlist] == list(range(seats + 1, n + 1))
    listed = [e["enrolment_id"] for e in seen["confirmed"] + waitlist]
    assert len(listed) == len(set(listed)) == n and set(listed) == {r.id for r in receipts}
    assert all("*" in e["child_codice_fiscale"] for e in seen["confirmed"] + waitlist)
    return seen


@dataclass(frozen=True)
class Inversions:
    pairs: int  # pairs decided in one order but stamped (accepted_at) in the other
    within_tolerance: int
    largest: timedelta


def inversions(receipts: list[Accepted], decided: dict[str, dict[str, Any]]) -> Inversions:
    stamps = [r.accepted_at for r in sorted(receipts, key=lambda r: decided[r.id]["sequence"])]
    gaps = [earlier - later for i, earlier in enumerate(stamps) for later in stamps[i + 1 :] if later < earlier]
    small = sum(1 for gap in gaps if gap < INVERSION_TOLERANCE)
    return Inversions(len(gaps), small, max(gaps, default=timedelta(0)))


# --- the tests ----------------------------------------------------------------------------------


def test_click_day_300_requests_for_20_seats(stack: Stack, admin: httpx.Client) -> None:
    consumers = every_partition_consumed_by_both(stack)
    pids = enrolment_pids(stack)
    assert len(pids) == ENROLMENT_INSTANCES, pids
    for queue, seen in consumers.items():
        # Both instances listen on every partition; the broker lets exactly one of them consume.
        assert sorted(p for p in seen.pids if p) == sorted(pids) and len(seen.pids) == ENROLMENT_INSTANCES, (
            queue,
            seen,
        )
        assert seen.active in pids, (queue, seen)

    day = prepare(stack, admin, seats=SEATS, families=FAMILIES, children_per_family=CHILDREN_PER_FAMILY, tag="CLICK")
    receipts, took = burst(day)
    last_answer = max(r.answered for r in receipts)
    decided_in = wait_decided(day, REQUESTS, since=last_answer)
    decided = read_each(day, [r.id for r in receipts])
    found = inversions(receipts, decided)
    print(
        f"\nclick day: {REQUESTS} accepted (202) in {took:.1f}s, all decided {decided_in:.1f}s after the last 202; "
        f"accepted_at inversions: {found.pairs} pairs of {REQUESTS * (REQUESTS - 1) // 2}, "
        f"{found.within_tolerance} under {INVERSION_TOLERANCE.total_seconds() * 1000:.0f} ms, "
        f"largest {found.largest.total_seconds() * 1000:.0f} ms"
    )
    assert decided_in <= DECIDED_WITHIN_SECONDS, f"decided {decided_in:.1f}s after the last 202"
    assert_decided_in_order(receipts, decided, SEATS)
    # Acceptance order is the broker's; the gateway's two workers stamp ``accepted_at`` a
    # moment before publishing, so only requests stamped within the tolerance may swap
    # (the decided order itself is checked strictly above, against the broker's sequence).
    assert found.pairs == found.within_tolerance, f"an inversion of {found.largest} between accepted_at and order"
    # Measured here: about 150 such pairs of 44,850 (largest 26 ms) in a burst answered in 1.6 s.
    assert found.pairs <= 2 * REQUESTS, found
    before = assert_roster(day, receipts, SEATS)

    # Five families cancel at the same moment: exactly the next five are promoted.
    waitlist = before["waitlist"]
    to_cancel = [e["enrolment_id"] for e in before["confirmed"][:CANCELLED]]

    def cancel(enrolment_id: str) -> httpx.Response:
        with day.family_client(day.owner[enrolment_id]) as client:
            return client.post(f"/v1/enrolments/{enrolment_id}/cancel")

    cancels = list(eventlet.GreenPool(CANCELLED).imap(cancel, to_cancel))
    assert [c.status_code for c in cancels] == [200] * CANCELLED, [c.text for c in cancels]
    assert all(c.json()["status"] == "cancelled" for c in cancels)
    after = roster(day)
    assert after is not None
    promoted = {e["enrolment_id"] for e in waitlist[:CANCELLED]}
    confirmed_now = {e["enrolment_id"] for e in after["confirmed"]}
    assert after["confirmed_count"] == SEATS and promoted <= confirmed_now
    assert not confirmed_now & set(to_cancel)
    assert [e["enrolment_id"] for e in after["waitlist"]] == [e["enrolment_id"] for e in waitlist[CANCELLED:]]
    assert [e["waitlist_position"] for e in after["waitlist"]] == list(range(1, REQUESTS - SEATS - CANCELLED + 1))
    for enrolment_id in promoted:
        assert ok(day.operator.get(f"/v1/enrolments/{enrolment_id}"))["promoted"] is True


def offering_partition(day: ClickDay) -> str:
    """The partition queue of the day's offering, found with one request that is refused outright.

    A request for a child that is not the family's is decided ``refused`` without
    touching the offering's seats (no sequence). It lands in the offering's partition
    like every request: the one queue whose count of taken messages grows is it.
    """
    stack = day.stack
    deadline = time.monotonic() + 60
    before = published_per_partition(stack)
    time.sleep(6)  # statistics settle (collected every 5 s)
    while (again := published_per_partition(stack)) != before:
        assert time.monotonic() < deadline, "partition statistics never settled"
        before = again
        time.sleep(6)
    family = 0
    probe = enrolment_body(uuid.uuid4().hex, day.offering_id)
    with day.family_client(family) as client:
        receipt = ok(client.post("/v1/enrolments", json=probe), 202)
        day.owner[receipt["id"]] = family
    while True:
        grown = [q for q, n in published_per_partition(stack).items() if n > before[q]]
        if grown:
            break
        assert time.monotonic() < deadline, "the probe request never showed in the partition statistics"
        time.sleep(1)
    assert len(grown) == 1, grown
    refused = read_each(day, [receipt["id"]])[receipt["id"]]
    while refused["status"] == "requested":
        assert time.monotonic() < deadline, "the probe request was never decided"
        time.sleep(0.5)
        refused = read_each(day, [receipt["id"]])[receipt["id"]]
    assert refused["status"] == "refused" and refused["sequence"] is None, refused
    assert [r["code"] for r in refused["refusal_reasons"]] == ["child_not_found"], refused
    return grown[0]


@pytest.mark.disruptive
def test_click_day_survives_a_killed_decider(stack: Stack, admin: httpx.Client) -> None:
    day = prepare(stack, admin, seats=SEATS, families=FAMILIES, children_per_family=CHILDREN_PER_FAMILY, tag="KILL")
    partition = offering_partition(day)
    consumers = every_partition_consumed_by_both(stack)[partition]
    assert consumers.active is not None, consumers
    victim = consumers.active
    names = enrolment_pids(stack)
    victim_name = names[victim]
    restarts_before = stack.children()[victim_name]["restarts"]

    killed: list[tuple[float, datetime]] = []

    def kill_half_way(answered: int) -> None:
        if answered == REQUESTS // 2 and not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append((time.monotonic(), datetime.now().astimezone()))

    receipts, took = burst(day, kill_half_way)
    assert killed, "the decider was not killed"
    last_answer = max(r.answered for r in receipts)
    decided_in = wait_decided(day, REQUESTS, since=last_answer)
    decided = read_each(day, [r.id for r in receipts])
    after_kill = sum(1 for e in decided.values() if datetime.fromisoformat(e["decided_at"]) > killed[0][1])
    state = stack.children()[victim_name]
    again = redelivered(stack, partition)
    print(
        f"\nkilled decider: {victim_name} (pid {victim}), active on {partition}, after {REQUESTS // 2} answers; "
        f"{REQUESTS} accepted in {took:.1f}s, all decided {decided_in:.1f}s after the last 202, "
        f"{after_kill} of them after the kill; {again} redelivered; "
        f"supervisor: restarts {state['restarts']}, pid {state['pid']}"
    )
    assert_decided_in_order(receipts, decided, SEATS)
    assert_roster(day, receipts, SEATS)
    assert after_kill > 0, "everything was decided before the kill: it tested nothing"
    # The killed decider held requests it had not acknowledged: the broker gave them to the other.
    assert again > 0, "nothing was redelivered: the killed instance held no request"
    # The supervisor restarted the killed instance; both consume every partition again.
    deadline = time.monotonic() + 60
    while state["restarts"] <= restarts_before or not state["pid"]:
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
        state = stack.children()[victim_name]
    assert state["last_exit"] == -signal.SIGKILL and state["pid"] != victim
    back = every_partition_consumed_by_both(stack)
    assert all(len([p for p in c.pids if p]) == ENROLMENT_INSTANCES and c.active for c in back.values()), back
