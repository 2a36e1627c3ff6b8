"""Enrolment requests sent the way the gateway sends them: a persistent, confirmed publish to the partitions.

The topology (consistent-hash exchange ``enrolment.requests``, eight durable queues
with ``x-single-active-consumer``) is declared exactly as the enrolment service
declares it (``services.enrolment.partitions``), so a request is kept even while no
enrolment instance is consuming. Decisions are read back through the service's own
``get_enrolment`` RPC, with the requesting family's viewer.
"""

import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from kombu.connection import Connection
from kombu.entity import Exchange
from kombu.messaging import Producer
from nameko.exceptions import RemoteError

from conciliare.contracts import enrolment_requests as topology
from conciliare.contracts.enrolment import EnrolmentCreate
from conciliare.contracts.enrolment_requests import EnrolmentRequested
from conciliare.contracts.identity import Viewer
from services.enrolment.partitions import partition_queues

DECISION_TIMEOUT_SECONDS: Final = 15.0
REQUESTED: Final = "requested"


def command(viewer: dict[str, Any], body: dict[str, Any], request_id: str | None = None) -> EnrolmentRequested:
    """A request as the gateway accepts it: a fresh id (32 hex digits) and a protocol number."""
    request_id = request_id or uuid.uuid4().hex
    now = datetime.now(UTC)
    return EnrolmentRequested(
        request_id=request_id,
        protocol=f"ISC-{now:%Y%m%d-%H%M%S}-{request_id[:8].upper()}",
        accepted_at=now,
        viewer=Viewer.model_validate(viewer),
        request=EnrolmentCreate.model_validate(body),
    )


class RequestPublisher:
    """Publishes ``EnrolmentRequested`` commands to the partition exchange, one broker confirm each."""

    def __init__(self, amqp_uri: str) -> None:
        self._connection = Connection(amqp_uri, transport_options={"confirm_publish": True})  # type: ignore[no-untyped-call]
        channel = self._connection.channel()  # type: ignore[no-untyped-call]
        for queue in partition_queues():
            queue(channel).declare()  # type: ignore[no-untyped-call]
        self._exchange = Exchange(topology.EXCHANGE, type=topology.EXCHANGE_TYPE, durable=True)  # type: ignore[no-untyped-call]
        self._producer = Producer(channel, exchange=self._exchange)  # type: ignore[no-untyped-call]

    def publish(self, *commands: EnrolmentRequested) -> None:
        """Publish each command, in the order given; returns once the broker confirmed every one."""
        for sent in commands:
            self._producer.publish(  # type: ignore[no-untyped-call]
                sent.model_dump_json(),
                routing_key=sent.request.offering_id,
                delivery_mode=2,
                content_type="application/json",
                content_encoding="utf-8",
                message_id=sent.request_id,
                mandatory=True,
            )

    def close(self) -> None:
        self._connection.release()  # type: ignore[no-untyped-call]


def decision(
    enrolment: Any, request_id: str, viewer: dict[str, Any], timeout: float = DECISION_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """The enrolment as soon as it is decided (status no longer ``requested``), read by RPC."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = dict(enrolment.get_enrolment(enrolment_id=request_id, viewer=viewer))
        except RemoteError as exc:
            if exc.exc_type != "NotFound":  # not stored yet: the service does not know it
                raise
        else:
            if found["status"] != REQUESTED:
                return found
        assert time.monotonic() < deadline, f"request {request_id} not decided within {timeout:.0f}s"
        time.sleep(0.1)


def decisions(
    enrolment: Any, request_ids: Iterable[str], viewer: dict[str, Any], timeout: float = DECISION_TIMEOUT_SECONDS
) -> list[dict[str, Any]]:
    """Each request's decision, in the order given (one overall deadline)."""
    deadline = time.monotonic() + timeout
    return [
        decision(enrolment, request_id, viewer, timeout=max(deadline - time.monotonic(), 0.5))
        for request_id in request_ids
    ]


def enrol(
    publisher: RequestPublisher,
    enrolment: Any,
    viewer: dict[str, Any],
    body: dict[str, Any],
    timeout: float = DECISION_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Send one request as the gateway would and wait for its decision."""
    sent = command(viewer, body)
    publisher.publish(sent)
    return decision(enrolment, sent.request_id, viewer, timeout)
