"""Partner organisations (Comuni, cooperatives, parishes, ...)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from gateway.deps import Rpc, TenancyDep, require_scope
from gateway.errors import ProblemError
from gateway.idempotency import IdempotencyDep
from gateway.responses import service_json
from gateway.schemas.common import IdFilter, PaginationDep, PartnerId
from gateway.schemas.partners import PartnerCreate, PartnerKind, PartnerOut, PartnerPage
from gateway.security import Role

router = APIRouter(prefix="/v1/partners", tags=["partners"])

PARTNER_NOT_FOUND = ProblemError(404, "Risorsa non trovata", "Partner non trovato.")


@router.get(
    "",
    response_model=PartnerPage,
    dependencies=[Depends(require_scope("partners:read"))],
    summary="Partner visibili (filtri: alleanza, tipo, codice fiscale, testo)",
)
async def list_partners(
    rpc: Rpc,
    tenancy: TenancyDep,
    page: PaginationDep,
    alliance_id: IdFilter = None,
    kind: PartnerKind | None = None,
    tax_code: Annotated[str | None, Query(min_length=11, max_length=16)] = None,
    q: Annotated[str | None, Query(max_length=100, description="Testo nel nome")] = None,
) -> Any:
    query: dict[str, Any] = {"kind": kind, "text": q, **page.model_dump()}
    principal = tenancy.principal
    if tax_code is not None:
        # Exact tax-code look-up is open to staff across tenants: organisations'
        # tax codes are public, and a manager must find a partner before adding it.
        if principal.role not in (Role.PLATFORM_ADMIN, Role.ALLIANCE_MANAGER):
            raise ProblemError(
                403, "Operazione non consentita", "La ricerca per codice fiscale è riservata allo staff."
            )
        query["tax_code"] = tax_code.replace(" ", "").upper()
    elif alliance_id is not None:
        await tenancy.ensure_readable(alliance_id)
        query["alliance_ids"] = [alliance_id]
    elif principal.role is Role.PARTNER_OPERATOR:
        query["partner_ids"] = [principal.partner_id]
    elif principal.role is not Role.PLATFORM_ADMIN:
        query["alliance_ids"] = await tenancy.readable_alliances() or []
        if principal.role is Role.ALLIANCE_MANAGER:
            # Also what this manager registered and has not (yet) brought into an alliance.
            query["registered_by"] = principal.subject
    return service_json(
        await rpc.call("partners", "list_partners", query={k: v for k, v in query.items() if v is not None})
    )


@router.post(
    "",
    response_model=PartnerOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_scope("partners:write"))],
    summary="Registra un partner",
)
async def register_partner(body: PartnerCreate, rpc: Rpc, once: IdempotencyDep) -> Response:
    payload = body.model_dump(mode="json")
    # The service records who registered the partner (that manager may read it before it
    # joins an alliance) and recognises a retry by the key.
    return await once.create(
        payload,
        lambda key: rpc.call("partners", "register_partner", payload=payload, request_key=key, requested_by=once.owner),
    )


@router.get(
    "/{partner_id}",
    response_model=PartnerOut,
    dependencies=[Depends(require_scope("partners:read"))],
    summary="Un partner",
    description=(
        "Lo staff di un'alleanza vede i partner delle proprie alleanze e quelli che ha registrato "
        "(anche prima che entrino in un'alleanza)."
    ),
)
async def get_partner(partner_id: PartnerId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    principal = tenancy.principal
    if principal.role is Role.PARTNER_OPERATOR and principal.partner_id != partner_id:
        raise PARTNER_NOT_FOUND
    if principal.role is Role.ALLIANCE_MANAGER:
        access = await rpc.call("partners", "partner_access", partner_id=partner_id)
        registered_by_caller = access.get("registered_by") == principal.subject
        if not registered_by_caller and not set(access["alliance_ids"]) & set(principal.alliance_ids):
            raise PARTNER_NOT_FOUND
    if principal.role is Role.FAMILY:
        shared = set(await rpc.call("partners", "alliances_of_partner", partner_id=partner_id))
        if not shared & set(await tenancy.readable_alliances() or []):
            raise PARTNER_NOT_FOUND
    return service_json(await rpc.call("partners", "get_partner", partner_id=partner_id))
