"""Catalog service: the offerings of provider partners in an alliance (entrypoints only)."""

from collections.abc import Callable
from typing import Any

from nameko.events import EventDispatcher

from conciliare.chassis.entrypoints import OutboxService, domain_rpc
from conciliare.chassis.validation import dump, parse
from conciliare.contracts.catalog import OfferingQuery, ProviderOfferingQuery
from conciliare.contracts.common import utc_now
from conciliare.contracts.offerings import OfferingSpec
from conciliare.errors import ValidationFailed
from conciliare.tracing import instrument_nameko, setup_tracing
from services.catalog import usecases
from services.catalog.dependencies import (
    CatalogStore,
    EnrolmentClient,
    EnrolmentRpc,
    PartnersClient,
    PartnersRpc,
)
from services.catalog.repository import CatalogRepository

setup_tracing("catalog-service")
instrument_nameko()


def _request(request_key: Any, requested_by: Any) -> tuple[str | None, str | None]:
    """The idempotency key and caller of a create, as sent over RPC: None or short strings."""
    for field, value in (("request_key", request_key), ("requested_by", requested_by)):
        if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 255):
            message = "deve essere un testo di 1-255 caratteri"
            raise ValidationFailed("I dati inviati non sono validi.", [{"field": field, "message": message}])
    return request_key, requested_by


class CatalogService(OutboxService):
    name = "catalog"

    # Typed as what a worker receives: each provider hands the worker a client.
    store: CatalogRepository = CatalogStore()
    partners: PartnersClient = PartnersRpc()
    enrolment: EnrolmentClient = EnrolmentRpc()
    dispatch: Callable[[str, dict[str, Any]], None] = EventDispatcher()

    @domain_rpc
    def create_offering(
        self,
        alliance_id: str,
        provider_partner_id: str,
        payload: dict[str, Any],
        request_key: str | None = None,
        requested_by: str | None = None,
    ) -> dict[str, Any]:
        """Create a draft offering of a formalized member, in one of the alliance's Comuni.

        With ``request_key`` (the caller's idempotency key, scoped by ``requested_by``)
        a retry answers with the offering the first try created.
        """
        spec = parse(OfferingSpec, payload)
        key, by = _request(request_key, requested_by)
        return dump(
            usecases.create_offering(
                self.store, self.partners, alliance_id, provider_partner_id, spec, utc_now(), key, by
            )
        )

    @domain_rpc
    def get_offering(self, offering_id: str) -> dict[str, Any]:
        """One offering by id, whatever its status (callers decide who may see it)."""
        return dump(usecases.get_offering(self.store, offering_id))

    @domain_rpc
    def get_snapshot(self, offering_id: str) -> dict[str, Any]:
        """An offering as its events describe it (for consumers rebuilding a projection)."""
        return dump(usecases.get_snapshot(self.store, offering_id))

    @domain_rpc
    def update_offering(self, offering_id: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Replace an offering's data if ``version`` is still current; capacity never below confirmed seats."""
        spec = parse(OfferingSpec, payload)
        result = usecases.update_offering(
            self.store, self.partners, self.enrolment, offering_id, version, spec, utc_now()
        )
        self.store.publish_events(self.dispatch, offering_id)
        return dump(result)

    @domain_rpc
    def change_status(self, offering_id: str, target: str) -> dict[str, Any]:
        """Apply ``target``: publish (draft), resume (suspended), suspend or archive."""
        result = usecases.change_offering_status(self.store, self.partners, offering_id, target, utc_now())
        self.store.publish_events(self.dispatch, offering_id)
        return dump(result)

    @domain_rpc
    def search_offerings(self, criteria: dict[str, Any]) -> dict[str, Any]:
        """Offerings of one alliance, of some, or of all matching the criteria, by relevance then
        start date, paginated."""
        return dump(usecases.search_offerings(self.store, parse(OfferingQuery, criteria), utc_now()))

    @domain_rpc
    def list_offerings_of_provider(self, provider_partner_id: str, query: dict[str, Any]) -> dict[str, Any]:
        """Offerings of one provider partner (any alliance or one), oldest first."""
        request = parse(ProviderOfferingQuery, query)
        return dump(usecases.list_offerings_of_provider(self.store, provider_partner_id, request))
