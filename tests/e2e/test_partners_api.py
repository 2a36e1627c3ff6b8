"""The partners slice through the gateway, over HTTP, on the running stack."""

import time
import uuid
from typing import Any

import httpx
import pytest

from conciliare.demo.data import CASTELLANZA, MARNATE, PARTNER_BY_KEY
from tests.e2e.builders import assert_problem, ok, unique
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def test_seed_003_alliance_is_browsable(stack: Stack, castellanza: str, partner_ids: dict[str, str]) -> None:
    manager = stack.user("castellanza.e2e", "alliance_manager", alliances=(castellanza,))
    alliance = ok(manager.get(f"/v1/alliances/{castellanza}"))
    assert alliance["member_count"] == 14
    assert [a["name"] for a in alliance["ambiti"]] == ["Ambito di Castellanza", "Ambito di Somma Lombardo"]
    comuni = {c["name"] for a in alliance["ambiti"] for c in a["comuni"]}
    assert {"Marnate", "Gorla Minore", "Vizzola Ticino", "Somma Lombardo"} <= comuni and len(comuni) == 16

    members = ok(manager.get(f"/v1/alliances/{castellanza}/members", params={"limit": 200}))
    assert members["total"] == 14
    first = members["items"][0]
    assert first["role"] == "capofila" and first["partner"]["name"].startswith("Azienda Speciale Consortile")
    by_status: dict[str, set[str]] = {}
    for member in members["items"]:
        by_status.setdefault(member["status"], set()).add(member["partner"]["name"])
    assert len(by_status["formalized"]) == 11
    assert by_status["pending"] == {
        PARTNER_BY_KEY[k].name for k in ("udp_busto", "coop_il_seme", "coop_dire_fare_giocare")
    }

    page = ok(manager.get(f"/v1/alliances/{castellanza}/members", params={"limit": 5, "offset": 10}))
    assert page["total"] == 14 and len(page["items"]) == 4

    project = ok(manager.get(f"/v1/alliances/{castellanza}/projects"))["items"][0]
    assert project["total_cost_cents"] == 6_074_100
    assert project["requested_contribution_cents"] == 3_200_000
    assert project["cofinancing"]["valued_work_hours_cents"] + project["cofinancing"]["cash_cents"] == 2_874_100
    assert [a["code"] for a in project["actions"]] == ["A", "B", "C1", "D", "E1"]


def test_pending_partner_is_formalized_then_withdrawn(
    stack: Stack, castellanza: str, partner_ids: dict[str, str]
) -> None:
    manager = stack.user("castellanza.e2e", "alliance_manager", alliances=(castellanza,))
    seme = partner_ids["coop_il_seme"]
    assert ok(manager.get(f"/v1/alliances/{castellanza}/members/{seme}"))["status"] == "pending"
    rembrandt = partner_ids["coop_rembrandt"]  # a partner of Marnate's partnership only
    assert_problem(manager.get(f"/v1/alliances/{castellanza}/members/{rembrandt}"), 404)
    member = ok(manager.patch(f"/v1/alliances/{castellanza}/members/{seme}", json={"status": "formalized"}))
    assert member["status"] == "formalized" and member["formalized_at"]
    assert ok(manager.get(f"/v1/alliances/{castellanza}/members/{seme}"))["status"] == "formalized"
    assert_problem(manager.patch(f"/v1/alliances/{castellanza}/members/{seme}", json={"status": "formalized"}), 409)
    member = ok(manager.patch(f"/v1/alliances/{castellanza}/members/{seme}", json={"status": "withdrawn"}))
    assert member["status"] == "withdrawn"
    assert ok(manager.get(f"/v1/alliances/{castellanza}"))["member_count"] == 13
    capofila = partner_ids["asc_medio_olona"]
    body = assert_problem(
        manager.patch(f"/v1/alliances/{castellanza}/members/{capofila}", json={"status": "withdrawn"}), 409
    )
    assert "capofila" in body["detail"]


def test_partner_in_two_alliances(
    admin: httpx.Client, castellanza: str, marnate: str, partner_ids: dict[str, str]
) -> None:
    marnate_comune = partner_ids["comune_marnate"]
    for alliance_id in (castellanza, marnate):
        ids = [
            m["partner"]["id"]
            for m in ok(admin.get(f"/v1/alliances/{alliance_id}/members", params={"limit": 200}))["items"]
        ]
        assert marnate_comune in ids
    project = ok(admin.get(f"/v1/alliances/{marnate}/projects"))["items"][0]
    assert project["total_cost_cents"] == 9_000_000 and project["requested_contribution_cents"] == 7_000_000


