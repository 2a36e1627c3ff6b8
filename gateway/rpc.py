"""Asyncio RPC client that speaks nameko's AMQP RPC protocol.

One connection and one reply queue per gateway process; any number of concurrent
requests share them, each waiting on a future keyed by correlation id. The trace
context rides in ``nameko.*`` headers, exactly where nameko's OpenTelemetry
instrumentation looks for it, so gateway and service spans form one trace.

The broker may go away and come back at any time. The connection is aio-pika's
robust one: after the broker returns it reconnects by itself (every
``RECONNECT_INTERVAL`` seconds) and restores the channel, the exchange, the reply
queue, its binding and its consumer. Meanwhile a call waits up to
``BROKER_GRACE_SECONDS`` for the channel to be restored and otherwise fails with
:class:`ServiceUnavailable` (HTTP 503 with ``Retry-After``), never with the
transport's own exception (which would be a 500). Calls waiting for a reply when
the connection drops fail at once: their reply queue died with the connection.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, Final

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import DeliveryError
from aiormq.exceptions import ChannelInvalidStateError
from opentelemetry import propagate, trace

from conciliare.errors import DOMAIN_ERRORS

log = logging.getLogger(__name__)
tracer = trace.get_tracer("conciliare.gateway.rpc")

RPC_EXCHANGE: Final = "nameko-rpc"
BROKER: Final = "RabbitMQ"
# How long a call waits for a connection being restored before answering 503.
BROKER_GRACE_SECONDS: Final = 2.0
# How often the robust connection retries while the broker is away (aio-pika's default is 5 s).
RECONNECT_INTERVAL: Final = 1.0
# Bound of every broker operation done outside a call (probes, the first connection).
PROBE_TIMEOUT_SECONDS: Final = 2.0
# Exceptions that mean "the broker or the channel is not usable now" (aio-pika's own list:
# AMQPError, ConnectionError, OSError, RuntimeError, ...; ChannelInvalidStateError is a RuntimeError).
TRANSPORT_ERRORS: Final = aio_pika.exceptions.CONNECTION_EXCEPTIONS


class RpcError(Exception):
    """Base of the failures of the transport (not of the domain)."""


class ServiceUnavailable(RpcError):
    """No answer can come now: no instance of the service listens, or the broker is away.

    ``broker`` tells which: the Italian ``detail`` names what is unavailable.
    """

    def __init__(self, service: str, *, broker: bool = False) -> None:
        super().__init__(f"{service} (broker unavailable)" if broker else service)
        self.service = service
        self.broker = broker

    @property
    def detail(self) -> str:
        if self.broker:
            return (
                f"Il sistema di messaggistica ({BROKER}) non è raggiungibile, quindi il servizio "
                f"'{self.service}' non può rispondere. Riprova tra poco."
            )
        return f"Il servizio '{self.service}' non è raggiungibile: nessuna istanza è attiva. Riprova tra poco."


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
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._reply_queue_name = f"rpc.reply-gateway-{uuid.uuid4().hex}"
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._usable = asyncio.Event()
        self._opener: asyncio.Task[None] | None = None
        self._closing = False

    # --- connection lifecycle ------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether calls can be published now: connected, channel, reply queue and consumer restored."""
        return self._usable.is_set()

    async def connect(self) -> None:
        """Connect now or raise: the broker must answer (used by tests and tools)."""
        await self._open()

    async def start(self, wait: float) -> bool:
        """Connect in the background, waiting up to ``wait`` seconds; True once connected.

        A gateway started while the broker is away still starts: it answers 503 until
        the broker is reachable, and connects by itself as soon as it is.
        """
        if self._opener is None:
            self._opener = asyncio.create_task(self._keep_opening(), name="rpc-connect")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._usable.wait(), wait)
        return self.connected

    async def _keep_opening(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                await self._open()
                return
            except TRANSPORT_ERRORS as exc:
                log.warning("broker not reachable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await self._discard()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _open(self) -> None:
        connection = await aio_pika.connect_robust(
            self.amqp_uri,
            reconnect_interval=RECONNECT_INTERVAL,
            client_properties={"connection_name": "conciliare-gateway"},
        )
        self._connection = connection
        connection.close_callbacks.add(self._on_connection_lost)
        # Mandatory publishing without publisher confirms: a request no queue is
        # bound for comes back as basic.return and fails its caller at once with
        # "service unavailable"; confirms would add a broker round trip per call.
        channel = await connection.channel(publisher_confirms=False)
        channel.return_callbacks.add(self._on_returned)
        exchange = await channel.declare_exchange(RPC_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        # A robust queue is declared, bound and consumed again each time its channel
        # is restored (exclusive: the broker deletes it with the connection that owned it).
        queue = await channel.declare_queue(self._reply_queue_name, exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=self._reply_queue_name)
        await queue.consume(self._on_reply, no_ack=True)
        # Usable again only once the channel is restored with its queue, binding and
        # consumer: publishing earlier would send requests whose replies have nowhere to go.
        channel.close_callbacks.add(self._on_channel_closed)
        channel.reopen_callbacks.add(self._on_channel_restored)
        self._channel, self._exchange = channel, exchange
        self._usable.set()
        log.info("connected to the broker; reply queue %s", self._reply_queue_name)

    async def _discard(self) -> None:
        self._usable.clear()
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def close(self) -> None:
        self._closing = True
        if self._opener is not None and not self._opener.done():
            self._opener.cancel()
            with contextlib.suppress(BaseException):
                await self._opener
        for future in self._pending.values():
            future.cancel()
        await self._discard()

    def _on_connection_lost(self, _connection: Any, exc: BaseException | None = None) -> None:
        was_usable = self._usable.is_set()
        self._usable.clear()
        if self._closing:
            return
        if was_usable or self._pending:  # not again for every failed reconnection attempt
            log.warning("connection to the broker lost (%s); %d calls waiting fail", exc, len(self._pending))
        # The exclusive reply queue went with the connection: no reply can arrive any more.
        for correlation_id, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(_ReplyLost(correlation_id))

    def _on_channel_closed(self, _channel: Any, _exc: BaseException | None = None) -> None:
        # Replies already on their way wait in the reply queue (it lives as long as
        # the connection) and are delivered once the consumer is restored.
        self._usable.clear()

    def _on_channel_restored(self, _channel: Any) -> None:
        if not self._closing:
            log.info("channel to the broker restored (reply queue and consumer included)")
            self._usable.set()

    async def _ready_exchange(self, service: str) -> AbstractExchange:
        """The exchange once the channel is usable, waiting a little for a reconnection."""
        if not self._usable.is_set():
            try:
                await asyncio.wait_for(self._usable.wait(), BROKER_GRACE_SECONDS)
            except TimeoutError:
                raise ServiceUnavailable(service, broker=True) from None
        exchange = self._exchange
        if exchange is None:
            raise ServiceUnavailable(service, broker=True)
        return exchange

    async def usable_connection(self, service: str) -> AbstractRobustConnection:
        """The connection once usable (waiting a little for a reconnection), for other channels."""
        await self._ready_exchange(service)
        connection = self._connection
        if connection is None:
            raise ServiceUnavailable(service, broker=True)
        return connection

    async def ping_broker(self) -> None:
        """Raise unless calls can be published now (for ``/v1/ready``)."""
        if not self.connected:
            raise ConnectionError(f"{BROKER} not connected")

    # --- messages -------------------------------------------------------------------

    def _on_returned(self, _channel: Any, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is not None and not future.done():
            future.set_exception(ServiceUnavailable(message.routing_key.split(".")[0] if message.routing_key else "?"))

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            try:
                future.set_result(json.loads(message.body))
            except ValueError as exc:
                future.set_exception(exc)

    async def call(self, service: str, method: str, timeout: float | None = None, **kwargs: Any) -> Any:  # noqa: ASYNC109
        """Call ``service.method(**kwargs)`` and return its result or raise its error.

        Raises :class:`ServiceUnavailable` when no answer can come (broker away, no
        instance of the service), :class:`RpcTimeout` when the service took too long,
        the service's domain error, or :class:`RemoteFailure` for anything else.
        """
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
            body = json.dumps({"args": [], "kwargs": kwargs}).encode()
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[correlation_id] = future
            try:
                await self._publish(service, method, body, correlation_id, headers, wait)
                reply = await asyncio.wait_for(future, wait)
            except (DeliveryError, ServiceUnavailable) as exc:
                broker = isinstance(exc, ServiceUnavailable) and exc.broker
                raise ServiceUnavailable(service, broker=broker) from None
            except _ReplyLost:
                raise ServiceUnavailable(service, broker=True) from None
            except TimeoutError:
                if not await self._has_consumers(service):
                    raise ServiceUnavailable(service, broker=not self.connected) from None
                raise RpcTimeout(service, method) from None
            finally:
                self._pending.pop(correlation_id, None)
        error = reply.get("error")
        if error:
            raise _rebuild_error(service, method, error)
        return reply.get("result")

    async def _publish(
        self, service: str, method: str, body: bytes, correlation_id: str, headers: dict[str, Any], wait: float
    ) -> None:
        for attempt in (1, 2):
            exchange = await self._ready_exchange(service)
            message = aio_pika.Message(
                body=body,
                content_type="application/json",
                correlation_id=correlation_id,
                reply_to=self._reply_queue_name,
                headers=headers,
                # A request nobody picked up in time must not run later, after
                # the caller has been told it timed out.
                expiration=wait,
            )
            try:
                await exchange.publish(message, routing_key=f"{service}.{method}", mandatory=True)
                return
            except ChannelInvalidStateError:
                # Refused before anything was written: the channel is being restored.
                # Safe to send again once it is (no duplicate is possible).
                if attempt == 2:
                    raise ServiceUnavailable(service, broker=True) from None
            except DeliveryError:
                raise
            except TRANSPORT_ERRORS as exc:
                log.warning("publishing %s.%s failed: %s: %s", service, method, type(exc).__name__, exc)
                raise ServiceUnavailable(service, broker=True) from None

    async def _has_consumers(self, service: str) -> bool:
        """Whether any instance of ``service`` is listening (its queue outlives it)."""
        connection = self._connection
        if connection is None or not self.connected:
            return False

        async def consumers() -> bool:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(f"rpc-{service}", passive=True)
                return bool(queue.declaration_result.consumer_count)
            finally:
                if not channel.is_closed:
                    await channel.close()

        try:
            return await asyncio.wait_for(consumers(), PROBE_TIMEOUT_SECONDS)
        except Exception:  # the queue does not exist (the service never started), or the broker is away
            return False


class _ReplyLost(Exception):
    """The connection carrying the reply queue dropped while the call waited."""


def _rebuild_error(service: str, method: str, error: dict[str, Any]) -> Exception:
    exc_type = str(error.get("exc_type", "RemoteError"))
    domain_error = DOMAIN_ERRORS.get(exc_type)
    if domain_error is not None:
        return domain_error.from_rpc(list(error.get("exc_args") or []))
    log.error("unexpected error from %s.%s: %s", service, method, exc_type)
    return RemoteFailure(service, method, exc_type)
