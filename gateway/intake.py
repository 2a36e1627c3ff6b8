"""Accepting enrolment requests: a confirmed, persistent publish; and waiting for their decision.

``submit`` publishes ``EnrolmentRequested`` to the partition exchange on a channel
with publisher confirms: it returns only once the broker has the message in a
durable queue (written to disk for a persistent message), so a 202 is never a
false promise. The gateway declares the exchange and the partition queues itself,
exactly as the enrolment service does, so a request is kept even while no
enrolment instance runs. A broker that is away, refuses the message (nack) or
cannot route it makes ``submit`` raise ``ServiceUnavailable`` (503 with
Retry-After): nothing was accepted.

``watch`` serves ``Prefer: wait``: the gateway listens to the enrolment service's
decision events on a queue of its own and wakes the requests waiting for them.
The channel, the declarations and that consumer live on the RPC client's robust
connection, so they come back by themselves after the broker does.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any, Final, cast

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel
from aiormq import spec
from aiormq.channel import Channel as AmqpChannel
from aiormq.exceptions import DeliveryError, PublishError
from opentelemetry import propagate

from conciliare.contracts import enrolment_requests as topology
from conciliare.contracts.enrolment_requests import EnrolmentRequested
from gateway.rpc import TRANSPORT_ERRORS, RpcClient, ServiceUnavailable

log = logging.getLogger(__name__)

PERSISTENT: Final = 2  # AMQP delivery mode: written to disk before the broker confirms

SERVICE: Final = "enrolment"
# nameko's events exchange of the enrolment service, and the decisions a request waits for.
EVENTS_EXCHANGE: Final = f"{SERVICE}.events"
DECISION_EVENTS: Final = ("enrolment.confirmed", "enrolment.waitlisted", "enrolment.refused")
# Bound of one publish with its confirm: past it the request is answered 503. Generous:
# in a burst the confirm may wait behind thousands of requests in this process, and a
# 503 for a request the broker did take would tell a family it failed when it did not.
CONFIRM_TIMEOUT_SECONDS: Final = 20.0


class EnrolmentIntake:
    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc
        self._channel: AbstractRobustChannel | None = None
        self._opening = asyncio.Lock()
        self._watchers: dict[str, set[asyncio.Future[None]]] = {}
        self._decisions_queue = f"gateway-decisions-{uuid.uuid4().hex}"

    async def submit(self, command: EnrolmentRequested) -> None:
        """Publish the request and return once the broker confirmed it (or raise ``ServiceUnavailable``)."""
        channel = await self._ready()
        headers: dict[str, Any] = {}
        # The request's own span (the gateway's server span) travels with it: one span per
        # accepted request is part of what keeps acceptance cheap on a click day.
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        # Where nameko's instrumentation looks for the trace context of a consumed message.
        headers.update({f"nameko.{key}": value for key, value in carrier.items()})
        properties = spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            message_id=command.request_id,
            headers=headers,
        )
        try:
            answer = await channel.basic_publish(
                command.model_dump_json().encode(),
                exchange=topology.EXCHANGE,
                routing_key=command.request.offering_id,
                properties=properties,
                mandatory=True,
                timeout=CONFIRM_TIMEOUT_SECONDS,
                # Queued for the connection's writer, not awaited: aio-pika's publish waits
                # for each frame to be written while holding the channel's lock, so a
                # burst's publishes would go out one event-loop turn each. The confirm
                # below is still awaited.
                wait=False,
            )
        except (DeliveryError, PublishError) as exc:  # returned unroutable, or nacked
            log.warning("enrolment request %s not accepted by the broker: %s", command.request_id, exc)
            raise ServiceUnavailable(SERVICE) from None
        except (TimeoutError, *TRANSPORT_ERRORS) as exc:
            log.warning("enrolment request %s: %s", command.request_id, type(exc).__name__)
            raise ServiceUnavailable(SERVICE, broker=True) from None
        if not isinstance(answer, spec.Basic.Ack):  # a nack: the broker did not take it
            log.warning("enrolment request %s refused by the broker: %r", command.request_id, answer)
            raise ServiceUnavailable(SERVICE)

    @contextlib.contextmanager
    def watch(self, enrolment_id: str) -> Iterator["asyncio.Future[None]"]:
        """A future that completes when a decision about ``enrolment_id`` is announced."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(enrolment_id, set()).add(future)
        try:
            yield future
        finally:
            waiting = self._watchers.get(enrolment_id)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._watchers[enrolment_id]

    async def start_listening(self) -> None:
        """Open the channel now if the broker is there (otherwise on the first request)."""
        with contextlib.suppress(ServiceUnavailable):
            await self._ready()

    async def _ready(self) -> AmqpChannel:
        """The underlying AMQP channel (with confirms), opening it and the topology if needed."""
        try:
            if self._channel is None or self._channel.is_closed:
                async with self._opening:
                    if self._channel is None or self._channel.is_closed:
                        connection = await self._rpc.usable_connection(SERVICE)
                        self._channel = await self._open(connection)
            return cast(AmqpChannel, await self._channel.get_underlay_channel())
        except TRANSPORT_ERRORS as exc:  # being restored after the broker came back: not yet
            log.warning("enrolment intake channel not usable: %s: %s", type(exc).__name__, exc)
            raise ServiceUnavailable(SERVICE, broker=True) from None

    async def _open(self, connection: Any) -> AbstractRobustChannel:
        # A message no queue takes comes back: the publish then fails (a 503), never a false 202.
        channel: AbstractRobustChannel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(topology.EXCHANGE, topology.EXCHANGE_TYPE, durable=True)
        for name in topology.PARTITION_QUEUES:
            queue = await channel.declare_queue(name, durable=True, arguments=dict(topology.QUEUE_ARGUMENTS))
            await queue.bind(exchange, routing_key=topology.BINDING_WEIGHT)
        events = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        decisions = await channel.declare_queue(self._decisions_queue, exclusive=True, auto_delete=True)
        for key in DECISION_EVENTS:
            await decisions.bind(events, routing_key=key)
        await decisions.consume(self._on_decision, no_ack=True)
        return channel

    async def _on_decision(self, message: AbstractIncomingMessage) -> None:
        try:
            enrolment_id = str(json.loads(message.body)["enrolment_id"])
        except (ValueError, KeyError, TypeError):
            return
        for future in self._watchers.get(enrolment_id, ()):
            if not future.done():
                future.set_result(None)
