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

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response, status

from gateway.deps import CurrentPrincipal, Rpc, require_scope
from gateway.errors import ProblemError
from gateway.idempotency import IDEMPOTENCY_HEADER, IdempotencyDep
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
from gateway.security import Role

router = APIRouter(prefix="/v1", tags=["enrolments"])

CanRead = Depends(require_scope("enrolments:read"))
CanWrite = Depends(require_scope("enrolments:write"))
CanReadAttendance = Depends(require_scope("attendance:read"))
CanWriteAttendance = Depends(require_scope("attendance:write"))

# On a click day thousands of requests queue in the broker for a few workers: a
# family keeps its place in that queue for up to two minutes instead of getting a
# 504 after the default RPC timeout. (The service answers 202 "requested" if the
# decision itself takes longer than a few seconds once it picks the request up.)
ENROLMENT_RPC_TIMEOUT_SECONDS = 120.0


class EnrolmentStatus(StrEnum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


ENROLMENT_DESCRIPTION = f"""
Iscrive un figlio della famiglia a un servizio per un periodo e una modalità di frequenza.

- **201**: iscrizione `confirmed` (posto assegnato) o `waitlisted` (lista d'attesa, con
  `waitlist_position`); i posti non superano mai la capienza, anche con molte richieste
  simultanee.
- **202**: richiesta registrata ma ancora in elaborazione (`requested`): l'esito si legge
  con `GET /v1/enrolments/{{id}}`.
- **422**: la richiesta non è ammissibile; `errors` elenca *tutti* i motivi, con il codice
  del motivo in `field` (`age_out_of_range`, `needs_not_supported`, `not_in_alliance`,
  `period_outside_calendar`, `period_in_past`, `overlapping_enrolment`,
  `attendance_mode_not_offered`, `offering_not_published`) e la spiegazione in `message`.

Con l'intestazione `{IDEMPOTENCY_HEADER}` la stessa richiesta ripetuta restituisce la prima
risposta (stesso codice, stesso corpo) senza creare nulla; la stessa chiave con un corpo
diverso risponde 422, e mentre la prima è in corso 409.
"""


@router.post(
    "/enrolments",
    response_model=EnrolmentOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanWrite],
    summary="Iscrivi un figlio a un servizio",
    description=ENROLMENT_DESCRIPTION,
    responses={202: {"model": EnrolmentOut, "description": "Richiesta ancora in elaborazione"}},
)
async def request_enrolment(
    body: EnrolmentCreate, rpc: Rpc, principal: CurrentPrincipal, once: IdempotencyDep
) -> Response:
    if principal.role is not Role.FAMILY:
        raise ProblemError(403, "Operazione non consentita", "Solo le famiglie iscrivono i propri figli.")
    payload = body.model_dump(mode="json")
    viewer = viewer_of(principal)

    async def operation(key: str | None) -> tuple[int, Any]:
        result = await rpc.call(
            "enrolment",
            "request_enrolment",
            timeout=ENROLMENT_RPC_TIMEOUT_SECONDS,
            viewer=viewer,
            payload=payload,
            request_key=key,
        )
        decided = result["status"] != "requested"
        return (status.HTTP_201_CREATED if decided else status.HTTP_202_ACCEPTED), result

    return await once.run(payload, operation)


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


@router.get("/enrolments/{enrolment_id}", response_model=EnrolmentOut, dependencies=[CanRead], summary="Un'iscrizione")
async def get_enrolment(enrolment_id: EnrolmentId, rpc: Rpc, principal: CurrentPrincipal) -> Any:
    return service_json(
        await rpc.call("enrolment", "get_enrolment", enrolment_id=enrolment_id, viewer=viewer_of(principal))
    )


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
    body: Annotated[CancelRequest | None, Body()] = None,
) -> Any:
    payload = (body or CancelRequest()).model_dump(mode="json")
    result = await rpc.call(
        "enrolment", "cancel_enrolment", enrolment_id=enrolment_id, viewer=viewer_of(principal), payload=payload
    )
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
