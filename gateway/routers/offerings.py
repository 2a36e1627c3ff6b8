"""The catalog: service offerings of provider partners, searchable by families.

Who sees what:
- families: published offerings of any alliance (the catalog is public to them), so
  they search by Comune (or by their residence) across every alliance;
- partner operators: published offerings of their alliances, and every offering of
  their own organisation; they change only their own;
- alliance managers: everything of their alliances;
- the platform admin: everything.
An offering the caller may not see or change answers 404, never 403.

Offerings are versioned: reads answer ``ETag: "<version>"`` and a PUT names the
version it was read at (``If-Match`` or the body's ``version``).
"""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from conciliare.contracts.taxonomy import OfferingStatus, ServiceType, SpecialNeed
from conciliare.errors import Conflict, ValidationFailed
from gateway.deps import Rpc, TenancyDep, require_scope
from gateway.errors import ProblemError
from gateway.idempotency import IdempotencyDep
from gateway.openapi import (
    IfMatchHeader,
    expected_version,
    stale_as_precondition,
    versioned_responses,
    versioned_write_responses,
    with_etag,
)
from gateway.responses import service_json
from gateway.rpc import RpcClient
from gateway.schemas.common import ID_MAX_LENGTH, OfferingId, PaginationDep
from gateway.schemas.offerings import OfferingAction, OfferingCreate, OfferingOut, OfferingPage, OfferingUpdate
from gateway.security import Role

router = APIRouter(prefix="/v1/offerings", tags=["offerings"])

CanRead = Depends(require_scope("catalog:read"))
CanWrite = Depends(require_scope("catalog:write"))

OFFERING_NOT_FOUND = ProblemError(404, "Risorsa non trovata", "Offerta non trovata.")
PUBLISHED = OfferingStatus.PUBLISHED.value


async def _can_see(tenancy: TenancyDep, offering: dict[str, Any]) -> bool:
    principal = tenancy.principal
    if principal.role is Role.PLATFORM_ADMIN:
        return True
    if principal.role is Role.ALLIANCE_MANAGER:
        return offering["alliance_id"] in principal.alliance_ids
    if principal.role is Role.PARTNER_OPERATOR:
        if offering["provider_partner_id"] == principal.partner_id:
            return True
        readable = await tenancy.readable_alliances() or []
        return bool(offering["status"] == PUBLISHED and offering["alliance_id"] in readable)
    if principal.role is Role.FAMILY:
        return bool(offering["status"] == PUBLISHED)
    return False


def _can_change(tenancy: TenancyDep, offering: dict[str, Any]) -> bool:
    principal = tenancy.principal
    if principal.role is Role.PLATFORM_ADMIN:
        return True
    if principal.role is Role.ALLIANCE_MANAGER:
        return offering["alliance_id"] in principal.alliance_ids
    if principal.role is Role.PARTNER_OPERATOR:
        return bool(offering["provider_partner_id"] == principal.partner_id)
    return False


async def _load(rpc: RpcClient, offering_id: str) -> dict[str, Any]:
    offering: dict[str, Any] = await rpc.call("catalog", "get_offering", offering_id=offering_id)
    return offering


async def _changeable(rpc: RpcClient, tenancy: TenancyDep, offering_id: str) -> dict[str, Any]:
    offering = await _load(rpc, offering_id)
    if not _can_change(tenancy, offering):
        raise OFFERING_NOT_FOUND
    return offering


SEARCH_DESCRIPTION = (
    "Senza `alliance_id` la ricerca copre ogni alleanza visibile: per le famiglie tutte (solo offerte "
    "pubblicate), per lo staff e gli operatori le proprie. `comune_istat` cerca le offerte che si svolgono "
    "in quel Comune; `residence_comune_istat` (il Comune di residenza della famiglia) quelle di tutte le "
    "alleanze il cui territorio comprende quel Comune, ovunque si svolgano."
)


