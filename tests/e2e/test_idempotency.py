"""Every create takes an ``Idempotency-Key``: a retried request returns the first answer and creates nothing.

For each create: the first request creates (201); the same request again with the
same key answers the same status and body, marked ``Idempotent-Replayed: true``,
and the collection did not grow; the same key with a different body is a 422
problem. (Enrolments, which also pass the key to the service, are covered in
test_enrolment_api.py, including concurrent duplicates.)
"""

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from conciliare.demo.families import synthetic_child, synthetic_household
from tests.e2e.builders import (
    Tenant,
    alliance_body,
    assert_problem,
    build_fresh_tenant,
    new_partner,
    offering_body,
    ok,
    partner_body,
    project_body,
)
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tenant(stack: Stack, admin: httpx.Client) -> Tenant:
    suffix = uuid.uuid4().hex[:6]
    return build_fresh_tenant(
        admin, lambda alliance_id: stack.user(f"idem.manager.{suffix}", "alliance_manager", alliances=(alliance_id,))
    )


def retried_once(
    client: httpx.Client, path: str, body: dict[str, Any], other: dict[str, Any], count: Callable[[], int]
) -> dict[str, Any]:
    """POST ``body`` twice with one key, then ``other`` with it; return the created resource."""
    key = str(uuid.uuid4())
    first = client.post(path, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    created = count()

    again = client.post(path, json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count() == created, f"a retry of POST {path} created something"

    reused = assert_problem(client.post(path, json=other, headers={"Idempotency-Key": key}), 422)
    assert "Idempotency-Key" in reused["detail"]
    assert count() == created
    result: dict[str, Any] = first.json()
    return result


def total(client: httpx.Client, path: str, **params: Any) -> Callable[[], int]:
    return lambda: int(ok(client.get(path, params={"limit": 200, **params}))["total"])


def test_partners(admin: httpx.Client) -> None:
    body = partner_body()
    partner = retried_once(
        admin, "/v1/partners", body, partner_body(), total(admin, "/v1/partners", **{"tax_code": body["tax_code"]})
    )
    assert partner["tax_code"] == body["tax_code"]


def test_alliances(admin: httpx.Client) -> None:
    capofila = new_partner(admin, kind="comune")
    body, other = alliance_body(capofila), alliance_body(capofila)
    alliance = retried_once(admin, "/v1/alliances", body, other, total(admin, "/v1/alliances"))
    assert alliance["code"] == body["code"]


def test_members(admin: httpx.Client, tenant: Tenant) -> None:
    path = f"/v1/alliances/{tenant.alliance_id}/members"
    body, other = {"partner_id": new_partner(admin)}, {"partner_id": new_partner(admin)}
    member = retried_once(tenant.manager, path, body, other, total(tenant.manager, path))
    assert member["partner"]["id"] == body["partner_id"]


def test_projects(tenant: Tenant) -> None:
    path = f"/v1/alliances/{tenant.alliance_id}/projects"
    body, other = project_body(), project_body()
    project = retried_once(tenant.manager, path, body, other, total(tenant.manager, path))
    assert project["title"] == body["title"]


def test_households_and_children(stack: Stack) -> None:
    family = stack.user(f"idem.family.{uuid.uuid4().hex[:6]}", "family")
    index = uuid.uuid4().int % 5000
    household = retried_once(
        family,
        "/v1/households",
        synthetic_household(index),
        synthetic_household(index + 1),
        total(family, "/v1/households"),
    )

    path = f"/v1/households/{household['id']}/children"
    born = date(date.today().year - 8, 3, 1)
    child = retried_once(
        family,
        path,
        synthetic_child(index % 1000, born),
        synthetic_child(index % 1000 + 1, born),
        lambda: len(ok(family.get(path))),
    )
    assert child["first_name"]


def test_keys_belong_to_their_caller(admin: httpx.Client, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    first = admin.post("/v1/partners", json=partner_body(), headers={"Idempotency-Key": key})
    other = tenant.manager.post("/v1/partners", json=partner_body(), headers={"Idempotency-Key": key})
    assert first.status_code == other.status_code == 201, other.text
    assert first.json()["id"] != other.json()["id"]


def test_a_malformed_key_is_422(admin: httpx.Client) -> None:
    body = assert_problem(
        admin.post("/v1/partners", json=partner_body(), headers={"Idempotency-Key": "con spazi"}), 422
    )
    assert body["errors"][0]["field"] == "Idempotency-Key"


def test_offerings(stack: Stack, tenant: Tenant) -> None:
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    parameters = spec["paths"]["/v1/offerings"]["post"].get("parameters", [])
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in parameters
    body = offering_body(tenant.alliance_id, tenant.capofila_id)
    other = offering_body(tenant.alliance_id, tenant.capofila_id)
    count = total(tenant.manager, "/v1/offerings", alliance_id=tenant.alliance_id, status="draft")
    offering = retried_once(tenant.manager, "/v1/offerings", body, other, count)
    assert offering["spec"]["title"] == body["title"]
