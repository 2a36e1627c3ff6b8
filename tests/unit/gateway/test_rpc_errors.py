"""The RPC client's failures, and what the HTTP client sees for each.

The transport is faked at the seam the client publishes through (the exchange) so
each failure of the broker can be produced exactly; the e2e broker-outage test
does the same against a real RabbitMQ.
"""

import asyncio
import json
from typing import Any

import httpx
import pytest
from aio_pika.exceptions import DeliveryError
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError, ConnectionClosed
from pymongo.errors import ServerSelectionTimeoutError

from conciliare.errors import Conflict, Forbidden, NotFound, Unavailable, ValidationFailed
from gateway import rpc as rpc_module
from gateway.rpc import RemoteFailure, RpcClient, RpcTimeout, ServiceUnavailable, _rebuild_error
from tests.unit.gateway.conftest import FakeRpc


class FakeMessage:
    def __init__(self, correlation_id: str, body: dict[str, Any]) -> None:
        self.correlation_id = correlation_id
        self.body = json.dumps(body).encode()
        self.routing_key = "partners.get_partner"


class FakeExchange:
    """Publishes by running ``behaviour`` for each attempt: raise, reply, or stay silent."""

    def __init__(self, client: RpcClient, *behaviours: Any) -> None:
        self.client = client
        self.behaviours = list(behaviours)
        self.published: list[str] = []

    async def publish(self, message: Any, routing_key: str, mandatory: bool = True) -> None:
        self.published.append(routing_key)
        behaviour = self.behaviours.pop(0) if self.behaviours else "silent"
        if isinstance(behaviour, BaseException):
            raise behaviour
        if isinstance(behaviour, dict):
            reply = FakeMessage(message.correlation_id, behaviour)
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.client._on_reply(reply)))  # type: ignore[arg-type]


def connected_client(*behaviours: Any, timeout: float = 0.3) -> tuple[RpcClient, FakeExchange]:
    client = RpcClient("amqp://unused/", timeout=timeout)
    exchange = FakeExchange(client, *behaviours)
    client._exchange = exchange  # type: ignore[assignment]
    client._usable.set()
    return client, exchange


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc_module, "BROKER_GRACE_SECONDS", 0.2)


async def test_a_reply_is_the_result() -> None:
    client, _ = connected_client({"result": {"id": "p1"}, "error": None})
    assert await client.call("partners", "get_partner", partner_id="p1") == {"id": "p1"}


@pytest.mark.parametrize(
    ("exc_type", "expected"),
    [
        ("NotFound", NotFound),
        ("Conflict", Conflict),
        ("ValidationFailed", ValidationFailed),
        ("Forbidden", Forbidden),
        ("Unavailable", Unavailable),
    ],
)
async def test_domain_errors_come_back_as_their_class(exc_type: str, expected: type[Exception]) -> None:
    error = {"exc_type": exc_type, "exc_args": ["Non c'è.", [{"field": "id", "message": "sconosciuto"}]]}
    client, _ = connected_client({"result": None, "error": error})
    with pytest.raises(expected) as raised:
        await client.call("partners", "get_partner", partner_id="p1")
    assert raised.value.detail == "Non c'è."  # type: ignore[attr-defined]
    assert raised.value.errors == [{"field": "id", "message": "sconosciuto"}]  # type: ignore[attr-defined]


def test_an_unknown_remote_error_is_a_remote_failure_without_its_details() -> None:
    error = _rebuild_error("partners", "list", {"exc_type": "OverflowError", "exc_args": ["secret internals"]})
    assert isinstance(error, RemoteFailure) and "secret" not in str(error)


async def test_never_connected_is_broker_unavailable_after_the_grace() -> None:
    client = RpcClient("amqp://unused/", timeout=1.0)
    with pytest.raises(ServiceUnavailable) as raised:
        await asyncio.wait_for(client.call("partners", "ping"), 2)
    assert raised.value.broker and raised.value.service == "partners"
    assert "RabbitMQ" in raised.value.detail and "partners" in raised.value.detail


@pytest.mark.parametrize(
    "failure",
    [
        AMQPConnectionError("refused"),
        ConnectionClosed(320, "CONNECTION_FORCED"),
        ConnectionRefusedError(111, "ECONNREFUSED"),
        RuntimeError("Connection was not opened"),
    ],
)
async def test_a_failed_publish_is_broker_unavailable(failure: Exception) -> None:
    client, _ = connected_client(failure)
    with pytest.raises(ServiceUnavailable) as raised:
        await client.call("partners", "register_partner", payload={})
    assert raised.value.broker


