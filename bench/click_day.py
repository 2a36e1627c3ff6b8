"""Click-day benchmark: thousands of families ask for few seats within the same second.

Against a running stack (``make run``), through the gateway like any client, it creates
its own alliance (Marnate's partnership under a fresh code), post-scuola offerings of
Coop. Totem, family users, households and eligible children (setup, not timed), then
fires every ``POST /v1/enrolments`` within one second and waits for the decisions.

Two scenarios (``--scenario one|many|both``, default both):

- **one**: ``--requests`` distinct children for one offering with ``--seats`` seats;
- **many**: ``--offerings`` offerings x ``--per-offering`` children at once, each offering
  with ``--seats-per-offering`` seats (the service partitions work by offering).

What is measured, per scenario:

- *acknowledgement*: the API answers ``202 Accepted`` once the request is recorded; its
  latency (p50/p99/max), the errors (anything but 202) and the throughput, from vegeta;
- *decision*: the enrolment service confirms or waitlists asynchronously. After the burst
  the partner operator's roster (``GET /v1/offerings/{id}/enrolments``, counts) is polled
  until every acknowledged request is seated or waitlisted (or 120 s), then every enrolment
  is listed once with ``GET /v1/enrolments?offering_id=``. Decision latency is ``decided_at - accepted_at`` per request;
  also how long after the last 202 the last decision came, and decisions per second;
- *correctness*, per offering: exactly ``seats`` confirmed, sequences exactly 1..n, the
  confirmed are 1..seats, every waitlisted has ``waitlist_position == sequence - seats``,
  nothing left ``requested`` or ``refused``; and how often arrival order contradicts the
  acceptance clock (pairs accepted earlier but sequenced later, with the largest gap).

Why vegeta: a Python client opening 2,000 connections on a 2-core machine measures
itself: its event loop competes with the gateway for the same cores, and the time a
request waits in the client's own queue is reported as server latency. vegeta is a
compiled Go tool that sends each request from its own goroutine at a fixed rate and
records timestamp, latency, status and body of every one; its CPU time is reported
too, so its share of the machine is visible.

    python -m bench.click_day [--gateway URL] [--scenario one|many|both] [--requests 2000]
        [--seats 100] [--offerings 20] [--per-offering 100] [--seats-per-offering 10]

The JSON summary (with the targets and whether each is met) is printed and written to
``bench/results/click_day.json``. It exits non-zero only when setup or measurement fails,
not when a target is missed. Users are written to the gateway's identity store directly
(as ``gateway.admin`` does), so run it with the stack's environment (``MONGO_URI``,
``MONGO_DB_PREFIX``). vegeta is built with ``go install`` on first use (see ``bench.vegeta``).
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import httpx

from bench import cpu, vegeta
from conciliare.demo import data
from conciliare.demo.families import synthetic_child, synthetic_household
from conciliare.settings import get_platform_settings
from gateway.identity import IdentityStore
from gateway.security import Role
from services.enrolment.domain import today_in_rome

RESULTS = Path(__file__).resolve().parent / "results"
MARNATE_ISTAT = "012098"
SETUP_CONCURRENCY = 32
PAGE = 200  # the API's largest page
POLL_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.5
VEGETA_TIMEOUT_S = 30
# A fresh connection per request (Connection: close): each family clicks from its own
# browser, so the gateway accepts as many connections as there are requests, as on the
# day. With keep-alive, vegeta would reuse connections of requests already answered and
# the later part of the burst would skip the TCP handshake and the accept queue.
KEEPALIVE = False
ACK_P99_TARGET_S = 2.0
DECIDED_WITHIN_TARGET_S = 15.0
TARGETS = {
    "ack_p99_s": ACK_P99_TARGET_S,
    "errors": 0,
    "decided_within_s_of_last_ack": DECIDED_WITHIN_TARGET_S,
    "confirmed": "exactly the seats of each offering",
    "waitlist": "in sequence order: positions 1..n-seats == sequence - seats",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BenchError(Exception):
    pass


# --- setup (not timed) ---------------------------------------------------------------------


def _check(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in (expected or (200,)):
        raise BenchError(f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}")
    return response.json()


async def _token(http: httpx.AsyncClient, username: str, password: str) -> str:
    response = await http.post(
        "/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
    )
    return str(_check(response)["access_token"])


async def _bounded(limit: int, jobs: list[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Any) -> Any:
        async with semaphore:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def _partner_ids(admin: httpx.AsyncClient) -> dict[str, str]:
    ids: dict[str, str] = {}
    for key in ("comune_marnate", "coop_totem"):
        partner = data.PARTNER_BY_KEY[key]
        found = _check(await admin.get("/v1/partners", params={"tax_code": partner.tax_code}))["items"]
        if found:
            ids[key] = found[0]["id"]
            continue
        body = {
            "kind": partner.kind,
            "name": partner.name,
            "tax_code": partner.tax_code,
            "comune_istat": partner.comune_istat,
        }
        ids[key] = _check(await admin.post("/v1/partners", json=body), 201)["id"]
    return ids


async def _alliance(admin: httpx.AsyncClient, partner_ids: dict[str, str]) -> str:
    body = {
        "code": f"CLICKDAY-{uuid.uuid4().hex[:6].upper()}",
        "name": "Click day - Partenariato Work Life Balance Marnate",
        "ambiti": [{"name": name, "comuni_istat": comuni} for name, comuni in data.MARNATE.ambiti],
        "capofila_partner_id": partner_ids["comune_marnate"],
    }
    alliance_id = str(_check(await admin.post("/v1/alliances", json=body), 201)["id"])
    member = {"partner_id": partner_ids["coop_totem"], "status": "formalized"}
    _check(await admin.post(f"/v1/alliances/{alliance_id}/members", json=member), 201)
    return alliance_id


def _offering(alliance_id: str, seats: int, today: date) -> dict[str, Any]:
    return {
        "alliance_id": alliance_id,
        "type": "post_scuola",
        "title": f"Post scuola click day {uuid.uuid4().hex[:4]}",
        "description": "Il servizio più richiesto dell'anno: apertura delle iscrizioni alle 9:00.",
        "comune_istat": MARNATE_ISTAT,
        "address": "Via Libertà 7, Marnate (VA)",
        "age_range": {"min_months": 72, "max_months": 143},
        "school_levels": ["primaria"],
        "calendar": {
            "periods": [
                {"kind": "term_time", "start": today.isoformat(), "end": (today + timedelta(days=180)).isoformat()}
            ]
        },
        "weekly_slots": [{"weekday": d, "start": "16:00", "end": "18:00"} for d in range(1, 8)],
        "capacity": seats,
        "price": {"amount_cents": 250, "unit": "hour"},
        "attendance_modes": ["full"],
    }


async def _wait_projected(operator: httpx.AsyncClient, offering_id: str) -> None:
    deadline = time.monotonic() + 30
    while (await operator.get(f"/v1/offerings/{offering_id}/enrolments")).status_code != 200:
        if time.monotonic() > deadline:
            raise BenchError("the enrolment service never received the offering")
        await asyncio.sleep(0.2)


@dataclass
class Stack:
    """What every scenario shares: the identity store, the alliance, its provider's operator."""

    gateway: str
    identity: IdentityStore
    admin: httpx.AsyncClient
    operator: httpx.AsyncClient
    alliance_id: str
    run_id: str
    password: str
    today: date

    async def close(self) -> None:
        await self.admin.aclose()
        await self.operator.aclose()


