"""Every number, month and id a client sends is bounded before use: 422, never 500."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.schemas.common import MAX_LIMIT, MAX_OFFSET
from tests.unit.gateway.conftest import FakeRpc

PAGINATED = ["/v1/alliances", "/v1/partners", "/v1/households", "/v1/alliances/a1/projects", "/v1/enrolments"]
HUGE = str(2**63)  # one more than MongoDB's largest integer


def assert_field_problem(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == 422 and body["title"] and body["detail"]
    assert field in [error["field"] for error in body["errors"]], body
    return body


@pytest.mark.parametrize("path", PAGINATED)
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": HUGE}, "offset"),
        ({"offset": str(MAX_OFFSET + 1)}, "offset"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "0"}, "limit"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"limit": HUGE}, "limit"),
        ({"limit": "1e3"}, "limit"),
    ],
)
async def test_out_of_bounds_pagination_is_422_and_reaches_no_service(
    admin: httpx.AsyncClient, rpc: FakeRpc, path: str, params: dict[str, str], field: str
) -> None:
    assert_field_problem(await admin.get(path, params=params), field)
    assert rpc.calls == []


@pytest.mark.parametrize("path", PAGINATED)
async def test_pagination_at_its_bounds_reaches_the_service(admin: httpx.AsyncClient, rpc: FakeRpc, path: str) -> None:
    response = await admin.get(path, params={"limit": str(MAX_LIMIT), "offset": str(MAX_OFFSET)})
    assert response.status_code == 200, response.text
    sent = str(rpc.calls[-1][2])
    assert f"'limit': {MAX_LIMIT}" in sent and f"'offset': {MAX_OFFSET}" in sent


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "1999-12", "2101-01", "2027-13", "2027-00", "2027-1", "27-01"])
async def test_attendance_register_month_outside_2000_2100_is_422(
    operator: httpx.AsyncClient, rpc: FakeRpc, month: str
) -> None:
    assert_field_problem(await operator.get("/v1/offerings/o1/attendance.csv", params={"month": month}), "month")
    assert rpc.calls == []


@pytest.mark.parametrize("month", ["2000-01", "2027-03", "2100-12"])
async def test_attendance_register_month_inside_bounds_reaches_the_service(
    operator: httpx.AsyncClient, rpc: FakeRpc, month: str
) -> None:
    rpc.answer = lambda _s, _m, _k: {"content": "a;b\n", "filename": "registro.csv"}
    response = await operator.get("/v1/offerings/o1/attendance.csv", params={"month": month})
    assert response.status_code == 200, response.text
    assert rpc.calls[-1][2]["month"] == month


async def test_an_id_longer_than_any_id_is_422(admin: httpx.AsyncClient, rpc: FakeRpc) -> None:
    assert_field_problem(await admin.get(f"/v1/partners/{'x' * 65}"), "partner_id")
    assert rpc.calls == []


async def test_an_unknown_enrolment_status_filter_is_422(admin: httpx.AsyncClient, rpc: FakeRpc) -> None:
    assert_field_problem(await admin.get("/v1/enrolments", params={"status": "bogus"}), "status")
    assert rpc.calls == []


def test_every_integer_parameter_of_every_route_has_both_bounds(app: FastAPI) -> None:
    """The rule itself, checked on the document: a new unbounded number fails here."""
    lower, upper = {"minimum", "exclusiveMinimum"}, {"maximum", "exclusiveMaximum"}
    unbounded = [
        f"{method.upper()} {path} {parameter['name']}"
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        for branch in parameter.get("schema", {}).get("anyOf", [parameter.get("schema", {})])
        if branch.get("type") in ("integer", "number") and not (lower & branch.keys() and upper & branch.keys())
    ]
    assert unbounded == []


def test_every_path_id_is_bounded_like_the_ids_services_make(app: FastAPI) -> None:
    unbounded = [
        f"{method.upper()} {path} {parameter['name']}"
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "path"
        and "maxLength" not in parameter.get("schema", {})
        and "maximum" not in parameter.get("schema", {})
    ]
    assert unbounded == []


HOUSEHOLD = {
    "guardians": [
        {"first_name": "Anna", "last_name": "Rossi", "codice_fiscale": "RSSNNA80A41F205X", "employment": "not_working"}
    ],
    "residence_comune_istat": "012098",
}


async def test_an_integer_no_store_can_hold_is_422_wherever_it_is(family: httpx.AsyncClient, rpc: FakeRpc) -> None:
    body = {**HOUSEHOLD, "isee": {"value_cents": 2**70, "kind": "ordinario", "expires_on": "2027-01-01"}}
    problem = assert_field_problem(await family.post("/v1/households", json=body), "isee.value_cents")
    assert problem["errors"] == [{"field": "isee.value_cents", "message": "numero fuori dai limiti ammessi"}]
    assert rpc.calls == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_numbers_that_are_not_numbers_are_422(family: httpx.AsyncClient, rpc: FakeRpc, literal: str) -> None:
    body = '{"child_id": "c1", "offering_id": "o1", "period": {"start": "2027-01-04", "end": "2027-01-08"}, '
    body += f'"attendance_mode": "hour_package", "hours": {literal}}}'
    response = await family.post("/v1/enrolments", content=body, headers={"content-type": "application/json"})
    assert_field_problem(response, "hours")
    assert rpc.calls == []


async def test_a_body_that_is_not_even_text_is_422_not_400(admin: httpx.AsyncClient, rpc: FakeRpc) -> None:
    response = await admin.post("/v1/partners", content=b"\xff\xfe\x02", headers={"content-type": "application/json"})
    problem = assert_field_problem(response, "body")
    assert "There was" not in problem["detail"]
    assert rpc.calls == []


async def test_largest_int64_is_still_a_number_the_contract_judges(admin: httpx.AsyncClient, rpc: FakeRpc) -> None:
    response = await admin.post("/v1/partners", json={"kind": "comune", "name": 2**63 - 1})
    body = response.json()
    assert response.status_code == 422
    assert "numero fuori dai limiti ammessi" not in str(body)