@router.get(
    "",
    response_model=OfferingPage,
    dependencies=[CanRead],
    summary="Cerca nel catalogo (per Comune, età, periodo, tipo, bisogni, testo)",
    description=SEARCH_DESCRIPTION,
)
async def search_offerings(
    rpc: Rpc,
    tenancy: TenancyDep,
    page: PaginationDep,
    alliance_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=ID_MAX_LENGTH,
            description="Solo le offerte di questa alleanza (senza: tutte le alleanze visibili)",
        ),
    ] = None,
    provider_partner_id: Annotated[
        str | None,
        Query(min_length=1, max_length=ID_MAX_LENGTH, description="Solo le offerte di questo erogatore"),
    ] = None,
    comune_istat: Annotated[
        str | None, Query(pattern=r"^\d{6}$", description="Comune in cui si svolge il servizio (codice ISTAT)")
    ] = None,
    residence_comune_istat: Annotated[
        str | None,
        Query(
            pattern=r"^\d{6}$",
            description="Comune di residenza (codice ISTAT): offerte delle alleanze che lo comprendono",
        ),
    ] = None,
    child_birth_date: Annotated[date | None, Query(description="Data di nascita del bambino")] = None,
    on_date: Annotated[date | None, Query(description="Data in cui conta l'età (con child_birth_date)")] = None,
    child_age_months: Annotated[int | None, Query(ge=0, le=216, description="Età in mesi compiuti")] = None,
    date_from: Annotated[date | None, Query(description="Aperto almeno un giorno da questa data...")] = None,
    date_to: Annotated[date | None, Query(description="...a questa data")] = None,
    service_types: Annotated[list[ServiceType] | None, Query(alias="type", description="Uno di questi tipi")] = None,
    needs: Annotated[list[SpecialNeed] | None, Query(alias="need", description="Tutti questi bisogni")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Testo in titolo, tipo e descrizione")] = None,
    statuses: Annotated[
        list[OfferingStatus] | None, Query(alias="status", description="Stati (staff); predefinito: pubblicate")
    ] = None,
) -> Any:
    principal = tenancy.principal
    wanted = [s.value for s in statuses] if statuses else [PUBLISHED]
    unpublished_only_of: str | None = None
    alliance_ids: list[str] | None = None
    if principal.role is Role.FAMILY:
        if wanted != [PUBLISHED]:
            raise ProblemError(
                403, "Operazione non consentita", "Le famiglie possono cercare solo tra le offerte pubblicate."
            )
    else:
        if alliance_id is not None:
            await tenancy.ensure_readable(alliance_id)
        else:
            alliance_ids = await tenancy.readable_alliances()
        if principal.role is Role.PARTNER_OPERATOR:
            # Drafts, suspended and archived offerings: only their own.
            unpublished_only_of = principal.partner_id
    if residence_comune_istat is not None:
        covering = await rpc.call("partners", "alliances_covering", comune_istat=residence_comune_istat)
        alliance_ids = [a for a in covering if alliance_ids is None or a in alliance_ids]
    criteria: dict[str, Any] = {
        "alliance_id": alliance_id,
        "alliance_ids": alliance_ids,
        "provider_partner_id": provider_partner_id,
        "comune_istat": comune_istat,
        "child_birth_date": child_birth_date,
        "on_date": on_date,
        "child_age_months": child_age_months,
        "date_from": date_from,
        "date_to": date_to,
        "types": [t.value for t in service_types or []],
        "needs": [n.value for n in needs or []],
        "text": q,
        "statuses": wanted,
        "unpublished_only_of": unpublished_only_of,
        **page.model_dump(),
    }
    payload = {k: v.isoformat() if isinstance(v, date) else v for k, v in criteria.items() if v is not None}
    return service_json(await rpc.call("catalog", "search_offerings", criteria=payload))


