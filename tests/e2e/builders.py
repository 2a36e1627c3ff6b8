"""Build demo data through the public API, as an alliance's staff would."""

import uuid
from typing import Any

import httpx

from conciliare.demo.data import PARTNERS, DemoAlliance


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