def _client(gateway: str, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=gateway, timeout=httpx.Timeout(60.0), headers=headers)


async def _open_stack(gateway: str, identity: IdentityStore) -> Stack:
    admin_user = data.USERS[0]
    await identity.upsert_user(admin_user.username, admin_user.password, Role.PLATFORM_ADMIN, "Operatore regionale")
    async with _client(gateway) as anonymous:
        admin = _client(gateway, await _token(anonymous, admin_user.username, admin_user.password))
    partner_ids = await _partner_ids(admin)
    alliance_id = await _alliance(admin, partner_ids)
    run_id, password = uuid.uuid4().hex[:6], uuid.uuid4().hex
    operator_name = f"clickday.totem.{run_id}"
    await identity.upsert_user(
        operator_name, password, Role.PARTNER_OPERATOR, "Operatore Totem", partner_id=partner_ids["coop_totem"]
    )
    operator = _client(gateway, await _token(admin, operator_name, password))
    return Stack(gateway, identity, admin, operator, alliance_id, run_id, password, today_in_rome())


async def _publish_offerings(stack: Stack, count: int, seats: int) -> list[str]:
    ids = []
    for _ in range(count):
        offering = _check(
            await stack.operator.post("/v1/offerings", json=_offering(stack.alliance_id, seats, stack.today)), 201
        )
        _check(await stack.operator.post(f"/v1/offerings/{offering['id']}/publish"))
        ids.append(str(offering["id"]))
    for offering_id in ids:
        await _wait_projected(stack.operator, offering_id)
    return ids


