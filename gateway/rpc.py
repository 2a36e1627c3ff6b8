"""Asyncio RPC client that speaks nameko's AMQP RPC protocol.

One connection and one reply queue per gateway process; any number of concurrent
requests share them, each waiting on a future keyed by correlation id. The trace
context rides in ``nameko.*`` headers, exactly where nameko's OpenTelemetry
instrumentation looks for it, so gateway and service spans form one trace.
"""

import asyncio
import json
import logging
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import DeliveryError
from opentelemetry import propagate, trace

from conciliare.errors import DOMAIN_ERRORS

log = logging.getLogger(__name__)
tracer = trace.get_tracer("conciliare.gateway.rpc")

RPC_EXCHANGE = "nameko-rpc"


class RpcError(Exception):
    """Base of the failures of the transport (not of the domain)."""


class ServiceUnavailable(RpcError):
    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


class RpcTimeout(RpcError):
    def __init__(self, service: str, method: str) -> None:
        super().__init__(f"{service}.{method}")
        self.service = service
        self.method = method


class RemoteFailure(RpcError):
    """The service failed unexpectedly; details stay in its logs and trace."""

    def __init__(self, service: str, method: str, exc_type: str) -> None:
        super().__init__(f"{service}.{method} raised {exc_type}")
        self.exc_type = exc_type


class RpcClient:
    def __init__(self, amqp_uri: str, timeout: float) -> None:
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._reply_queue_name = f"rpc.reply-gateway-{uuid.uuid4().hex}"
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self.amqp_uri)
        # Mandatory publishing without publisher confirms: a request no queue is
        # bound for comes back as basic.return and fails its caller at once with
        # "service unavailable"; confirms would add a broker round trip per call.
        self._channel = await self._connection.channel(publisher_confirms=False)
        self._channel.return_callbacks.add(self._on_returned)
        self._exchange = await self._channel.declare_exchange(RPC_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await self._channel.declare_queue(self._reply_queue_name, exclusive=True, auto_delete=True)
        await queue.bind(self._exchange, routing_key=self._reply_queue_name)
        await queue.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    def _on_returned(self, _channel: Any, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is not None and not future.done():
            future.set_exception(ServiceUnavailable(message.routing_key.split(".")[0] if message.routing_key else "?"))

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(json.loads(message.body))

    async def call(self, service: str, method: str, timeout: float | None = None, **kwargs: Any) -> Any:  # noqa: ASYNC109
        """Call ``service.method(**kwargs)`` and return its result or raise its error."""
        if self._exchange is None:
            raise ServiceUnavailable(service)
        wait = timeout or self.timeout
        correlation_id = uuid.uuid4().hex
        with tracer.start_as_current_span(
            f"RPC to {service}.{method}",
            kind=trace.SpanKind.CLIENT,
            attributes={"rpc.system": "nameko", "rpc.service": service, "rpc.method": method},
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            headers: dict[str, Any] = {f"nameko.{key}": value for key, value in carrier.items()}
            headers["nameko.call_id_stack"] = [f"gateway.{method}.{correlation_id}"]
            message = aio_pika.Message(
                body=json.dumps({"args": [], "kwargs": kwargs}).encode(),
                content_type="application/json",
                correlation_id=correlation_id,
                reply_to=self._reply_queue_name,
                headers=headers,
                # A request nobody picked up in time must not run later, after
                # the caller has been told it timed out.
                expiration=wait,
            )
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[correlation_id] = future
            try:
                await self._exchange.publish(message, routing_key=f"{service}.{method}", mandatory=True)
                reply = await asyncio.wait_for(future, wait)
            except (DeliveryError, ServiceUnavailable):
                raise ServiceUnavailable(service) from None
            except TimeoutError:
                if not await self._has_consumers(service):
                    raise ServiceUnavailable(service) from None
                raise RpcTimeout(service, method) from None
            finally:
                self._pending.pop(correlation_id, None)
        error = reply.get("error")
        if error:
            raise _rebuild_error(service, method, error)
        return reply.get("result")

    async def _has_consumers(self, service: str) -> bool:
        """Whether any instance of ``service`` is listening (its queue outlives it)."""
        if self._connection is None:
            return False
        try:
            channel = await self._connection.channel()
            try:
                queue = await channel.declare_queue(f"rpc-{service}", passive=True)
                return bool(queue.declaration_result.consumer_count)
            finally:
                if not channel.is_closed:
                    await channel.close()
        except Exception:  # the queue does not exist: the service never started
            return False


def _rebuild_error(service: str, method: str, error: dict[str, Any]) -> Exception:
    exc_type = str(error.get("exc_type", "RemoteError"))
    domain_error = DOMAIN_ERRORS.get(exc_type)
    if domain_error is not None:
        return domain_error.from_rpc(list(error.get("exc_args") or []))
    log.error("unexpected error from %s.%s: %s", service, method, exc_type)
    return RemoteFailure(service, method, exc_type)
