"""Voucher programmes (bandi): rules, status actions, applications, the ranking, the ledger.

Who sees what (decided by the vouchers service):
- alliance staff: their alliance's bandi, drafts included, every application, the
  draft ranking with each score's breakdown, the ledger and its exports;
- families: open and later bandi, their own applications, the published ranking
  (protocol number and masked codice fiscale only);
- partner operators: their alliances' bandi;
- the platform admin: everything.
Another tenant's bando answers 404, never 403.
"""

import asyncio
import hashlib
import io
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Form, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import RedirectResponse

from conciliare.contracts.vouchers import (
    ATTACHMENT_MAX_BYTES,
    ATTACHMENT_MEDIA_TYPES,
    AttachmentKind,
    AttachmentRef,
    attachment_prefix,
)
from gateway.deps import CurrentPrincipal, Rpc, TenancyDep, require_scope
from gateway.documents import DOCUMENTS_BUCKET, DocumentStore
from gateway.errors import ProblemError
from gateway.idempotency import IdempotencyDep
from gateway.openapi import problem_responses
from gateway.responses import service_json
from gateway.schemas.common import IdFilter, PaginationDep
from gateway.schemas.vouchers import (
    ApplicationCreate,
    ApplicationOut,
    ApplicationPage,
    ApplicationStatus,
    LedgerOut,
    ProgrammeCreate,
    ProgrammeId,
    ProgrammeOut,
    ProgrammePage,
    ProgrammeStatus,
    RankingOut,
    TransitionNote,
    file_response,
    voucher_viewer,
)
from gateway.security import Role

router = APIRouter(prefix="/v1", tags=["programmes"])

CanRead = Depends(require_scope("programmes:read"))
CanWrite = Depends(require_scope("programmes:write"))
CanApply = Depends(require_scope("applications:write"))
CanReadApplications = Depends(require_scope("applications:read"))
CanReadLedger = Depends(require_scope("ledger:read"))

# Ranking and awarding tens of thousands of applications takes seconds, not the default RPC timeout.
LONG_RPC_TIMEOUT_SECONDS = 120.0
# A ranking not published yet is a 409 for whoever may only see the final one.
NOT_PUBLISHED_YET = problem_responses(409)


@router.post(
    "/programmes",
    response_model=ProgrammeOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Crea un bando (in bozza)",
)
async def create_programme(body: ProgrammeCreate, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep) -> Response:
    await tenancy.ensure_manageable(body.alliance_id)
    viewer = await voucher_viewer(tenancy)
    payload = body.model_dump(mode="json")
    return await once.create(
        payload, lambda _key: rpc.call("vouchers", "create_programme", viewer=viewer, payload=payload)
    )


@router.get("/programmes", response_model=ProgrammePage, dependencies=[CanRead], summary="Bandi visibili")
async def list_programmes(
    rpc: Rpc,
    tenancy: TenancyDep,
    page: PaginationDep,
    alliance_id: IdFilter = None,
    programme_status: Annotated[ProgrammeStatus | None, Query(alias="status", description="Stato")] = None,
) -> Any:
    query = {"alliance_id": alliance_id, "status": programme_status, **page.model_dump()}
    return service_json(
        await rpc.call("vouchers", "list_programmes", viewer=await voucher_viewer(tenancy), query=query)
    )


