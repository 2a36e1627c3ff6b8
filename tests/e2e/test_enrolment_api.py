"""Households, enrolments and registers through the gateway, over HTTP, on the running stack.

Offerings are created and published through the catalog's routes; the enrolment
service learns of them from the catalog's events, as in production.
"""

import json
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import eventlet
import httpx
import pytest

from conciliare.demo.families import GIULIA, ROSSI_HOUSEHOLD, load_families, synthetic_child, synthetic_household
from services.enrolment.domain import ROME, today_in_rome
from tests.e2e.builders import PREFER_WAIT, assert_problem, enrol_and_wait, ok, wait_decided
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

MARNATE_ISTAT = "012098"
CREMA_ISTAT = "019035"
TODAY = today_in_rome()
EASTER_2027 = ("2027-03-25", "2027-03-30")
PRIMARY_SCHOOL_CHILD_BORN = date(TODAY.year - 8, 2, 1)
PROTOCOL = re.compile(r"ISC-\d{8}-\d{6}-[0-9A-F]{8}")


def offering_body(
    alliance_id: str,
    *,
    capacity: int,
    start: date | str = TODAY,
    end: date | str | None = None,
    kind: str = "term_time",
    title: str | None = None,
) -> dict[str, Any]:
    """A post scuola DSA in Marnate for primary-school children, open from ``start``."""
    first = date.fromisoformat(start) if isinstance(start, str) else start
    last = date.fromisoformat(end) if isinstance(end, str) else end or first + timedelta(days=120)
    return {
        "alliance_id": alliance_id,
        "type": "post_scuola_dsa_adhd_bes",
        "title": title or f"Post scuola DSA {uuid.uuid4().hex[:6]}",
        "description": "Accoglienza dopo le lezioni con educatori formati su DSA, ADHD e BES.",
        "comune_istat": MARNATE_ISTAT,
        "address": "Via Libertà 7, Marnate (VA)",
        "age_range": {"min_months": 72, "max_months": 143},
        "school_levels": ["primaria"],
        "special_needs_supported": ["dsa", "adhd", "bes"],
        "calendar": {"periods": [{"kind": kind, "start": first.isoformat(), "end": last.isoformat()}]},
        "weekly_slots": [{"weekday": d, "start": "16:00", "end": "18:00"} for d in range(1, 8)],
        "capacity": capacity,
        "price": {"amount_cents": 250, "unit": "hour"},
        "attendance_modes": ["full", "hour_package"],
    }


def publish_offering(operator: httpx.Client, body: dict[str, Any]) -> str:
    """Create and publish through the catalog, then wait until enrolment has projected it."""
    offering_id = str(ok(operator.post("/v1/offerings", json=body), 201)["id"])
    ok(operator.post(f"/v1/offerings/{offering_id}/publish"))
    wait_projected(operator, offering_id)
    return offering_id


