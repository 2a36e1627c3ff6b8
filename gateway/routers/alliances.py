"""Alliances and their members."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from conciliare.contracts.partners import MembershipRole, MembershipStatus
from gateway.deps import NOT_FOUND, Rpc, TenancyDep, require_scope
from gateway.errors import ProblemError
from gateway.idempotency import IdempotencyDep
from gateway.responses import service_json
from gateway.schemas.alliances import (
    AllianceCreate,
    AllianceOut,
    AlliancePage,
    MemberAdd,
    MemberOut,
    MemberPage,
    MemberStatusChange,
    MemberTargetStatus,
)
from gateway.schemas.common import AllianceId, PaginationDep, PartnerId
from gateway.security import Role

router = APIRouter(prefix="/v1/alliances", tags=["alliances"])

CanRead = Depends(require_scope("alliances:read"))
CanWrite = Depends(require_scope("alliances:write"))


@router.get("", response_model=AlliancePage, dependencies=[CanRead], summary="Alleanze visibili")
async def list_alliances(rpc: Rpc, tenancy: TenancyDep, page: PaginationDep) -> Any:
    readable = await tenancy.directory_alliances()
    return service_json(await rpc.call("partners", "list_alliances", alliance_ids=readable, page=page.model_dump()))


@router.post(
    "",
    response_model=AllianceOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Crea un'alleanza (operatore regionale)",
)
async def create_alliance(body: AllianceCreate, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep) -> Response:
    if tenancy.principal.role is not Role.PLATFORM_ADMIN:
        raise ProblemError(403, "Operazione non consentita", "Solo l'operatore regionale crea nuove alleanze.")
    payload = body.model_dump(mode="json")
    return await once.create(
        payload,
        lambda key: rpc.call("partners", "create_alliance", payload=payload, request_key=key, requested_by=once.owner),
    )


@router.get("/{alliance_id}", response_model=AllianceOut, dependencies=[CanRead], summary="Un'alleanza")
async def get_alliance(alliance_id: AllianceId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    directory = await tenancy.directory_alliances()
    if directory is not None and alliance_id not in directory:
        raise NOT_FOUND
    return service_json(await rpc.call("partners", "get_alliance", alliance_id=alliance_id))


@router.get(
    "/{alliance_id}/members",
    response_model=MemberPage,
    dependencies=[CanRead],
    summary="Membri dell'alleanza (senza i receduti, salvo richiesta)",
    description=(
        "Senza `status` elenca i membri attivi (in attesa e formalizzati), gli stessi contati da "
        "`member_count`; `status=withdrawn` elenca i receduti, `include_withdrawn=true` tutti."
    ),
)
async def list_members(
    alliance_id: AllianceId,
    rpc: Rpc,
    tenancy: TenancyDep,
    page: PaginationDep,
    member_status: Annotated[
        MembershipStatus | None, Query(alias="status", description="Solo i membri in questo stato")
    ] = None,
    include_withdrawn: Annotated[
        bool, Query(description="Senza `status`: includere anche i receduti (predefinito: no)")
    ] = False,
    role: MembershipRole | None = None,
) -> Any:
    await tenancy.ensure_readable(alliance_id)
    query = {"status": member_status, "include_withdrawn": include_withdrawn, "role": role, **page.model_dump()}
    return service_json(await rpc.call("partners", "list_members", alliance_id=alliance_id, query=query))


@router.post(
    "/{alliance_id}/members",
    response_model=MemberOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Aggiungi un partner all'alleanza",
)
async def add_member(
    alliance_id: AllianceId, body: MemberAdd, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep
) -> Response:
    await tenancy.ensure_manageable(alliance_id)
    payload = body.model_dump(mode="json")
    return await once.create(
        payload,
        lambda key: rpc.call(
            "partners", "add_member", alliance_id=alliance_id, payload=payload, request_key=key, requested_by=once.owner
        ),
    )


@router.get(
    "/{alliance_id}/members/{partner_id}",
    response_model=MemberOut,
    dependencies=[CanRead],
    summary="Un membro dell'alleanza",
)
async def get_member(alliance_id: AllianceId, partner_id: PartnerId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    await tenancy.ensure_readable(alliance_id)
    return service_json(await rpc.call("partners", "get_member", alliance_id=alliance_id, partner_id=partner_id))


@router.patch(
    "/{alliance_id}/members/{partner_id}",
    response_model=MemberOut,
    dependencies=[CanWrite],
    summary="Formalizza l'adesione o registra il recesso",
)
async def change_member(
    alliance_id: AllianceId, partner_id: PartnerId, body: MemberStatusChange, rpc: Rpc, tenancy: TenancyDep
) -> Any:
    await tenancy.ensure_manageable(alliance_id)
    method = "formalize_member" if body.status is MemberTargetStatus.FORMALIZED else "withdraw_member"
    return service_json(await rpc.call("partners", method, alliance_id=alliance_id, partner_id=partner_id))
