"""``POST /v1/enrolments`` through the fast lane: transport errors, keys, and parity with the FastAPI route."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from conciliare.errors import NotFound
from gateway.fast_lane import MAX_BODY_BYTES, FastLane
from gateway.security import ROLE_SCOPES, Principal, Role, issue_token
from gateway.settings import get_gateway_settings
from tests.unit.gateway.conftest import FakeIntake, FakeRequestKeys, FakeRpc, token_for

BODY = {
    "child_id": "c1",
    "offering_id": "o1",
    "period": {"start": "2027-03-29", "end": "2027-04-06"},
    "attendance_mode": "full",
}


def not_known_yet(_service: str, _method: str, _kwargs: dict[str, Any]) -> Any:
    raise NotFound("Iscrizione non trovata.")


@pytest.fixture
def intake(app: FastAPI) -> FakeIntake:
    intake: FakeIntake = app.state.intake
    return intake


@pytest.fixture
def keys(app: FastAPI) -> FakeRequestKeys:
    keys: FakeRequestKeys = app.state.request_keys
    return keys


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["instance"] == "/v1/enrolments" and problem["detail"]
    return problem


# --- transport -------------------------------------------------------------------------


async def test_without_a_token_it_is_401_with_a_bearer_challenge(app: FastAPI, intake: FakeIntake) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as anonymous:
        response = await anonymous.post("/v1/enrolments", json=BODY)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        forged = await anonymous.post("/v1/enrolments", json=BODY, headers={"Authorization": "Bearer not.a.token"})
        assert "non è valido" in assert_problem(forged, 401)["detail"]
    assert intake.submitted == []


async def test_a_token_without_the_write_scope_is_403(app: FastAPI, intake: FakeIntake) -> None:
    token = token_for(Role.ALLIANCE_MANAGER, alliance_ids=["a1"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as manager:
        response = await manager.post("/v1/enrolments", json=BODY, headers={"Authorization": f"Bearer {token}"})
    assert "enrolments:write" in assert_problem(response, 403)["detail"]
    assert intake.submitted == []


async def test_a_body_past_the_limit_is_413_and_not_json_is_415_or_422(
    family: httpx.AsyncClient, intake: FakeIntake
) -> None:
    huge = {**BODY, "note": "x" * MAX_BODY_BYTES}
    assert_problem(await family.post("/v1/enrolments", json=huge), 413)
    plain = await family.post("/v1/enrolments", content=b"child=c1", headers={"Content-Type": "text/plain"})
    assert_problem(plain, 415)
    broken = await family.post("/v1/enrolments", content=b'{"child_id": ', headers={"Content-Type": "application/json"})
    assert assert_problem(broken, 422)["errors"] == [{"field": "body", "message": "JSON non valido"}]
    deep = await family.post("/v1/enrolments", content=b"[" * 50_000, headers={"Content-Type": "application/json"})
    assert_problem(deep, 422)
    assert intake.submitted == []


async def test_every_field_error_is_reported_and_numbers_no_store_holds_are_422(
    family: httpx.AsyncClient, intake: FakeIntake
) -> None:
    response = await family.post("/v1/enrolments", json={"child_id": "c1", "period": {"start": "ieri"}})
    fields = {error["field"] for error in assert_problem(response, 422)["errors"]}
    assert {"offering_id", "period.start", "period.end", "attendance_mode"} <= fields
    nan = b'{"child_id":"c1","offering_id":"o1","period":{"start":"2027-03-29","end":"2027-04-06"},'
    nan += b'"attendance_mode":"hour_package","hours":NaN}'
    response = await family.post("/v1/enrolments", content=nan, headers={"Content-Type": "application/json"})
    assert assert_problem(response, 422)["errors"][0]["field"] == "hours"
    assert intake.submitted == []


async def test_answers_carry_the_trace_id(family: httpx.AsyncClient, intake: FakeIntake) -> None:
    accepted = await family.post("/v1/enrolments", json=BODY)
    assert accepted.status_code == 202 and len(accepted.headers["x-trace-id"]) == 32
    refused = await family.post("/v1/enrolments", json={})
    assert assert_problem(refused, 422)["trace_id"] == refused.headers["x-trace-id"]


async def test_the_fastapi_route_answers_as_the_fast_lane_does(
    app: FastAPI, family: httpx.AsyncClient, intake: FakeIntake, rpc: FakeRpc
) -> None:
    """The route FastAPI documents is the fallback behind the lane: same use case, same answers."""
    lane = app.build_middleware_stack()
    assert isinstance(lane, FastLane)

    async def fastapi_only(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app  # what Starlette sets before its middleware stack
        await lane.app(scope, receive, send)

    behind = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fastapi_only), base_url="http://gateway", headers=dict(family.headers)
    )
    rpc.answer = not_known_yet
    async with behind:
        for body, headers in ((BODY, {}), ({**BODY, "child_id": ""}, {}), (BODY, {"Prefer": "wait=0"})):
            fast = await family.post("/v1/enrolments", json=body, headers=headers)
            slow = await behind.post("/v1/enrolments", json=body, headers=headers)
            assert fast.status_code == slow.status_code
            if fast.status_code == 202:
                assert set(fast.json()) == set(slow.json()) and fast.json()["status"] == slow.json()["status"]
                assert fast.headers.get("preference-applied") == slow.headers.get("preference-applied")
            else:
                assert fast.json()["errors"] == slow.json()["errors"]
    assert len(intake.submitted) == 4


# --- Idempotency-Key ---------------------------------------------------------------------


async def test_a_retry_with_the_key_gets_the_same_receipt_and_is_published_again_while_undecided(
    family: httpx.AsyncClient, intake: FakeIntake, rpc: FakeRpc
) -> None:
    rpc.answer = not_known_yet
    key = {"Idempotency-Key": "retry-1"}
    first = await family.post("/v1/enrolments", json=BODY, headers=key)
    again = await family.post("/v1/enrolments", json=BODY, headers=key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert {k: again.json()[k] for k in ("id", "protocol", "accepted_at")} == {
        k: first.json()[k] for k in ("id", "protocol", "accepted_at")
    }
    assert again.headers["location"] == first.headers["location"]
    # Published twice under one id: the service decides an id once, and a first attempt
    # that died before its publish is not lost.
    assert [c.request_id for c in intake.submitted] == [first.json()["id"]] * 2


async def test_a_retry_after_the_decision_answers_201_with_it_and_publishes_nothing(
    family: httpx.AsyncClient, intake: FakeIntake, rpc: FakeRpc
) -> None:
    key = {"Idempotency-Key": "retry-2"}
    rpc.answer = not_known_yet
    first = (await family.post("/v1/enrolments", json=BODY, headers=key)).json()
    decision = {"id": first["id"], "status": "confirmed", "sequence": 1}
    rpc.answer = lambda _s, _m, kwargs: decision if kwargs["enrolment_id"] == first["id"] else None
    replayed = await family.post("/v1/enrolments", json=BODY, headers=key)
    assert replayed.status_code == 201 and replayed.json() == decision
    assert replayed.headers["idempotent-replayed"] == "true"
    assert len(intake.submitted) == 1


async def test_the_same_key_for_another_request_is_422(family: httpx.AsyncClient, intake: FakeIntake) -> None:
    key = {"Idempotency-Key": "retry-3"}
    assert (await family.post("/v1/enrolments", json=BODY, headers=key)).status_code == 202
    other = await family.post("/v1/enrolments", json={**BODY, "child_id": "c2"}, headers=key)
    assert "già stata usata" in assert_problem(other, 422)["detail"]
    assert [c.request.child_id for c in intake.submitted] == ["c1"]


async def test_keys_are_per_caller(
    app: FastAPI, family: httpx.AsyncClient, intake: FakeIntake, keys: FakeRequestKeys
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"Authorization": f"Bearer {_family_token('user:another-family')}"},
    ) as another:
        mine = await family.post("/v1/enrolments", json=BODY, headers={"Idempotency-Key": "k"})
        theirs = await another.post("/v1/enrolments", json=BODY, headers={"Idempotency-Key": "k"})
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"] and len(keys.reservations) == 2


async def test_a_request_the_broker_did_not_take_frees_its_key(
    family: httpx.AsyncClient, intake: FakeIntake, keys: FakeRequestKeys
) -> None:
    key = {"Idempotency-Key": "retry-4"}
    intake.down = True
    assert_problem(await family.post("/v1/enrolments", json=BODY, headers=key), 503)
    assert keys.reservations == {} and len(keys.released) == 1
    intake.down = False
    retried = await family.post("/v1/enrolments", json=BODY, headers=key)
    assert retried.status_code == 202 and "idempotent-replayed" not in retried.headers
    assert [c.request_id for c in intake.submitted] == [retried.json()["id"]]


async def test_a_malformed_key_is_422(family: httpx.AsyncClient, intake: FakeIntake) -> None:
    response = await family.post("/v1/enrolments", json=BODY, headers={"Idempotency-Key": "has space"})
    assert "Idempotency-Key" in assert_problem(response, 422)["detail"]
    assert intake.submitted == []


def _family_token(subject: str) -> str:
    principal = Principal(subject=subject, role=Role.FAMILY, scopes=ROLE_SCOPES[Role.FAMILY])
    return issue_token(principal, get_gateway_settings())[0]
