"""Projects of an alliance: budget, co-financing, funding sources, actions."""

from typing import Any

from fastapi import APIRouter, Depends, Response, status

from gateway.deps import Rpc, TenancyDep, require_scope
from gateway.idempotency import IdempotencyDep
from gateway.responses import service_json
from gateway.schemas.common import AllianceId, PaginationDep, ProjectId
from gateway.schemas.projects import ProjectOut, ProjectPage, ProjectSpec

router = APIRouter(prefix="/v1/alliances/{alliance_id}/projects", tags=["projects"])

CanRead = Depends(require_scope("projects:read"))
CanWrite = Depends(require_scope("projects:write"))


@router.get("", response_model=ProjectPage, dependencies=[CanRead], summary="Progetti dell'alleanza")
async def list_projects(alliance_id: AllianceId, rpc: Rpc, tenancy: TenancyDep, page: PaginationDep) -> Any:
    await tenancy.ensure_readable(alliance_id)
    return service_json(await rpc.call("partners", "list_projects", alliance_id=alliance_id, page=page.model_dump()))


@router.post(
    "",
    response_model=ProjectOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Crea un progetto (gli importi devono tornare)",
)
async def create_project(
    alliance_id: AllianceId, body: ProjectSpec, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep
) -> Response:
    await tenancy.ensure_manageable(alliance_id)
    payload = body.model_dump(mode="json")
    return await once.create(
        payload, lambda _key: rpc.call("partners", "create_project", alliance_id=alliance_id, payload=payload)
    )


@router.get("/{project_id}", response_model=ProjectOut, dependencies=[CanRead], summary="Un progetto")
async def get_project(alliance_id: AllianceId, project_id: ProjectId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    await tenancy.ensure_readable(alliance_id)
    return service_json(await rpc.call("partners", "get_project", alliance_id=alliance_id, project_id=project_id))


@router.put("/{project_id}", response_model=ProjectOut, dependencies=[CanWrite], summary="Aggiorna un progetto")
async def update_project(
    alliance_id: AllianceId, project_id: ProjectId, body: ProjectSpec, rpc: Rpc, tenancy: TenancyDep
) -> Any:
    await tenancy.ensure_manageable(alliance_id)
    return service_json(
        await rpc.call(
            "partners",
            "update_project",
            alliance_id=alliance_id,
            project_id=project_id,
            payload=body.model_dump(mode="json"),
        )
    )
