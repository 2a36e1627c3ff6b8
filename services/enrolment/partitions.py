"""The partition queues of enrolment requests, as kombu declares them for this service's consumers.

Names and arguments come from the contract (``conciliare.contracts.enrolment_requests``),
which the gateway declares identically.
"""

from typing import Final

from kombu.entity import Exchange, Queue

from conciliare.contracts import enrolment_requests as topology

# Requests one worker decides in one go (and the prefetch of each partition's consumer):
# a burst costs one write of the offering's seats per batch instead of per request.
REQUEST_BATCH: Final = 200


def partition_queues() -> list[Queue]:
    exchange = Exchange(topology.EXCHANGE, type=topology.EXCHANGE_TYPE, durable=True)  # type: ignore[no-untyped-call]
    return [
        Queue(  # type: ignore[no-untyped-call]
            name,
            exchange=exchange,
            routing_key=topology.BINDING_WEIGHT,
            durable=True,
            queue_arguments=dict(topology.QUEUE_ARGUMENTS),
        )
        for name in topology.PARTITION_QUEUES
    ]
