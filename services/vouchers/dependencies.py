"""Dependency providers of the vouchers service: its database and the services it asks.

Household data comes from the enrolment service, territory and projects from the
partners service, offerings from the catalog, each by RPC with a deadline: a
missing or stuck service is ``Unavailable`` (503) and a refusal over there is the
same domain error here (a household the family may not see stays NotFound).
"""

from typing import Any

from conciliare.chassis.mongo import MongoRepositoryProvider
from conciliare.chassis.remote import DomainRemoteClient, TimedServiceRpc
from conciliare.contracts.catalog import OfferingSnapshot
from conciliare.contracts.enrolment import AttendanceOut, ChildOut, EnrolmentOut, HouseholdOut
from conciliare.contracts.identity import Viewer
from conciliare.contracts.partners import AllianceTerritory, ProjectOut
from services.vouchers.repository import VouchersRepository, ensure_indexes


class VouchersStore(MongoRepositoryProvider[VouchersRepository]):
    def __init__(self) -> None:
        super().__init__("vouchers", VouchersRepository, ensure_indexes)


def _viewer(viewer: Viewer) -> dict[str, Any]:
    return viewer.model_dump(mode="json")


class EnrolmentClient(DomainRemoteClient):
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


class PartnersClient(DomainRemoteClient):
    service = "partners"

    def alliance_territory(self, alliance_id: str) -> AllianceTerritory:
        answer = self._call("alliance_territory", alliance_id=alliance_id)
        return AllianceTerritory.model_validate(answer, extra="ignore")

    def get_project(self, alliance_id: str, project_id: str) -> ProjectOut:
        answer = self._call("get_project", alliance_id=alliance_id, project_id=project_id)
        return ProjectOut.model_validate(answer, extra="ignore")


class CatalogClient(DomainRemoteClient):
    service = "catalog"

    def get_snapshot(self, offering_id: str) -> OfferingSnapshot:
        return OfferingSnapshot.model_validate(self._call("get_snapshot", offering_id=offering_id), extra="ignore")


class EnrolmentRpc(TimedServiceRpc):
    client_class = EnrolmentClient

    def __init__(self) -> None:
        super().__init__("enrolment")


class PartnersRpc(TimedServiceRpc):
    client_class = PartnersClient

    def __init__(self) -> None:
        super().__init__("partners")


class CatalogRpc(TimedServiceRpc):
    client_class = CatalogClient

    def __init__(self) -> None:
        super().__init__("catalog")