@dataclass(frozen=True)
class Child:
    token: str  # of the family that enrols it
    child_id: str


async def _children(stack: Stack, label: str, families: int, count: int) -> list[Child]:
    """``count`` eligible children spread over ``families`` new family users (one household each)."""
    tokens = []
    for index in range(families):
        username = f"clickday.famiglia.{stack.run_id}.{label}.{index}"
        await stack.identity.upsert_user(username, stack.password, Role.FAMILY, f"Famiglia {index}")
        tokens.append(await _token(stack.admin, username, stack.password))
    clients = [_client(stack.gateway, token) for token in tokens]
    try:
        households = await _bounded(
            SETUP_CONCURRENCY, [clients[i].post("/v1/households", json=synthetic_household(i)) for i in range(families)]
        )
        household_ids = [_check(r, 201)["id"] for r in households]
        born = date(stack.today.year - 8, 2, 1)
        jobs = [
            clients[i % families].post(
                f"/v1/households/{household_ids[i % families]}/children", json=synthetic_child(i, born)
            )
            for i in range(count)
        ]
        created = await _bounded(SETUP_CONCURRENCY, jobs)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    return [Child(tokens[i % families], str(_check(r, 201)["id"])) for i, r in enumerate(created)]


# --- the burst (timed by vegeta) -------------------------------------------------------------


def _targets(
    gateway: str, offering_ids: Sequence[str], children: Sequence[Child], today: date, idempotency_keys: bool
) -> list[dict[str, Any]]:
    """One distinct request per child; request ``k`` goes to offering ``k mod len(offering_ids)``,
    so the offerings' requests are interleaved in time. Each has an ``Idempotency-Key`` unless told not to."""
    period = {"start": today.isoformat(), "end": (today + timedelta(days=60)).isoformat()}
    targets = []
    for k, child in enumerate(children):
        body = {
            "child_id": child.child_id,
            "offering_id": offering_ids[k % len(offering_ids)],
            "period": period,
            "attendance_mode": "full",
        }
        headers = {"Authorization": f"Bearer {child.token}", "Content-Type": "application/json"}
        if idempotency_keys:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        targets.append(vegeta.json_target("POST", f"{gateway}/v1/enrolments", headers, json.dumps(body).encode()))
    return targets


def _fire(binary: Path, targets: list[dict[str, Any]]) -> tuple[list[vegeta.Hit], vegeta.AttackUsage]:
    """All targets within one second, one worker each; the targets hold tokens, so a temporary dir."""
    with tempfile.TemporaryDirectory(prefix="click-day-") as work:
        targets_file, results = Path(work) / "targets.json", Path(work) / "results.bin"
        count = vegeta.write_targets(targets_file, targets)
        usage = vegeta.attack(
            binary,
            targets_file,
            results,
            rate=count,
            workers=count,
            timeout_s=VEGETA_TIMEOUT_S,
            keepalive=KEEPALIVE,
        )
        return vegeta.decode(binary, results), usage


