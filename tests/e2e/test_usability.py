"""Issue 7 over HTTP: no ghost writes, optimistic concurrency, and the usability fixes.

- a create whose answer was lost (the gateway forgot its idempotency record, as
  after a timeout) is recognised by the service: the retry answers the same
  resource, and only one is stored;
- projects and offerings answer an ``ETag``; a PUT names the version it read
  (``If-Match`` or ``version``): stale is 412 (If-Match) or 409 (body), none is 428;
- families search offerings by Comune, or by their residence, across alliances;
- a manager reads the partner it registered before it joins an alliance;
- a project's period and amounts are checked field by field;
- a draft says what it lacks for publication;
- member lists leave withdrawn members out by default, matching ``member_count``.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.e2e.builders import (
    Tenant,
    alliance_body,
    assert_problem,
    build_fresh_tenant,
    new_partner,
    offering_body,
    ok,
    partner_body,
    project_body,
)
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tenant(stack: Stack, admin: httpx.Client) -> Tenant:
    suffix = uuid.uuid4().hex[:6]
    return build_fresh_tenant(
        admin, lambda alliance_id: stack.user(f"usab.manager.{suffix}", "alliance_manager", alliances=(alliance_id,))
    )


@pytest.fixture(scope="module")
def mongo(stack: Stack) -> Iterator[Callable[[str], Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/"))
    yield lambda service: client[f"{stack.env['MONGO_DB_PREFIX']}{service}"]
    client.close()


Database = Callable[[str], Any]


def forget_idempotency_key(mongo: Database, key: str) -> None:
    """What a gateway that timed out (or died) leaves behind: no record of the answer."""
    gateway = mongo("gateway")
    for collection in ("idempotency", "idempotency_answers"):
        ids = [doc["_id"] for doc in gateway[collection].find({}, {"_id": 1}) if str(doc["_id"]).endswith(f":{key}")]
        for record_id in ids:
            gateway[collection].delete_one({"_id": record_id})


def post_lost_and_retried(client: httpx.Client, mongo: Database, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST with a key, lose the gateway's record of it, POST again: both answers."""
    key = str(uuid.uuid4())
    first = ok(client.post(path, json=body, headers={"Idempotency-Key": key}), 201)
    forget_idempotency_key(mongo, key)
    retry = client.post(path, json=body, headers={"Idempotency-Key": key})
    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers  # the gateway ran it again: the service recognised it
    assert retry.json()["id"] == first["id"]
    result: dict[str, Any] = {"first": first, "retry": retry.json()}
    return result


# --- 1. no ghost writes ----------------------------------------------------------------


def test_a_partner_whose_answer_was_lost_is_not_registered_twice(admin: httpx.Client, mongo: Database) -> None:
    body = partner_body()
    answers = post_lost_and_retried(admin, mongo, "/v1/partners", body)
    assert answers["retry"] == answers["first"]
    assert mongo("partners").partners.count_documents({"tax_code": body["tax_code"]}) == 1


def test_an_alliance_whose_answer_was_lost_is_not_created_twice(admin: httpx.Client, mongo: Database) -> None:
    body = alliance_body(new_partner(admin, kind="comune"))
    answers = post_lost_and_retried(admin, mongo, "/v1/alliances", body)
    assert answers["retry"] == answers["first"]
    assert mongo("partners").alliances.count_documents({"code": body["code"]}) == 1


def test_a_member_whose_answer_was_lost_is_the_same_membership(
    admin: httpx.Client, tenant: Tenant, mongo: Database
) -> None:
    path = f"/v1/alliances/{tenant.alliance_id}/members"
    key = str(uuid.uuid4())
    body = {"partner_id": new_partner(admin)}
    first = ok(tenant.manager.post(path, json=body, headers={"Idempotency-Key": key}), 201)
    forget_idempotency_key(mongo, key)
    retry = ok(tenant.manager.post(path, json=body, headers={"Idempotency-Key": key}), 201)
    assert retry == first
    # Without a key the same addition is what it always was: already a member.
    assert_problem(tenant.manager.post(path, json=body), 409)


