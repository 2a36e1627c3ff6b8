"""Partners service: alliances, partners, memberships and projects (entrypoints only)."""

from collections.abc import Callable
from typing import Any

from nameko.events import EventDispatcher

from conciliare.chassis.entrypoints import OutboxService, domain_rpc
from conciliare.chassis.validation import dump, parse
from conciliare.contracts.common import PageRequest, utc_now
from conciliare.contracts.partners import (
    AllianceCreate,
    MemberAdd,
    MemberQuery,
    PartnerCreate,
    PartnerQuery,
    ProjectSpec,
)
from conciliare.errors import ValidationFailed
from conciliare.tracing import instrument_nameko, setup_tracing
from services.partners import usecases
from services.partners.dependencies import PartnersStore
from services.partners.repository import PartnersRepository

setup_tracing("partners-service")
instrument_nameko()


def _request(request_key: Any, requested_by: Any) -> tuple[str | None, str | None]:
    """The idempotency key and caller of a create, as sent over RPC: None or short strings."""
    for field, value in (("request_key", request_key), ("requested_by", requested_by)):
        if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 255):
            message = "deve essere un testo di 1-255 caratteri"
            raise ValidationFailed("I dati inviati non sono validi.", [{"field": field, "message": message}])
    return request_key, requested_by


