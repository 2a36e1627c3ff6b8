"""Enrolment requests on the bus: the command, and the queues that keep their order.

The gateway accepts a family's request by publishing ``EnrolmentRequested`` as a
persistent message to the ``enrolment.requests`` exchange, confirmed by the broker;
the enrolment service decides it later. The exchange is RabbitMQ's consistent-hash
exchange (plugin ``rabbitmq_consistent_hash_exchange``): the routing key is the
offering id, so every request of one offering lands in the same one of
``PARTITIONS`` queues, in the order the broker accepted them. Each queue has
``x-single-active-consumer``: whatever the number of enrolment instances, exactly
one of them decides an offering's requests at a time, strictly in queue order,
while other offerings are decided in parallel in other partitions. When the active
consumer dies its unacknowledged messages go back to the queue, in order, to the
next one.

Both sides declare the same topology (declarations are idempotent and must match),
so a request is routable, and kept, even while no enrolment instance is running.
"""

from datetime import datetime
from typing import Any, Final

from pydantic import Field

from conciliare.contracts.common import Contract, EntityId
from conciliare.contracts.enrolment import EnrolmentCreate
from conciliare.contracts.identity import Viewer

EXCHANGE: Final = "enrolment.requests"
EXCHANGE_TYPE: Final = "x-consistent-hash"
PARTITIONS: Final = 8
# Every partition gets the same share of the hash ring.
BINDING_WEIGHT: Final = "1"
QUEUE_ARGUMENTS: Final[dict[str, Any]] = {"x-single-active-consumer": True}
SCHEMA_VERSION: Final = 1


def partition_queue(index: int) -> str:
    """The name of partition ``index``'s queue (0 <= index < PARTITIONS)."""
    if not 0 <= index < PARTITIONS:
        raise ValueError(f"partition {index} outside 0..{PARTITIONS - 1}")
    return f"{EXCHANGE}.{index}"


PARTITION_QUEUES: Final = tuple(partition_queue(i) for i in range(PARTITIONS))


class EnrolmentRequested(Contract):
    """A family's enrolment request, as accepted by the gateway (a command, not an event).

    ``request_id`` becomes the enrolment's id: the service decides each id at most
    once, so a redelivered or re-sent message changes nothing. ``accepted_at`` is when
    the gateway accepted it; ``protocol`` the receipt number the family was given.
    """

    schema_version: int = SCHEMA_VERSION
    request_id: EntityId
    protocol: str = Field(min_length=1, max_length=64)
    accepted_at: datetime
    viewer: Viewer
    request: EnrolmentCreate
