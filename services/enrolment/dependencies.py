"""Dependency providers of the enrolment service: its database and its two RPC fall-backs.

Projections are fed by events; the partners and catalog services are asked by RPC
only when a projection is missing (this service started after the events were
published). Each remote has a deadline, so a missing service means "not available
now" instead of a worker waiting forever.
"""

import logging
from collections.abc import Callable
from typing import Any

import eventlet
from nameko.exceptions import MethodNotFound, RemoteError, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import ServiceRpc

from conciliare.chassis.mongo import MongoRepositoryProvider
from services.enrolment.repository import MongoRepository, ensure_indexes

log = logging.getLogger(__name__)

REMOTE_TIMEOUT_SECONDS = 5.0


class EnrolmentStore(MongoRepositoryProvider[MongoRepository]):
    def __init__(self) -> None:
        super().__init__("enrolment", MongoRepository, ensure_indexes)


class RemoteFetcher:
    """Calls one method of a remote service; ``None`` when it cannot answer."""

    def __init__(self, client: Any, service: str, method: str, argument: str, timeout: float) -> None:
        self._client = client
        self._service = service
        self._method = method
        self._argument = argument
        self._timeout = timeout

    def __call__(self, key: str) -> dict[str, Any] | None:
        try:
            with eventlet.Timeout(self._timeout):
                answer = getattr(self._client, self._method)(**{self._argument: key})
        except (eventlet.Timeout, UnknownService, MethodNotFound, RemoteError) as exc:
            log.warning("%s.%s(%s) unavailable: %s", self._service, self._method, key, type(exc).__name__)
            return None
        return dict(answer)


class _FetchRpc(ServiceRpc):  # type: ignore[misc]
    def __init__(self, service: str, method: str, argument: str) -> None:
        # The request also expires in the broker: a late service never runs it.
        super().__init__(service, expiration=REMOTE_TIMEOUT_SECONDS)
        self.fetch_method = method
        self.fetch_argument = argument

    def get_dependency(self, worker_ctx: Any) -> RemoteFetcher:
        client = super().get_dependency(worker_ctx)
        return RemoteFetcher(
            client, self.target_service, self.fetch_method, self.fetch_argument, REMOTE_TIMEOUT_SECONDS
        )


class TerritoryRpc(_FetchRpc):
    """``partners.alliance_territory``: Comuni and formalized partners of an alliance."""

    def __init__(self) -> None:
        super().__init__("partners", "alliance_territory", "alliance_id")


class SnapshotRpc(_FetchRpc):
    """``catalog.get_snapshot``: an offering as its events describe it."""

    def __init__(self) -> None:
        super().__init__("catalog", "get_snapshot", "offering_id")


class SoonPublisher:
    """Publishes an offering's queued events in a green thread of its own, one at a time per offering.

    A decider hands over and goes on with its next batch; events queued meanwhile
    are published by the same thread's next round. The events are stored with the
    seats, so a crash before they go out leaves them to the relay timer.
    """

    def __init__(self) -> None:
        self._publishing: set[str] = set()
        self._again: set[str] = set()

    def soon(self, offering_id: str, publish: Callable[[], None]) -> None:
        """Run ``publish`` (the offering's queued events) beside the caller; again if asked meanwhile."""
        if offering_id in self._publishing:
            self._again.add(offering_id)
            return
        self._publishing.add(offering_id)

        def rounds() -> None:
            try:
                while True:
                    self._again.discard(offering_id)
                    publish()
                    if offering_id not in self._again:
                        return
            finally:
                self._publishing.discard(offering_id)

        eventlet.spawn_n(rounds)


class Publishing(DependencyProvider):  # type: ignore[misc]
    """Hands every worker the container's ``SoonPublisher``."""

    def setup(self) -> None:
        self.publisher = SoonPublisher()

    def get_dependency(self, worker_ctx: Any) -> SoonPublisher:
        return self.publisher
