"""Dependency providers of the enrolment service: its database, its seat decider,
and its two RPC fall-backs.

Projections are fed by events; the partners and catalog services are asked by RPC
only when a projection is missing (this service started after the events were
published). Each remote has a deadline, so a missing service means "not available
now" instead of a worker waiting forever.
"""

import logging
from typing import Any, Final

import eventlet
from eventlet.event import Event
from nameko.exceptions import MethodNotFound, RemoteError, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import ServiceRpc

from conciliare.chassis.mongo import MongoRepositoryProvider
from services.enrolment import seating
from services.enrolment.ports import Repository, Runtime
from services.enrolment.records import Enrolment
from services.enrolment.repository import MongoRepository, ensure_indexes
from services.enrolment.seats import OfferingSeats

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


# --- deciding seats in batches ----------------------------------------------------------------

# Below the gateway's RPC timeout: past it the request is answered "requested" and
# the relay timer decides it.
DECISION_WAIT_SECONDS: Final = 7.0


class SeatDecider:
    """One deciding loop per offering per process; request workers wait on it.

    A worker whose request is stored hands it over and sleeps on a green event. The
    offering's loop takes every request waiting at that moment, decides them in one
    write of the offering's seats (``seating.decide``), wakes their workers with the
    result, and goes again while requests keep arriving. So a burst costs one
    conditional write per batch, and the only writers racing on an offering's seats
    are the two instances' loops (plus cancellations and catalog events), never every
    worker. If the write fails (the database away, every retry lost) the batch's
    workers answer "requested" and the relay timer decides those requests.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, dict[str, tuple[Enrolment, list[Event]]]] = {}
        self._loops: set[str] = set()
        self._publishing: set[str] = set()
        self._publish_again: set[str] = set()

    def decide(self, repo: Repository, runtime: Runtime, request: Enrolment) -> OfferingSeats | None:
        """The seats once ``request`` is decided, or None if still undecided after the wait."""
        offering_id = request.offering_id
        event = Event()
        self._waiting.setdefault(offering_id, {}).setdefault(request.id, (request, []))[1].append(event)
        if offering_id not in self._loops:
            self._loops.add(offering_id)
            eventlet.spawn_n(self._run, repo, runtime, offering_id)
        decided: OfferingSeats | None = None
        with eventlet.Timeout(DECISION_WAIT_SECONDS, False):
            decided = event.wait()
        return decided

    def _run(self, repo: Repository, runtime: Runtime, offering_id: str) -> None:
        try:
            while self._waiting.get(offering_id):
                batch = self._waiting.pop(offering_id)

                def wake(seats: OfferingSeats | None, batch: dict[str, tuple[Enrolment, list[Event]]] = batch) -> None:
                    for _, events in batch.values():
                        for event in events:
                            if not event.ready():
                                event.send(seats)

                requests = [request for request, _ in batch.values()]
                try:
                    seating.decide(repo, runtime, offering_id, requests, wake, publish_events=False)
                except Exception:  # the requests are stored: the relay timer decides them
                    log.exception("deciding %d requests of offering %s failed", len(batch), offering_id)
                finally:
                    wake(None)
                self._publish_soon(repo, runtime, offering_id)
        finally:
            # No green-thread switch between the emptiness check and this line: a
            # worker that hands a request over afterwards starts a new loop.
            self._loops.discard(offering_id)

    def _publish_soon(self, repo: Repository, runtime: Runtime, offering_id: str) -> None:
        """Publish the offering's events beside the deciding loop, one publisher at a time."""
        if offering_id in self._publishing:
            self._publish_again.add(offering_id)
            return
        self._publishing.add(offering_id)

        def publish() -> None:
            try:
                while True:
                    self._publish_again.discard(offering_id)
                    seating.publish(repo, runtime, offering_id)
                    if offering_id not in self._publish_again:
                        return
            finally:
                self._publishing.discard(offering_id)

        eventlet.spawn_n(publish)


class Decisions(DependencyProvider):  # type: ignore[misc]
    """Hands every worker the container's seat decider."""

    def setup(self) -> None:
        self.decider = SeatDecider()

    def get_dependency(self, worker_ctx: Any) -> SeatDecider:
        return self.decider
