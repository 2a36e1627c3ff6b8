"""The OpenAPI document, completed so that a generated client can trust it.

FastAPI documents each route's success answer and a 422 in its own
``HTTPValidationError`` shape, which this gateway never sends. After FastAPI has
built the document, one pass over every route:

- documents the error statuses the route can really answer, each as the shared
  ``Problem`` schema in ``application/problem+json``, decided from what the route
  depends on (see :func:`error_statuses`);
- replaces FastAPI's 422 with ``Problem`` and drops ``HTTPValidationError``;
- documents ``Retry-After`` on 503/504 and ``WWW-Authenticate`` on 401;
- turns the ``Idempotency-Key`` header of every create into a reference to one
  reusable parameter (``#/components/parameters/IdempotencyKey``);
- declares wall-clock times (opening hours) as ``HH:MM[:SS]`` strings: they are
  Europe/Rome local times without an offset, which JSON Schema's ``format: time``
  (RFC 3339, offset required) does not describe.

Routes can still add their own ``responses=`` (e.g. a 202, or the token
endpoint's 400 and 401); those are kept.
"""

from collections.abc import Callable, Iterator
from typing import Any, Final

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic.json_schema import models_json_schema

from gateway.deps import current_principal, get_identity, get_rpc
from gateway.errors import PROBLEM_JSON, RETRY_AFTER_SECONDS
from gateway.idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER, get_idempotency
from gateway.schemas.common import Problem

PROBLEM_REF: Final = "#/components/schemas/Problem"
IDEMPOTENCY_PARAMETER: Final = "IdempotencyKey"
WALL_CLOCK_TIME: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# ``openapi_extra={EXACT_ERRORS: [...]}`` on a route: its error statuses, instead of inferring them.
EXACT_ERRORS: Final = "x-error-statuses"

DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Richiesta non valida",
    401: "Autenticazione richiesta: token mancante, scaduto o non valido",
    403: "Operazione non consentita a questo utente o token",
    404: "Risorsa non trovata (o di un'altra alleanza: l'esistenza non viene rivelata)",
    409: "Conflitto con lo stato attuale (duplicato, versione superata, richiesta con la stessa chiave in corso)",
    412: "La versione indicata in If-Match non è più quella attuale",
    422: "Dati non validi: `errors` elenca ogni campo e il motivo",
    503: "Un servizio o una dipendenza non è raggiungibile: riprovare dopo `Retry-After` secondi",
    504: "Un servizio non ha risposto in tempo: riprovare dopo `Retry-After` secondi",
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """One documented error answer: ``Problem`` as ``application/problem+json``."""
    response: dict[str, Any] = {
        "description": description or DESCRIPTIONS.get(status, "Errore"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }
    if status in (503, 504):
        response["headers"] = {
            "Retry-After": {
                "description": "Secondi dopo cui riprovare",
                "schema": {"type": "integer", "example": RETRY_AFTER_SECONDS},
            }
        }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}
    return response


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For a route's own ``responses=``: statuses the central pass cannot infer."""
    return {status: {"description": DESCRIPTIONS.get(status, "Errore")} for status in statuses}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def api_routes(routes: list[Any]) -> Iterator[Any]:
    """Every API route as served, included routers flattened (FastAPI keeps them nested)."""
    for context in iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def _names_a_resource(route: Any, operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """Whether the request names a resource that may not exist: a path id, an ``*_id`` filter or body field."""
    dependants = [route.dependant, *_flatten(route.dependant)]
    if route.dependant.path_params or any(p.alias.endswith("_id") for d in dependants for p in d.query_params):
        return True
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ref = str(body.get("$ref", ""))
    properties = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
    return any(name.endswith("_id") for name in properties)


def error_statuses(route: Any, method: str, names_resource: bool = True) -> set[int]:
    """The error statuses ``route`` can answer, from what it depends on.

    - a caller is required: 401; a scope is required: 403;
    - it calls a service: 503 and 504 (transport), and the domain's answers: 403,
      422, 404 when it names a resource (path or ``*_id`` filter), 409 on writes;
    - it uses the gateway's own database: 503;
    - it takes an ``Idempotency-Key``: 409 (same key still running) and 422 (key reused);
    - it takes any input: 422.
    """
    calls = set(_calls(route.dependant))
    names = {getattr(call, "__qualname__", "") for call in calls}
    statuses: set[int] = set()
    if current_principal in calls:
        statuses.add(401)
    if any(name.startswith("require_scope.") for name in names):
        statuses.add(403)
    dependants = [route.dependant, *_flatten(route.dependant)]
    if any(d.path_params or d.query_params or d.header_params or d.body_params for d in dependants):
        statuses.add(422)
    if get_rpc in calls:
        statuses |= {403, 422, 503, 504}
        if names_resource:
            statuses.add(404)
        if method in UNSAFE_METHODS:
            statuses.add(409)
    if get_identity in calls:
        statuses.add(503)
    if get_idempotency in calls:
        statuses |= {409, 422}
    return statuses


def _flatten(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _flatten(sub)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def complete(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Complete FastAPI's document in place (see the module docstring) and return it."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _, problem_schema = models_json_schema([(Problem, "serialization")], ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema["$defs"])
    idempotency_parameter: dict[str, Any] | None = None

    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            exact = operation.pop(EXACT_ERRORS, None)
            if exact is not None:
                statuses = set(exact)
                _drop_inferred(responses, statuses)
            else:
                statuses = error_statuses(route, method, _names_a_resource(route, operation, schemas))
            for status in sorted(statuses | _declared_errors(responses)):
                declared = responses.get(str(status), {})
                if _is_own_answer(declared):
                    continue
                responses[str(status)] = problem_response(status, _keep(declared.get("description"), status))
            parameters = operation.get("parameters", [])
            for index, parameter in enumerate(parameters):
                if parameter.get("in") == "header" and parameter.get("name") == IDEMPOTENCY_HEADER:
                    idempotency_parameter = idempotency_parameter or _header_parameter(parameter)
                    parameters[index] = {"$ref": f"#/components/parameters/{IDEMPOTENCY_PARAMETER}"}
                    _document_replay(responses)
            operation["responses"] = dict(sorted(responses.items()))

    if idempotency_parameter is not None:
        components.setdefault("parameters", {})[IDEMPOTENCY_PARAMETER] = idempotency_parameter
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for node in _walk(schema):
        if node.get("type") == "string" and node.get("format") == "time":
            del node["format"]
            node["pattern"] = WALL_CLOCK_TIME
            node.setdefault("description", "Ora locale (Europe/Rome) HH:MM o HH:MM:SS, senza fuso orario")
            node.setdefault("examples", ["16:00"])
    return schema


def _is_own_answer(declared: dict[str, Any]) -> bool:
    """A route's own error body (e.g. readiness), not FastAPI's validation error nor a bare description."""
    content = declared.get("content")
    return bool(content) and "HTTPValidationError" not in str(content)


def _drop_inferred(responses: dict[str, Any], statuses: set[int]) -> None:
    for code in list(responses):
        if code.isdigit() and int(code) >= 400 and int(code) not in statuses and not _is_own_answer(responses[code]):
            del responses[code]


def _header_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    """An optional header as a reusable parameter: a plain string schema (a header is never null)."""
    schema = parameter.get("schema", {})
    string = next((branch for branch in schema.get("anyOf", []) if branch.get("type") == "string"), schema)
    string = {key: value for key, value in string.items() if key not in ("title", "description")}
    return {
        "name": parameter["name"],
        "in": "header",
        "required": False,
        "description": parameter.get("description") or schema.get("description", ""),
        "schema": string,
    }


def _declared_errors(responses: dict[str, Any]) -> set[int]:
    return {int(code) for code in responses if code.isdigit() and int(code) >= 400}


def _keep(description: str | None, status: int) -> str:
    if not description or description in ("Validation Error", "Successful Response"):
        return DESCRIPTIONS.get(status, "Errore")
    return description


def _document_replay(responses: dict[str, Any]) -> None:
    for code, response in responses.items():
        if code.startswith("2"):
            response.setdefault("headers", {})[REPLAYED_HEADER] = {
                "description": "`true` quando la risposta è quella della prima richiesta con la stessa chiave",
                "schema": {"type": "string", "enum": ["true"]},
            }


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at ``app.openapi_url`` (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
