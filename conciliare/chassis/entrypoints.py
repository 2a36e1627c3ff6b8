"""Entrypoints every Conciliare service has, and the RPC decorator they all use."""

import logging
from collections.abc import Callable
from typing import Any, Protocol

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from nameko.rpc import Rpc
from nameko.timer import timer

from conciliare.chassis.outbox import OutboxRelay
from conciliare.errors import DomainError, as_registered

log = logging.getLogger(__name__)

# What a reply publish raises when the broker is away (kombu wraps socket errors).
REPLY_LOST = (OSError, OperationalError, AmqpConnectionError)


class DomainRpc(Rpc):  # type: ignore[misc]
    """An RPC entrypoint whose domain errors reach the caller as a class it knows.

    Callers map errors by class name (``conciliare.errors.DOMAIN_ERRORS``); a service's
    own subclass (``InvalidTransition(Conflict)``) is sent as its registered base, so
    a new subclass can never reach a client as an unknown error, i.e. a 500.

    It also survives a reply that cannot be published. nameko 3.0.0rc11 publishes the
    reply outside the worker's error handling, so a broker outage at that moment kills
    the whole container (and the unacknowledged request is run a second time by the
    next one). The work is done by then; only the answer is lost, and the caller
    already gets 503/504 from its own timeout. So: log it, drop the request, go on.
    """

    def handle_result(self, message: Any, worker_ctx: Any, result: Any, exc_info: Any) -> Any:
        if exc_info is not None and isinstance(exc_info[1], DomainError):
            error = as_registered(exc_info[1])
            exc_info = (type(error), error, exc_info[2])
        try:
            return super().handle_result(message, worker_ctx, result, exc_info)
        except REPLY_LOST as exc:
            log.warning("reply to %s lost, broker unreachable: %s", worker_ctx.call_id, exc)
            try:
                self.rpc_consumer.consumer.ack_message(message)
            except REPLY_LOST:
                pass  # the channel died with the connection: the broker redelivers the request (at least once)
            return result, exc_info


# Domain errors are expected answers, not failures: nameko neither logs them as
# errors nor marks the span failed, and the caller gets the typed error.
domain_rpc = DomainRpc.decorator(expected_exceptions=DomainError)


class _WithOutbox(Protocol):
    db: Any
    outbox: OutboxRelay


class OutboxService:
    """Base for services whose repository has an outbox (``store.outbox``) and a ``db``.

    Subclasses declare ``store`` (a MongoRepositoryProvider) and ``dispatch``
    (an EventDispatcher); entrypoints call ``_publish()`` after each write.
    """

    store: _WithOutbox
    dispatch: Callable[[str, dict[str, Any]], None]

    def _publish(self) -> None:
        self.store.outbox.publish_pending(self.dispatch)

    @timer(interval=2)  # type: ignore[untyped-decorator]
    def relay_outbox(self) -> None:
        """Publish events a crash left in an outbox."""
        self._publish()

    @domain_rpc  # type: ignore[untyped-decorator]
    def ping(self) -> str:
        """Readiness probe: answers once the service and its database are up."""
        self.store.db.command("ping")
        return "pong"
