"""Enrolments, the provider's view of an offering, attendance registers.

Who sees what (decided by the enrolment service, which holds the offerings'
projection and the enrolments):
- families: their own enrolments; only they request one, for their own child;
- partner operators: enrolments of the offerings their organisation provides,
  with the children's needs (each read audited) and the registers;
- alliance managers: everything of their alliances, without needs;
- the platform admin: everything, without needs.
Another tenant's enrolment or offering answers 404, never 403.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status

from conciliare.contracts.taxonomy import EnrolmentStatus
from conciliare.errors import NotFound
from gateway.acceptance import requested
from gateway.deps import CurrentPrincipal, Intake, Receipts, Rpc, require_scope
from gateway.errors import ProblemError
from gateway.fast_lane import acceptance_of
from gateway.idempotency import IDEMPOTENCY_HEADER, IdempotencyDep
from gateway.prefer import MAX_WAIT_SECONDS, PREFER_HEADER
from gateway.responses import service_json
from gateway.schemas.common import EnrolmentId, IdFilter, Month, OfferingId, PaginationDep
from gateway.schemas.enrolments import (
    AttendanceOut,
    AttendanceRecord,
    CancelRequest,
    EnrolmentCreate,
    EnrolmentOut,
    EnrolmentPage,
    OfferingRoster,
    viewer_of,
)

router = APIRouter(prefix="/v1", tags=["enrolments"])

CanRead = Depends(require_scope("enrolments:read"))
CanWrite = Depends(require_scope("enrolments:write"))
CanReadAttendance = Depends(require_scope("attendance:read"))
CanWriteAttendance = Depends(require_scope("attendance:write"))


STILL_DECIDING = "La richiesta è ancora in elaborazione: si potrà annullare appena decisa (tra pochi secondi)."


ENROLMENT_DESCRIPTION = f"""
Chiede l'iscrizione di un figlio della famiglia a un servizio, per un periodo e una modalità
di frequenza. La richiesta viene accettata subito e decisa poco dopo, nell'ordine di arrivo.

- **202**: richiesta accettata (`requested`), con numero di `protocol` e `accepted_at`;
  l'esito si legge con `GET /v1/enrolments/{{id}}` (intestazione `Location`). Nulla di ciò che
  è stato accettato va perso.
- **201**: con `Prefer: wait=N` (N ≤ {MAX_WAIT_SECONDS} secondi) la risposta attende la decisione
  e la restituisce se arriva in tempo: `confirmed` (posto assegnato), `waitlisted` (con
  `waitlist_position`) o `refused` con *tutti* i motivi in `refusal_reasons` (`age_out_of_range`,
  `needs_not_supported`, `not_in_alliance`, `period_outside_calendar`, `period_in_past`,
  `overlapping_enrolment`, `attendance_mode_not_offered`, `offering_not_published`,
  `offering_not_found`, `child_not_found`). `Preference-Applied` dice l'attesa applicata;
  senza decisione in tempo la risposta è 202.
- **422**: la richiesta è malformata (campi mancanti o non validi); **413**: corpo oltre 64 KiB;
  **415**: corpo dichiarato in un formato diverso da JSON.
- **503**: la richiesta *non* è stata accettata (sistema di messaggistica non raggiungibile):
  riprovare dopo `Retry-After` secondi.

I posti non superano mai la capienza, anche con migliaia di richieste simultanee: le richieste
di un servizio sono decise una alla volta, nell'ordine in cui sono state accettate.