def _version(value: Any) -> int | None:
    """An expected version as a caller sent it over RPC (JSON): None or a positive integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed(
            "I dati inviati non sono validi.", [{"field": "version", "message": "deve essere un intero positivo"}]
        )
    return value


class PartnersService(OutboxService):
    name = "partners"

    # Typed as what a worker receives: the provider hands each worker a repository.
    store: PartnersRepository = PartnersStore()
    dispatch: Callable[[str, dict[str, Any]], None] = EventDispatcher()

    # --- partners ---------------------------------------------------------

    @domain_rpc
    def register_partner(
        self, payload: dict[str, Any], request_key: str | None = None, requested_by: str | None = None
    ) -> dict[str, Any]:
        """Register an organisation (Comune, cooperativa, ...) on the platform.

        ``requested_by`` (the caller's subject) is recorded: that user may read the
        partner before it joins an alliance. With ``request_key`` a retry answers with
        the partner the first try registered.
        """
        key, by = _request(request_key, requested_by)
        return dump(usecases.register_partner(self.store, parse(PartnerCreate, payload), utc_now(), key, by))

    @domain_rpc
    def partner_access(self, partner_id: str) -> dict[str, Any]:
        """The alliances a partner belongs to and who registered it (for read checks)."""
        return dump(usecases.partner_access(self.store, partner_id))

    @domain_rpc
    def get_partner(self, partner_id: str) -> dict[str, Any]:
        """One partner by id."""
        return dump(usecases.get_partner(self.store, partner_id))

    @domain_rpc
    def list_partners(self, query: dict[str, Any]) -> dict[str, Any]:
        """Partners filtered by alliance, kind, tax code or name, paginated."""
        return dump(usecases.list_partners(self.store, parse(PartnerQuery, query)))

    # --- alliances ----------------------------------------------------------

    @domain_rpc
    def create_alliance(
        self, payload: dict[str, Any], request_key: str | None = None, requested_by: str | None = None
    ) -> dict[str, Any]:
        """Create an alliance with its territory and its capofila (idempotent on ``request_key``)."""
        key, by = _request(request_key, requested_by)
        result = usecases.create_alliance(self.store, parse(AllianceCreate, payload), utc_now(), key, by)
        self.store.publish_alliance_events(self.dispatch, result.id)
        return dump(result)

    @domain_rpc
    def get_alliance(self, alliance_id: str) -> dict[str, Any]:
        """One alliance by id."""
        return dump(usecases.get_alliance(self.store, alliance_id))

    @domain_rpc
    def list_alliances(self, alliance_ids: list[str] | None, page: dict[str, Any]) -> dict[str, Any]:
        """Alliances (all, or only ``alliance_ids``), ordered by code."""
        request = parse(PageRequest, page)
        return dump(usecases.list_alliances(self.store, alliance_ids, request.limit, request.offset))

    @domain_rpc
    def alliances_of_partner(self, partner_id: str) -> list[str]:
        """Ids of the alliances a partner currently belongs to (pending or formalized)."""
        return usecases.alliances_of_partner(self.store, partner_id)

    @domain_rpc
    def alliances_covering(self, comune_istat: str) -> list[str]:
        """Ids of the alliances whose territory includes the Comune (ISTAT code)."""
        return usecases.alliances_covering(self.store, comune_istat)

    @domain_rpc
    def list_members(self, alliance_id: str, query: dict[str, Any]) -> dict[str, Any]:
        """Members of an alliance with their partner record, capofila first (withdrawn only if asked)."""
        return dump(usecases.list_members(self.store, alliance_id, parse(MemberQuery, query)))

    @domain_rpc
    def get_member(self, alliance_id: str, partner_id: str) -> dict[str, Any]:
        """One membership of an alliance, with the partner record."""
        return dump(usecases.get_member(self.store, alliance_id, partner_id))

    @domain_rpc
    def add_member(
        self,
        alliance_id: str,
        payload: dict[str, Any],
        request_key: str | None = None,
        requested_by: str | None = None,
    ) -> dict[str, Any]:
        """Add a partner to an alliance (pending until formalized; idempotent on ``request_key``)."""
        key, by = _request(request_key, requested_by)
        result = usecases.add_member(self.store, alliance_id, parse(MemberAdd, payload), utc_now(), key, by)
        self.store.publish_alliance_events(self.dispatch, alliance_id)
        return dump(result)

    @domain_rpc
    def formalize_member(self, alliance_id: str, partner_id: str) -> dict[str, Any]:
        """Formalize a pending adhesion."""
        result = usecases.formalize_member(self.store, alliance_id, partner_id, utc_now())
        self.store.publish_alliance_events(self.dispatch, alliance_id)
        return dump(result)

    @domain_rpc
    def withdraw_member(self, alliance_id: str, partner_id: str) -> dict[str, Any]:
        """Record that a partner left the alliance."""
        result = usecases.withdraw_member(self.store, alliance_id, partner_id, utc_now())
        self.store.publish_alliance_events(self.dispatch, alliance_id)
        return dump(result)

    @domain_rpc
    def membership_of(self, alliance_id: str, partner_id: str) -> dict[str, Any]:
        """Role and status of a partner in an alliance (for other services' checks)."""
        return dump(usecases.membership_of(self.store, alliance_id, partner_id))

    @domain_rpc
    def alliance_territory(self, alliance_id: str) -> dict[str, Any]:
        """Comuni and formalized partners of an alliance (for eligibility rules)."""
        return dump(usecases.alliance_territory(self.store, alliance_id))

    # --- projects -------------------------------------------------------------

    @domain_rpc
    def create_project(
        self,
        alliance_id: str,
        payload: dict[str, Any],
        request_key: str | None = None,
        requested_by: str | None = None,
    ) -> dict[str, Any]:
        """Create a project whose period and budget are valid (idempotent on ``request_key``)."""
        key, by = _request(request_key, requested_by)
        spec = parse(ProjectSpec, payload)
        result = usecases.create_project(self.store, alliance_id, spec, utc_now(), key, by)
        self.store.publish_project_events(self.dispatch, result.id)
        return dump(result)

    @domain_rpc
    def update_project(
        self, alliance_id: str, project_id: str, payload: dict[str, Any], version: int | None = None
    ) -> dict[str, Any]:
        """Replace a project's data; the budget must still add up.

        With ``version`` (the one the caller read) a project changed meanwhile is a
        Conflict instead of being overwritten.
        """
        spec = parse(ProjectSpec, payload)
        expected = _version(version)
        result = usecases.update_project(self.store, alliance_id, project_id, spec, utc_now(), expected)
        self.store.publish_project_events(self.dispatch, project_id)
        return dump(result)

    @domain_rpc
    def get_project(self, alliance_id: str, project_id: str) -> dict[str, Any]:
        """One project of an alliance."""
        return dump(usecases.get_project(self.store, alliance_id, project_id))

    @domain_rpc
    def list_projects(self, alliance_id: str, page: dict[str, Any]) -> dict[str, Any]:
        """Projects of an alliance, oldest first."""
        request = parse(PageRequest, page)
        return dump(usecases.list_projects(self.store, alliance_id, request.limit, request.offset))
