"""Every error leaves the gateway as ``application/problem+json`` (RFC 9457).

The one table that maps domain and transport errors to HTTP status codes lives
here. No stack trace ever reaches a client: unexpected failures answer 500 with
the trace id, which finds the details in the trace viewer and the logs.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
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


INVALID_DATA = "La richiesta contiene dati non validi."
UNEXPECTED = "Si è verificato un errore imprevisto. Il trace_id aiuta l'assistenza."
NOT_JSON = "Il corpo della richiesta non è JSON valido."
NOT_JSON_ERRORS: list[FieldError] = [{"field": "body", "message": "JSON non valido"}]


@dataclass(frozen=True)
class ProblemSpec:
    """What a client is told about an error: the fields of its problem+json and its headers."""

    status: int
    title: str
    detail: str
    errors: list[FieldError] | None = None
    headers: dict[str, str] | None = None


def problem_spec(exc: Exception, where: str) -> ProblemSpec:
    """The answer to ``exc`` raised while serving ``where`` (method and path); logs what needs a look.

    The one mapping from errors to answers: FastAPI's handlers and the fast lane both use it.
    """
    if isinstance(exc, ProblemError):
        return ProblemSpec(exc.status, exc.title, exc.detail, headers=exc.headers)
    if isinstance(exc, DomainError):
        status, title = STATUS_BY_ERROR.get(type(exc), (400, "Richiesta non valida"))
        # A service whose own dependency is away answers Unavailable: retrying is right.
        return ProblemSpec(status, title, exc.detail, exc.errors, RETRY_AFTER if status == 503 else None)
    if isinstance(exc, ServiceUnavailable):
        status, title = STATUS_BY_ERROR[ServiceUnavailable]
        return ProblemSpec(status, title, exc.detail, headers=RETRY_AFTER)
    if isinstance(exc, RpcTimeout):
        status, title = STATUS_BY_ERROR[RpcTimeout]
        detail = f"Il servizio '{exc.service}' non ha risposto in tempo. Riprova tra poco."
        return ProblemSpec(status, title, detail, headers=RETRY_AFTER)
    if isinstance(exc, ConnectionFailure):
        # The gateway's own store (users, tokens' subjects, idempotency keys).
        log.warning("gateway database unreachable on %s: %s", where, exc)
        status, title = STATUS_BY_ERROR[ServiceUnavailable]
        detail = "Il database del gateway (MongoDB) non è raggiungibile. Riprova tra poco."
        return ProblemSpec(status, title, detail, headers=RETRY_AFTER)
    if isinstance(exc, RemoteFailure):
        status, title = STATUS_BY_ERROR[RemoteFailure]
        return ProblemSpec(status, title, UNEXPECTED)
    log.error("unhandled error on %s", where, exc_info=exc)
    return ProblemSpec(500, "Errore interno", UNEXPECTED)


def field_errors(errors: Iterable[Any]) -> list[FieldError]:
    """Every pydantic error as ``{field, message}``, the message in Italian."""
    return [{"field": field_name(tuple(e.get("loc", ()))), "message": italian_message(e)} for e in errors]


# Errors answered through ``problem_spec``; the rest of the handlers are FastAPI's own cases.
MAPPED_ERRORS = (ProblemError, DomainError, ServiceUnavailable, RpcTimeout, ConnectionFailure, RemoteFailure, Exception)


def install_error_handlers(app: FastAPI) -> None:
    async def _mapped(request: Request, exc: Exception) -> JSONResponse:
        spec = problem_spec(exc, f"{request.method} {request.url.path}")
        return problem(spec.status, spec.title, spec.detail, request, spec.errors, spec.headers)

    for error in MAPPED_ERRORS:
        app.add_exception_handler(error, _mapped)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "Dati non validi", INVALID_DATA, request, field_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_NOT_PARSED:
            # A body that is not even text (FastAPI's 400) is invalid data like any other: 422.
            return problem(422, "Dati non validi", NOT_JSON, request, NOT_JSON_ERRORS)
        titles = {404: "Risorsa non trovata", 405: "Metodo non consentito", 401: "Autenticazione richiesta"}
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Errore"),
            str(exc.detail),
            request,
            headers=dict(exc.headers or {}),
        )