def test_tenant_isolation(stack: Stack, castellanza: str, marnate: str, partner_ids: dict[str, str]) -> None:
    manager_a = stack.user("iso.castellanza", "alliance_manager", alliances=(castellanza,))
    listed = ok(manager_a.get("/v1/alliances"))
    assert [a["id"] for a in listed["items"]] == [castellanza] and listed["total"] == 1
    other = f"/v1/alliances/{marnate}"
    assert_problem(manager_a.get(other), 404)
    assert_problem(manager_a.get(f"{other}/members"), 404)
    assert_problem(manager_a.get(f"{other}/projects"), 404)
    assert_problem(manager_a.post(f"{other}/members", json={"partner_id": partner_ids["coop_il_seme"]}), 404)
    assert_problem(manager_a.post(f"{other}/projects", json=MARNATE.project), 404)
    rembrandt = partner_ids["coop_rembrandt"]
    assert_problem(manager_a.patch(f"{other}/members/{rembrandt}", json={"status": "withdrawn"}), 404)
    assert_problem(manager_a.get("/v1/partners", params={"alliance_id": marnate}), 404)
    # Rembrandt belongs only to Marnate's partnership: invisible to Castellanza's staff.
    assert_problem(manager_a.get(f"/v1/partners/{rembrandt}"), 404)
    visible = {p["id"] for p in ok(manager_a.get("/v1/partners", params={"limit": 200}))["items"]}
    assert rembrandt not in visible and partner_ids["coop_totem"] in visible
    # Nothing of B was changed by A's attempts.
    assert ok(stack.user("iso.marnate", "alliance_manager", alliances=(marnate,)).get(other))["member_count"] == 7


def test_partner_operator_reads_own_alliances_only(
    stack: Stack, castellanza: str, marnate: str, partner_ids: dict[str, str]
) -> None:
    seme = stack.user("seme.operatore", "partner_operator", partner=partner_ids["udp_busto"])
    visible = {a["id"] for a in ok(seme.get("/v1/alliances"))["items"]}
    assert castellanza in visible and marnate not in visible
    assert_problem(seme.get(f"/v1/alliances/{marnate}"), 404)
    assert_problem(seme.post(f"/v1/alliances/{castellanza}/projects", json=CASTELLANZA.project), 403)
    assert_problem(seme.post("/v1/partners", json={}), 403)


def test_bad_inputs_are_refused_and_nothing_is_stored(
    admin: httpx.Client, castellanza: str, partner_ids: dict[str, str]
) -> None:
    body = assert_problem(
        admin.post(
            "/v1/partners",
            json={"kind": "cooperativa", "name": "Coop Sbagliata", "tax_code": "12345678901", "comune_istat": "999999"},
        ),
        422,
    )
    assert {e["field"] for e in body["errors"]} == {"tax_code", "comune_istat"}
    assert ok(admin.get("/v1/partners", params={"tax_code": "12345678901"}))["total"] == 0

    body = assert_problem(admin.post("/v1/partners", json={"kind": "nave", "name": "X"}), 422)
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages["tax_code"] == "campo obbligatorio" and messages["comune_istat"] == "campo obbligatorio"
    assert messages["kind"].startswith("valore non ammesso") and "cooperativa" in messages["kind"]
    assert messages["name"] == "deve avere almeno 2 caratteri"

    totem = PARTNER_BY_KEY["coop_totem"]
    duplicate = {"kind": "cooperativa", "name": "Totem bis", "tax_code": totem.tax_code, "comune_istat": "012042"}
    assert "codice fiscale" in assert_problem(admin.post("/v1/partners", json=duplicate), 409)["detail"]

    before = ok(admin.get(f"/v1/alliances/{castellanza}/projects"))["total"]
    wrong = {**CASTELLANZA.project, "total_cost_cents": 6_000_000}
    body = assert_problem(admin.post(f"/v1/alliances/{castellanza}/projects", json=wrong), 422)
    assert body["errors"][0]["field"] == "total_cost_cents" and "60.741,00 €" in body["errors"][0]["message"]
    assert ok(admin.get(f"/v1/alliances/{castellanza}/projects"))["total"] == before

    second_capofila = {"partner_id": partner_ids["coop_rembrandt"], "role": "capofila"}
    assert_problem(admin.post(f"/v1/alliances/{castellanza}/members", json=second_capofila), 409)

    alliances_before = ok(admin.get("/v1/alliances"))["total"]
    alliance = ok(admin.get(f"/v1/alliances/{castellanza}"))
    duplicate_code = {
        "code": alliance["code"],
        "name": "Doppione",
        "ambiti": [{"name": "Ambito A", "comuni_istat": ["012042"]}],
        "capofila_partner_id": partner_ids["comune_castellanza"],
    }
    assert_problem(admin.post("/v1/alliances", json=duplicate_code), 409)
    unknown_comune = {
        **duplicate_code,
        "code": unique("NEW"),
        "ambiti": [{"name": "Ambito A", "comuni_istat": ["012999"]}],
    }
    body = assert_problem(admin.post("/v1/alliances", json=unknown_comune), 422)
    assert "012999" in body["errors"][0]["message"]
    assert ok(admin.get("/v1/alliances"))["total"] == alliances_before


