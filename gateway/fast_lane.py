"""The click-day fast lane: ``POST /v1/enrolments`` served by a bare ASGI handler in front of FastAPI.

On a click day thousands of families press "iscrivi" in the same second and the
gateway's CPU per request is the acknowledgement time. Through FastAPI the route
cost 2.2 ms of CPU in process; py-spy put 60% of it outside the use case: dependency
solving, the middleware stack, and the OpenTelemetry instrumentation looking the
route up among all routes on every request. Here only what acceptance needs runs:
the body read (64 KiB at most), the bearer token, one server span, the use case
(``gateway.acceptance``) and the answer. README, Performance, has the numbers.

Every other request goes to FastAPI unchanged. The same route is declared there
too, so OpenAPI documents it, and it answers the same (it calls the same use case);
errors leave in the same problem+json shape, with the trace id, as everywhere else.
"""

import json
from datetime import timedelta
from typing import Any, Final

from fastapi.security.utils import get_authorization_scheme_param
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import Headers, State
from starlette.types import ASGIApp, Receive, Scope, Send

from conciliare.errors import ValidationFailed
from gateway.acceptance import PATH, EnrolmentAcceptance
from gateway.deps import authenticate, receipt_issuer
from gateway.errors import (
    NOT_JSON,
    NOT_JSON_ERRORS,
    PROBLEM_JSON,
    ProblemError,
    ProblemSpec,
    problem_document,
    problem_spec,
)
from gateway.idempotency import IDEMPOTENCY_HEADER
from gateway.prefer import PREFER_HEADER
from gateway.settings import get_gateway_settings

tracer = trace.get_tracer("conciliare.gateway.fast_lane")

METHOD: Final = "POST"
MAX_BODY_BYTES: Final = 64 * 1024
SPAN_NAME: Final = f"{METHOD} {PATH}"
JSON: Final = "application/json"


class FastLane:
    """ASGI middleware: answers ``POST /v1/enrolments`` itself, hands everything else to ``app``."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == METHOD and scope["path"] == PATH:
            await serve(self.state, scope, receive, send)
        else:
            await self.app(scope, receive, send)


def acceptance_of(state: State) -> EnrolmentAcceptance:
    """The use case wired to what the app's lifespan (or a test) put in its state."""
    settings = get_gateway_settings()
    return EnrolmentAcceptance(
        intake=state.intake,
        rpc=state.rpc,
        receipts=receipt_issuer(settings),
        keys=state.request_keys,
        key_ttl=timedelta(hours=settings.idempotency_ttl_hours),
    )


async def serve(state: State, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one ``POST /v1/enrolments``."""
    headers = Headers(scope=scope)
    attributes = {"http.request.method": METHOD, "http.route": PATH, "url.path": PATH}
    context = propagate.extract(headers)
    with tracer.start_as_current_span(SPAN_NAME, context=context, kind=SpanKind.SERVER, attributes=attributes) as span:
        status, body, media_type, extra = await _answer(state, headers, receive)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        if status < 0:  # the client went away before its body arrived: nobody to answer
            return
        trace_id = format(span.get_span_context().trace_id, "032x")
        raw_headers = [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-trace-id", trace_id.encode()),
            *((name.lower().encode(), value.encode("latin-1")) for name, value in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


async def _answer(state: State, headers: Headers, receive: Receive) -> tuple[int, bytes, str, dict[str, str]]:
    """Status, body, media type and headers of the answer (status -1: the client is gone)."""
    try:
        scheme, token = get_authorization_scheme_param(headers.get("authorization"))
        principal = authenticate(token if scheme.lower() == "bearer" else None, get_gateway_settings())
        raw = await _body(receive)
        if raw is None:
            return -1, b"", JSON, {}
        answer = await acceptance_of(state).accept(
            principal,
            _json(raw, headers.get("content-type")),
            headers.getlist(PREFER_HEADER.lower()),
            headers.get(IDEMPOTENCY_HEADER.lower()),
        )
    except Exception as exc:  # every error is an answer, mapped as on every other route
        return _problem(problem_spec(exc, SPAN_NAME))
    return answer.status, _encode(answer.body), JSON, answer.headers


async def _body(receive: Receive) -> bytes | None:
    """The request body; None if the client disconnected. Past ``MAX_BODY_BYTES``: 413."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProblemError(413, "Richiesta troppo grande", f"Il corpo supera {MAX_BODY_BYTES // 1024} KiB.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json(raw: bytes, content_type: str | None) -> Any:
    """The parsed body; 415 if it is declared as something else than JSON, 422 if it is not JSON."""
    if content_type and "json" not in content_type.lower():
        detail = "Il corpo della richiesta deve essere JSON (application/json)."
        raise ProblemError(415, "Formato non supportato", detail)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested beyond the parser
        raise ValidationFailed(NOT_JSON, NOT_JSON_ERRORS) from None


def _problem(spec: ProblemSpec) -> tuple[int, bytes, str, dict[str, str]]:
    body = problem_document(spec.status, spec.title, spec.detail, PATH, spec.errors)
    return spec.status, _encode(body), PROBLEM_JSON, dict(spec.headers or {})


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