def test_a_project_and_an_offering_whose_answers_were_lost_are_stored_once(tenant: Tenant, mongo: Database) -> None:
    title = f"Progetto ritentato {uuid.uuid4().hex[:6]}"
    answers = post_lost_and_retried(
        tenant.manager, mongo, f"/v1/alliances/{tenant.alliance_id}/projects", project_body(title)
    )
    assert answers["retry"] == answers["first"]
    assert mongo("partners").projects.count_documents({"title": title}) == 1

    body = offering_body(tenant.alliance_id, tenant.capofila_id)
    answers = post_lost_and_retried(tenant.manager, mongo, "/v1/offerings", body)
    assert answers["retry"]["id"] == answers["first"]["id"]
    assert mongo("catalog").offerings.count_documents({"spec.title": body["title"]}) == 1


# --- 2. optimistic concurrency -----------------------------------------------------------


def test_project_writes_name_the_version_they_read(tenant: Tenant) -> None:
    path = f"/v1/alliances/{tenant.alliance_id}/projects/{tenant.project_id}"
    read = tenant.manager.get(path)
    project = ok(read)
    assert read.headers["ETag"] == f'"{project["version"]}"'
    spec = {k: v for k, v in project.items() if k not in ("id", "alliance_id", "created_at", "updated_at", "version")}

    missing = assert_problem(tenant.manager.put(path, json=spec), 428)
    assert "If-Match" in missing["detail"]

    written = tenant.manager.put(
        path, json={**spec, "title": "Titolo nuovo"}, headers={"If-Match": read.headers["ETag"]}
    )
    assert ok(written)["version"] == project["version"] + 1
    assert written.headers["ETag"] == f'"{project["version"] + 1}"'

    stale = assert_problem(tenant.manager.put(path, json=spec, headers={"If-Match": read.headers["ETag"]}), 412)
    assert "modificato" in stale["detail"] and f"versione attuale: {project['version'] + 1}" in stale["detail"]
    by_body = assert_problem(tenant.manager.put(path, json={**spec, "version": project["version"]}), 409)
    assert by_body["errors"] == [{"field": "version", "message": f"versione attuale: {project['version'] + 1}"}]
    assert ok(tenant.manager.get(path))["title"] == "Titolo nuovo"  # nobody's edit was overwritten

    current = ok(tenant.manager.put(path, json={**spec, "version": project["version"] + 1}))
    assert current["version"] == project["version"] + 2
    assert_problem(tenant.manager.put(path, json=spec, headers={"If-Match": "*"}), 422)


def test_offering_writes_take_if_match_or_version(tenant: Tenant) -> None:
    created = ok(tenant.manager.post("/v1/offerings", json=offering_body(tenant.alliance_id, tenant.capofila_id)), 201)
    path = f"/v1/offerings/{created['id']}"
    read = tenant.manager.get(path)
    assert read.headers["ETag"] == '"1"'
    spec = dict(read.json()["spec"])

    assert_problem(tenant.manager.put(path, json=spec), 428)
    written = tenant.manager.put(path, json={**spec, "capacity": 25}, headers={"If-Match": '"1"'})
    assert ok(written)["version"] == 2 and written.headers["ETag"] == '"2"'
    assert_problem(tenant.manager.put(path, json=spec, headers={"If-Match": '"1"'}), 412)
    assert_problem(tenant.manager.put(path, json={**spec, "version": 1}), 409)
    assert ok(tenant.manager.put(path, json={**spec, "version": 2}))["version"] == 3


# --- 3. usability ---------------------------------------------------------------------------


def test_families_search_by_comune_and_residence_across_alliances(
    stack: Stack, admin: httpx.Client, tenant: Tenant
) -> None:
    # A second alliance over the same Comuni, each with one published offering in Marnate.
    capofila = new_partner(admin, kind="comune")
    second = ok(admin.post("/v1/alliances", json=alliance_body(capofila)), 201)["id"]
    marker = uuid.uuid4().hex[:8]
    ids: list[str] = []
    for alliance_id, provider in ((tenant.alliance_id, tenant.capofila_id), (second, capofila)):
        body = {**offering_body(alliance_id, provider), "title": f"Vacanze {marker} {len(ids)}"}
        offering = ok(admin.post("/v1/offerings", json=body), 201)
        ok(admin.post(f"/v1/offerings/{offering['id']}/publish"))
        ids.append(offering["id"])

    family = stack.user(f"usab.family.{marker}", "family")
    by_comune = ok(family.get("/v1/offerings", params={"comune_istat": "012098", "q": marker}))
    assert sorted(o["id"] for o in by_comune["items"]) == sorted(ids)
    by_residence = ok(family.get("/v1/offerings", params={"residence_comune_istat": "012042", "q": marker}))
    assert sorted(o["id"] for o in by_residence["items"]) == sorted(ids)  # Castellanza: both alliances cover it
    elsewhere = ok(family.get("/v1/offerings", params={"residence_comune_istat": "015146", "q": marker}))
    assert elsewhere["total"] == 0  # Milano: no alliance of these covers it
    one = ok(family.get("/v1/offerings", params={"alliance_id": second, "q": marker}))
    assert [o["id"] for o in one["items"]] == [ids[1]]
    # A manager without alliance_id searches its own alliances only.
    mine = ok(tenant.manager.get("/v1/offerings", params={"q": marker}))
    assert [o["id"] for o in mine["items"]] == [ids[0]]


