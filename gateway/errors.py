"""Every error leaves the gateway as ``application/problem+json`` (RFC 9457).

The one table that maps domain and transport errors to HTTP status codes lives
here. No stack trace ever reaches a client: unexpected failures answer 500 with
the trace id, which finds the details in the trace viewer and the logs.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

from conciliare.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    NotFound,
    Unavailable,
    ValidationFailed,
    italian_message,
)
from gateway.rpc import RemoteFailure, RpcTimeout, ServiceUnavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Seconds a client should wait before retrying when a dependency is away or slow.
RETRY_AFTER_SECONDS = 5
RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}
# What FastAPI raises (as a 400) for a body it cannot decode at all.
FASTAPI_BODY_NOT_PARSED = "There was an error parsing the body"

STATUS_BY_ERROR: dict[type[Exception], tuple[int, str]] = {
    NotFound: (404, "Risorsa non trovata"),
    Conflict: (409, "Conflitto con lo stato attuale"),
    ValidationFailed: (422, "Dati non validi"),
    Forbidden: (403, "Operazione non consentita"),
    Unavailable: (503, "Servizio non disponibile"),
    ServiceUnavailable: (503, "Servizio non disponibile"),
    RpcTimeout: (504, "Il servizio non ha risposto in tempo"),
    RemoteFailure: (500, "Errore interno"),
}


class ProblemError(Exception):
    """Raised by routes for errors decided at the gateway (auth, tenancy, idempotency)."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}


def problem_document(
    status: int, title: str, detail: str, instance: str, errors: list[FieldError] | None = None
) -> dict[str, Any]:
    """The RFC 9457 body, with the current trace id for support."""
    context = trace.get_current_span().get_span_context()
    body: dict[str, Any] = {
        "type": f"https://conciliare.example/problems/{status}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if context.is_valid:
        body["trace_id"] = format(context.trace_id, "032x")
    if errors:
        body["errors"] = errors
    return body


def problem(
    status: int,
    title: str,
    detail: str,
    request: Request,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = problem_document(status, title, detail, request.url.path, errors)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status, title = STATUS_BY_ERROR.get(type(exc), (400, "Richiesta non valida"))
        # A service whose own dependency is away answers Unavailable: retrying is right.
        headers = RETRY_AFTER if status == 503 else None
        return problem(status, title, exc.detail, request, exc.errors, headers=headers)

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        status, title = STATUS_BY_ERROR[ServiceUnavailable]
        return problem(status, title, exc.detail, request, headers=RETRY_AFTER)

    @app.exception_handler(RpcTimeout)
    async def _timeout(request: Request, exc: RpcTimeout) -> JSONResponse:
        status, title = STATUS_BY_ERROR[RpcTimeout]
        detail = f"Il servizio '{exc.service}' non ha risposto in tempo. Riprova tra poco."
        return problem(status, title, detail, request, headers=RETRY_AFTER)

    @app.exception_handler(ConnectionFailure)
    async def _database_away(request: Request, exc: ConnectionFailure) -> JSONResponse:
        # The gateway's own store (users, tokens' subjects, idempotency keys).
        log.warning("gateway database unreachable on %s %s: %s", request.method, request.url.path, exc)
        status, title = STATUS_BY_ERROR[ServiceUnavailable]
        detail = "Il database del gateway (MongoDB) non è raggiungibile. Riprova tra poco."
        return problem(status, title, detail, request, headers=RETRY_AFTER)

    @app.exception_handler(RemoteFailure)
    async def _remote(request: Request, exc: RemoteFailure) -> JSONResponse:
        status, title = STATUS_BY_ERROR[RemoteFailure]
        return problem(status, title, "Si è verificato un errore imprevisto. Il trace_id aiuta l'assistenza.", request)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, request, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[FieldError] = [
            {
                "field": field_name(tuple(e.get("loc", ()))),
                "message": italian_message(e),
            }
            for e in exc.errors()
        ]
        return problem(422, "Dati non validi", "La richiesta contiene dati non validi.", request, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_NOT_PARSED:
            # A body that is not even text (FastAPI's 400) is invalid data like any other: 422.
            errors: list[FieldError] = [{"field": "body", "message": "JSON non valido"}]
            return problem(422, "Dati non validi", "Il corpo della richiesta non è JSON valido.", request, errors)
        titles = {404: "Risorsa non trovata", 405: "Metodo non consentito", 401: "Autenticazione richiesta"}
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Errore"),
            str(exc.detail),
            request,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500, "Errore interno", "Si è verificato un errore imprevisto. Il trace_id aiuta l'assistenza.", request
        )