# --- the decisions (polled, not timed) --------------------------------------------------------


async def _list_offering(operator: httpx.AsyncClient, offering_id: str) -> list[dict[str, Any]] | None:
    """Every enrolment of the offering, page by page; ``None`` if a page did not answer 200."""
    items: list[dict[str, Any]] = []
    while True:
        params: dict[str, str | int] = {"offering_id": offering_id, "limit": PAGE, "offset": len(items)}
        try:
            response = await operator.get("/v1/enrolments", params=params)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        page = response.json()
        items.extend(page["items"])
        if not page["items"] or len(items) >= int(page["total"]):
            break
    # Pages read while decisions land could overlap if the order shifted: then try again later.
    unique = {str(item["id"]): item for item in items}
    return list(unique.values()) if len(unique) == len(items) else None


async def _decided_count(operator: httpx.AsyncClient, offering_id: str) -> int | None:
    """Confirmed plus waitlisted of the offering, from its roster (the seat aggregate: one read)."""
    try:
        response = await operator.get(f"/v1/offerings/{offering_id}/enrolments")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    roster = response.json()
    return int(roster["confirmed_count"]) + int(roster["waitlisted_count"])


async def _await_decisions(
    operator: httpx.AsyncClient, offering_ids: Sequence[str], acknowledged: int
) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """The offerings' enrolments once every acknowledged request is seated or waitlisted (or
    after ``POLL_TIMEOUT_S``), with the seconds waited.

    While waiting only the rosters are read: listing every enrolment of an offering is a
    scan on mongo-java-server (it uses no index but ``_id``), and polling it twice a second
    took more of MongoDB's CPU than deciding did. The lists are read once, at the end.
    """
    began = time.monotonic()
    while time.monotonic() - began <= POLL_TIMEOUT_S:
        counts = await _bounded(4, [_decided_count(operator, offering_id) for offering_id in offering_ids])
        if all(count is not None for count in counts) and sum(c or 0 for c in counts) >= acknowledged:
            break
        await asyncio.sleep(POLL_INTERVAL_S)
    for _ in range(5):
        listed = await _bounded(4, [_list_offering(operator, offering_id) for offering_id in offering_ids])
        if all(items is not None for items in listed):
            return dict(zip(offering_ids, listed, strict=True)), time.monotonic() - began
        await asyncio.sleep(POLL_INTERVAL_S)
    raise BenchError("the enrolments of the offerings could not be listed")


# --- measures (pure) ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def latency_ms(seconds: Sequence[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    return {
        "p50": round(percentile(seconds, 0.50) * 1000, 1),
        "p90": round(percentile(seconds, 0.90) * 1000, 1),
        "p99": round(percentile(seconds, 0.99) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
        "mean": round(statistics.fmean(seconds) * 1000, 1),
    }


