"""Dependency providers of the vouchers service: its database and the services it asks.

Household data comes from the enrolment service, territory and projects from the
partners service, offerings from the catalog, each by RPC with a deadline: a
missing or stuck service is ``Unavailable`` (503) and a refusal over there is the
same domain error here (a household the family may not see stays NotFound).
"""

import ast
from typing import Any

import eventlet
from nameko.exceptions import MethodNotFound, RemoteError, RpcTimeout, UnknownService
from nameko.rpc import ServiceRpc

from conciliare.chassis.mongo import MongoRepositoryProvider
from conciliare.contracts.catalog import OfferingSnapshot
from conciliare.contracts.enrolment import AttendanceOut, ChildOut, EnrolmentOut, HouseholdOut
from conciliare.contracts.identity import Viewer
from conciliare.contracts.partners import AllianceTerritory, ProjectOut
from conciliare.errors import DOMAIN_ERRORS, DomainError, Unavailable
from services.vouchers.repository import VouchersRepository, ensure_indexes

REMOTE_TIMEOUT_SECONDS = 5.0


class VouchersStore(MongoRepositoryProvider[VouchersRepository]):
    def __init__(self) -> None:
        super().__init__("vouchers", VouchersRepository, ensure_indexes)


def _remote_detail(value: str) -> str:
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
            raise Unavailable(f"Il servizio {self.service} non risponde: riprova tra poco.") from None
        except RemoteError as exc:
            cls: type[DomainError] | None = DOMAIN_ERRORS.get(str(exc.exc_type))
            if cls is None:
                raise Unavailable(f"Il servizio {self.service} ha avuto un errore: riprova tra poco.") from None
            raise cls(_remote_detail(str(exc.value))) from None


def _viewer(viewer: Viewer) -> dict[str, Any]:
    return viewer.model_dump(mode="json")


class EnrolmentClient(_RemoteClient):
    """What the vouchers service asks the enrolment service, always on behalf of a viewer."""

    service = "enrolment"

    def get_household(self, household_id: str, viewer: Viewer) -> HouseholdOut:
        answer = self._call("get_household", household_id=household_id, viewer=_viewer(viewer))
        return HouseholdOut.model_validate(answer, extra="ignore")

    def list_children(self, household_id: str, viewer: Viewer) -> list[ChildOut]:
        answer = self._call("list_children", household_id=household_id, viewer=_viewer(viewer))
        return [ChildOut.model_validate(child, extra="ignore") for child in answer]

    def get_enrolment(self, enrolment_id: str, viewer: Viewer) -> EnrolmentOut:
        answer = self._call("get_enrolment", enrolment_id=enrolment_id, viewer=_viewer(viewer))
        return EnrolmentOut.model_validate(answer, extra="ignore")

    def get_attendance(self, enrolment_id: str, viewer: Viewer) -> AttendanceOut:
        answer = self._call("get_attendance", enrolment_id=enrolment_id, viewer=_viewer(viewer))
        return AttendanceOut.model_validate(answer, extra="ignore")


class PartnersClient(_RemoteClient):
    service = "partners"

    def alliance_territory(self, alliance_id: str) -> AllianceTerritory:
        answer = self._call("alliance_territory", alliance_id=alliance_id)
        return AllianceTerritory.model_validate(answer, extra="ignore")

    def get_project(self, alliance_id: str, project_id: str) -> ProjectOut:
        answer = self._call("get_project", alliance_id=alliance_id, project_id=project_id)
        return ProjectOut.model_validate(answer, extra="ignore")


class CatalogClient(_RemoteClient):
    service = "catalog"

    def get_snapshot(self, offering_id: str) -> OfferingSnapshot:
        return OfferingSnapshot.model_validate(self._call("get_snapshot", offering_id=offering_id), extra="ignore")


class _TimedServiceRpc(ServiceRpc):  # type: ignore[misc]
    client_class: type[_RemoteClient] = _RemoteClient

    def __init__(self, target_service: str, timeout: float = REMOTE_TIMEOUT_SECONDS) -> None:
        super().__init__(target_service, expiration=timeout)
        self.timeout = timeout

    def get_dependency(self, worker_ctx: Any) -> _RemoteClient:
        return self.client_class(super().get_dependency(worker_ctx), self.timeout)


class EnrolmentRpc(_TimedServiceRpc):
    client_class = EnrolmentClient

    def __init__(self) -> None:
        super().__init__("enrolment")


class PartnersRpc(_TimedServiceRpc):
    client_class = PartnersClient

    def __init__(self) -> None:
        super().__init__("partners")


class CatalogRpc(_TimedServiceRpc):
    client_class = CatalogClient

    def __init__(self) -> None:
        super().__init__("catalog")
