"""The gateway: the only HTTP entry of Conciliare."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conciliare.chassis.documents import DocumentStore as ChassisDocumentStore
from conciliare.settings import get_platform_settings
from conciliare.tracing import configure_logging, setup_tracing
from gateway import fast_lane
from gateway.deps import json_numbers_fit
from gateway.documents import DocumentStore
from gateway.errors import install_error_handlers
from gateway.identity import IdentityStore
from gateway.intake import EnrolmentIntake
from gateway.openapi import install_openapi
from gateway.request_keys import RequestKeys
from gateway.routers import (
    alliances,
    auth,
    enrolments,
    health,
    households,
    inbox,
    offerings,
    partners,
    posters,
    programmes,
    projects,
    vouchers,
    webhooks,
)
from gateway.rpc import RpcClient

log = logging.getLogger("conciliare.gateway")

DESCRIPTION = """
API della piattaforma **Conciliare** per le alleanze locali di conciliazione vita-lavoro.

Autenticazione: `POST /v1/auth/token` (OAuth2, grant `password` per lo staff e le famiglie,
`client_credentials` per i gestionali delle cooperative), poi `Authorization: Bearer <token>`.
Ogni risposta porta `X-Trace-Id`.

**Errori.** Ogni errore è `application/problem+json` (RFC 9457, schema `Problem`): `type`,
`title`, `status`, `detail` (in italiano), `instance`, `trace_id` (da citare all'assistenza) e,
per i dati non validi (422), `errors: [{field, message}]` con tutti i motivi. Ogni operazione
documenta i codici che può restituire. Numeri, date e mesi hanno limiti dichiarati
(es. `limit` 1–200, `offset` 0–100000, mesi `AAAA-MM` tra 2000 e 2100): fuori dai limiti, 422.

**Dipendenze non disponibili.** Se un servizio, il sistema di messaggistica o un database
non è raggiungibile la risposta è 503, se un servizio non risponde in tempo 504; entrambe con
`Retry-After` (secondi): la richiesta si può ripetere dopo quell'attesa.

**Idempotenza.** Ogni `POST` che crea qualcosa accetta l'intestazione `Idempotency-Key`
(es. un UUID): ripetere la stessa richiesta con la stessa chiave restituisce la prima risposta
(`Idempotent-Replayed: true`) senza creare nulla; la stessa chiave con un corpo diverso
risponde 422, e 409 mentre la prima richiesta è ancora in corso. Dopo un 503 o un 504 si
ripete con la stessa chiave.

**Concorrenza.** Le risorse modificabili (progetti, offerte) hanno una `version` e un `ETag`.
Un `PUT` porta la versione letta, in `If-Match: "<version>"` (412 se nel frattempo è cambiata)
o nel campo `version` del corpo (409); senza nessuna delle due la risposta è 428. Dopo 409 o
412 si rilegge e si riprova.
"""

# Seconds the gateway waits at start for the broker before serving anyway (answering 503
# until the broker is reachable; the connection is then made in the background).
BROKER_WAIT_AT_START = 30.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    platform = get_platform_settings()
    rpc = RpcClient(platform.amqp_uri, platform.rpc_timeout_seconds)
    # The broker may still be starting when the gateway does: wait for it a while.
    if not await rpc.start(wait=BROKER_WAIT_AT_START):
        log.warning("broker not reachable at start: answering 503 until it is")
    identity = IdentityStore.connect(platform.mongo_uri, platform.database_name("gateway"))
    await identity.ensure_indexes()
    documents = DocumentStore(platform)
    try:
        await documents.ensure_bucket()
    except Exception as exc:  # readiness reports it; the API can still serve the rest
        log.warning("object storage not reachable at start: %s", type(exc).__name__)
    # The documents component every service shares (policies, presigned URLs).
    document_store = ChassisDocumentStore.from_settings(platform)
    try:
        await asyncio.to_thread(document_store.ensure_bucket)
    except Exception as exc:  # readiness reports it; the API can still serve the rest
        log.warning("object storage not reachable at start: %s", type(exc).__name__)
    intake = EnrolmentIntake(rpc)
    await intake.start_listening()
    app.state.rpc, app.state.identity, app.state.documents = rpc, identity, documents
    app.state.intake = intake
    app.state.request_keys = RequestKeys(identity.db.idempotency)
    app.state.document_store = document_store
    try:
        yield
    finally:
        await rpc.close()
        await identity.close()


class TraceIdHeaderMiddleware:
    """Put the trace id on every response, so a user can quote it to support.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware would stream the body
    separately from the headers, and on loopback that alone costs ~40 ms a request
    (Nagle + delayed ACK).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_trace_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                context = trace.get_current_span().get_span_context()
                if context.is_valid:
                    headers = MutableHeaders(scope=message)
                    headers["X-Trace-Id"] = format(context.trace_id, "032x")
            await send(message)

        await self.app(scope, receive, send_with_trace_id)


def put_fast_lane_in_front(app: FastAPI) -> None:
    """Put ``gateway.fast_lane`` before every middleware, the instrumentation's included.

    ``add_middleware`` would place it inside the OpenTelemetry middleware, whose
    per-request route lookup is part of what the fast lane saves; it makes its own span.
    """
    build = app.build_middleware_stack

    def build_with_fast_lane() -> ASGIApp:
        return fast_lane.FastLane(build(), app.state)

    app.build_middleware_stack = build_with_fast_lane  # type: ignore[method-assign]


def create_app() -> FastAPI:
    configure_logging()
    setup_tracing("gateway")
    # Docs assets served by the gateway itself: regional networks often block CDNs.
    app = FastAPIOffline(
        title="Conciliare API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
        dependencies=[Depends(json_numbers_fit)],
        # FastAPI's own OpenTelemetry (on by default since 0.16x) would trace every request a
        # second time beside FastAPIInstrumentor below, and record metrics nobody reads.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    routers = (
        *(auth, health, alliances, partners, projects, offerings, posters, households, enrolments),
        *(programmes, vouchers, inbox, webhooks),
    )
    for module in routers:
        app.include_router(module.router)
    install_openapi(app)

    app.add_middleware(TraceIdHeaderMiddleware)
    # One server span per request; the per-message ASGI send/receive spans add
    # cost and no insight.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="/v1/health", exclude_spans=["receive", "send"])
    put_fast_lane_in_front(app)
    return app


app = create_app()