def when(text: str | None) -> datetime | None:
    """An API datetime (ISO 8601 with timezone); naive ones are taken as UTC."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def count_inversions(points: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Pairs (a, b) with ``a.accepted < b.accepted`` but ``a.sequence > b.sequence``, and the
    largest ``b.accepted - a.accepted`` among them; ``points`` are ``(accepted, sequence)``.

    O(n log n): in acceptance order (ties together, since equal times are no inversion), two
    Fenwick trees over the sequence ranks, reversed so that "greater sequence" is a prefix,
    count the earlier points with a greater sequence and keep the earliest acceptance among them.
    """
    sequences = sorted({sequence for _, sequence in points})
    reversed_rank = {sequence: len(sequences) - i for i, sequence in enumerate(sequences)}  # 1-based
    size = len(sequences)
    counts = [0] * (size + 1)
    earliest: list[int | None] = [None] * (size + 1)
    inversions, largest_gap = 0, 0

    def query(position: int) -> tuple[int, int | None]:
        total, first = 0, None
        while position > 0:
            total += counts[position]
            value = earliest[position]
            if value is not None and (first is None or value < first):
                first = value
            position -= position & -position
        return total, first

    def add(position: int, accepted: int) -> None:
        while position <= size:
            counts[position] += 1
            value = earliest[position]
            if value is None or accepted < value:
                earliest[position] = accepted
            position += position & -position

    for _, group in groupby(sorted(points), key=lambda point: point[0]):
        tied = list(group)
        for accepted, sequence in tied:
            greater, first = query(reversed_rank[sequence] - 1)
            inversions += greater
            if first is not None:
                largest_gap = max(largest_gap, accepted - first)
        for accepted, sequence in tied:
            add(reversed_rank[sequence], accepted)
    return inversions, largest_gap


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def acknowledgement(hits: Sequence[vegeta.Hit]) -> tuple[dict[str, Any], list[dict[str, Any]], datetime | None]:
    """Latency, errors and throughput of the burst; the 202 bodies; when the last 202 arrived."""
    accepted = [hit for hit in hits if hit.code == 202]
    bodies = [_json_object(hit.body) for hit in accepted]
    errors = [hit for hit in hits if hit.code != 202]
    first_sent = min((hit.started for hit in hits), default=None)
    last_ack = max((hit.answered for hit in accepted), default=None)
    last_sent = max((hit.started for hit in hits), default=None)
    span = (last_ack - first_sent).total_seconds() if first_sent and last_ack else 0.0
    location_ok = sum(
        1
        for hit, body in zip(accepted, bodies, strict=True)
        if (hit.header("Location") or "").endswith(f"/v1/enrolments/{body.get('id')}")
    )
    summary = {
        "requests": len(hits),
        "statuses": {str(code): n for code, n in sorted(Counter(hit.code for hit in hits).items())},
        "errors": len(errors),
        "error_samples": [
            {"code": hit.code, "error": hit.error, "body": hit.body.decode(errors="replace")[:300]}
            for hit in errors[:3]
        ],
        "latency_ms": latency_ms([hit.latency_s for hit in hits]),
        "sent_over_s": round((last_sent - first_sent).total_seconds(), 3) if first_sent and last_sent else None,
        "acknowledged_per_s": round(len(accepted) / span, 1) if span else None,
        "location_matches_id": location_ok,
        "bodies_requested": sum(1 for body in bodies if body.get("status") == "requested"),
        "bodies_complete": sum(1 for body in bodies if {"id", "status", "protocol", "accepted_at"} <= body.keys()),
    }
    return summary, bodies, last_ack


def check_offering(items: Sequence[dict[str, Any]], seats: int) -> dict[str, Any]:
    """The invariants of one offering's decisions, and how far arrival order strays from the clock."""
    n = len(items)
    statuses = Counter(str(item["status"]) for item in items)
    expected_confirmed = min(seats, n)
    confirmed = [item for item in items if item["status"] == "confirmed"]
    waitlisted = [item for item in items if item["status"] == "waitlisted"]
    numbered = [item for item in items if item.get("sequence") is not None]
    points = [(micros(moment), int(item["sequence"])) for item in numbered if (moment := when(item.get("accepted_at")))]
    inversions, gap = count_inversions(points)
    return {
        "requests": n,
        "statuses": dict(sorted(statuses.items())),
        "confirmed_exact": statuses["confirmed"] == expected_confirmed,
        "sequences_1_to_n": sorted(int(item["sequence"]) for item in numbered) == list(range(1, n + 1)),
        "confirmed_are_first": sorted(item.get("sequence") or 0 for item in confirmed)
        == list(range(1, expected_confirmed + 1)),
        "waitlist_positions_ok": all(
            item.get("sequence") is not None and item.get("waitlist_position") == item["sequence"] - seats
            for item in waitlisted
        )
        and sorted(item.get("waitlist_position") or 0 for item in waitlisted) == list(range(1, n - seats + 1)),
        "still_requested": statuses["requested"],
        "refused": statuses["refused"],
        "inversions": inversions,
        "largest_inverted_gap_ms": round(gap / 1000, 3),
    }


