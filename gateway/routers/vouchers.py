"""Applications (review, withdraw), vouchers (by id, by code, QR) and redemptions.

Families see their own applications and vouchers; providers look a voucher up by
the code a family presents and redeem it against a confirmed enrolment, and see
their own redemptions; alliance staff review applications and reverse
redemptions; the platform admin sees everything. Another tenant's resource is 404.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response, status

from gateway.deps import Rpc, TenancyDep, require_scope
from gateway.idempotency import IdempotencyDep
from gateway.responses import service_json
from gateway.schemas.common import IdFilter, PaginationDep
from gateway.schemas.vouchers import (
    ApplicationId,
    ApplicationOut,
    RedemptionCreate,
    RedemptionId,
    RedemptionOut,
    RedemptionPage,
    ReversalRequest,
    ReviewDecision,
    VoucherId,
    VoucherOut,
    VoucherPage,
    VoucherStatus,
    WithdrawRequest,
    file_response,
    voucher_viewer,
)

router = APIRouter(prefix="/v1", tags=["vouchers"])

CanReadApplications = Depends(require_scope("applications:read"))
CanWriteApplications = Depends(require_scope("applications:write"))
CanReview = Depends(require_scope("programmes:write"))
CanRead = Depends(require_scope("vouchers:read"))
CanWrite = Depends(require_scope("vouchers:write"))
# Redemptions are the providers' and the staff's records (those who may redeem or
# reverse); a family reads what is left on its vouchers instead.
CanReadRedemptions = CanWrite

VoucherCode = Annotated[
    str, Path(min_length=9, max_length=16, description="Codice del voucher, es. ABCD-EFGH-K", examples=["ABCD-EFGH-K"])
]


@router.get(
    "/applications/{application_id}",
    response_model=ApplicationOut,
    dependencies=[CanReadApplications],
    summary="Una domanda",
)
async def get_application(application_id: ApplicationId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    return service_json(await rpc.call("vouchers", "get_application", application_id=application_id, viewer=viewer))


@router.post(
    "/applications/{application_id}/review",
    response_model=ApplicationOut,
    dependencies=[CanReview],
    summary="Istruisci la domanda: conferma i controlli automatici o discostati con una motivazione",
)
async def review_application(application_id: ApplicationId, body: ReviewDecision, rpc: Rpc, tenancy: TenancyDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    result = await rpc.call(
        "vouchers",
        "review_application",
        application_id=application_id,
        viewer=viewer,
        payload=body.model_dump(mode="json"),
    )
    return service_json(result)


@router.post(
    "/applications/{application_id}/withdraw",
    response_model=ApplicationOut,
    dependencies=[CanWriteApplications],
    summary="Ritira la domanda",
)
async def withdraw_application(
    application_id: ApplicationId,
    rpc: Rpc,
    tenancy: TenancyDep,
    body: Annotated[WithdrawRequest | None, Body()] = None,
) -> Any:
    viewer = await voucher_viewer(tenancy)
    payload = (body or WithdrawRequest()).model_dump(mode="json")
    return service_json(
        await rpc.call(
            "vouchers", "withdraw_application", application_id=application_id, viewer=viewer, payload=payload
        )
    )


@router.get("/vouchers", response_model=VoucherPage, dependencies=[CanRead], summary="Voucher visibili")
async def list_vouchers(
    rpc: Rpc,
    tenancy: TenancyDep,
    page: PaginationDep,
    programme_id: IdFilter = None,
    voucher_status: Annotated[VoucherStatus | None, Query(alias="status", description="Stato")] = None,
) -> Any:
    query = {"programme_id": programme_id, "status": voucher_status, **page.model_dump()}
    return service_json(await rpc.call("vouchers", "list_vouchers", viewer=await voucher_viewer(tenancy), query=query))


@router.get(
    "/vouchers/by-code/{code}",
    response_model=VoucherOut,
    dependencies=[CanRead],
    summary="Il voucher presentato allo sportello, dal suo codice (importo, saldo, validità)",
)
async def voucher_by_code(code: VoucherCode, rpc: Rpc, tenancy: TenancyDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    return service_json(await rpc.call("vouchers", "voucher_by_code", code=code, viewer=viewer))


@router.get("/vouchers/{voucher_id}", response_model=VoucherOut, dependencies=[CanRead], summary="Un voucher")
async def get_voucher(voucher_id: VoucherId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    return service_json(await rpc.call("vouchers", "get_voucher", voucher_id=voucher_id, viewer=viewer))


@router.get(
    "/vouchers/{voucher_id}/qr.svg",
    dependencies=[CanRead],
    summary="Il codice QR del voucher",
    responses={200: {"content": {"image/svg+xml": {}}}},
)
async def voucher_qr(voucher_id: VoucherId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    viewer = await voucher_viewer(tenancy)
    return file_response(await rpc.call("vouchers", "voucher_qr", voucher_id=voucher_id, viewer=viewer))


@router.post(
    "/vouchers/{voucher_id}/redemptions",
    response_model=RedemptionOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Usa il voucher per una fattura di un'iscrizione confermata (ogni fattura conta una volta)",
)
async def redeem(
    voucher_id: VoucherId, body: RedemptionCreate, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep
) -> Response:
    viewer = await voucher_viewer(tenancy)
    payload = body.model_dump(mode="json")
    # The service counts an invoice once by itself; the key also replays the first answer.
    return await once.create(
        payload, lambda _key: rpc.call("vouchers", "redeem", voucher_id=voucher_id, viewer=viewer, payload=payload)
    )


@router.get(
    "/vouchers/{voucher_id}/redemptions",
    response_model=RedemptionPage,
    dependencies=[CanRead],
    summary="Utilizzi di un voucher",
)
async def list_voucher_redemptions(voucher_id: VoucherId, rpc: Rpc, tenancy: TenancyDep, page: PaginationDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    return service_json(
        await rpc.call("vouchers", "list_redemptions", viewer=viewer, voucher_id=voucher_id, page=page.model_dump())
    )


@router.get(
    "/redemptions",
    response_model=RedemptionPage,
    dependencies=[CanReadRedemptions],
    summary="Utilizzi visibili (erogatori e staff dell'alleanza)",
)
async def list_redemptions(rpc: Rpc, tenancy: TenancyDep, page: PaginationDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    return service_json(
        await rpc.call("vouchers", "list_redemptions", viewer=viewer, voucher_id=None, page=page.model_dump())
    )


@router.post(
    "/redemptions/{redemption_id}/reverse",
    response_model=RedemptionOut,
    dependencies=[CanWrite],
    summary="Storna un utilizzo (staff dell'alleanza), con motivazione",
)
async def reverse_redemption(redemption_id: RedemptionId, body: ReversalRequest, rpc: Rpc, tenancy: TenancyDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    result = await rpc.call(
        "vouchers",
        "reverse_redemption",
        redemption_id=redemption_id,
        viewer=viewer,
        payload=body.model_dump(mode="json"),
    )
    return service_json(result)
