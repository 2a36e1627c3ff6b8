"""Dependency providers of the catalog service: its database and the services it asks.

The catalog never reads another service's data: it asks the partners service
(memberships, territory) and the enrolment service (confirmed seats) by RPC. Each
remote is wrapped in a small typed client with a deadline, so a missing or stuck
service turns into ``RemoteUnavailable`` instead of a worker waiting forever, and a
refusal into ``RemoteRefused`` carrying the remote's error class and message.
"""

from conciliare.chassis.mongo import MongoRepositoryProvider
from conciliare.chassis.remote import RemoteClient, TimedServiceRpc
from conciliare.contracts.catalog import SeatCounts
from conciliare.contracts.partners import AllianceMembershipCheck, AllianceTerritory
from services.catalog.repository import CatalogRepository, ensure_indexes


# Seconds a remote may take before the catalog gives up on it. The request also
# expires in the broker, so a late service never runs it after we stopped waiting.
class CatalogStore(MongoRepositoryProvider[CatalogRepository]):
    def __init__(self) -> None:
        super().__init__("catalog", CatalogRepository, ensure_indexes)


class PartnersClient(RemoteClient):
    """What the catalog asks the partners service."""

    service = "partners"

    def membership_of(self, alliance_id: str, partner_id: str) -> AllianceMembershipCheck:
        answer = self._call("membership_of", alliance_id=alliance_id, partner_id=partner_id)
        return AllianceMembershipCheck.model_validate(answer)

    def alliance_territory(self, alliance_id: str) -> AllianceTerritory:
        return AllianceTerritory.model_validate(self._call("alliance_territory", alliance_id=alliance_id))


class EnrolmentClient(RemoteClient):
    """What the catalog asks the enrolment service."""

    service = "enrolment"

    def seat_counts(self, offering_id: str) -> SeatCounts:
        answer = self._call("seat_counts", offering_id=offering_id)
        # Read only what the catalog needs: the enrolment side may add fields.
        return SeatCounts(confirmed=int(answer["confirmed"]), waitlisted=int(answer.get("waitlisted", 0)))


class PartnersRpc(TimedServiceRpc):
    client_class = PartnersClient

    def __init__(self) -> None:
        super().__init__("partners")


class EnrolmentRpc(TimedServiceRpc):
    client_class = EnrolmentClient

    def __init__(self) -> None:
        super().__init__("enrolment")
