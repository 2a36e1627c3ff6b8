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
- turns the ``If-Match`` header of every versioned write into a reference to one
  reusable parameter (``#/components/parameters/IfMatch``);
- declares wall-clock times (opening hours) as ``HH:MM[:SS]`` strings: they are
  Europe/Rome local times without an offset, which JSON Schema's ``format: time``
  (RFC 3339, offset required) does not describe.

It also holds the gateway's optimistic-concurrency rules for versioned resources
(projects, offerings), documented once: reads and writes answer ``ETag: "<version>"``;
a write (PUT) names the version it was read at, as ``If-Match: "<version>"`` or as
the body's ``version``; a stale ``If-Match`` answers 412, a stale body ``version`` 409,
neither 428.

Routes can still add their own ``responses=`` (e.g. a 202, or the token
endpoint's 400 and 401); those are kept.
"""

import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Final

from fastapi import FastAPI, Header, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic.json_schema import models_json_schema

from conciliare.errors import Conflict
from gateway.deps import current_principal, get_identity, get_rpc
from gateway.errors import PROBLEM_JSON, RETRY_AFTER_SECONDS, ProblemError
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
    412: "La versione indicata in If-Match non è più quella attuale: rileggere la risorsa e riprovare",
    428: "Manca la versione letta: indicarla con If-Match (l'ETag ricevuto) o nel campo `version`",
    422: "Dati non validi: `errors` elenca ogni campo e il motivo",
    503: "Un servizio o una dipendenza non è raggiungibile: riprovare dopo `Retry-After` secondi",
    504: "Un servizio non ha risposto in tempo: riprovare dopo `Retry-After` secondi",
}


# --- optimistic concurrency: ETag / If-Match ------------------------------------------

IF_MATCH_HEADER: Final = "If-Match"
ETAG_HEADER: Final = "ETag"
IF_MATCH_PARAMETER: Final = "IfMatch"
IF_MATCH_DESCRIPTION: Final = (
    'La versione letta, come l\'ETag ricevuto (es. `"3"`). Se nel frattempo la risorsa è cambiata '
    "la modifica non viene applicata e la risposta è 412; in alternativa si può indicare la versione "
    "nel campo `version` del corpo (risposta 409 se superata). Senza nessuna delle due: 428."
)
_ENTITY_TAG = re.compile(r'^\s*(?:W/)?(?:"([1-9][0-9]{0,9})"|([1-9][0-9]{0,9}))\s*$')
MAX_VERSION: Final = 2**31 - 1

IfMatchHeader = Annotated[
    str | None,
    Header(alias=IF_MATCH_HEADER, min_length=1, max_length=200, description=IF_MATCH_DESCRIPTION),
]


def etag(version: int) -> str:
    """The entity tag of a resource at ``version`` (strong: every change bumps the version)."""
    return f'"{version}"'


def with_etag(response: Response, body: Any) -> Response:
    """``response`` with the ``ETag`` of the versioned resource ``body``."""
    if isinstance(body, dict) and isinstance(body.get("version"), int):
        response.headers[ETAG_HEADER] = etag(body["version"])
    return response


def expected_version(if_match: str | None, body_version: int | None) -> int:
    """The version a write was read at: from ``If-Match`` or the body's ``version``.

    Refuses (422) an ``If-Match`` that names no version or disagrees with the body,
    and (428) a write that names none at all: a write that does not say what it saw
    would silently overwrite a colleague's change.
    """
    if if_match is None:
        if body_version is None:
            raise ProblemError(
                428,
                "Versione richiesta",
                "Indica la versione che hai letto, con l'intestazione If-Match (l'ETag ricevuto, es. \"3\") "
                "o nel campo version: così una modifica fatta nel frattempo da altri non viene sovrascritta.",
            )
        return body_version
    tags = if_match.split(",")
    found = [m.group(1) or m.group(2) for tag in tags if (m := _ENTITY_TAG.match(tag))]
    if len(tags) != 1 or len(found) != 1 or int(found[0]) > MAX_VERSION:
        raise ProblemError(
            422,
            "Dati non validi",
            "L'intestazione If-Match deve contenere una sola versione, l'ETag ricevuto (es. \"3\").",
        )
    version = int(found[0])
    if body_version is not None and body_version != version:
        raise ProblemError(
            422,
            "Dati non validi",
            f"La versione in If-Match ({version}) e quella nel campo version ({body_version}) non coincidono.",
        )
    return version


def stale_as_precondition(exc: Conflict, if_match: str | None) -> Exception:
    """A service's "changed meanwhile" (a Conflict on ``version``) as 412 when the
    version came in ``If-Match``; any other conflict stays what it is."""
    if if_match is None or not any(error.get("field") == "version" for error in exc.errors):
        return exc
    current = next((e["message"] for e in exc.errors if e.get("field") == "version"), "")
    detail = f"{exc.detail} ({current})" if current else exc.detail
    return ProblemError(412, "Versione superata", detail)


def versioned_responses(status: int = 200) -> dict[int | str, dict[str, Any]]:
    """For a versioned read or write's ``responses=``: the ``ETag`` it answers (and, on
    writes, 412 and 428)."""
    answer: dict[int | str, dict[str, Any]] = {
        status: {
            "headers": {
                ETAG_HEADER: {
                    "description": 'Versione della risorsa (es. `"3"`), da rimandare in If-Match',
                    "schema": {"type": "string", "example": '"3"'},
                }
            }
        }
    }
    return answer


def versioned_write_responses() -> dict[int | str, dict[str, Any]]:
    return {**versioned_responses(), **problem_responses(409, 412, 428)}


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
    if_match_parameter: dict[str, Any] | None = None

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
                elif parameter.get("in") == "header" and parameter.get("name") == IF_MATCH_HEADER:
                    if_match_parameter = if_match_parameter or _header_parameter(parameter)
                    parameters[index] = {"$ref": f"#/components/parameters/{IF_MATCH_PARAMETER}"}
            operation["responses"] = dict(sorted(responses.items()))

    if idempotency_parameter is not None:
        components.setdefault("parameters", {})[IDEMPOTENCY_PARAMETER] = idempotency_parameter
    if if_match_parameter is not None:
        components.setdefault("parameters", {})[IF_MATCH_PARAMETER] = if_match_parameter
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
