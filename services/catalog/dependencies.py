"""Dependency providers of the catalog service: its database and the services it asks.

The catalog never reads another service's data: it asks the partners service
(memberships, territory) and the enrolment service (confirmed seats) by RPC. Each
remote is wrapped in a small typed client with a deadline, so a missing or stuck
service turns into ``RemoteUnavailable`` instead of a worker waiting forever, and a
refusal into ``RemoteRefused`` carrying the remote's error class and message.
"""

import ast
from typing import Any

import eventlet
from nameko.exceptions import MethodNotFound, RemoteError, RpcTimeout, UnknownService
from nameko.rpc import ServiceRpc

from conciliare.chassis.mongo import MongoRepositoryProvider
from conciliare.contracts.catalog import SeatCounts
from conciliare.contracts.partners import AllianceMembershipCheck, AllianceTerritory
from conciliare.errors import DOMAIN_ERRORS, DomainError
from services.catalog.repository import CatalogRepository, ensure_indexes

# Seconds a remote may take before the catalog gives up on it. The request also
# expires in the broker, so a late service never runs it after we stopped waiting.
REMOTE_TIMEOUT_SECONDS = 5.0


class CatalogStore(MongoRepositoryProvider[CatalogRepository]):
    def __init__(self) -> None:
        super().__init__("catalog", CatalogRepository, ensure_indexes)


class RemoteUnavailable(Exception):
    """A service the catalog depends on did not answer (absent, stopped, too slow)."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


class RemoteRefused(Exception):
    """The remote answered with an error; ``exc_type`` is its class name (NotFound, ...)."""

    def __init__(self, service: str, exc_type: str, detail: str) -> None:
        super().__init__(f"{service}: {exc_type} {detail}")
        self.service = service
        self.exc_type = exc_type
        self.detail = detail

    def as_domain_error(self) -> DomainError | None:
        """The remote's refusal as the same domain error here, or None if it was no domain error.

        A domain refusal stays what it is (a remote ``Conflict`` is a ``Conflict``);
        anything else (a crash over there) is not ours to reinterpret.
        """
        cls = DOMAIN_ERRORS.get(self.exc_type)
        return None if cls is None else cls(self.detail)


def _remote_detail(value: str) -> str:
    """The user's message out of a nameko ``RemoteError.value``.

    nameko sends ``str(exc)``; a domain error has two arguments (message, field
    errors), so that string is the repr of a tuple: keep only the message.
    """
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    if isinstance(parsed, tuple) and parsed and isinstance(parsed[0], str):
        return parsed[0]
    return value


class _RemoteClient:
    service = ""

    def __init__(self, client: Any, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            with eventlet.Timeout(self._timeout):
                return getattr(self._client, method)(**kwargs)
        except (eventlet.Timeout, RpcTimeout, UnknownService, MethodNotFound):
            # Absent, stopped, too slow, or an older version without this method.
            raise RemoteUnavailable(self.service) from None
        except RemoteError as exc:
            raise RemoteRefused(self.service, str(exc.exc_type), _remote_detail(str(exc.value))) from None


class PartnersClient(_RemoteClient):
    """What the catalog asks the partners service."""

    service = "partners"

    def membership_of(self, alliance_id: str, partner_id: str) -> AllianceMembershipCheck:
        answer = self._call("membership_of", alliance_id=alliance_id, partner_id=partner_id)
        return AllianceMembershipCheck.model_validate(answer)

    def alliance_territory(self, alliance_id: str) -> AllianceTerritory:
        return AllianceTerritory.model_validate(self._call("alliance_territory", alliance_id=alliance_id))


class EnrolmentClient(_RemoteClient):
    """What the catalog asks the enrolment service."""

    service = "enrolment"

    def seat_counts(self, offering_id: str) -> SeatCounts:
        answer = self._call("seat_counts", offering_id=offering_id)
        # Read only what the catalog needs: the enrolment side may add fields.
        return SeatCounts(confirmed=int(answer["confirmed"]), waitlisted=int(answer.get("waitlisted", 0)))


class _TimedServiceRpc(ServiceRpc):  # type: ignore[misc]
    client_class: type[_RemoteClient] = _RemoteClient

    def __init__(self, target_service: str, timeout: float = REMOTE_TIMEOUT_SECONDS) -> None:
        super().__init__(target_service, expiration=timeout)
        self.timeout = timeout

    def get_dependency(self, worker_ctx: Any) -> _RemoteClient:
        return self.client_class(super().get_dependency(worker_ctx), self.timeout)


class PartnersRpc(_TimedServiceRpc):
    client_class = PartnersClient

    def __init__(self) -> None:
        super().__init__("partners")


class EnrolmentRpc(_TimedServiceRpc):
    client_class = EnrolmentClient

    def __init__(self) -> None:
        super().__init__("enrolment")
