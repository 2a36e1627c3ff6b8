"""Dependency providers of the enrolment service: its database, its decision board,
and its two RPC fall-backs.

Projections are fed by events; the partners and catalog services are asked by RPC
only when a projection is missing (this service started after the events were
published). Each remote has a deadline, so a missing service means "not available
now" instead of a worker waiting forever.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import eventlet
from eventlet.event import Event
from nameko.exceptions import MethodNotFound, RemoteError, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import ServiceRpc

from conciliare.chassis.locks import STALE_CHECK_SECONDS
from conciliare.chassis.mongo import MongoRepositoryProvider
from services.enrolment import usecases
from services.enrolment.repository import EnrolmentRepository, ensure_indexes

log = logging.getLogger(__name__)

REMOTE_TIMEOUT_SECONDS = 5.0


class EnrolmentStore(MongoRepositoryProvider[EnrolmentRepository]):
    def __init__(self) -> None:
        super().__init__("enrolment", EnrolmentRepository, ensure_indexes)


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


# --- waiting for decisions without polling the database -------------------------------

DECIDER_POLL_SECONDS = 0.025


@dataclass
class _Waiter:
    event: Event = field(default_factory=Event)
    since: float = 0.0


class DecisionBoard:
    """One deciding loop per offering per process; request workers wait on it.

    A request worker registers its enrolment id and sleeps on a green event. The
    offering's loop takes the offering's lock whenever it is free, decides every
    waiting request (``usecases.drain``), wakes the local workers whose enrolments
    it made, and reads back (once) those decided by the other instance meanwhile.
    Ten waiting workers cost one lock attempt per poll, not ten reads each.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, dict[str, list[_Waiter]]] = {}
        self._loops: set[str] = set()

    def wait(
        self, repo: EnrolmentRepository, enrolment_id: str, offering_id: str, runtime: usecases.Runtime
    ) -> dict[str, Any] | None:
        """The decided enrolment, or None if still undecided after the wait budget."""
        waiter = _Waiter(since=runtime.monotonic())
        self._waiting.setdefault(offering_id, {}).setdefault(enrolment_id, []).append(waiter)
        if offering_id not in self._loops:
            self._loops.add(offering_id)
            eventlet.spawn_n(self._decide, repo, offering_id, runtime)
        decided: dict[str, Any] | None = None
        with eventlet.Timeout(usecases.DECISION_WAIT_SECONDS, False):
            decided = waiter.event.wait()
        if decided is None:
            self._forget(offering_id, enrolment_id, waiter)
        return decided

    def _forget(self, offering_id: str, enrolment_id: str, waiter: _Waiter) -> None:
        waiters = self._waiting.get(offering_id, {}).get(enrolment_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiting.get(offering_id, {}).pop(enrolment_id, None)

    def _wake(self, offering_id: str, doc: dict[str, Any]) -> None:
        for waiter in self._waiting.get(offering_id, {}).pop(doc["_id"], []):
            waiter.event.send(doc)

    def _decide(self, repo: EnrolmentRepository, offering_id: str, runtime: usecases.Runtime) -> None:
        key = usecases.offering_lock_key(offering_id)
        next_stale_check = runtime.monotonic() + STALE_CHECK_SECONDS
        try:
            while self._waiting.get(offering_id):
                try:
                    token = repo.try_lock(key, runtime.now(), usecases.LOCK_LEASE_SECONDS)
                except Exception:  # database away for a moment: keep the waiters, retry
                    log.exception("cannot take the lock of offering %s", offering_id)
                    runtime.sleep(0.2)
                    continue
                if token is None:
                    if runtime.monotonic() >= next_stale_check:
                        repo.break_stale_lock(key, runtime.now())
                        next_stale_check = runtime.monotonic() + STALE_CHECK_SECONDS
                    runtime.sleep(DECIDER_POLL_SECONDS)
                    continue
                started = runtime.monotonic()
                decided: list[dict[str, Any]] = []
                try:
                    decided = usecases.drain(repo, offering_id, runtime)
                except Exception:  # the next round (or the relay timer) finishes the journal
                    log.exception("allocation pass for offering %s failed", offering_id)
                finally:
                    repo.release_lock(token)
                for doc in decided:
                    self._wake(offering_id, doc)
                # Requests queued before this pass and not made by it were decided by
                # another instance: read them once.
                waiting = self._waiting.get(offering_id, {})
                for enrolment_id in [e for e, ws in waiting.items() if any(w.since < started for w in ws)]:
                    found = repo.get_enrolment(enrolment_id)
                    if found is not None:
                        self._wake(offering_id, found)
                if self._waiting.get(offering_id):
                    runtime.sleep(DECIDER_POLL_SECONDS)
        finally:
            # No green-thread switch between the emptiness check and this line: a
            # worker that registers afterwards starts a new loop.
            self._loops.discard(offering_id)
            if not self._waiting.get(offering_id):
                self._waiting.pop(offering_id, None)


class Decisions(DependencyProvider):  # type: ignore[misc]
    """Hands every worker the container's decision board."""

    def setup(self) -> None:
        self.board = DecisionBoard()

    def get_dependency(self, worker_ctx: Any) -> DecisionBoard:
        return self.board