def test_a_manager_reads_the_partner_it_registered(stack: Stack, tenant: Tenant) -> None:
    created = ok(tenant.manager.post("/v1/partners", json=partner_body()), 201)
    assert ok(tenant.manager.get(f"/v1/partners/{created['id']}"))["id"] == created["id"]
    listed = ok(tenant.manager.get("/v1/partners", params={"limit": 200}))
    assert created["id"] in {p["id"] for p in listed["items"]}
    other = stack.user(f"usab.other.{uuid.uuid4().hex[:6]}", "alliance_manager", alliances=(tenant.alliance_id,))
    assert_problem(other.get(f"/v1/partners/{created['id']}"), 404)


def test_a_project_of_zeros_in_2000_is_refused_field_by_field(tenant: Tenant) -> None:
    zero = {
        "title": "Progetto vuoto",
        "period_start": "2000-01-01",
        "period_end": "2000-01-01",
        "total_cost_cents": 0,
        "requested_contribution_cents": 0,
        "cofinancing": {"cash_cents": 0, "valued_work_hours_cents": 0},
    }
    problem = assert_problem(tenant.manager.post(f"/v1/alliances/{tenant.alliance_id}/projects", json=zero), 422)
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert {"period_start", "period_end", "total_cost_cents", "requested_contribution_cents"} <= set(fields)
    assert "2014" in fields["period_start"]
    reversed_period = {**project_body(), "period_start": "2018-12-31", "period_end": "2017-01-01"}
    problem = assert_problem(
        tenant.manager.post(f"/v1/alliances/{tenant.alliance_id}/projects", json=reversed_period), 422
    )
    assert [e["field"] for e in problem["errors"]] == ["period_end"]


def test_a_draft_tells_what_it_lacks_for_publication(tenant: Tenant) -> None:
    body = {**offering_body(tenant.alliance_id, tenant.capofila_id), "description": "", "address": None}
    draft = ok(tenant.manager.post("/v1/offerings", json=body), 201)
    assert [g["field"] for g in draft["missing_for_publication"]] == ["description", "address"]
    assert (
        ok(tenant.manager.get(f"/v1/offerings/{draft['id']}"))["missing_for_publication"]
        == (draft["missing_for_publication"])
    )
    refused = assert_problem(tenant.manager.post(f"/v1/offerings/{draft['id']}/publish"), 422)
    assert {e["field"] for e in refused["errors"]} == {"description", "address"}
    complete = ok(tenant.manager.post("/v1/offerings", json=offering_body(tenant.alliance_id, tenant.capofila_id)), 201)
    assert complete["missing_for_publication"] == []


def test_member_lists_leave_withdrawn_out_and_match_member_count(admin: httpx.Client, tenant: Tenant) -> None:
    path = f"/v1/alliances/{tenant.alliance_id}/members"
    leaving = new_partner(admin)
    ok(tenant.manager.post(path, json={"partner_id": leaving}), 201)
    ok(tenant.manager.patch(f"{path}/{leaving}", json={"status": "withdrawn"}))
    listed = ok(tenant.manager.get(path, params={"limit": 200}))
    assert leaving not in {m["partner"]["id"] for m in listed["items"]}
    assert all(m["status"] != "withdrawn" for m in listed["items"])
    assert listed["total"] == ok(tenant.manager.get(f"/v1/alliances/{tenant.alliance_id}"))["member_count"]
    gone = ok(tenant.manager.get(path, params={"status": "withdrawn", "limit": 200}))
    assert leaving in {m["partner"]["id"] for m in gone["items"]}
    everyone = ok(tenant.manager.get(path, params={"include_withdrawn": "true", "limit": 200}))
    assert everyone["total"] == listed["total"] + gone["total"]
