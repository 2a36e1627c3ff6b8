"""``@consume_in_order`` (conciliare.chassis.batches) on the real broker: order kept, failures retried, acks after."""

from collections.abc import Iterator
from typing import Any, ClassVar

import eventlet
import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer

from conciliare.chassis.batches import consume_in_order

pytestmark = pytest.mark.integration

EXCHANGE = Exchange("ordered.test", type="direct", durable=True)  # type: ignore[no-untyped-call]
QUEUE = Queue("ordered.test", exchange=EXCHANGE, routing_key="ordered.test", durable=True)  # type: ignore[no-untyped-call]
MAX_BATCH = 5


class Flaky(Exception):
    """The worker's one failure."""


class OrderedConsumer:
    """Records every batch it is handed; the first one fails."""

    name = "ordered_consumer"
    handed: ClassVar[list[list[int]]] = []
    done: ClassVar[list[int]] = []

    @consume_in_order(QUEUE, max_batch=MAX_BATCH)  # type: ignore[untyped-decorator]
    def take(self, messages: list[dict[str, Any]]) -> None:
        numbers = [int(m["n"]) for m in messages]
        OrderedConsumer.handed.append(numbers)
        eventlet.sleep(0.05)  # while this batch is handled, more messages arrive
        if len(OrderedConsumer.handed) == 1:
            raise Flaky(numbers)
        OrderedConsumer.done.extend(numbers)


@pytest.fixture
def broker(rabbit_uri: str) -> Iterator[Connection]:
    with Connection(rabbit_uri, transport_options={"confirm_publish": True}) as connection:  # type: ignore[no-untyped-call]
        QUEUE(connection.channel()).declare()  # type: ignore[no-untyped-call]
        yield connection


def send(producer: Producer, n: int) -> None:
    producer.publish({"n": n}, routing_key="ordered.test", serializer="json", delivery_mode=2)  # type: ignore[no-untyped-call]


def ready_and_unacked(connection: Connection) -> int:
    """Messages in the queue (ready ones; unacknowledged ones are back once their channel closed)."""
    _, count, _ = QUEUE(connection.channel()).queue_declare(passive=True)  # type: ignore[no-untyped-call]
    return int(count)


def wait_for_done(count: int, timeout: float = 30) -> None:
    with eventlet.Timeout(timeout, AssertionError(f"only {len(OrderedConsumer.done)} of {count} handled")):
        while len(OrderedConsumer.done) < count:
            eventlet.sleep(0.05)


def test_batches_come_in_queue_order_a_failed_one_again_and_acks_after_success(
    container_factory: Any, config: dict[str, Any], broker: Connection
) -> None:
    OrderedConsumer.handed, OrderedConsumer.done = [], []
    producer = Producer(broker.channel(), exchange=EXCHANGE)  # type: ignore[no-untyped-call]
    numbers = list(range(40))
    for n in numbers[:20]:  # waiting before the consumer starts
        send(producer, n)
    container = container_factory(OrderedConsumer, config)
    container.start()
    for n in numbers[20:]:  # and arriving while it works
        send(producer, n)

    wait_for_done(len(numbers))
    handed = OrderedConsumer.handed
    # In order, none lost, none twice once succeeded.
    assert OrderedConsumer.done == numbers
    failed, retried = handed[0], handed[1]
    # The failed batch is handed again, first and in the same order (with what came meanwhile).
    assert retried[: len(failed)] == failed
    assert [n for batch in handed[1:] for n in batch] == numbers
    # Never more than the prefetch count at once, and more than one at a time when waiting.
    assert all(1 <= len(batch) <= MAX_BATCH for batch in handed)
    assert any(len(batch) > 1 for batch in handed)

    # Acknowledged after success: once the consumer is gone, nothing comes back to the queue.
    container.stop()
    assert ready_and_unacked(broker) == 0


def test_messages_of_a_batch_that_never_succeeds_stay_in_the_queue(
    container_factory: Any, config: dict[str, Any], broker: Connection
) -> None:
    OrderedConsumer.handed, OrderedConsumer.done = [], []
    producer = Producer(broker.channel(), exchange=EXCHANGE)  # type: ignore[no-untyped-call]
    for n in range(3):
        send(producer, n)
    container = container_factory(OrderedConsumer, config)
    container.start()
    with eventlet.Timeout(15, AssertionError("no batch handed")):
        while not OrderedConsumer.handed:
            eventlet.sleep(0.05)
    # The first batch failed; the consumer dies before the retry (1 s later) succeeds.
    container.kill()
    assert OrderedConsumer.done == []
    with eventlet.Timeout(15, AssertionError("the failed messages were not put back")):
        while ready_and_unacked(broker) != 3:
            eventlet.sleep(0.1)
