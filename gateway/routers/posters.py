"""Posters (*manifesti*) of an offering: uploaded by whoever may change the offering,
readable through short-lived presigned URLs by whoever may see it.

The files live in object storage (``conciliare.chassis.documents``), private: no
anonymous access, only URLs that expire. An upload the policy refuses (type proven
by the file's bytes, size) stores nothing.
"""

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, UploadFile
from pydantic import BaseModel, Field

from conciliare.chassis.documents import (
    DEFAULT_URL_TTL,
    POLICIES,
    DocumentKind,
    DocumentRef,
    DocumentRefused,
    DocumentStore,
    Owner,
)
from gateway.deps import Rpc, TenancyDep, require_scope
from gateway.errors import ProblemError
from gateway.idempotency import IdempotencyDep
from gateway.openapi import problem_responses
from gateway.routers.offerings import OFFERING_NOT_FOUND, _can_see, _changeable, _load
from gateway.schemas.common import OfferingId

router = APIRouter(prefix="/v1/offerings", tags=["offerings"])

CanRead = Depends(require_scope("catalog:read"))
CanWrite = Depends(require_scope("catalog:write"))
POSTER_MAX_BYTES = POLICIES[DocumentKind.POSTER].max_bytes


class PosterOut(BaseModel):
    key: str
    content_type: str
    size: int
    sha256: str
    url: str = Field(description="URL temporaneo (pochi minuti) per scaricare il manifesto")
    url_expires_at: datetime


class PosterList(BaseModel):
    items: list[PosterOut]


def _store(request: Request) -> DocumentStore:
    store: DocumentStore = request.app.state.document_store
    return store


def _owner(offering: dict[str, Any]) -> Owner:
    return Owner(alliance_id=str(offering["alliance_id"]), type="offering", id=str(offering["id"]))


def _out(store: DocumentStore, ref: DocumentRef, reader: str) -> dict[str, Any]:
    expires = datetime.now(UTC).replace(microsecond=0) + DEFAULT_URL_TTL
    url = store.presigned_download(ref, reader=reader, ttl=DEFAULT_URL_TTL)
    return PosterOut(
        key=ref.key,
        content_type=ref.content_type,
        size=ref.size,
        sha256=ref.sha256,
        url=url,
        url_expires_at=expires,
    ).model_dump(mode="json")


@router.post(
    "/{offering_id}/posters",
    response_model=PosterOut,
    status_code=201,
    dependencies=[CanWrite],
    summary="Carica un manifesto dell'offerta (PDF, PNG, JPEG o WebP fino a 10 MB)",
    responses=problem_responses(413, 415),
)
async def upload_poster(
    offering_id: OfferingId, file: UploadFile, request: Request, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep
) -> Response:
    offering = await _changeable(rpc, tenancy, offering_id)
    data = await file.read(POSTER_MAX_BYTES + 1)
    store = _store(request)
    subject = tenancy.principal.subject

    async def upload(_key: str | None) -> dict[str, Any]:
        try:
            ref = await asyncio.to_thread(
                store.put, data, kind=DocumentKind.POSTER, owner=_owner(offering), uploader=subject
            )
        except DocumentRefused as exc:
            raise ProblemError(exc.status, "Documento non accettato", exc.detail) from None
        return await asyncio.to_thread(_out, store, ref, subject)

    # A retried upload (same key, same file) answers with the poster already stored.
    return await once.create({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}, upload)


@router.get(
    "/{offering_id}/posters",
    response_model=PosterList,
    dependencies=[CanRead],
    summary="I manifesti dell'offerta, con URL temporanei per scaricarli",
)
async def list_posters(offering_id: OfferingId, request: Request, rpc: Rpc, tenancy: TenancyDep) -> Any:
    offering = await _load(rpc, offering_id)
    if not await _can_see(tenancy, offering):
        raise OFFERING_NOT_FOUND
    store = _store(request)
    subject = tenancy.principal.subject

    def posters() -> list[dict[str, Any]]:
        return [_out(store, ref, subject) for ref in store.list(_owner(offering), DocumentKind.POSTER)]

    return {"items": await asyncio.to_thread(posters)}
