"""Households and their children.

A family user registers one household (its own) and its children; a child's needs
are health data, stored apart by the enrolment service and returned only to the
family (each read is audited). Staff never see households: the platform operator
may read them without needs; anyone else gets 403 (scope) or 404.
"""

from typing import Any

from fastapi import APIRouter, Depends, Response, status

from gateway.deps import CurrentPrincipal, Identity, Rpc, require_scope
from gateway.errors import ProblemError
from gateway.idempotency import IdempotencyDep
from gateway.responses import service_json
from gateway.schemas.common import HouseholdId, PaginationDep
from gateway.schemas.enrolments import viewer_of
from gateway.schemas.households import ChildCreate, ChildOut, HouseholdCreate, HouseholdOut, HouseholdPage
from gateway.security import Role

router = APIRouter(prefix="/v1/households", tags=["households"])

CanRead = Depends(require_scope("households:read"))
CanWrite = Depends(require_scope("households:write"))


@router.post(
    "",
    response_model=HouseholdOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Registra il proprio nucleo familiare (famiglie)",
)
async def create_household(
    body: HouseholdCreate, rpc: Rpc, identity: Identity, principal: CurrentPrincipal, once: IdempotencyDep
) -> Response:
    if principal.role is not Role.FAMILY:
        raise ProblemError(403, "Operazione non consentita", "Il nucleo familiare lo registra la famiglia stessa.")
    payload = body.model_dump(mode="json")

    async def create(_key: str | None) -> Any:
        created = await rpc.call("enrolment", "create_household", viewer=viewer_of(principal), payload=payload)
        if principal.subject.startswith("user:"):
            # Later tokens carry the household, so /v1/auth/me can show it.
            await identity.set_household(principal.subject.removeprefix("user:"), created["id"])
        return created

    return await once.create(payload, create)


@router.get("", response_model=HouseholdPage, dependencies=[CanRead], summary="Il proprio nucleo familiare")
async def list_households(rpc: Rpc, principal: CurrentPrincipal, page: PaginationDep) -> Any:
    return service_json(
        await rpc.call("enrolment", "list_households", viewer=viewer_of(principal), page=page.model_dump())
    )


@router.get("/{household_id}", response_model=HouseholdOut, dependencies=[CanRead], summary="Un nucleo familiare")
async def get_household(household_id: HouseholdId, rpc: Rpc, principal: CurrentPrincipal) -> Any:
    return service_json(
        await rpc.call("enrolment", "get_household", household_id=household_id, viewer=viewer_of(principal))
    )


@router.post(
    "/{household_id}/children",
    response_model=ChildOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Registra un figlio (i bisogni speciali sono conservati a parte)",
)
async def add_child(
    household_id: HouseholdId, body: ChildCreate, rpc: Rpc, principal: CurrentPrincipal, once: IdempotencyDep
) -> Response:
    payload = body.model_dump(mode="json")
    viewer = viewer_of(principal)
    return await once.create(
        payload,
        lambda _key: rpc.call("enrolment", "add_child", household_id=household_id, viewer=viewer, payload=payload),
    )


@router.get(
    "/{household_id}/children",
    response_model=list[ChildOut],
    dependencies=[CanRead],
    summary="I figli del nucleo (bisogni solo per la famiglia; ogni lettura è registrata)",
)
async def list_children(household_id: HouseholdId, rpc: Rpc, principal: CurrentPrincipal) -> Any:
    return service_json(
        await rpc.call("enrolment", "list_children", household_id=household_id, viewer=viewer_of(principal))
    )
