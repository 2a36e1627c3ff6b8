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
"""

import logging
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
MAX_RETRY_PAUSE_SECONDS: Final = 10.0

Pending = list[tuple[Any, Message]]


class OrderedBatchConsumer(Consumer):  # type: ignore[misc]
    """Hands one worker at a time every message waiting, in delivery order (see the module)."""

    def __init__(self, queue: Queue, max_batch: int = 100, **kwargs: Any) -> None:
        super().__init__(queue, prefetch_count=max_batch, **kwargs)

    def setup(self) -> None:
        super().setup()
        self._pending: Pending = []
        self._busy = False
        self._failures = 0

    def handle_message(self, body: Any, message: Message) -> None:
        # Called by the consumer's thread, one message at a time in delivery order.
        self._pending.append((body, message))
        if not self._busy:
            self._start_batch()

    def _start_batch(self) -> None:
        batch, self._pending = self._pending, []
        self._busy = True
        bodies = [body for body, _ in batch]
        context_data = decode_from_headers(batch[0][1].headers)

        def spawn() -> None:
            try:
                self.container.spawn_worker(
                    self, (bodies,), {}, context_data=context_data, handle_result=partial(self._finished, batch)
                )
            except ContainerBeingKilled:
                for _, message in batch:
                    self.consumer.requeue_message(message)
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
        if self._pending:
            self._start_batch()


consume_in_order = OrderedBatchConsumer.decorator
