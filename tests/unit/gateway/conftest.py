"""The gateway app with its dependencies replaced by fakes: no broker, no database.

Routes run for real (validation, dependencies, error handlers, OpenAPI); only what
they would send over RPC or store is faked, so a test sees exactly what reaches a
service and what the client gets back.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conciliare.contracts.enrolment_requests import EnrolmentRequested
from gateway.main import app as gateway_app
from gateway.receipts import Receipt
from gateway.request_keys import Reservation
from gateway.rpc import ServiceUnavailable
from gateway.security import ROLE_SCOPES, Principal, Role, issue_token
from gateway.settings import get_gateway_settings


class FakeRpc:
    """Records every call; answers with ``answer(service, method, kwargs)`` (default: an empty page)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.answer: Callable[[str, str, dict[str, Any]], Any] = lambda _s, _m, _k: {
            "items": [],
            "total": 0,
            "limit": 50,
            "offset": 0,
        }
        self.connected = True

    async def call(self, service: str, method: str, timeout: float | None = None, **kwargs: Any) -> Any:  # noqa: ASYNC109
        self.calls.append((service, method, kwargs))
        return self.answer(service, method, kwargs)

    async def ping_broker(self) -> None:
        if not self.connected:
            raise ConnectionError("down")


class FakeIdentity:
    async def ping(self) -> None:
        return None


class FakeDocuments:
    async def ping(self) -> None:
        return None


class FakeIntake:
    """Records what would be published; ``decide`` announces a decision to whoever waits."""

    def __init__(self) -> None:
        self.submitted: list[EnrolmentRequested] = []
        self.down = False
        self.watching: dict[str, list[asyncio.Future[None]]] = {}
        self.watched = asyncio.Event()

    async def submit(self, command: EnrolmentRequested) -> None:
        if self.down:
            raise ServiceUnavailable("enrolment", broker=True)
        self.submitted.append(command)

    @contextlib.contextmanager
    def watch(self, enrolment_id: str) -> Iterator["asyncio.Future[None]"]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.watching.setdefault(enrolment_id, []).append(future)
        self.watched.set()
        try:
            yield future
        finally:
            self.watching[enrolment_id].remove(future)

    def decide(self, enrolment_id: str) -> None:
        for future in self.watching.get(enrolment_id, []):
            future.set_result(None)


class FakeRequestKeys:
    """``RequestKeys`` in memory: reservations by caller and key."""

    def __init__(self) -> None:
        self.reservations: dict[str, Reservation] = {}
        self.released: list[str] = []

    async def reserve(
        self, owner: str, key: str, fingerprint: str, receipt: Receipt, expires_at: datetime
    ) -> Reservation | None:
        earlier = self.reservations.get(f"{owner}:{key}")
        if earlier is None:
            self.reservations[f"{owner}:{key}"] = Reservation(fingerprint, receipt.id)
        return earlier

    async def release(self, owner: str, key: str, receipt: Receipt) -> None:
        reservation = self.reservations.get(f"{owner}:{key}")
        if reservation is not None and reservation.receipt_id == receipt.id:
            del self.reservations[f"{owner}:{key}"]
            self.released.append(f"{owner}:{key}")


@pytest.fixture
def rpc() -> FakeRpc:
    return FakeRpc()


@pytest.fixture
def app(rpc: FakeRpc) -> FastAPI:
    gateway_app.state.rpc = rpc
    gateway_app.state.identity = FakeIdentity()
    gateway_app.state.documents = FakeDocuments()
    gateway_app.state.intake = FakeIntake()
    gateway_app.state.request_keys = FakeRequestKeys()
    return gateway_app


def token_for(role: Role, **extra: Any) -> str:
    principal = Principal(subject=f"user:test-{role.value}", role=role, scopes=ROLE_SCOPES[role], **extra)
    token, _ = issue_token(principal, get_gateway_settings())
    return token


@pytest.fixture
async def admin(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the platform admin, talking to the app in process."""
    headers = {"Authorization": f"Bearer {token_for(Role.PLATFORM_ADMIN)}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers
    ) as client:
        yield client


@pytest.fixture
async def operator(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A partner operator's client (attendance registers are theirs to read)."""
    headers = {"Authorization": f"Bearer {token_for(Role.PARTNER_OPERATOR, partner_id='p1')}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers
    ) as client:
        yield client


@pytest.fixture
async def family(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token_for(Role.FAMILY)}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers
    ) as client:
        yield client
