"""The vouchers routes in process, with a fake RPC client: what reaches the service, what the client gets.

The app here includes only these routers, with the gateway's error handlers. No
request carries an ``Idempotency-Key``, so the identity store behind it is never asked.
"""

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.errors import install_error_handlers
from gateway.routers import programmes, vouchers
from gateway.security import ROLE_SCOPES, Principal, Role, issue_token
from gateway.settings import get_gateway_settings


class FakeRpc:
    """Records every call and answers with ``answer(service, method, kwargs)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.answer: Callable[[str, str, dict[str, Any]], Any] = lambda _s, _m, _k: {}

    async def call(self, service: str, method: str, timeout: float | None = None, **kwargs: Any) -> Any:  # noqa: ASYNC109
        self.calls.append((service, method, kwargs))
        return self.answer(service, method, kwargs)


@pytest.fixture
def rpc() -> FakeRpc:
    return FakeRpc()


@pytest.fixture
def app(rpc: FakeRpc) -> FastAPI:
    application = FastAPI()
    install_error_handlers(application)
    application.include_router(programmes.router)
    application.include_router(vouchers.router)
    application.state.rpc = rpc
    application.state.identity = None  # only requests with an Idempotency-Key reach it
    return application


def client(app: FastAPI, role: Role, **extra: Any) -> httpx.AsyncClient:
    principal = Principal(subject=f"{role.value}.test", role=role, scopes=ROLE_SCOPES[role], **extra)
    token, _ = issue_token(principal, get_gateway_settings())
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
async def family(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app, Role.FAMILY) as http:
        yield http


async def test_family_applies_with_its_viewer(family: httpx.AsyncClient, rpc: FakeRpc) -> None:
    rpc.answer = lambda _s, _m, _k: {"id": "a1", "protocol": "2027/000001"}
    body = {"household_id": "h1", "child_id": "c1", "no_double_funding": True}
    response = await family.post("/v1/programmes/p1/applications", json=body)
    assert response.status_code == 201 and response.json()["protocol"] == "2027/000001"
    service, method, kwargs = rpc.calls[-1]
    assert (service, method, kwargs["programme_id"]) == ("vouchers", "submit_application", "p1")
    assert kwargs["viewer"]["role"] == "family" and kwargs["payload"]["weekly_hours"] == []


async def test_bad_input_is_422_and_missing_scope_403(family: httpx.AsyncClient, rpc: FakeRpc) -> None:
    response = await family.post("/v1/programmes/p1/applications", json={"household_id": "h1"})
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    response = await family.post("/v1/programmes/p1/rank")
    assert response.status_code == 403
    assert rpc.calls == []


async def test_provider_viewer_carries_its_alliances_asked_live(app: FastAPI, rpc: FakeRpc) -> None:
    def answer(service: str, method: str, kwargs: dict[str, Any]) -> Any:
        if (service, method) == ("partners", "alliances_of_partner"):
            return ["all-castellanza"]
        return {"id": "v1", "code": "ABCD-EFGH-K"}

    rpc.answer = answer
    async with client(app, Role.PARTNER_OPERATOR, partner_id="coop-totem") as provider:
        response = await provider.get("/v1/vouchers/by-code/ABCD-EFGH-K")
    assert response.status_code == 200
    _, method, kwargs = rpc.calls[-1]
    assert method == "voucher_by_code" and kwargs["viewer"]["alliance_ids"] == ["all-castellanza"]


async def test_exports_are_downloads(app: FastAPI, rpc: FakeRpc) -> None:
    content = "\ufeffPosizione;Protocollo\r\n1;2027/000001\r\n".encode()
    rpc.answer = lambda _s, _m, _k: {
        "filename": "graduatoria-2027-B.csv",
        "media_type": "text/csv; charset=utf-8",
        "content_b64": base64.b64encode(content).decode(),
    }
    async with client(app, Role.ALLIANCE_MANAGER, alliance_ids=["all-castellanza"]) as staff:
        response = await staff.get("/v1/programmes/p1/ranking.csv")
    assert response.status_code == 200 and response.content == content
    assert response.headers["content-disposition"] == 'attachment; filename="graduatoria-2027-B.csv"'
    assert rpc.calls[-1][2]["fmt"] == "csv"


class FakeMinio:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, bucket: str, key: str, data: Any, length: int, content_type: str) -> None:
        self.objects[key] = data.read(length)


class FakeDocuments:
    def __init__(self) -> None:
        self.client = FakeMinio()

    async def presigned_get(self, object_name: str, minutes: int = 10) -> str:
        return f"http://minio/{object_name}?signed"


async def test_family_uploads_a_private_attachment_and_staff_reads_it(app: FastAPI, rpc: FakeRpc) -> None:
    documents = FakeDocuments()
    app.state.documents = documents
    async with client(app, Role.FAMILY) as family:
        files = {"file": ("isee 2027.pdf", b"%PDF-1.7 ...", "application/pdf")}
        response = await family.post("/v1/programmes/p1/attachments", files=files, data={"kind": "isee_certificate"})
        assert response.status_code == 201
        ref = response.json()
        assert ref["object_key"].startswith("vouchers/family.test/p1/") and ref["kind"] == "isee_certificate"
        assert documents.client.objects[ref["object_key"]] == b"%PDF-1.7 ..."
        bad = await family.post(
            "/v1/programmes/p1/attachments",
            files={"file": ("x.exe", b"MZ", "application/octet-stream")},
            data={"kind": "other"},
        )
        assert bad.status_code == 422
    rpc.answer = lambda _s, _m, _k: {"attachments": [ref]}
    async with client(app, Role.ALLIANCE_MANAGER, alliance_ids=["all-1"]) as staff:
        response = await staff.get("/v1/applications/a1/attachments/0")
        assert response.status_code == 307 and response.headers["location"].endswith("?signed")
        assert (await staff.get("/v1/applications/a1/attachments/1")).status_code == 404