@router.post(
    "",
    response_model=OfferingOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Crea un'offerta (bozza)",
    description=(
        "La bozza può essere incompleta: `missing_for_publication` elenca che cosa manca ancora "
        "(descrizione, indirizzo, calendario) prima di poterla pubblicare."
    ),
)
async def create_offering(body: OfferingCreate, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep) -> Response:
    principal = tenancy.principal
    provider = body.provider_partner_id
    if principal.role is Role.PARTNER_OPERATOR:
        if provider is not None and provider != principal.partner_id:
            raise ProblemError(403, "Operazione non consentita", "Un operatore crea offerte solo per il proprio ente.")
        provider = principal.partner_id
        await tenancy.ensure_readable(body.alliance_id)
    else:
        await tenancy.ensure_manageable(body.alliance_id)
    if provider is None:
        raise ValidationFailed(
            "Indicare il partner erogatore.", [{"field": "provider_partner_id", "message": "obbligatorio"}]
        )
    spec = body.model_dump(mode="json", exclude={"alliance_id", "provider_partner_id"})
    return await once.create(
        body.model_dump(mode="json"),
        lambda key: rpc.call(
            "catalog",
            "create_offering",
            alliance_id=body.alliance_id,
            provider_partner_id=provider,
            payload=spec,
            request_key=key,
            requested_by=once.owner,
        ),
    )


@router.get(
    "/{offering_id}",
    response_model=OfferingOut,
    dependencies=[CanRead],
    summary="Un'offerta (con ETag)",
    responses=versioned_responses(),
)
async def get_offering(offering_id: OfferingId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    offering = await _load(rpc, offering_id)
    if not await _can_see(tenancy, offering):
        raise OFFERING_NOT_FOUND
    return with_etag(service_json(offering), offering)


@router.put(
    "/{offering_id}",
    response_model=OfferingOut,
    dependencies=[CanWrite],
    summary="Aggiorna un'offerta (con la versione letta: If-Match o version)",
    responses=versioned_write_responses(),
)
async def update_offering(
    offering_id: OfferingId,
    body: OfferingUpdate,
    rpc: Rpc,
    tenancy: TenancyDep,
    if_match: IfMatchHeader = None,
) -> Response:
    version = expected_version(if_match, body.version)
    await _changeable(rpc, tenancy, offering_id)
    spec = body.model_dump(mode="json", exclude={"version"})
    try:
        offering = await rpc.call("catalog", "update_offering", offering_id=offering_id, version=version, payload=spec)
    except Conflict as exc:
        raise stale_as_precondition(exc, if_match) from None
    return with_etag(service_json(offering), offering)


async def _act(offering_id: str, action: OfferingAction, rpc: RpcClient, tenancy: TenancyDep) -> Any:
    await _changeable(rpc, tenancy, offering_id)
    return service_json(await rpc.call("catalog", "change_status", offering_id=offering_id, target=action.value))


@router.post(
    "/{offering_id}/publish",
    response_model=OfferingOut,
    dependencies=[CanWrite],
    summary="Pubblica una bozza",
)
async def publish_offering(offering_id: OfferingId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    return await _act(offering_id, OfferingAction.PUBLISH, rpc, tenancy)


@router.post(
    "/{offering_id}/suspend",
    response_model=OfferingOut,
    dependencies=[CanWrite],
    summary="Sospendi un'offerta pubblicata",
)
async def suspend_offering(offering_id: OfferingId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    return await _act(offering_id, OfferingAction.SUSPEND, rpc, tenancy)


@router.post(
    "/{offering_id}/resume",
    response_model=OfferingOut,
    dependencies=[CanWrite],
    summary="Riprendi un'offerta sospesa",
)
async def resume_offering(offering_id: OfferingId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    return await _act(offering_id, OfferingAction.RESUME, rpc, tenancy)


@router.post(
    "/{offering_id}/archive",
    response_model=OfferingOut,
    dependencies=[CanWrite],
    summary="Archivia un'offerta (definitivo)",
)
async def archive_offering(offering_id: OfferingId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    return await _act(offering_id, OfferingAction.ARCHIVE, rpc, tenancy)
