"""``@consume_in_order``: a nameko entrypoint that handles a queue's messages in batches, in order.

nameko's ``@consume`` gives each message its own worker, and workers run
concurrently, so the order of a queue is lost as soon as the prefetch count is
above one. This entrypoint keeps it: messages are collected in the order the
broker delivers them, and one worker at a time gets every message waiting (up to
the prefetch count) as a list. The messages are acknowledged only after the worker
returned; if it raised, the same messages (and any that arrived meanwhile, in
order) go to a new worker after a pause, so a failure never reorders nor drops
anything. If the process dies, the broker hands the unacknowledged messages, in
their order, to the next consumer (with ``x-single-active-consumer``, the next
instance).

Stopping (or killing) the container hands the queue over the same way, on purpose:
the batch in hand is finished, and then the connection is dropped instead of
cancelling the consumer. RabbitMQ makes the next single active consumer active as
soon as a cancel arrives, before the old channel has returned its unacknowledged
messages, so after a cancel the next instance would decide later requests before
earlier ones; when the connection dies, the queue returns them and switches
consumer in one step.
"""

import logging
import time
from functools import partial
from typing import Any, Final

import eventlet
from kombu.entity import Queue
from kombu.message import Message
from nameko.containers import WorkerContext
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer, decode_from_headers

log = logging.getLogger(__name__)

RETRY_PAUSE_SECONDS: Final = 1.0
# How long a stop waits for the batch in hand before handing the queue over anyway.
STOP_WAIT_SECONDS: Final = 30.0
MAX_RETRY_PAUSE_SECONDS: Final = 10.0

Pending = list[tuple[Any, Message]]


class OrderedBatchConsumer(Consumer):  # type: ignore[misc]
    """Hands one worker at a time every message waiting, in delivery order (see the module)."""

    def __init__(self, queue: Queue, max_batch: int = 100, **kwargs: Any) -> None:
        super().__init__(queue, prefetch_count=max_batch, **kwargs)

    def setup(self) -> None:
        super().setup()
        self._pending: Pending = []
        self._in_hand: Pending = []
        self._busy = False
        self._stopping = False
        self._failures = 0

    def stop(self) -> None:
        """Finish the batch in hand, then hand the queue over in order (see the module docstring)."""
        self._stopping = True
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while self._busy and time.monotonic() < deadline:
            eventlet.sleep(0.05)
        super().stop()
        self._hand_over()

    def kill(self) -> None:
        self._stopping = True
        super().stop()
        self._hand_over()

    def _hand_over(self) -> None:
        """Drop the connection holding unacknowledged messages: the broker returns them in order."""
        held = [message for _, message in self._in_hand + self._pending]
        self._pending = []
        connections = {id(c): c for c in (getattr(m.channel, "connection", None) for m in held) if c is not None}
        for connection in connections.values():
            try:
                connection.collect()  # closes the socket without a goodbye, like a crash
            except Exception:  # already gone: the broker has them back anyway
                log.debug("connection already closed while handing over", exc_info=True)

    def handle_message(self, body: Any, message: Message) -> None:
        # Called by the consumer's thread, one message at a time in delivery order.
        self._pending.append((body, message))
        if not self._busy and not self._stopping:
            self._start_batch()

    def _start_batch(self) -> None:
        batch, self._pending = self._pending, []
        self._in_hand = batch
        self._busy = True
        bodies = [body for body, _ in batch]
        context_data = decode_from_headers(batch[0][1].headers)

        def spawn() -> None:
            try:
                self.container.spawn_worker(
                    self, (bodies,), {}, context_data=context_data, handle_result=partial(self._finished, batch)
                )
            except ContainerBeingKilled:  # kept unacknowledged: the hand-over returns them in order
                self._pending = batch + self._pending
                self._busy = False

        self.container.spawn_managed_thread(spawn, identifier=f"{type(self).__name__}.spawn[{self.method_name}]")

    def _finished(
        self, batch: Pending, worker_ctx: WorkerContext, result: Any = None, exc_info: Any = None
    ) -> tuple[Any, Any]:
        if exc_info is None:
            self._failures = 0
            for _, message in batch:
                self.consumer.ack_message(message)
            self._pending_next()
            return result, exc_info
        if self._stopping:  # the messages go back to the queue with the connection
            self._busy = False
            return result, exc_info
        # Keep the messages (unacknowledged, in order) and try again after a pause.
        self._failures += 1
        pause = min(RETRY_PAUSE_SECONDS * 2 ** (self._failures - 1), MAX_RETRY_PAUSE_SECONDS)
        log.warning("batch of %d messages failed (%d in a row); again in %.0fs", len(batch), self._failures, pause)
        self._pending = batch + self._pending

        def retry() -> None:
            eventlet.sleep(pause)
            self._pending_next()

        self.container.spawn_managed_thread(retry, identifier=f"{type(self).__name__}.retry[{self.method_name}]")
        return result, exc_info

    def _pending_next(self) -> None:
        self._busy = False
        self._in_hand = []
        if self._pending and not self._stopping:
            self._start_batch()


consume_in_order = OrderedBatchConsumer.decorator
