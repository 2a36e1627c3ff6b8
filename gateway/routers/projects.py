"""Projects of an alliance: budget, co-financing, funding sources, actions.

Projects are versioned: reads answer ``ETag: "<version>"`` and a PUT names the version
it was read at (``If-Match`` or the body's ``version``), so concurrent edits never
overwrite each other (see ``gateway/openapi.py``).
"""

from typing import Any

from fastapi import APIRouter, Depends, Response, status

from conciliare.errors import Conflict
from gateway.deps import Rpc, TenancyDep, require_scope
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
from gateway.schemas.common import AllianceId, PaginationDep, ProjectId
from gateway.schemas.projects import ProjectOut, ProjectPage, ProjectSpec, ProjectUpdate

router = APIRouter(prefix="/v1/alliances/{alliance_id}/projects", tags=["projects"])

CanRead = Depends(require_scope("projects:read"))
CanWrite = Depends(require_scope("projects:write"))

PROJECT_RULES = (
    "Il periodo cade negli anni 2014–2100 e l'inizio non segue la fine; il costo complessivo e il "
    "contributo richiesto sono maggiori di zero; il costo complessivo è uguale al contributo richiesto "
    "più il cofinanziamento; le fonti di finanziamento sommano il contributo richiesto. Ogni regola "
    "violata è un elemento di `errors` (422)."
)


@router.get("", response_model=ProjectPage, dependencies=[CanRead], summary="Progetti dell'alleanza")
async def list_projects(alliance_id: AllianceId, rpc: Rpc, tenancy: TenancyDep, page: PaginationDep) -> Any:
    await tenancy.ensure_readable(alliance_id)
    return service_json(await rpc.call("partners", "list_projects", alliance_id=alliance_id, page=page.model_dump()))


@router.post(
    "",
    response_model=ProjectOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Crea un progetto (periodo e importi devono tornare)",
    description=PROJECT_RULES,
)
async def create_project(
    alliance_id: AllianceId, body: ProjectSpec, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep
) -> Response:
    await tenancy.ensure_manageable(alliance_id)
    payload = body.model_dump(mode="json")
    return await once.create(
        payload,
        lambda key: rpc.call(
            "partners",
            "create_project",
            alliance_id=alliance_id,
            payload=payload,
            request_key=key,
            requested_by=once.owner,
        ),
    )


@router.get(
    "/{project_id}",
    response_model=ProjectOut,
    dependencies=[CanRead],
    summary="Un progetto (con ETag)",
    responses=versioned_responses(),
)
async def get_project(alliance_id: AllianceId, project_id: ProjectId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    await tenancy.ensure_readable(alliance_id)
    project = await rpc.call("partners", "get_project", alliance_id=alliance_id, project_id=project_id)
    return with_etag(service_json(project), project)


@router.put(
    "/{project_id}",
    response_model=ProjectOut,
    dependencies=[CanWrite],
    summary="Aggiorna un progetto (con la versione letta: If-Match o version)",
    description=PROJECT_RULES,
    responses=versioned_write_responses(),
)
async def update_project(
    alliance_id: AllianceId,
    project_id: ProjectId,
    body: ProjectUpdate,
    rpc: Rpc,
    tenancy: TenancyDep,
    if_match: IfMatchHeader = None,
) -> Response:
    await tenancy.ensure_manageable(alliance_id)
    version = expected_version(if_match, body.version)
    try:
        project = await rpc.call(
            "partners",
            "update_project",
            alliance_id=alliance_id,
            project_id=project_id,
            payload=body.model_dump(mode="json", exclude={"version"}),
            version=version,
        )
    except Conflict as exc:
        raise stale_as_precondition(exc, if_match) from None
    return with_etag(service_json(project), project)