def test_authentication(stack: Stack) -> None:
    anonymous = stack.client()
    body = assert_problem(anonymous.get("/v1/alliances"), 401)
    assert "token" in body["detail"]
    assert_problem(stack.client("not-a-jwt").get("/v1/alliances"), 401)
    wrong = anonymous.post("/v1/auth/token", data={"grant_type": "password", "username": "e2e.admin", "password": "x"})
    assert_problem(wrong, 401)
    assert_problem(anonymous.post("/v1/auth/token", data={"grant_type": "implicit"}), 400)


def test_integrator_client_credentials(stack: Stack, partner_ids: dict[str, str], castellanza: str) -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    stack.admin(
        "client",
        "totem-e2e",
        "--partner",
        partner_ids["coop_totem"],
        "--scope",
        "catalog:read",
        "--scope",
        "alliances:read",
        "--secret-stdin",
        secret=secret,
    )
    anonymous = stack.client()
    token = ok(anonymous.post("/v1/auth/token", data={"grant_type": "client_credentials"}, auth=("totem-e2e", secret)))
    assert set(token["scope"].split()) == {"catalog:read", "alliances:read"}
    integrator = stack.client(token["access_token"])
    assert castellanza in {a["id"] for a in ok(integrator.get("/v1/alliances"))["items"]}
    assert_problem(integrator.get("/v1/partners"), 403)  # no partners:read scope granted
    bad = anonymous.post("/v1/auth/token", data={"grant_type": "client_credentials"}, auth=("totem-e2e", "nope"))
    assert_problem(bad, 401)


def test_health_and_readiness(stack: Stack) -> None:
    anonymous = stack.client()
    assert ok(anonymous.get("/v1/health")) == {"status": "ok"}
    ready = ok(anonymous.get("/v1/ready"))
    assert ready["status"] == "ready" and ready["down"] == []
    assert {"rabbitmq", "mongodb", "object_storage", "service:partners"} <= set(ready["checks"])


def test_one_request_is_one_trace_in_zipkin(admin: httpx.Client, castellanza: str) -> None:
    response = admin.get(f"/v1/alliances/{castellanza}/members")
    trace_id = response.headers["x-trace-id"]
    assert len(trace_id) == 32
    spans: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    services: set[str] = set()
    while time.monotonic() < deadline:
        found = httpx.get(f"http://127.0.0.1:9411/api/v2/trace/{trace_id}")
        if found.status_code == 200:
            spans = found.json()
            services = {s.get("localEndpoint", {}).get("serviceName") for s in spans}
            if {"gateway", "partners-service"} <= services and any(_is_mongo(s) for s in spans):
                break
        time.sleep(1)
    assert {"gateway", "partners-service"} <= services, services
    assert any(_is_mongo(s) for s in spans), [s.get("name") for s in spans]
    assert len({s["traceId"] for s in spans}) == 1


def _is_mongo(span: dict[str, Any]) -> bool:
    return span.get("tags", {}).get("db.system") == "mongodb" or span.get("tags", {}).get("db.system.name") == "mongodb"


def test_openapi_docs_work_offline(stack: Stack) -> None:
    anonymous = stack.client()
    page = anonymous.get("/docs")
    assert page.status_code == 200 and "cdn.jsdelivr.net" not in page.text
    asset = page.text.split('src="')[1].split('"')[0]
    assert anonymous.get(asset).status_code == 200
    spec = ok(anonymous.get("/openapi.json"))
    assert {"/v1/alliances", "/v1/partners", "/v1/auth/token", "/v1/alliances/{alliance_id}/projects"} <= set(
        spec["paths"]
    )


def test_families_see_the_alliance_directory_but_not_its_members(stack: Stack, castellanza: str) -> None:
    family = stack.user("famiglia.directory", "family")
    cards = ok(family.get("/v1/alliances", params={"limit": 200}))["items"]
    assert castellanza in {a["id"] for a in cards}
    assert ok(family.get(f"/v1/alliances/{castellanza}"))["ambiti"]
    assert_problem(family.get(f"/v1/alliances/{castellanza}/members"), 404)
    assert_problem(family.get(f"/v1/alliances/{castellanza}/projects"), 403)
    assert_problem(family.post("/v1/partners", json={}), 403)
