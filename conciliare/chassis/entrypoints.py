"""Entrypoints every Conciliare service has, and the RPC decorator they all use."""

from collections.abc import Callable
from typing import Any, Protocol

from nameko.rpc import rpc
from nameko.timer import timer

from conciliare.chassis.outbox import OutboxRelay
from conciliare.errors import DomainError

# Domain errors are expected answers, not failures: nameko neither logs them as
# errors nor marks the span failed, and the caller gets the typed error.
domain_rpc = rpc(expected_exceptions=DomainError)


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