@router.get("/programmes/{programme_id}", response_model=ProgrammeOut, dependencies=[CanRead], summary="Un bando")
async def get_programme(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    return service_json(await rpc.call("vouchers", "get_programme", programme_id=programme_id, viewer=viewer))


async def _action(rpc: Rpc, tenancy: TenancyDep, method: str, programme_id: str, **extra: Any) -> Response:
    viewer = await voucher_viewer(tenancy)
    result = await rpc.call(
        "vouchers", method, timeout=LONG_RPC_TIMEOUT_SECONDS, programme_id=programme_id, viewer=viewer, **extra
    )
    return service_json(result)


@router.post(
    "/programmes/{programme_id}/open",
    response_model=ProgrammeOut,
    dependencies=[CanWrite],
    summary="Apri il bando (le regole sono verificate: tetto, fonti, pesi)",
)
async def open_programme(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    return await _action(rpc, tenancy, "open_programme", programme_id)


@router.post(
    "/programmes/{programme_id}/close", response_model=ProgrammeOut, dependencies=[CanWrite], summary="Chiudi il bando"
)
async def close_programme(
    programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep, body: Annotated[TransitionNote | None, Body()] = None
) -> Response:
    payload = (body or TransitionNote()).model_dump(mode="json")
    return await _action(rpc, tenancy, "close_programme", programme_id, payload=payload)


@router.post(
    "/programmes/{programme_id}/confirm-reviews",
    dependencies=[CanWrite],
    summary="Conferma l'esito dei controlli automatici per le domande non ancora istruite",
)
async def confirm_reviews(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> dict[str, int]:
    viewer = await voucher_viewer(tenancy)
    confirmed = await rpc.call(
        "vouchers", "confirm_reviews", timeout=LONG_RPC_TIMEOUT_SECONDS, programme_id=programme_id, viewer=viewer
    )
    return {"confirmed": int(confirmed)}


@router.post(
    "/programmes/{programme_id}/rank",
    response_model=ProgrammeOut,
    dependencies=[CanWrite],
    summary="Calcola (o ricalcola) la graduatoria provvisoria",
)
async def rank_programme(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    return await _action(rpc, tenancy, "rank_programme", programme_id)


@router.post(
    "/programmes/{programme_id}/publish",
    response_model=ProgrammeOut,
    dependencies=[CanWrite],
    summary="Pubblica la graduatoria definitiva (irreversibile)",
)
async def publish_ranking(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    return await _action(rpc, tenancy, "publish_ranking", programme_id)


@router.post(
    "/programmes/{programme_id}/award",
    response_model=ProgrammeOut,
    dependencies=[CanWrite],
    summary="Assegna i voucher della graduatoria definitiva, nei limiti del budget",
)
async def award_programme(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    return await _action(rpc, tenancy, "award_programme", programme_id)


@router.post(
    "/programmes/{programme_id}/applications",
    response_model=ApplicationOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanApply],
    summary="Presenta domanda per un figlio (numero di protocollo e ora di ricezione)",
)
async def submit_application(
    programme_id: ProgrammeId, body: ApplicationCreate, rpc: Rpc, tenancy: TenancyDep, once: IdempotencyDep
) -> Response:
    viewer = await voucher_viewer(tenancy)
    payload = body.model_dump(mode="json")
    return await once.create(
        payload,
        lambda _key: rpc.call(
            "vouchers", "submit_application", programme_id=programme_id, viewer=viewer, payload=payload
        ),
    )


@router.get(
    "/programmes/{programme_id}/applications",
    response_model=ApplicationPage,
    dependencies=[CanReadApplications],
    summary="Domande del bando per numero di protocollo (famiglie: le proprie)",
)
async def list_applications(
    programme_id: ProgrammeId,
    rpc: Rpc,
    tenancy: TenancyDep,
    page: PaginationDep,
    application_status: Annotated[ApplicationStatus | None, Query(alias="status", description="Stato")] = None,
) -> Any:
    query = {"status": application_status, **page.model_dump()}
    viewer = await voucher_viewer(tenancy)
    return service_json(
        await rpc.call("vouchers", "list_applications", programme_id=programme_id, viewer=viewer, query=query)
    )


@router.get(
    "/programmes/{programme_id}/ranking",
    response_model=RankingOut,
    dependencies=[CanRead],
    summary="Graduatoria: protocollo, codice fiscale mascherato, punteggio, esito",
    responses=NOT_PUBLISHED_YET,
)
async def get_ranking(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep, page: PaginationDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    return service_json(
        await rpc.call("vouchers", "get_ranking", programme_id=programme_id, viewer=viewer, page=page.model_dump())
    )


@router.get(
    "/programmes/{programme_id}/ranking.csv",
    dependencies=[CanRead],
    summary="Graduatoria in CSV (separatore ;)",
    responses={200: {"content": {"text/csv": {}}}, **NOT_PUBLISHED_YET},
)
async def ranking_csv(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    viewer = await voucher_viewer(tenancy)
    return file_response(
        await rpc.call("vouchers", "export_ranking", programme_id=programme_id, viewer=viewer, fmt="csv")
    )


@router.get(
    "/programmes/{programme_id}/ranking.pdf",
    dependencies=[CanRead],
    summary="Graduatoria in PDF",
    responses={200: {"content": {"application/pdf": {}}}, **NOT_PUBLISHED_YET},
)
async def ranking_pdf(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    viewer = await voucher_viewer(tenancy)
    return file_response(
        await rpc.call("vouchers", "export_ranking", programme_id=programme_id, viewer=viewer, fmt="pdf")
    )


@router.get(
    "/programmes/{programme_id}/ledger",
    response_model=LedgerOut,
    dependencies=[CanReadLedger],
    summary="Registro del budget: assegnato, speso, disponibile, per fonte di finanziamento",
)
async def get_ledger(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Any:
    viewer = await voucher_viewer(tenancy)
    return service_json(await rpc.call("vouchers", "get_ledger", programme_id=programme_id, viewer=viewer))


@router.get(
    "/programmes/{programme_id}/ledger.csv",
    dependencies=[CanReadLedger],
    summary="Rendiconto in CSV (separatore ;)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def ledger_csv(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    viewer = await voucher_viewer(tenancy)
    return file_response(
        await rpc.call("vouchers", "export_ledger", programme_id=programme_id, viewer=viewer, fmt="csv")
    )


@router.get(
    "/programmes/{programme_id}/ledger.xlsx",
    dependencies=[CanReadLedger],
    summary="Rendiconto in Excel (fonti, movimenti, enti erogatori)",
    responses={200: {"content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}},
)
async def ledger_xlsx(programme_id: ProgrammeId, rpc: Rpc, tenancy: TenancyDep) -> Response:
    viewer = await voucher_viewer(tenancy)
    return file_response(
        await rpc.call("vouchers", "export_ledger", programme_id=programme_id, viewer=viewer, fmt="xlsx")
    )


@router.post(
    "/programmes/{programme_id}/attachments",
    response_model=AttachmentRef,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanApply],
    summary="Carica un allegato privato (ISEE, diagnosi) da citare nella domanda",
    description="PDF, JPEG o PNG fino a 10 MB; il documento resta privato (solo URL temporanei).",
)
async def upload_attachment(
    programme_id: ProgrammeId,
    request: Request,
    principal: CurrentPrincipal,
    file: UploadFile,
    kind: Annotated[AttachmentKind, Form(description="Tipo di allegato")],
    once: IdempotencyDep,
) -> Response:
    if principal.role is not Role.FAMILY:
        raise ProblemError(403, "Operazione non consentita", "Solo le famiglie caricano gli allegati delle domande.")
    content = await file.read(ATTACHMENT_MAX_BYTES + 1)
    media_type = file.content_type or ""
    if media_type not in ATTACHMENT_MEDIA_TYPES or len(content) > ATTACHMENT_MAX_BYTES or not content:
        raise ProblemError(
            422,
            "Allegato non valido",
            "Carica un PDF, JPEG o PNG non vuoto fino a 10 MB.",
        )
    filename = (file.filename or "allegato").rsplit("/", 1)[-1][:200]
    store: DocumentStore = request.app.state.documents

    async def upload(_key: str | None) -> dict[str, Any]:
        key = f"{attachment_prefix(principal.subject)}{programme_id}/{uuid.uuid4().hex}-{filename}"
        await asyncio.to_thread(
            store.client.put_object, DOCUMENTS_BUCKET, key, io.BytesIO(content), len(content), content_type=media_type
        )
        return AttachmentRef(kind=kind, object_key=key, filename=filename).model_dump(mode="json")

    # A retried upload (same key, same file) answers with the object already stored.
    fingerprint = {"kind": kind, "filename": filename, "sha256": hashlib.sha256(content).hexdigest()}
    return await once.create(fingerprint, upload)


@router.get(
    "/applications/{application_id}/attachments/{index}",
    dependencies=[CanReadApplications],
    summary="Un allegato della domanda (la famiglia o lo staff dell'alleanza): URL temporaneo",
    responses={307: {"description": "Redirezione all'URL temporaneo (10 minuti)"}},
    status_code=status.HTTP_307_TEMPORARY_REDIRECT,
)
async def attachment(
    application_id: Annotated[str, Path(min_length=1, max_length=64)],
    index: Annotated[int, Path(ge=0, le=9)],
    request: Request,
    rpc: Rpc,
    tenancy: TenancyDep,
) -> RedirectResponse:
    # The vouchers service decides who sees the application; its attachments follow.
    viewer = await voucher_viewer(tenancy)
    found = await rpc.call("vouchers", "get_application", application_id=application_id, viewer=viewer)
    attachments = found["attachments"]
    if index >= len(attachments):
        raise ProblemError(404, "Risorsa non trovata", "Allegato non trovato.")
    store: DocumentStore = request.app.state.documents
    url = await store.presigned_get(attachments[index]["object_key"])
    return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