Con l'intestazione `{IDEMPOTENCY_HEADER}` la stessa richiesta ripetuta (anche mentre la prima è
ancora in corso) restituisce la stessa richiesta (stesso `id`, `protocol` e `accepted_at`) con il
suo esito attuale, senza crearne un'altra; la stessa chiave con un corpo diverso risponde 422.
"""


@router.post(
    "/enrolments",
    response_model=EnrolmentOut,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[CanWrite],
    summary="Chiedi l'iscrizione di un figlio a un servizio",
    description=ENROLMENT_DESCRIPTION,
    responses={
        201: {"model": EnrolmentOut, "description": "Richiesta decisa entro l'attesa chiesta con `Prefer: wait`"},
        413: {"description": "Corpo della richiesta oltre 64 KiB"},
        415: {"description": "Corpo della richiesta non JSON"},
    },
)
async def request_enrolment(
    body: EnrolmentCreate,
    request: Request,
    rpc: Rpc,
    intake: Intake,
    principal: CurrentPrincipal,
    once: IdempotencyDep,
    prefer: Annotated[
        str | None,
        Header(alias=PREFER_HEADER, description=f"`wait=N`: attendi fino a N secondi (max {MAX_WAIT_SECONDS}) l'esito"),
    ] = None,
) -> Response:
    # Served by gateway.fast_lane, in front of FastAPI; declared here for OpenAPI, and
    # answering the same through the same use case if FastAPI is ever the one called.
    answer = await acceptance_of(request.app.state).accept(
        principal, body.model_dump(mode="json"), request.headers.getlist(PREFER_HEADER), once.key
    )
    answered = service_json(answer.body, answer.status)
    answered.headers.update(answer.headers)
    return answered


@router.get("/enrolments", response_model=EnrolmentPage, dependencies=[CanRead], summary="Iscrizioni visibili")
async def list_enrolments(
    rpc: Rpc,
    principal: CurrentPrincipal,
    page: PaginationDep,
    offering_id: IdFilter = None,
    child_id: IdFilter = None,
    enrolment_status: Annotated[EnrolmentStatus | None, Query(alias="status", description="Stato")] = None,
) -> Any:
    wanted = enrolment_status.value if enrolment_status else None
    query = {"offering_id": offering_id, "child_id": child_id, "status": wanted, **page.model_dump()}
    return service_json(await rpc.call("enrolment", "list_enrolments", viewer=viewer_of(principal), query=query))


@router.get(
    "/enrolments/{enrolment_id}",
    response_model=EnrolmentOut,
    dependencies=[CanRead],
    summary="Un'iscrizione (o una richiesta ancora da decidere: stato requested)",
)
async def get_enrolment(enrolment_id: EnrolmentId, rpc: Rpc, principal: CurrentPrincipal, receipts: Receipts) -> Any:
    try:
        found = await rpc.call("enrolment", "get_enrolment", enrolment_id=enrolment_id, viewer=viewer_of(principal))
    except NotFound:
        # Accepted but not decided yet: the service does not know it, its receipt does.
        receipt = receipts.verify(principal.subject, enrolment_id)
        if receipt is None:
            raise
        return service_json(requested(receipt, None))
    return service_json(found)


@router.post(
    "/enrolments/{enrolment_id}/cancel",
    response_model=EnrolmentOut,
    dependencies=[CanWrite],
    summary="Annulla un'iscrizione (il posto liberato va al primo in lista d'attesa)",
)
async def cancel_enrolment(
    enrolment_id: EnrolmentId,
    rpc: Rpc,
    principal: CurrentPrincipal,
    receipts: Receipts,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> Any:
    payload = (body or CancelRequest()).model_dump(mode="json")
    try:
        result = await rpc.call(
            "enrolment", "cancel_enrolment", enrolment_id=enrolment_id, viewer=viewer_of(principal), payload=payload
        )
    except NotFound:
        if receipts.verify(principal.subject, enrolment_id) is None:
            raise
        # Accepted, not decided yet: there is nothing to cancel until there is a decision.
        raise ProblemError(409, "Richiesta in elaborazione", STILL_DECIDING, {"Retry-After": "1"}) from None
    return service_json(result)


@router.get(
    "/offerings/{offering_id}/enrolments",
    response_model=OfferingRoster,
    dependencies=[CanRead],
    summary="Iscritti e lista d'attesa di un servizio (ente gestore e staff)",
)
async def offering_roster(offering_id: OfferingId, rpc: Rpc, principal: CurrentPrincipal) -> Any:
    return service_json(
        await rpc.call("enrolment", "offering_roster", offering_id=offering_id, viewer=viewer_of(principal))
    )


@router.put(
    "/enrolments/{enrolment_id}/attendance",
    response_model=AttendanceOut,
    dependencies=[CanWriteAttendance],
    summary="Registra le presenze (o le ore) per giorno",
)
async def record_attendance(
    enrolment_id: EnrolmentId, body: AttendanceRecord, rpc: Rpc, principal: CurrentPrincipal
) -> Any:
    result = await rpc.call(
        "enrolment",
        "record_attendance",
        enrolment_id=enrolment_id,
        viewer=viewer_of(principal),
        payload=body.model_dump(mode="json"),
    )
    return service_json(result)


@router.get(
    "/enrolments/{enrolment_id}/attendance",
    response_model=AttendanceOut,
    dependencies=[CanReadAttendance],
    summary="Presenze e totali di un'iscrizione",
)
async def get_attendance(enrolment_id: EnrolmentId, rpc: Rpc, principal: CurrentPrincipal) -> Any:
    return service_json(
        await rpc.call("enrolment", "get_attendance", enrolment_id=enrolment_id, viewer=viewer_of(principal))
    )


@router.get(
    "/offerings/{offering_id}/attendance.csv",
    dependencies=[CanReadAttendance],
    summary="Registro presenze del mese (CSV separato da punto e virgola)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "Registro del mese, codici fiscali mascherati"}},
)
async def attendance_register(
    offering_id: OfferingId,
    rpc: Rpc,
    principal: CurrentPrincipal,
    month: Month,
) -> Response:
    export = await rpc.call(
        "enrolment", "attendance_register", offering_id=offering_id, month=month, viewer=viewer_of(principal)
    )
    return Response(
        export["content"].encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export["filename"]}"'},
    )