def decisions(items: Sequence[dict[str, Any]], last_ack: datetime | None, waited_s: float) -> dict[str, Any]:
    """How fast the service decided: per request, after the burst, and per second overall."""
    pairs = [(when(item.get("accepted_at")), when(item.get("decided_at"))) for item in items]
    decided = [(accepted, at) for accepted, at in pairs if accepted and at]
    last_decision = max((at for _, at in decided), default=None)
    first_accepted = min((accepted for accepted, _ in pairs if accepted), default=None)
    span = (last_decision - first_accepted).total_seconds() if last_decision and first_accepted else 0.0
    return {
        "polled_for_s": round(waited_s, 1),
        "decided": len(decided),
        "latency_ms": latency_ms([(at - accepted).total_seconds() for accepted, at in decided]),
        "last_decision_after_last_ack_s": (
            round((last_decision - last_ack).total_seconds(), 3) if last_decision and last_ack else None
        ),
        "decisions_per_s": round(len(items) / span, 1) if span > 0 else None,
    }


def correctness(per_offering: dict[str, dict[str, Any]], acked_ids: set[str], listed_ids: set[str]) -> dict[str, Any]:
    checks = list(per_offering.values())
    flags = ("confirmed_exact", "sequences_1_to_n", "confirmed_are_first", "waitlist_positions_ok")
    return {
        **{flag: all(check[flag] for check in checks) for flag in flags},
        "confirmed": sum(check["statuses"].get("confirmed", 0) for check in checks),
        "waitlisted": sum(check["statuses"].get("waitlisted", 0) for check in checks),
        "still_requested": sum(check["still_requested"] for check in checks),
        "refused": sum(check["refused"] for check in checks),
        "acknowledged_not_listed": len(acked_ids - listed_ids),
        "listed_not_acknowledged": len(listed_ids - acked_ids),
        "inversions": sum(check["inversions"] for check in checks),
        "largest_inverted_gap_ms": max((check["largest_inverted_gap_ms"] for check in checks), default=0.0),
        "failing_offerings": {
            offering_id: check
            for offering_id, check in per_offering.items()
            if not all(check[flag] for flag in flags) or check["still_requested"] or check["refused"]
        },
    }


def targets_met(ack: dict[str, Any], decided: dict[str, Any], checks: dict[str, Any]) -> dict[str, bool]:
    after = decided["last_decision_after_last_ack_s"]
    return {
        "ack_p99_under_2s": ack["latency_ms"] is not None and ack["latency_ms"]["p99"] < ACK_P99_TARGET_S * 1000,
        "zero_errors": ack["errors"] == 0,
        "all_decided_within_15s_of_last_ack": checks["still_requested"] == 0
        and checks["acknowledged_not_listed"] == 0
        and after is not None
        and after <= DECIDED_WITHIN_TARGET_S,
        "exactly_seats_confirmed": checks["confirmed_exact"],
        "waitlist_in_order": checks["sequences_1_to_n"]
        and checks["confirmed_are_first"]
        and checks["waitlist_positions_ok"],
        "none_refused": checks["refused"] == 0,
    }


# --- scenarios ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    offerings: int
    per_offering: int
    seats: int
    idempotency_keys: bool = True

    @property
    def requests(self) -> int:
        return self.offerings * self.per_offering

    def describe(self) -> str:
        where = "one offering" if self.offerings == 1 else f"{self.offerings} offerings x {self.per_offering}"
        return f"{self.requests} POST /v1/enrolments (distinct children) within 1 s, {where}, {self.seats} seats each"


