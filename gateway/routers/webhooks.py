"""Webhooks for integrators (Standard Webhooks signatures) and the delivery log for staff.

An integrator (a partner operator's client-credentials token) subscribes a URL to
event kinds; the signing secret (``whsec_...``) is in the creation answer only,
never stored by the gateway (so this route takes no ``Idempotency-Key``: a replayed
answer would have to keep the secret). The notifications service decides who owns
what; another partner's subscription is 404.
"""

from typing import Any

from fastapi import APIRouter, Depends, Response, status

from gateway.deps import CurrentPrincipal, Rpc, TenancyDep, require_scope
from gateway.responses import service_json
from gateway.schemas.common import IdFilter, PaginationDep
from gateway.schemas.enrolments import viewer_of
from gateway.schemas.notifications import (
    DeliveryId,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatusFilter,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionId,
    SubscriptionOut,
    SubscriptionPage,
)

router = APIRouter(tags=["webhooks"])

CanRead = Depends(require_scope("webhooks:read"))
CanWrite = Depends(require_scope("webhooks:write"))
CanReadLog = Depends(require_scope("deliveries:read"))


@router.post(
    "/v1/webhooks",
    response_model=SubscriptionCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Sottoscrive un URL a tipi di evento (il segreto di firma è mostrato solo ora)",
    openapi_extra={"x-idempotency-exempt": "la risposta contiene il segreto di firma, mostrato una sola volta"},
)
async def create_subscription(body: SubscriptionCreate, rpc: Rpc, principal: CurrentPrincipal) -> Response:
    created = await rpc.call(
        "notifications", "create_subscription", viewer=viewer_of(principal), payload=body.model_dump(mode="json")
    )
    response = service_json(created, status_code=status.HTTP_201_CREATED)
    response.headers["Location"] = f"/v1/webhooks/{created['id']}"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(
    "/v1/webhooks", response_model=SubscriptionPage, dependencies=[CanRead], summary="Le proprie sottoscrizioni"
)
async def list_subscriptions(rpc: Rpc, principal: CurrentPrincipal, page: PaginationDep) -> Any:
    return service_json(
        await rpc.call("notifications", "list_subscriptions", viewer=viewer_of(principal), page=page.model_dump())
    )


@router.get(
    "/v1/webhooks/{subscription_id}",
    response_model=SubscriptionOut,
    dependencies=[CanRead],
    summary="Una sottoscrizione",
)
async def get_subscription(subscription_id: SubscriptionId, rpc: Rpc, principal: CurrentPrincipal) -> Any:
    return service_json(
        await rpc.call(
            "notifications", "get_subscription", viewer=viewer_of(principal), subscription_id=subscription_id
        )
    )


@router.delete(
    "/v1/webhooks/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CanWrite],
    summary="Elimina una sottoscrizione",
)
async def delete_subscription(subscription_id: SubscriptionId, rpc: Rpc, principal: CurrentPrincipal) -> Response:
    await rpc.call("notifications", "delete_subscription", viewer=viewer_of(principal), subscription_id=subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/webhooks/{subscription_id}/deliveries",
    response_model=DeliveryPage,
    dependencies=[CanRead],
    summary="Consegne di una sottoscrizione (tentativi, ultimo errore)",
)
async def subscription_deliveries(
    subscription_id: SubscriptionId, rpc: Rpc, principal: CurrentPrincipal, page: PaginationDep
) -> Any:
    return service_json(
        await rpc.call(
            "notifications",
            "subscription_deliveries",
            viewer=viewer_of(principal),
            subscription_id=subscription_id,
            page=page.model_dump(),
        )
    )


@router.post(
    "/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    dependencies=[CanWrite],
    summary="Invia di nuovo una consegna (inviata o fallita)",
)
async def redeliver(
    subscription_id: SubscriptionId, delivery_id: DeliveryId, rpc: Rpc, principal: CurrentPrincipal
) -> Any:
    return service_json(
        await rpc.call(
            "notifications",
            "redeliver",
            viewer=viewer_of(principal),
            delivery_id=delivery_id,
            subscription_id=subscription_id,
        )
    )


@router.get(
    "/v1/notifications/deliveries",
    response_model=DeliveryPage,
    dependencies=[CanReadLog],
    summary="Registro delle consegne delle proprie alleanze (staff)",
)
async def list_deliveries(
    rpc: Rpc,
    tenancy: TenancyDep,
    page: PaginationDep,
    alliance_id: IdFilter = None,
    status_filter: DeliveryStatusFilter = None,
) -> Any:
    query: dict[str, Any] = {**page.model_dump()}
    if alliance_id is not None:
        await tenancy.ensure_readable(alliance_id)
        query["alliance_ids"] = [alliance_id]
    if status_filter is not None:
        query["status"] = status_filter
    return service_json(
        await rpc.call("notifications", "list_deliveries", viewer=viewer_of(tenancy.principal), query=query)
    )
