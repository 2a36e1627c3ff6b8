"""The OpenAPI document describes what the API really answers (a generated client can trust it)."""

import re
from typing import Any

import pytest
from fastapi import FastAPI

from conciliare.errors import Conflict
from gateway.errors import ProblemError
from gateway.openapi import etag, expected_version, stale_as_precondition

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from gateway.main import app

    spec: dict[str, Any] = app.openapi()
    return spec


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_problem_is_one_shared_schema_with_every_member(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance", "trace_id", "errors"}
    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance"}
    field_error = document["components"]["schemas"]["ProblemFieldError"]
    assert set(field_error["properties"]) == {"field", "message"}


def test_fastapis_validation_error_shape_is_nowhere(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in str(document)
    assert "ValidationError" not in document["components"]["schemas"]


def test_every_error_answer_is_a_problem_except_readiness(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (path, status) == ("/v1/ready", "503"):
                continue
            assert response["content"] == PROBLEM, f"{method} {path} {status}"


def test_authenticated_operations_document_401_and_those_calling_services_503_and_504(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        if operation.get("security"):
            assert "401" in responses, f"{method} {path}"
            assert "WWW-Authenticate" in responses["401"]["headers"]
        if path.startswith(("/v1/alliances", "/v1/partners", "/v1/offerings", "/v1/households", "/v1/enrolments")):
            for status in ("403", "422", "503", "504"):
                assert status in responses, f"{method} {path} {status}"
            assert "Retry-After" in responses["503"]["headers"] and "Retry-After" in responses["504"]["headers"]
            if "{" in path:
                assert "404" in responses, f"{method} {path}"
            if method in ("POST", "PUT", "PATCH"):
                assert "409" in responses, f"{method} {path}"


def test_health_documents_no_error_and_readiness_only_its_own_503(document: dict[str, Any]) -> None:
    assert set(document["paths"]["/v1/health"]["get"]["responses"]) == {"200"}
    ready = document["paths"]["/v1/ready"]["get"]["responses"]
    assert set(ready) == {"200", "503"}
    assert ready["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}


def test_the_token_endpoint_documents_its_refusals(document: dict[str, Any]) -> None:
    assert {"400", "401", "422", "503"} <= set(document["paths"]["/v1/auth/token"]["post"]["responses"])


def test_every_create_takes_the_one_reusable_idempotency_key(document: dict[str, Any]) -> None:
    parameter = document["components"]["parameters"]["IdempotencyKey"]
    assert parameter["in"] == "header" and parameter["name"] == "Idempotency-Key"
    assert parameter["schema"]["type"] == "string" and parameter["schema"]["maxLength"] == 255
    reference = {"$ref": "#/components/parameters/IdempotencyKey"}
    creates = [
        (path, operation)
        for method, path, operation in operations(document)
        if method == "POST" and "201" in operation["responses"]
    ]
    assert len(creates) >= 7
    for path, operation in creates:
        # The one kind of create that may not replay: its answer holds a secret shown once,
        # which the gateway must not keep; it says so in the spec.
        if operation.get("x-idempotency-exempt"):
            assert path == "/v1/webhooks", path
            continue
        assert reference in operation.get("parameters", []), path
        assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"], path
        assert not [p for p in operation["parameters"] if p.get("name") == "Idempotency-Key"], path


def test_times_are_declared_as_the_local_times_the_api_sends(document: dict[str, Any]) -> None:
    assert '"format": "time"' not in str(document).replace("'", '"')
    slot = document["components"]["schemas"]["WeeklySlot"]["properties"]
    for name in ("start", "end"):
        pattern = re.compile(slot[name]["pattern"])
        assert pattern.match("16:00") and pattern.match("16:00:00") and pattern.match("07:30:00.5")
        assert not pattern.match("24:00") and not pattern.match("16:00Z") and not pattern.match("16:00:00+01:00")


def test_the_document_is_built_once(app: FastAPI) -> None:
    assert app.openapi() is app.openapi()


# --- optimistic concurrency (ETag / If-Match) and the issue-7 usability fixes ---------------

VERSIONED_WRITES = [
    ("PUT", "/v1/alliances/{alliance_id}/projects/{project_id}"),
    ("PUT", "/v1/offerings/{offering_id}"),
]
VERSIONED_READS = [("GET", "/v1/alliances/{alliance_id}/projects/{project_id}"), ("GET", "/v1/offerings/{offering_id}")]


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method.lower()]
    return found


def test_versioned_writes_take_the_one_reusable_if_match_and_document_412_and_428(document: dict[str, Any]) -> None:
    parameter = document["components"]["parameters"]["IfMatch"]
    assert parameter["in"] == "header" and parameter["name"] == "If-Match" and not parameter["required"]
    assert parameter["schema"]["type"] == "string" and "412" in parameter["description"]
    for method, path in VERSIONED_WRITES:
        op = operation(document, method, path)
        assert {"$ref": "#/components/parameters/IfMatch"} in op["parameters"], path
        for status in ("409", "412", "428"):
            assert op["responses"][status]["content"] == PROBLEM, f"{path} {status}"
        assert "ETag" in op["responses"]["200"]["headers"], path
        body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][body]
        assert "version" in schema["properties"] and "version" not in schema.get("required", []), path


def test_versioned_reads_answer_an_etag(document: dict[str, Any]) -> None:
    for method, path in VERSIONED_READS:
        headers = operation(document, method, path)["responses"]["200"]["headers"]
        assert headers["ETag"]["schema"]["type"] == "string", path


def test_offering_search_needs_no_alliance_and_can_search_by_residence(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in operation(document, "GET", "/v1/offerings")["parameters"]}
    assert not parameters["alliance_id"].get("required", False)
    assert "obbligatori" not in parameters["alliance_id"].get("description", "")
    for name in ("comune_istat", "residence_comune_istat"):
        schema = parameters[name]["schema"]
        branch = next(b for b in schema.get("anyOf", [schema]) if b.get("type") == "string")
        assert branch["pattern"] == r"^\d{6}$", name


def test_offerings_tell_what_they_lack_for_publication(document: dict[str, Any]) -> None:
    offering = document["components"]["schemas"]["OfferingOut"]["properties"]
    gaps = offering["missing_for_publication"]
    assert gaps["type"] == "array" and gaps["items"] == {"$ref": "#/components/schemas/PublicationGap"}
    assert set(document["components"]["schemas"]["PublicationGap"]["properties"]) == {"field", "message"}


def test_member_lists_document_the_withdrawn_filter(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in operation(document, "GET", "/v1/alliances/{alliance_id}/members")["parameters"]}
    assert parameters["include_withdrawn"]["schema"]["default"] is False
    assert "withdrawn" in document["components"]["schemas"]["MembershipStatus"]["enum"]
    assert "member_count" in operation(document, "GET", "/v1/alliances/{alliance_id}/members")["description"]


@pytest.mark.parametrize(
    ("if_match", "body_version", "expected"),
    [('"3"', None, 3), ('W/"3"', None, 3), ("3", None, 3), (None, 4, 4), ('"5"', 5, 5)],
)
def test_the_version_read_comes_from_if_match_or_the_body(
    if_match: str | None, body_version: int | None, expected: int
) -> None:
    assert expected_version(if_match, body_version) == expected


@pytest.mark.parametrize(
    ("if_match", "body_version", "status"),
    [
        (None, None, 428),
        ("*", None, 422),
        ('"3", "4"', None, 422),
        ('"abc"', None, 422),
        ('"0"', None, 422),
        ('"3', None, 422),
        ('"3"', 4, 422),
    ],
)
def test_a_write_without_a_usable_version_is_refused(
    if_match: str | None, body_version: int | None, status: int
) -> None:
    with pytest.raises(ProblemError) as raised:
        expected_version(if_match, body_version)
    assert raised.value.status == status and raised.value.detail


def test_a_stale_if_match_is_412_and_other_conflicts_stay_409() -> None:
    stale = Conflict("Il progetto è stato modificato.", [{"field": "version", "message": "versione attuale: 4"}])
    converted = stale_as_precondition(stale, '"3"')
    assert isinstance(converted, ProblemError) and converted.status == 412
    assert "versione attuale: 4" in converted.detail
    assert stale_as_precondition(stale, None) is stale  # the body's version: 409 as before
    busy = Conflict("Troppe modifiche contemporanee.")
    assert stale_as_precondition(busy, '"3"') is busy
    assert etag(7) == '"7"'
