"""Build demo data through the public API, as an alliance's staff would."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from conciliare.demo.data import CASTELLANZA, PARTNERS, DemoAlliance, demo_tax_code
from gateway.security import ROLE_SCOPES, Principal, Role, issue_token
from gateway.settings import GatewaySettings


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


def register_demo_partners(admin: httpx.Client) -> dict[str, str]:
    """Every seed partner, registered once per stack (partners are platform-wide)."""
    ids: dict[str, str] = {}
    for partner in PARTNERS:
        found = ok(admin.get("/v1/partners", params={"tax_code": partner.tax_code}))["items"]
        if found:
            ids[partner.key] = found[0]["id"]
            continue
        body = {
            "kind": partner.kind,
            "name": partner.name,
            "tax_code": partner.tax_code,
            "comune_istat": partner.comune_istat,
        }
        ids[partner.key] = ok(admin.post("/v1/partners", json=body), 201)["id"]
    return ids


def build_alliance(admin: httpx.Client, alliance: DemoAlliance, partner_ids: dict[str, str], code: str) -> str:
    """Create the alliance under ``code`` with its members and its project; return its id."""
    body = {
        "code": code,
        "name": alliance.name,
        "ambiti": [{"name": name, "comuni_istat": comuni} for name, comuni in alliance.ambiti],
        "capofila_partner_id": partner_ids[alliance.capofila],
    }
    alliance_id = str(ok(admin.post("/v1/alliances", json=body), 201)["id"])
    for key in alliance.formalized:
        member = {"partner_id": partner_ids[key], "status": "formalized"}
        ok(admin.post(f"/v1/alliances/{alliance_id}/members", json=member), 201)
    for key in alliance.pending:
        ok(admin.post(f"/v1/alliances/{alliance_id}/members", json={"partner_id": partner_ids[key]}), 201)
    ok(admin.post(f"/v1/alliances/{alliance_id}/projects", json=alliance.project), 201)
    return alliance_id


def unique(prefix: str) -> str:
    """A code no other test run uses, e.g. ``CAST-3F9A1C``."""
    return f"{prefix}-{uuid.uuid4().hex[:6].upper()}"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` and no stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


# --- fresh data, never demo data (fuzzing, idempotency, outages) ---------------------

FRESH_COMUNI = [("Ambito di prova", ["012042", "012098"])]  # Castellanza, Marnate: a real territory


def fresh_tax_code() -> str:
    """An 11-digit codice fiscale with a valid check digit that no demo partner and no other run uses."""
    return demo_tax_code(5_000_000 + uuid.uuid4().int % 4_000_000)


def partner_body(name: str | None = None, kind: str = "cooperativa") -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name or f"Cooperativa di prova {uuid.uuid4().hex[:6]}",
        "tax_code": fresh_tax_code(),
        "comune_istat": "012042",
    }


def new_partner(admin: httpx.Client, name: str | None = None, kind: str = "cooperativa") -> str:
    return str(ok(admin.post("/v1/partners", json=partner_body(name, kind)), 201)["id"])


def alliance_body(capofila_id: str, code: str | None = None) -> dict[str, Any]:
    return {
        "code": code or unique("PROVA"),
        "name": f"Alleanza di prova {uuid.uuid4().hex[:6]}",
        "ambiti": [{"name": name, "comuni_istat": comuni} for name, comuni in FRESH_COMUNI],
        "capofila_partner_id": capofila_id,
    }


def project_body(title: str | None = None) -> dict[str, Any]:
    """A project whose amounts add up (the rules of the partners service)."""
    body = dict(CASTELLANZA.project)
    body["title"] = title or f"Progetto di prova {uuid.uuid4().hex[:6]}"
    return body


@dataclass(frozen=True)
class Tenant:
    """A new alliance of its own: capofila, a pending member, a project, a draft offering, a manager."""

    alliance_id: str
    capofila_id: str
    member_id: str
    project_id: str
    offering_id: str
    manager: httpx.Client
    manager_token: str


def offering_body(alliance_id: str, provider_id: str) -> dict[str, Any]:
    return {
        "alliance_id": alliance_id,
        "provider_partner_id": provider_id,
        "type": "attivita_vacanze_scolastiche",
        "title": f"Vacanze in gioco {uuid.uuid4().hex[:4]}",
        "description": "Giochi, laboratori e compiti nelle vacanze, con educatori.",
        "comune_istat": "012098",
        "address": "Via Roma 1, Marnate (VA)",
        "age_range": {"min_months": 72, "max_months": 143},
        "school_levels": ["primaria"],
        "special_needs_supported": ["dsa"],
        "calendar": {"periods": [{"kind": "easter", "start": "2027-03-25", "end": "2027-03-30"}], "closures": []},
        "weekly_slots": [{"weekday": d, "start": "08:30", "end": "16:30"} for d in range(1, 6)],
        "capacity": 20,
        "price": {"amount_cents": 1800, "unit": "day"},
        "attendance_modes": ["full", "chosen_days"],
    }


def build_fresh_tenant(admin: httpx.Client, new_manager: Callable[[str], httpx.Client]) -> Tenant:
    """Build a tenant nobody else uses; ``new_manager(alliance_id)`` logs its new manager in."""
    capofila = new_partner(admin, kind="comune", name=f"Comune di prova {uuid.uuid4().hex[:6]}")
    member = new_partner(admin)
    alliance_id = str(ok(admin.post("/v1/alliances", json=alliance_body(capofila)), 201)["id"])
    ok(admin.post(f"/v1/alliances/{alliance_id}/members", json={"partner_id": member}), 201)
    manager = new_manager(alliance_id)
    token = str(manager.headers["Authorization"]).removeprefix("Bearer ")
    project_id = str(ok(manager.post(f"/v1/alliances/{alliance_id}/projects", json=project_body()), 201)["id"])
    offering_id = str(ok(manager.post("/v1/offerings", json=offering_body(alliance_id, capofila)), 201)["id"])
    return Tenant(alliance_id, capofila, member, project_id, offering_id, manager, token)


# --- many family users at once (vouchers) ------------------------------------------------


def family_token(env: dict[str, str], username: str) -> str:
    """An access token for family user ``username``, as ``/v1/auth/token`` would issue it.

    Signed with the stack's own key (``GATEWAY_JWT_SECRET`` of its environment) by the
    gateway's own ``issue_token``: hundreds of password logins would cost half a second
    of argon2 each on a two-core machine, which is not what a test of vouchers measures.
    """
    settings = GatewaySettings(jwt_secret=env["GATEWAY_JWT_SECRET"], access_token_minutes=60)
    principal = Principal(subject=f"user:{username}", role=Role.FAMILY, scopes=ROLE_SCOPES[Role.FAMILY])
    token, _ = issue_token(principal, settings)
    return token


def wait_projected(operator: httpx.Client, offering_id: str, timeout: float = 20) -> None:
    """Until the enrolment service has received a published offering (its roster answers)."""
    deadline = time.monotonic() + timeout
    while operator.get(f"/v1/offerings/{offering_id}/enrolments").status_code != 200:
        assert time.monotonic() < deadline, "the enrolment service never received the offering"
        time.sleep(0.2)


PREFER_WAIT = {"Prefer": "wait=10"}  # the longest wait the gateway honours, as an integrator would ask


def wait_decided(family: httpx.Client, enrolment: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    """Poll ``GET /v1/enrolments/{id}`` until the request is no longer ``requested``."""
    deadline = time.monotonic() + timeout
    while enrolment["status"] == "requested":
        assert time.monotonic() < deadline, f"the enrolment {enrolment['id']} was never decided"
        time.sleep(0.2)
        enrolment = ok(family.get(f"/v1/enrolments/{enrolment['id']}"))
    return enrolment


def enrol_and_wait(family: httpx.Client, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    """Request an enrolment and wait for its decision (201 decided, or 202 then poll)."""
    response = family.post("/v1/enrolments", json=body, headers=PREFER_WAIT)
    assert response.status_code in (201, 202), response.text
    return wait_decided(family, response.json(), timeout)