def wait_projected(operator: httpx.Client, offering_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while operator.get(f"/v1/offerings/{offering_id}/enrolments").status_code != 200:
        assert time.monotonic() < deadline, "the enrolment service never received the offering"
        time.sleep(0.2)


def register_household(family: httpx.Client, payload: dict[str, Any] | None = None) -> str:
    return str(ok(family.post("/v1/households", json=payload or ROSSI_HOUSEHOLD), 201)["id"])


def register_child(family: httpx.Client, household_id: str, payload: dict[str, Any]) -> str:
    return str(ok(family.post(f"/v1/households/{household_id}/children", json=payload), 201)["id"])


def enrolment_body(child_id: str, offering_id: str, start: date | str = TODAY, days: int = 30) -> dict[str, Any]:
    first = date.fromisoformat(start) if isinstance(start, str) else start
    return {
        "child_id": child_id,
        "offering_id": offering_id,
        "period": {"start": first.isoformat(), "end": (first + timedelta(days=days)).isoformat()},
        "attendance_mode": "full",
    }


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def totem(stack: Stack, partner_ids: dict[str, str]) -> httpx.Client:
    return stack.user("totem.enrolment.e2e", "partner_operator", partner=partner_ids["coop_totem"])


@pytest.fixture(scope="module")
def rembrandt(stack: Stack, partner_ids: dict[str, str]) -> httpx.Client:
    return stack.user("rembrandt.enrolment.e2e", "partner_operator", partner=partner_ids["coop_rembrandt"])


@pytest.fixture(scope="module")
def manager(stack: Stack, marnate: str) -> httpx.Client:
    return stack.user("marnate.enrolment.e2e", "alliance_manager", alliances=(marnate,))


def new_family(stack: Stack) -> httpx.Client:
    return stack.user(f"famiglia.{uuid.uuid4().hex[:8]}", "family")


# --- the "done means" --------------------------------------------------------------------


def test_demo_family_enrols_giulia_for_the_easter_break(
    stack: Stack, admin: httpx.Client, totem: httpx.Client, rembrandt: httpx.Client, manager: httpx.Client, marnate: str
) -> None:
    easter = offering_body(
        marnate, capacity=12, start=EASTER_2027[0], end=EASTER_2027[1], kind="easter", title="Pasqua insieme DSA"
    )
    easter["type"] = "attivita_vacanze_scolastiche"
    offering_id = publish_offering(totem, easter)

    rossi = new_family(stack)
    load_families(rossi)
    load_families(rossi)  # idempotent: nothing new the second time
    households = ok(rossi.get("/v1/households"))
    assert households["total"] == 1
    household_id = households["items"][0]["id"]
    assert households["items"][0]["residence_comune_name"] == "Marnate"
    [giulia] = ok(rossi.get(f"/v1/households/{household_id}/children"))
    assert giulia["needs"] == ["dsa"] and giulia["first_name"] == "Giulia"

    search = {
        "alliance_id": marnate,
        "comune_istat": MARNATE_ISTAT,
        "child_birth_date": GIULIA["birth_date"],
        "on_date": EASTER_2027[0],
        "date_from": EASTER_2027[0],
        "date_to": EASTER_2027[1],
        "need": "dsa",
    }
    found = ok(rossi.get("/v1/offerings", params=search))
    assert offering_id in {o["id"] for o in found["items"]}

    body = enrolment_body(giulia["id"], offering_id, start=EASTER_2027[0], days=5)
    key = {"Idempotency-Key": str(uuid.uuid4()), **PREFER_WAIT}
    first = rossi.post("/v1/enrolments", json=body, headers=key)
    created = ok(first, 201)
    assert created["status"] == "confirmed" and created["sequence"] == 1
    assert created["child_codice_fiscale"] == "RSS************N"
    assert PROTOCOL.fullmatch(created["protocol"]), created["protocol"]

    # The same key again: the same request with its outcome now, and nothing new.
    again = rossi.post("/v1/enrolments", json=body, headers=key)
    assert again.status_code == 201 and again.json() == created
    assert again.headers["Idempotent-Replayed"] == "true"
    # The same key for another request is refused.
    other = {**body, "period": {"start": EASTER_2027[0], "end": EASTER_2027[0]}}
    assert_problem(rossi.post("/v1/enrolments", json=other, headers=key), 422)
    assert ok(rossi.get("/v1/enrolments"))["total"] == 1

    mine = ok(rossi.get(f"/v1/enrolments/{created['id']}"))
    assert mine["status_label"] == "confermata" and mine["offering_title"] == "Pasqua insieme DSA"
    assert mine["protocol"] == created["protocol"]

    roster = ok(totem.get(f"/v1/offerings/{offering_id}/enrolments"))
    assert roster["needs_disclosed"] is True
    assert [(e["child_name"], e["needs"], e["child_codice_fiscale"]) for e in roster["confirmed"]] == [
        ("Giulia Rossi", ["dsa"], "RSS************N")
    ]
    by_manager = ok(manager.get(f"/v1/offerings/{offering_id}/enrolments"))
    assert by_manager["needs_disclosed"] is False and by_manager["confirmed"][0]["needs"] is None
    assert_problem(rembrandt.get(f"/v1/offerings/{offering_id}/enrolments"), 404)
    assert_problem(rembrandt.get(f"/v1/enrolments/{created['id']}"), 404)
    assert_problem(new_family(stack).get(f"/v1/enrolments/{created['id']}"), 404)
    assert ok(totem.get("/v1/enrolments", params={"offering_id": offering_id}))["total"] == 1

    register = totem.get(f"/v1/offerings/{offering_id}/attendance.csv", params={"month": "2027-03"})
    assert register.status_code == 200, register.text
    assert register.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="registro-presenze-pasqua-insieme-dsa-2027-03.csv"' in register.headers["content-disposition"]
    text = register.content.decode("utf-8")
    assert text.startswith("\ufeffBambino;Codice fiscale;01/03;")
    assert "Rossi Giulia;RSS************N;" in text and GIULIA["codice_fiscale"] not in text
    assert_problem(rossi.get(f"/v1/offerings/{offering_id}/attendance.csv", params={"month": "2027-03"}), 403)
    assert_problem(totem.get(f"/v1/offerings/{offering_id}/attendance.csv", params={"month": "marzo"}), 422)


# --- households are the family's ------------------------------------------------------------------


def test_households_belong_to_their_family(
    stack: Stack, admin: httpx.Client, totem: httpx.Client, manager: httpx.Client
) -> None:
    family = new_family(stack)
    household_id = register_household(family)
    assert_problem(family.post("/v1/households", json=ROSSI_HOUSEHOLD), 409)
    giulia = register_child(family, household_id, GIULIA)

    assert_problem(new_family(stack).get(f"/v1/households/{household_id}"), 404)
    assert_problem(new_family(stack).get(f"/v1/households/{household_id}/children"), 404)
    for staff in (totem, manager):
        assert_problem(staff.get(f"/v1/households/{household_id}"), 403)
        assert_problem(staff.post("/v1/households", json=ROSSI_HOUSEHOLD), 403)
    assert_problem(admin.post("/v1/households", json=ROSSI_HOUSEHOLD), 403)
    # The platform operator sees who is registered, never the needs.
    children = ok(admin.get(f"/v1/households/{household_id}/children"))
    assert [(c["id"], c["needs"]) for c in children] == [(giulia, None)]

    invalid = {**ROSSI_HOUSEHOLD, "residence_comune_istat": "999999"}
    body = assert_problem(new_family(stack).post("/v1/households", json=invalid), 422)
    assert body["errors"][0]["field"] == "residence_comune_istat"
    wrong_cf = {**GIULIA, "codice_fiscale": "RSSGLI19P54B300X"}
    body = assert_problem(family.post(f"/v1/households/{household_id}/children", json=wrong_cf), 422)
    assert body["errors"][0]["field"] == "codice_fiscale"


# --- refusals, cancellations, promotions, attendance ---------------------------------------------------


def test_refusals_list_every_reason(stack: Stack, totem: httpx.Client, marnate: str) -> None:
    offering_id = publish_offering(totem, offering_body(marnate, capacity=5))
    family = new_family(stack)
    household_id = register_household(family, synthetic_household(3, residence_istat=CREMA_ISTAT))
    teenager = register_child(
        family, household_id, {**synthetic_child(9, date(TODAY.year - 13, 1, 10)), "needs": ["disabilita"]}
    )
    refused = ok(family.post("/v1/enrolments", json=enrolment_body(teenager, offering_id), headers=PREFER_WAIT), 201)
    assert refused["status"] == "refused" and refused["status_label"] == "respinta"
    assert [r["code"] for r in refused["refusal_reasons"]] == [
        "age_out_of_range",
        "needs_not_supported",
        "not_in_alliance",
    ]
    assert refused["refusal_reasons"][0]["message"].startswith("Il bambino avrà")
    assert "non è attrezzato per questi bisogni" in refused["refusal_reasons"][1]["message"]
    assert "Comune dell'alleanza" in refused["refusal_reasons"][2]["message"]
    assert refused["sequence"] is None and refused["waitlist_position"] is None
    assert ok(family.get(f"/v1/enrolments/{refused['id']}")) == refused
    assert_problem(family.post(f"/v1/enrolments/{refused['id']}/cancel"), 409)  # nothing to cancel
    # Nothing taken: no seat, no waitlist; staff never request for a family.
    roster = ok(totem.get(f"/v1/offerings/{offering_id}/enrolments"))
    assert (roster["confirmed_count"], roster["confirmed"], roster["waitlist"]) == (0, [], [])
    assert_problem(totem.post("/v1/enrolments", json=enrolment_body(teenager, offering_id)), 403)


def test_a_toddler_with_unsupported_needs_is_refused_for_both_reasons_in_italian(
    stack: Stack, totem: httpx.Client, marnate: str
) -> None:
    offering_id = publish_offering(totem, offering_body(marnate, capacity=5))
    family = new_family(stack)
    household_id = register_household(family)  # resident in Marnate: in the alliance
    toddler = register_child(
        family, household_id, {**synthetic_child(4, date(TODAY.year - 2, 1, 10)), "needs": ["disabilita"]}
    )
    refused = enrol_and_wait(family, enrolment_body(toddler, offering_id))
    assert refused["status"] == "refused"
    codes = {r["code"]: r["message"] for r in refused["refusal_reasons"]}
    assert list(codes) == ["age_out_of_range", "needs_not_supported"]
    assert (
        codes["age_out_of_range"].startswith("Il bambino avrà") and "il servizio accoglie" in codes["age_out_of_range"]
    )
    assert codes["needs_not_supported"].startswith("Il servizio non è attrezzato per questi bisogni del bambino")


def test_cancellation_promotes_the_first_waitlisted_and_attendance_is_kept(
    stack: Stack, totem: httpx.Client, rembrandt: httpx.Client, manager: httpx.Client, marnate: str
) -> None:
    offering_id = publish_offering(totem, offering_body(marnate, capacity=1))
    family = new_family(stack)
    household_id = register_household(family)
    kids = [register_child(family, household_id, synthetic_child(i, PRIMARY_SCHOOL_CHILD_BORN)) for i in range(3)]
    # Requested one after the other through the queue: decided in that order.
    first, second, third = (enrol_and_wait(family, enrolment_body(k, offering_id)) for k in kids)
    assert (first["status"], second["status"], third["status"]) == ("confirmed", "waitlisted", "waitlisted")
    assert (second["waitlist_position"], third["waitlist_position"]) == (1, 2)

    assert_problem(manager.post(f"/v1/enrolments/{first['id']}/cancel"), 403)  # read-only staff
    assert_problem(rembrandt.post(f"/v1/enrolments/{first['id']}/cancel"), 404)
    cancelled = ok(family.post(f"/v1/enrolments/{first['id']}/cancel", json={"reason": "Cambio orario di lavoro"}))
    assert cancelled["status"] == "cancelled"
    assert_problem(family.post(f"/v1/enrolments/{first['id']}/cancel"), 409)
    promoted = ok(family.get(f"/v1/enrolments/{second['id']}"))
    assert promoted["status"] == "confirmed" and promoted["promoted"] is True
    assert ok(family.get(f"/v1/enrolments/{third['id']}"))["waitlist_position"] == 1
    roster = ok(totem.get(f"/v1/offerings/{offering_id}/enrolments"))
    assert [e["enrolment_id"] for e in roster["confirmed"]] == [second["id"]]
    assert [e["enrolment_id"] for e in roster["waitlist"]] == [third["id"]]

    day = TODAY.isoformat()
    recorded = ok(
        totem.put(f"/v1/enrolments/{second['id']}/attendance", json={"entries": [{"day": day, "present": True}]})
    )
    assert recorded["totals"] == {"days_present": 1, "hours": 0.0}
    future = (TODAY + timedelta(days=1)).isoformat()
    body = assert_problem(
        totem.put(f"/v1/enrolments/{second['id']}/attendance", json={"entries": [{"day": future, "present": True}]}),
        422,
    )
    assert body["errors"][0]["field"] == "entries.0.day"
    assert_problem(
        totem.put(f"/v1/enrolments/{third['id']}/attendance", json={"entries": [{"day": day, "present": True}]}), 422
    )
    assert_problem(family.get(f"/v1/enrolments/{second['id']}/attendance"), 403)
    assert ok(manager.get(f"/v1/enrolments/{second['id']}/attendance"))["totals"]["days_present"] == 1

    month = TODAY.strftime("%Y-%m")
    text = ok_text(totem.get(f"/v1/offerings/{offering_id}/attendance.csv", params={"month": month}))
    rows = text.lstrip("\ufeff").split("\r\n")
    assert len(rows) == 4 and rows[-1] == "" and rows[-2].startswith("Totale;")
    assert rows[1].split(";")[-2:] == ["1", "0"]


def ok_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.text


def test_concurrent_duplicates_with_one_key_create_one_enrolment(
    stack: Stack, totem: httpx.Client, marnate: str
) -> None:
    offering_id = publish_offering(totem, offering_body(marnate, capacity=3))
    family = new_family(stack)
    household_id = register_household(family)
    kid = register_child(family, household_id, synthetic_child(1, PRIMARY_SCHOOL_CHILD_BORN))
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    body = enrolment_body(kid, offering_id)

    def send(_: int) -> httpx.Response:
        return family.post("/v1/enrolments", json=body, headers=headers)

    responses = list(eventlet.GreenPool(8).imap(send, range(8)))
    statuses = sorted(r.status_code for r in responses)
    # The first is accepted (202); the others replay it (202, or 201 once decided), even
    # while the first is still being accepted: the reservation holds the receipt.
    assert 202 in statuses and set(statuses) <= {201, 202}, statuses
    answered = [r.json() for r in responses]
    assert len({(e["id"], e["protocol"]) for e in answered}) == 1
    assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") == "true") == 7
    enrolment = wait_decided(family, answered[0])
    assert enrolment["status"] == "confirmed"
    assert ok(family.get("/v1/enrolments"))["total"] == 1
    assert ok(totem.get(f"/v1/offerings/{offering_id}/enrolments"))["confirmed_count"] == 1


# --- what a family and an integrator see of the asynchronous request --------------------------------


def test_a_request_is_accepted_at_once_with_a_protocol_and_decided_soon_after(
    stack: Stack, totem: httpx.Client, marnate: str
) -> None:
    offering_id = publish_offering(totem, offering_body(marnate, capacity=5))
    family = new_family(stack)
    kid = register_child(family, register_household(family), synthetic_child(2, PRIMARY_SCHOOL_CHILD_BORN))
    body = enrolment_body(kid, offering_id)

    response = family.post("/v1/enrolments", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", accepted["id"]), accepted["id"]
    assert response.headers["Location"] == f"/v1/enrolments/{accepted['id']}"
    assert "Preference-Applied" not in response.headers
    assert accepted["status"] == "requested" and accepted["status_label"] == "richiesta"
    assert PROTOCOL.fullmatch(accepted["protocol"]), accepted["protocol"]
    # The protocol names the acceptance time in Rome and part of the id.
    at = datetime.fromisoformat(accepted["accepted_at"])
    assert accepted["protocol"][4:19] == at.astimezone(ROME).strftime("%Y%m%d-%H%M%S")
    assert accepted["protocol"][20:] == accepted["id"][12:20].upper()
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60
    assert accepted["requested_at"] == accepted["accepted_at"]
    assert (accepted["offering_id"], accepted["child_id"], accepted["period"]) == (
        offering_id,
        kid,
        body["period"],
    )
    assert accepted["sequence"] is None and accepted["decided_at"] is None and accepted["refusal_reasons"] == []

    right_after = ok(family.get(response.headers["Location"]))
    assert right_after["id"] == accepted["id"] and right_after["protocol"] == accepted["protocol"]
    assert right_after["status"] in ("requested", "confirmed"), right_after
    decided = wait_decided(family, right_after)
    assert decided["status"] == "confirmed" and decided["sequence"] == 1
    assert decided["protocol"] == accepted["protocol"] and decided["decided_at"] is not None
    assert datetime.fromisoformat(decided["accepted_at"]) == at
    assert [e["id"] for e in ok(family.get("/v1/enrolments"))["items"]] == [accepted["id"]]


def test_prefer_wait_answers_with_the_decision_and_is_capped_at_ten_seconds(
    stack: Stack, totem: httpx.Client, marnate: str
) -> None:
    offering_id = publish_offering(totem, offering_body(marnate, capacity=1))
    family = new_family(stack)
    household_id = register_household(family)
    first, second = (
        register_child(family, household_id, synthetic_child(i, PRIMARY_SCHOOL_CHILD_BORN)) for i in (5, 6)
    )

    response = family.post("/v1/enrolments", json=enrolment_body(first, offering_id), headers=PREFER_WAIT)
    confirmed = ok(response, 201)
    assert response.headers["Preference-Applied"] == "wait=10"
    assert response.headers["Location"] == f"/v1/enrolments/{confirmed['id']}"
    assert confirmed["status"] == "confirmed" and confirmed["sequence"] == 1
    assert PROTOCOL.fullmatch(confirmed["protocol"])

    response = family.post("/v1/enrolments", json=enrolment_body(second, offering_id), headers={"Prefer": "wait=60"})
    waitlisted = ok(response, 201)
    assert response.headers["Preference-Applied"] == "wait=10"
    assert waitlisted["status"] == "waitlisted" and waitlisted["waitlist_position"] == 1
    assert waitlisted["status_label"] == "in lista d'attesa"


def test_a_request_for_another_familys_child_is_refused_and_leaks_nothing(
    stack: Stack, totem: httpx.Client, marnate: str
) -> None:
    offering_id = publish_offering(totem, offering_body(marnate, capacity=5))
    owner = new_family(stack)
    child = register_child(owner, register_household(owner), GIULIA)
    stranger = new_family(stack)
    register_household(stranger, synthetic_household(7))

    refused = enrol_and_wait(stranger, enrolment_body(child, offering_id))
    assert refused["status"] == "refused"
    assert [r["code"] for r in refused["refusal_reasons"]] == ["child_not_found"]
    assert refused["refusal_reasons"][0]["message"] == "Bambino non trovato."
    assert (refused["child_name"], refused["child_codice_fiscale"], refused["household_id"]) == (None, None, None)
    assert GIULIA["first_name"] not in json.dumps(refused) and GIULIA["codice_fiscale"] not in json.dumps(refused)
    # Only the family that asked reads it; the child's own family does not see the request.
    assert ok(stranger.get(f"/v1/enrolments/{refused['id']}"))["status"] == "refused"
    assert_problem(owner.get(f"/v1/enrolments/{refused['id']}"), 404)
    assert ok(owner.get("/v1/enrolments"))["total"] == 0
    assert ok(totem.get(f"/v1/offerings/{offering_id}/enrolments"))["confirmed_count"] == 0


def test_a_request_for_an_unknown_offering_is_refused(stack: Stack) -> None:
    family = new_family(stack)
    kid = register_child(family, register_household(family), synthetic_child(3, PRIMARY_SCHOOL_CHILD_BORN))
    refused = enrol_and_wait(family, enrolment_body(kid, uuid.uuid4().hex))
    assert refused["status"] == "refused"
    assert [r["code"] for r in refused["refusal_reasons"]] == ["offering_not_found"]
    assert refused["refusal_reasons"][0]["message"] == "Servizio non trovato."
    assert_problem(new_family(stack).get(f"/v1/enrolments/{refused['id']}"), 404)


def test_a_request_id_is_readable_only_by_the_family_it_was_issued_to(
    stack: Stack, totem: httpx.Client, marnate: str
) -> None:
    family_a, family_b = new_family(stack), new_family(stack)
    assert_problem(family_a.get(f"/v1/enrolments/{uuid.uuid4().hex}"), 404)  # made up: never issued

    offering_id = publish_offering(totem, offering_body(marnate, capacity=5))
    kid = register_child(family_a, register_household(family_a), synthetic_child(8, PRIMARY_SCHOOL_CHILD_BORN))
    response = family_a.post("/v1/enrolments", json=enrolment_body(kid, offering_id))
    accepted = ok(response, 202)
    # Right away (most likely still undecided) and after the decision: 404 for family B.
    assert_problem(family_b.get(f"/v1/enrolments/{accepted['id']}"), 404)
    assert ok(family_a.get(f"/v1/enrolments/{accepted['id']}"))["protocol"] == accepted["protocol"]
    assert wait_decided(family_a, accepted)["status"] == "confirmed"
    assert_problem(family_b.get(f"/v1/enrolments/{accepted['id']}"), 404)
    # A receipt id with one digit changed proves nothing.
    forged = accepted["id"][:-1] + ("0" if accepted["id"][-1] != "0" else "1")
    assert_problem(family_a.get(f"/v1/enrolments/{forged}"), 404)


def test_an_idempotency_key_replays_the_same_request_with_its_current_outcome(
    stack: Stack, totem: httpx.Client, marnate: str
) -> None:
    offering_id = publish_offering(totem, offering_body(marnate, capacity=5))
    family = new_family(stack)
    kid = register_child(family, register_household(family), synthetic_child(4, PRIMARY_SCHOOL_CHILD_BORN))
    body = enrolment_body(kid, offering_id)
    key = {"Idempotency-Key": str(uuid.uuid4())}

    accepted = ok(family.post("/v1/enrolments", json=body, headers=key), 202)
    again = family.post("/v1/enrolments", json=body, headers=key)
    assert again.status_code in (201, 202), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (again.json()["id"], again.json()["protocol"]) == (accepted["id"], accepted["protocol"])
    assert again.headers["Location"] == f"/v1/enrolments/{accepted['id']}"

    decided = wait_decided(family, accepted)
    assert decided["status"] == "confirmed"
    replayed = family.post("/v1/enrolments", json=body, headers=key)
    assert replayed.status_code == 201 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == decided

    different = {**body, "attendance_mode": "hour_package", "hours": 20}
    problem = assert_problem(family.post("/v1/enrolments", json=different, headers=key), 422)
    assert "Traceback" not in json.dumps(problem)
    listed = ok(family.get("/v1/enrolments"))
    assert listed["total"] == 1 and listed["items"][0]["id"] == accepted["id"]
    assert ok(totem.get(f"/v1/offerings/{offering_id}/enrolments"))["confirmed_count"] == 1
