"""Shapes of the vouchers routes: the vouchers service's contracts, and the caller as its viewer."""

import base64
from typing import Annotated, Any

from fastapi import Response

from conciliare.contracts.common import Page
from conciliare.contracts.vouchers import (
    ApplicationCreate,
    ApplicationOut,
    ApplicationStatus,
    LedgerOut,
    ProgrammeCreate,
    ProgrammeOut,
    ProgrammeStatus,
    RankingOut,
    RedemptionCreate,
    RedemptionOut,
    ReversalRequest,
    ReviewDecision,
    TransitionNote,
    VoucherOut,
    VoucherStatus,
    WithdrawRequest,
)
from gateway.deps import Tenancy
from gateway.schemas.common import path_id
from gateway.security import Role

__all__ = [
    "ApplicationCreate",
    "ApplicationId",
    "ApplicationOut",
    "ApplicationPage",
    "ApplicationStatus",
    "LedgerOut",
    "ProgrammeCreate",
    "ProgrammeId",
    "ProgrammeOut",
    "ProgrammePage",
    "ProgrammeStatus",
    "RankingOut",
    "RedemptionCreate",
    "RedemptionId",
    "RedemptionOut",
    "RedemptionPage",
    "ReversalRequest",
    "ReviewDecision",
    "TransitionNote",
    "VoucherId",
    "VoucherOut",
    "VoucherPage",
    "VoucherStatus",
    "WithdrawRequest",
    "file_response",
    "voucher_viewer",
]

ProgrammePage = Page[ProgrammeOut]
ApplicationPage = Page[ApplicationOut]
VoucherPage = Page[VoucherOut]
RedemptionPage = Page[RedemptionOut]

ProgrammeId = Annotated[str, path_id("Identificativo del bando")]
ApplicationId = Annotated[str, path_id("Identificativo della domanda")]
VoucherId = Annotated[str, path_id("Identificativo del voucher")]
RedemptionId = Annotated[str, path_id("Identificativo dell'utilizzo")]


async def voucher_viewer(tenancy: Tenancy) -> dict[str, Any]:
    """The caller as the vouchers service's ``Viewer``; a provider's alliances are asked live."""
    principal = tenancy.principal
    alliance_ids = list(principal.alliance_ids)
    if principal.role is Role.PARTNER_OPERATOR:
        alliance_ids = list(await tenancy.readable_alliances() or [])
    return {
        "subject": principal.subject,
        "role": principal.role.value,
        "partner_id": principal.partner_id,
        "alliance_ids": alliance_ids,
    }


def file_response(export: dict[str, Any]) -> Response:
    """A file the service built (base64 in the RPC answer) as a download."""
    return Response(
        base64.b64decode(export["content_b64"]),
        media_type=export["media_type"],
        headers={"Content-Disposition": f'attachment; filename="{export["filename"]}"'},
    )