async def run_scenario(stack: Stack, scenario: Scenario, families: int, binary: Path) -> dict[str, Any]:
    offering_ids = await _publish_offerings(stack, scenario.offerings, scenario.seats)
    children = await _children(stack, scenario.name, families, scenario.requests)
    targets = _targets(stack.gateway, offering_ids, children, stack.today, scenario.idempotency_keys)

    at_start = cpu.snapshot()
    hits, usage = await asyncio.to_thread(_fire, binary, targets)
    at_acknowledged = cpu.snapshot()

    ack, bodies, last_ack = acknowledgement(hits)
    acked_ids = {str(body["id"]) for body in bodies if "id" in body}
    listed, waited = await _await_decisions(stack.operator, offering_ids, len(acked_ids))
    at_decided = cpu.snapshot()
    every = [item for items in listed.values() for item in items]
    per_offering = {offering_id: check_offering(items, scenario.seats) for offering_id, items in listed.items()}
    checks = correctness(per_offering, acked_ids, {str(item["id"]) for item in every})
    decided = decisions(every, last_ack, waited)
    return {
        "scenario": scenario.describe(),
        "offerings": scenario.offerings,
        "requests": scenario.requests,
        "seats_per_offering": scenario.seats,
        "families": families,
        "vegeta": {"rate": f"{len(targets)}/1s", "workers": len(targets), **usage.as_dict()},
        "acknowledgement": ack,
        "decision": decided,
        "correctness": checks,
        "targets_met": targets_met(ack, decided, checks),
        "cpu_ms_per_request": {
            # Burst: from the first request to the last answer (deciding has started meanwhile).
            "during_burst": _per_request(cpu.used(at_start, at_acknowledged), scenario.requests),
            # Until every request was decided (includes the benchmark's own polling of the list).
            "until_decided": _per_request(cpu.used(at_start, at_decided), scenario.requests),
        },
    }


def _per_request(seconds_by_hop: dict[str, float], requests: int) -> dict[str, float]:
    return {hop: round(seconds * 1000 / requests, 2) for hop, seconds in seconds_by_hop.items()}


async def run(gateway: str, scenarios: list[Scenario], families: int) -> dict[str, Any]:
    binary = vegeta.ensure_vegeta()  # before any setup: without Go there is no benchmark
    settings = get_platform_settings()
    identity = IdentityStore.connect(settings.mongo_uri, settings.database_name("gateway"))
    try:
        stack = await _open_stack(gateway, identity)
        try:
            results = {scenario.name: await run_scenario(stack, scenario, families, binary) for scenario in scenarios}
        finally:
            await stack.close()
    finally:
        await identity.close()
    return {
        "benchmark": "click day: acknowledgement (202) and asynchronous decision of enrolment requests",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_generator": {"tool": "vegeta", "keepalive": KEEPALIVE, "timeout_s": VEGETA_TIMEOUT_S},
        "targets": TARGETS,
        "scenarios": results,
        "all_targets_met": all(all(result["targets_met"].values()) for result in results.values()),
    }


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    chosen = []
    if args.scenario in ("one", "both"):
        chosen.append(Scenario("one", 1, args.requests, args.seats, not args.no_idempotency_keys))
    if args.scenario in ("many", "both"):
        chosen.append(
            Scenario("many", args.offerings, args.per_offering, args.seats_per_offering, not args.no_idempotency_keys)
        )
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--scenario", choices=("one", "many", "both"), default="both")
    parser.add_argument("--requests", type=int, default=2000, help="scenario one: requests for the offering")
    parser.add_argument("--seats", type=int, default=100, help="scenario one: seats of the offering")
    parser.add_argument("--offerings", type=int, default=20, help="scenario many: offerings")
    parser.add_argument("--per-offering", type=int, default=100, help="scenario many: requests per offering")
    parser.add_argument("--seats-per-offering", type=int, default=10, help="scenario many: seats per offering")
    parser.add_argument("--families", type=int, default=20, help="family users per scenario (children spread)")
    parser.add_argument(
        "--no-idempotency-keys", action="store_true", help="send no Idempotency-Key (clients that do not retry)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "click_day.json")
    args = parser.parse_args()
    try:
        summary = asyncio.run(run(args.gateway.rstrip("/"), _scenarios(args), args.families))
    except (BenchError, vegeta.VegetaError, httpx.HTTPError) as error:
        raise SystemExit(f"click day: setup or measurement failed: {error}") from error
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
