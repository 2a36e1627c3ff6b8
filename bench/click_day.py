"""Click-day benchmark: thousands of families enrol at the same second for few seats.

Against a running stack (``make run``), through the gateway like any client, it
creates its own alliance (Marnate's partnership under a fresh code), a post scuola
of Coop. Totem with ``--seats`` seats, and ``--requests`` eligible children spread
over ``--families`` family users; then every request is sent at once and timed.

It reports p50/p99 latency, requests per second, how many were confirmed (must be
exactly ``--seats``), whether the waitlist is in strict arrival order (positions
1..n by sequence), and the errors (must be 0). The JSON summary is printed and
written to ``bench/results/click_day.json``.

    python -m bench.click_day [--gateway URL] [--requests 2000] [--seats 100]

Users are written to the gateway's identity store directly (as ``gateway.admin``
does), so run it with the stack's environment (``MONGO_URI``, ``MONGO_DB_PREFIX``).
"""

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from conciliare.demo import data
from conciliare.demo.families import synthetic_child, synthetic_household
from conciliare.settings import get_platform_settings
from gateway.identity import IdentityStore
from gateway.security import Role
from services.enrolment.domain import today_in_rome

RESULTS = Path(__file__).resolve().parent / "results"
MARNATE_ISTAT = "012098"
SETUP_CONCURRENCY = 32


class BenchError(Exception):
    pass


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


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run(gateway: str, requests: int, seats: int, families: int) -> dict[str, Any]:
    settings = get_platform_settings()
    identity = IdentityStore.connect(settings.mongo_uri, settings.database_name("gateway"))
    admin_user = data.USERS[0]
    run_id = uuid.uuid4().hex[:6]
    today = today_in_rome()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(180.0)
    try:
        await identity.upsert_user(admin_user.username, admin_user.password, Role.PLATFORM_ADMIN, "Operatore regionale")
        async with httpx.AsyncClient(base_url=gateway, timeout=timeout) as anonymous:
            admin_token = await _token(anonymous, admin_user.username, admin_user.password)
        admin = httpx.AsyncClient(base_url=gateway, timeout=timeout, headers={"Authorization": f"Bearer {admin_token}"})
        partner_ids = await _partner_ids(admin)
        alliance_id = await _alliance(admin, partner_ids)

        password = uuid.uuid4().hex
        operator_name = f"clickday.totem.{run_id}"
        await identity.upsert_user(
            operator_name, password, Role.PARTNER_OPERATOR, "Operatore Totem", partner_id=partner_ids["coop_totem"]
        )
        operator = httpx.AsyncClient(
            base_url=gateway,
            timeout=timeout,
            headers={"Authorization": f"Bearer {await _token(admin, operator_name, password)}"},
        )
        offering = _check(await operator.post("/v1/offerings", json=_offering(alliance_id, seats, today)), 201)
        _check(await operator.post(f"/v1/offerings/{offering['id']}/publish"))
        await _wait_projected(operator, offering["id"])

        # Families, households, children: setup, not measured.
        clients: list[httpx.AsyncClient] = []
        for index in range(families):
            username = f"clickday.famiglia.{run_id}.{index}"
            await identity.upsert_user(username, password, Role.FAMILY, f"Famiglia {index}")
            token = await _token(admin, username, password)
            clients.append(
                httpx.AsyncClient(
                    base_url=gateway, timeout=timeout, limits=limits, headers={"Authorization": f"Bearer {token}"}
                )
            )
        households = await _bounded(
            SETUP_CONCURRENCY,
            [clients[i].post("/v1/households", json=synthetic_household(i)) for i in range(families)],
        )
        household_ids = [_check(r, 201)["id"] for r in households]
        born = date(today.year - 8, 2, 1)
        created = await _bounded(
            SETUP_CONCURRENCY,
            [
                clients[i % families].post(
                    f"/v1/households/{household_ids[i % families]}/children", json=synthetic_child(i, born)
                )
                for i in range(requests)
            ],
        )
        child_ids = [_check(r, 201)["id"] for r in created]
        period = {"start": today.isoformat(), "end": (today + timedelta(days=60)).isoformat()}

        # Connections are opened before the start signal: the click is what we time.
        await asyncio.gather(*(client.get("/v1/health") for client in clients))
        start = asyncio.Event()
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        answers: list[dict[str, Any]] = []

        async def enrol(index: int) -> None:
            body = {
                "child_id": child_ids[index],
                "offering_id": offering["id"],
                "period": period,
                "attendance_mode": "full",
            }
            await start.wait()
            began = time.perf_counter()
            try:
                response = await clients[index % families].post(
                    "/v1/enrolments", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
                status = response.status_code
            except httpx.HTTPError:
                status = 0
                response = None
            latencies.append(time.perf_counter() - began)
            statuses[status] = statuses.get(status, 0) + 1
            if response is not None and status in (201, 202):
                answers.append(response.json())

        tasks = [asyncio.create_task(enrol(i)) for i in range(requests)]
        await asyncio.sleep(0.5)
        began = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began

        roster = _check(await operator.get(f"/v1/offerings/{offering['id']}/enrolments"))
        waitlist = roster["waitlist"]
        # Strict arrival order: seats to sequences 1..seats, then positions 1..n by sequence.
        order_ok = (
            [e["waitlist_position"] for e in waitlist] == list(range(1, len(waitlist) + 1))
            and all(a["sequence"] < b["sequence"] for a, b in itertools.pairwise(waitlist))
            and sorted(e["sequence"] for e in roster["confirmed"]) == list(range(1, len(roster["confirmed"]) + 1))
        )
        sequences = sorted(a["sequence"] for a in answers if a.get("sequence") is not None)
        errors = sum(count for status, count in statuses.items() if status not in (201, 202))
        for client in [admin, operator, *clients]:
            await client.aclose()
    finally:
        await identity.close()

    return {
        "scenario": f"{requests} simultaneous POST /v1/enrolments for an offering with {seats} seats, "
        f"{families} family users, 2 enrolment instances",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "requests": requests,
        "seats": seats,
        "duration_s": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 1),
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 1),
            "p90": round(_percentile(latencies, 0.90) * 1000, 1),
            "p99": round(_percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1),
        },
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "confirmed": roster["confirmed_count"],
        "confirmed_exact": roster["confirmed_count"] == seats,
        "waitlisted": roster["waitlisted_count"],
        "waitlist_order_ok": order_ok,
        "sequences_unique_and_gapless": sequences == list(range(1, len(sequences) + 1)),
        "still_requested": sum(1 for a in answers if a["status"] == "requested"),
        "errors": errors,
        "p99_under_2s": _percentile(latencies, 0.99) < 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seats", type=int, default=100)
    parser.add_argument("--families", type=int, default=20)
    parser.add_argument("--output", type=Path, default=RESULTS / "click_day.json")
    args = parser.parse_args()
    summary = asyncio.run(run(args.gateway, args.requests, args.seats, args.families))
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    if not (summary["confirmed_exact"] and summary["waitlist_order_ok"] and summary["errors"] == 0):
        raise SystemExit("click day: the invariants did not hold (see the summary above)")


if __name__ == "__main__":
    main()
