"""A property-based fuzzer driven by our own OpenAPI, against the running stack: no 5xx, answers as documented.

Schemathesis reads `/openapi.json` and, for every operation, sends the examples, a
coverage sweep of each constraint (boundaries, wrong types, missing fields) and a
bounded number of generated requests, then checks each answer:

- ``not_a_server_error``: no 5xx, whatever the input;
- ``status_code_conformance``: the status is one the operation documents;
- ``content_type_conformance``: the media type is the documented one;
- ``response_schema_conformance``: the body validates against the documented schema
  (success bodies and ``Problem``), so a generated client can parse every answer.

It runs as a fresh tenant, never on demo data: a new alliance with new partners, a
project and an offering, logged in as its new manager; then as a new family with a
household and a child of its own. Path ids point at that tenant's resources, so
requests reach the services instead of stopping at 404.

Budget: ``CONCILIARE_FUZZ_EXAMPLES`` generated cases per operation (default 15) with a
fixed seed (``CONCILIARE_FUZZ_SEED``), one worker: about a minute on 2 cores.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from conciliare.demo.families import synthetic_child, synthetic_household
from tests.e2e.builders import Tenant, build_fresh_tenant, ok
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("CONCILIARE_FUZZ_EXAMPLES", "15"))
SEED = os.environ.get("CONCILIARE_FUZZ_SEED", "20261123")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
RUN_TIMEOUT = 240


@pytest.fixture(scope="module")
def tenant(stack: Stack, admin: httpx.Client) -> Tenant:
    suffix = uuid.uuid4().hex[:6]
    built = build_fresh_tenant(
        admin, lambda alliance_id: stack.user(f"fuzz.manager.{suffix}", "alliance_manager", alliances=(alliance_id,))
    )
    # Published, so families reach it too.
    ok(built.manager.post(f"/v1/offerings/{built.offering_id}/publish"))
    return built


def fuzz(stack: Stack, token: str, parameters: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Run schemathesis over every operation; return its JSON report (with the output on failure)."""
    config = workdir / "schemathesis.toml"
    config.write_text("[parameters]\n" + "".join(f'"path.{name}" = "{value}"\n' for name, value in parameters.items()))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{stack.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        # One worker: CPython 3.11's ast.parse (used by Hypothesis to describe
        # strategies) is not thread-safe and fails at random with several.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-dir",
        str(workdir),
    ]
    started = time.monotonic()
    run = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - started
    [report_file] = workdir.glob("*.json")
    report: dict[str, Any] = json.loads(report_file.read_text())
    report["output"] = run.stdout[-20000:] + run.stderr[-5000:]
    report["returncode"] = run.returncode
    cases = report["test_cases"]
    print(
        f"\nfuzz: {report['operations']['tested']} operations, {cases['generated']} test cases, "
        f"{cases['with_failures']} with failures, {len(report['errors'])} errors, {elapsed:.0f}s"
    )
    return report


def assert_clean(report: dict[str, Any]) -> None:
    assert report["operations"]["tested"] == report["operations"]["total"], report["output"]
    assert report["failures"] == [] and report["errors"] == [], report["output"]
    assert report["test_cases"]["with_failures"] == 0, report["output"]
    assert report["returncode"] == 0, report["output"]


def test_fuzzing_every_operation_as_a_new_alliance_manager_finds_nothing(
    stack: Stack, tenant: Tenant, tmp_path: Path
) -> None:
    parameters = {
        "alliance_id": tenant.alliance_id,
        "partner_id": tenant.member_id,
        "project_id": tenant.project_id,
        "offering_id": tenant.offering_id,
    }
    assert_clean(fuzz(stack, tenant.manager_token, parameters, tmp_path))


def test_fuzzing_every_operation_as_a_new_family_finds_nothing(stack: Stack, tenant: Tenant, tmp_path: Path) -> None:
    family = stack.user(f"fuzz.family.{uuid.uuid4().hex[:6]}", "family")
    index = uuid.uuid4().int % 5000
    household_id = ok(family.post("/v1/households", json=synthetic_household(index)), 201)["id"]
    child = synthetic_child(index % 1000, date(date.today().year - 8, 3, 1))
    ok(family.post(f"/v1/households/{household_id}/children", json=child), 201)
    token = str(family.headers["Authorization"]).removeprefix("Bearer ")
    parameters = {
        "alliance_id": tenant.alliance_id,
        "household_id": household_id,
        "offering_id": tenant.offering_id,
    }
    assert_clean(fuzz(stack, token, parameters, tmp_path))