async def test_a_channel_being_restored_is_retried_once_then_answers() -> None:
    client, exchange = connected_client(ChannelInvalidStateError("closed"), {"result": "pong", "error": None})
    assert await client.call("partners", "ping") == "pong"
    assert len(exchange.published) == 2


async def test_a_channel_that_stays_closed_is_broker_unavailable() -> None:
    client, _ = connected_client(ChannelInvalidStateError("closed"), ChannelInvalidStateError("closed"))
    with pytest.raises(ServiceUnavailable) as raised:
        await client.call("partners", "ping")
    assert raised.value.broker


async def test_an_unroutable_request_is_service_unavailable() -> None:
    client, _ = connected_client(DeliveryError(None, None))  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailable) as raised:
        await client.call("vouchers", "ping")
    assert not raised.value.broker and "vouchers" in raised.value.detail


async def test_calls_waiting_when_the_connection_drops_fail_at_once() -> None:
    client, _ = connected_client("silent", timeout=30)
    call = asyncio.ensure_future(client.call("partners", "register_partner", payload={}))
    await asyncio.sleep(0.05)
    client._on_connection_lost(None, ConnectionResetError())
    with pytest.raises(ServiceUnavailable) as raised:
        await asyncio.wait_for(call, 1)
    assert raised.value.broker
    assert not client.connected


async def test_the_client_is_usable_again_once_its_channel_is_restored() -> None:
    client, _ = connected_client({"result": "pong", "error": None})
    client._on_channel_closed(None, None)
    assert not client.connected
    call = asyncio.ensure_future(client.call("partners", "ping"))
    await asyncio.sleep(0.05)
    client._on_channel_restored(None)
    assert await asyncio.wait_for(call, 1) == "pong"


async def test_no_answer_in_time_is_a_timeout_when_the_service_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = connected_client("silent", timeout=0.1)

    async def listening(_service: str) -> bool:
        return True

    monkeypatch.setattr(client, "_has_consumers", listening)
    with pytest.raises(RpcTimeout):
        await client.call("partners", "slow")


async def test_no_answer_in_time_is_unavailable_when_nobody_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = connected_client("silent", timeout=0.1)

    async def nobody(_service: str) -> bool:
        return False

    monkeypatch.setattr(client, "_has_consumers", nobody)
    with pytest.raises(ServiceUnavailable) as raised:
        await client.call("partners", "slow")
    assert not raised.value.broker


# --- what the HTTP client sees ------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "words"),
    [
        (ServiceUnavailable("partners", broker=True), 503, ["RabbitMQ", "partners"]),
        (ServiceUnavailable("partners"), 503, ["partners"]),
        (Unavailable("Il servizio partner non risponde."), 503, ["partner"]),
        (RpcTimeout("partners", "list_alliances"), 504, ["partners"]),
        (ServerSelectionTimeoutError("no server"), 503, ["MongoDB"]),
    ],
)
async def test_a_dependency_away_is_503_or_504_with_retry_after(
    admin: httpx.AsyncClient, rpc: FakeRpc, failure: Exception, status: int, words: list[str]
) -> None:
    def fail(_service: str, _method: str, _kwargs: dict[str, Any]) -> Any:
        raise failure

    rpc.answer = fail
    response = await admin.get("/v1/alliances")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert body["status"] == status
    for word in words:
        assert word in body["detail"]


async def test_an_unexpected_service_failure_is_500_without_internals(admin: httpx.AsyncClient, rpc: FakeRpc) -> None:
    def fail(_service: str, _method: str, _kwargs: dict[str, Any]) -> Any:
        raise RemoteFailure("partners", "list_alliances", "OverflowError")

    rpc.answer = fail
    response = await admin.get("/v1/alliances")
    assert response.status_code == 500
    assert "OverflowError" not in response.text and "Traceback" not in response.text


async def test_readiness_names_the_broker_when_it_is_away(admin: httpx.AsyncClient, rpc: FakeRpc) -> None:
    rpc.connected = False
    rpc.answer = lambda _s, _m, _k: "pong"
    response = await admin.get("/v1/ready")
    assert response.status_code == 503
    assert response.json()["down"] == ["rabbitmq"]
    assert response.headers["Retry-After"]
    rpc.connected = True
    assert (await admin.get("/v1/ready")).status_code == 200
