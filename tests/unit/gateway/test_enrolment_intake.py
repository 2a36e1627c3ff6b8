"""Accepting an enrolment request (202, receipt, ``Prefer: wait``) with the broker and the service faked."""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conciliare.errors import NotFound
from gateway.prefer import preferred_wait
from gateway.receipts import ReceiptIssuer
from gateway.security import ROLE_SCOPES, Principal, Role, issue_token
from gateway.settings import get_gateway_settings
from tests.unit.gateway.conftest import FakeIntake, FakeRpc

BODY = {
    "child_id": "c1",
    "offering_id": "o1",
    "period": {"start": "2027-03-01", "end": "2027-03-31"},
    "attendance_mode": "full",
}
PROTOCOL = re.compile(r"^ISC-\d{8}-\d{6}-[0-9A-F]{8}$")


@pytest.fixture
def intake(app: FastAPI) -> FakeIntake:
    fake = FakeIntake()
    app.state.intake = fake
    return fake


@pytest.fixture
async def other_family(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    principal = Principal(subject="user:another-family", role=Role.FAMILY, scopes=ROLE_SCOPES[Role.FAMILY])
    token, _ = issue_token(principal, get_gateway_settings())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def not_known_yet(_service: str, _method: str, _kwargs: dict[str, Any]) -> Any:
    """The enrolment service's answer for a request it has not decided (or never saw)."""
    raise NotFound("Iscrizione non trovata.")


def decided(status: str = "confirmed") -> dict[str, Any]:
    return {"id": "x", "status": status, "sequence": 1}


async def test_a_request_is_accepted_with_a_receipt_and_published_once(
    family: httpx.AsyncClient, intake: FakeIntake, rpc: FakeRpc
) -> None:
    response = await family.post("/v1/enrolments", json=BODY)
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/v1/enrolments/{body['id']}"
    assert body["status"] == "requested" and PROTOCOL.match(body["protocol"])
    assert body["offering_id"] == "o1" and body["child_id"] == "c1"
    accepted = datetime.fromisoformat(body["accepted_at"])
    assert abs(datetime.now(UTC) - accepted) < timedelta(seconds=5)
    [command] = intake.submitted
    assert (command.request_id, command.protocol) == (body["id"], body["protocol"])
    assert command.viewer.role is Role.FAMILY and command.request.offering_id == "o1"
    assert rpc.calls == []  # nothing synchronous: no service is asked
    assert "preference-applied" not in response.headers


async def test_only_families_request_enrolments(operator: httpx.AsyncClient, intake: FakeIntake) -> None:
    response = await operator.post("/v1/enrolments", json=BODY)
    assert response.status_code == 403 and intake.submitted == []


async def test_a_malformed_request_is_refused_before_anything_is_published(
    family: httpx.AsyncClient, intake: FakeIntake
) -> None:
    response = await family.post("/v1/enrolments", json={**BODY, "period": {"start": "2027-03-01"}})
    assert response.status_code == 422 and intake.submitted == []


async def test_broker_away_answers_503_with_retry_after_and_accepts_nothing(
    family: httpx.AsyncClient, intake: FakeIntake
) -> None:
    intake.down = True
    response = await family.post("/v1/enrolments", json=BODY)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "RabbitMQ" in response.json()["detail"] and intake.submitted == []


async def test_prefer_wait_answers_201_with_the_decision_when_it_arrives(
    family: httpx.AsyncClient, intake: FakeIntake, rpc: FakeRpc
) -> None:
    answers = [NotFound("Iscrizione non trovata."), decided("waitlisted")]

    def answer(_service: str, method: str, _kwargs: dict[str, Any]) -> Any:
        assert method == "get_enrolment"
        found = answers.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    rpc.answer = answer

    async def announce_soon() -> None:
        await intake.watched.wait()
        intake.decide(intake.submitted[0].request_id)

    announcer = asyncio.create_task(announce_soon())
    response = await family.post("/v1/enrolments", json=BODY, headers={"Prefer": "wait=5"})
    await announcer
    assert response.status_code == 201 and response.json()["status"] == "waitlisted"
    assert response.headers["preference-applied"] == "wait=5"
    assert response.headers["location"].startswith("/v1/enrolments/")


async def test_prefer_wait_gives_up_with_202_and_says_what_it_applied(
    family: httpx.AsyncClient, intake: FakeIntake, rpc: FakeRpc
) -> None:
    rpc.answer = not_known_yet
    response = await family.post("/v1/enrolments", json=BODY, headers={"Prefer": "respond-async, wait=1"})
    assert response.status_code == 202 and response.json()["status"] == "requested"
    assert response.headers["preference-applied"] == "wait=1"


async def test_an_undecided_request_reads_requested_for_its_family_only(
    family: httpx.AsyncClient, other_family: httpx.AsyncClient, intake: FakeIntake, rpc: FakeRpc
) -> None:
    rpc.answer = not_known_yet
    accepted = (await family.post("/v1/enrolments", json=BODY)).json()
    mine = await family.get(f"/v1/enrolments/{accepted['id']}")
    assert mine.status_code == 200
    assert (mine.json()["status"], mine.json()["protocol"]) == ("requested", accepted["protocol"])
    assert mine.json()["accepted_at"] == accepted["accepted_at"]
    assert (await other_family.get(f"/v1/enrolments/{accepted['id']}")).status_code == 404
    made_up = accepted["id"][:-1] + ("0" if accepted["id"][-1] != "0" else "1")
    assert (await family.get(f"/v1/enrolments/{made_up}")).status_code == 404


# --- the receipt and the preference, as rules ------------------------------------------------


def test_a_receipt_proves_whom_it_was_issued_to() -> None:
    issuer = ReceiptIssuer(b"secret")
    receipt = issuer.issue("user:a", datetime(2027, 3, 15, 8, 15, 2, 345000, tzinfo=UTC))
    assert issuer.verify("user:a", receipt.id) == receipt
    assert issuer.verify("user:b", receipt.id) is None
    assert ReceiptIssuer(b"other secret").verify("user:a", receipt.id) is None
    assert issuer.verify("user:a", receipt.id.upper()) is None
    assert receipt.accepted_at == datetime(2027, 3, 15, 8, 15, 2, 345000, tzinfo=UTC)
    assert receipt.protocol.startswith("ISC-20270315-091502-")  # Rome time (UTC+1 in March)


def test_a_keyed_receipt_is_the_same_for_the_same_key_and_first_time() -> None:
    issuer = ReceiptIssuer(b"secret")
    at = datetime(2027, 3, 15, 8, 0, tzinfo=UTC)
    assert issuer.issue("user:a", at, "k1") == issuer.issue("user:a", at, "k1")
    assert issuer.issue("user:a", at, "k1") != issuer.issue("user:a", at, "k2")
    assert issuer.issue("user:a", at, "k1").id != issuer.issue("user:b", at, "k1").id
    assert issuer.issue("user:a", at).id != issuer.issue("user:a", at).id  # unkeyed: a fresh nonce


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], None),
        (["wait=5"], 5),
        (["respond-async, wait=3"], 3),
        (["wait=60"], 10),
        (['wait="4"'], 4),
        (["wait=abc"], None),
        (["wait=-1"], None),
        (["handling=lenient", "wait=2"], 2),
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_says(headers: list[str], expected: int | None) -> None:
    assert preferred_wait(headers) == expected


async def test_cancelling_a_request_not_decided_yet_says_so_instead_of_404(
    family: httpx.AsyncClient, other_family: httpx.AsyncClient, intake: FakeIntake, rpc: FakeRpc
) -> None:
    rpc.answer = not_known_yet
    accepted = (await family.post("/v1/enrolments", json=BODY)).json()
    mine = await family.post(f"/v1/enrolments/{accepted['id']}/cancel")
    assert mine.status_code == 409 and mine.headers["retry-after"] == "1"
    assert "elaborazione" in mine.json()["detail"]
    assert (await other_family.post(f"/v1/enrolments/{accepted['id']}/cancel")).status_code == 404
