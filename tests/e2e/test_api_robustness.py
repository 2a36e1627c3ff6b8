"""The inputs of issue 7 that answered 500, and the error model, on the running stack."""

import httpx
import pytest

from tests.e2e.builders import assert_problem, ok
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

HUGE = str(2**63)  # MongoDB's largest integer + 1: was OverflowError -> 500


@pytest.mark.parametrize("path", ["/v1/alliances", "/v1/partners", "/v1/households", "/v1/alliances/{id}/projects"])
def test_an_offset_no_database_can_take_is_422(admin: httpx.Client, castellanza: str, path: str) -> None:
    url = path.format(id=castellanza)
    body = assert_problem(admin.get(url, params={"offset": HUGE}), 422)
    assert body["errors"][0]["field"] == "offset"
    assert body["instance"] == url
    # The largest offset allowed is an empty page, not an error.
    page = ok(admin.get(url, params={"offset": "100000"}))
    assert page["items"] == [] and page["offset"] == 100000


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "1999-12", "2101-01", "2027-13"])
def test_attendance_register_months_outside_2000_2100_are_422(admin: httpx.Client, month: str) -> None:
    body = assert_problem(admin.get("/v1/offerings/any/attendance.csv", params={"month": month}), 422)
    assert body["errors"][0]["field"] == "month"


def test_numbers_beyond_64_bits_in_a_body_are_422(stack: Stack) -> None:
    family = stack.user("robust.family.e2e", "family")
    household = {
        "guardians": [
            {
                "first_name": "Anna",
                "last_name": "Bianchi",
                "codice_fiscale": "BNCNNA80A41F205Z",
                "employment": "not_working",
            }
        ],
        "residence_comune_istat": "012098",
        "isee": {"value_cents": 2**70, "kind": "ordinario", "expires_on": "2027-01-01"},
    }
    body = assert_problem(family.post("/v1/households", json=household), 422)
    assert body["errors"] == [{"field": "isee.value_cents", "message": "numero fuori dai limiti ammessi"}]


def test_errors_are_problems_with_a_trace_id(stack: Stack) -> None:
    anonymous = stack.client()
    body = assert_problem(anonymous.get("/v1/alliances"), 401)
    assert len(body["trace_id"]) == 32
    assert anonymous.get("/v1/alliances").headers["WWW-Authenticate"] == "Bearer"


def test_the_served_openapi_documents_problems_and_the_idempotency_key(stack: Stack) -> None:
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    assert "Problem" in spec["components"]["schemas"] and "HTTPValidationError" not in str(spec)
    assert "IdempotencyKey" in spec["components"]["parameters"]
    unprocessable = spec["paths"]["/v1/partners"]["post"]["responses"]["422"]["content"]
    assert unprocessable == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_ready_when_everything_is_up(stack: Stack) -> None:
    ready = ok(httpx.get(f"{stack.url}/v1/ready"))
    assert ready["status"] == "ready" and ready["down"] == []
