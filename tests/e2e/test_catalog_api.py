"""The catalog through the gateway, over HTTP, on the running stack."""

import uuid
from typing import Any

import httpx
import pytest

from conciliare.demo.catalog_data import OFFERINGS, load_offerings
from tests.e2e.builders import assert_problem, ok
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

MARNATE_ISTAT = "012098"
# The question of the issue: a 7-year-old with DSA, in Marnate, during the Easter break 2027.
EASTER_SEARCH = {
    "comune_istat": MARNATE_ISTAT,
    "child_birth_date": "2019-06-10",
    "on_date": "2027-03-25",
    "date_from": "2027-03-25",
    "date_to": "2027-03-30",
    "need": "dsa",
}


@pytest.fixture(scope="module")
def totem(stack: Stack, partner_ids: dict[str, str]) -> httpx.Client:
    return stack.user("totem.catalog.e2e", "partner_operator", partner=partner_ids["coop_totem"])


@pytest.fixture(scope="module")
def family(stack: Stack) -> httpx.Client:
    return stack.user("famiglia.catalog.e2e", "family")


def holiday_camp(alliance_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "alliance_id": alliance_id,
        "type": "attivita_vacanze_scolastiche",
        "title": f"Pasqua in gioco {uuid.uuid4().hex[:4]}",
        "description": "Giochi, laboratori e compiti nelle vacanze di Pasqua, con educatori esperti di DSA.",
        "comune_istat": MARNATE_ISTAT,
        "address": "Via Roma 1, Marnate (VA)",
        "age_range": {"min_months": 72, "max_months": 143},
        "school_levels": ["primaria"],
        "special_needs_supported": ["dsa"],
        "calendar": {
            "periods": [{"kind": "easter", "start": "2027-03-25", "end": "2027-03-30"}],
            "closures": ["2027-03-28", "2027-03-29"],
        },
        "weekly_slots": [{"weekday": d, "start": "08:30", "end": "16:30"} for d in range(1, 6)],
        "capacity": 20,
        "price": {"amount_cents": 1800, "unit": "day"},
        "attendance_modes": ["full", "chosen_days"],
    }
    body.update(overrides)
    return body


def test_operator_publishes_and_family_finds_it_for_the_easter_break(
    totem: httpx.Client, family: httpx.Client, marnate: str, partner_ids: dict[str, str]
) -> None:
    draft = ok(totem.post("/v1/offerings", json=holiday_camp(marnate)), 201)
    assert draft["status"] == "draft" and draft["version"] == 1
    assert draft["provider_partner_id"] == partner_ids["coop_totem"]  # from the token, not the body
    assert draft["spec"]["calendar"]["closures"] == ["2027-03-28", "2027-03-29"]

    # Not yet published: invisible to families, by id and in search.
    assert_problem(family.get(f"/v1/offerings/{draft['id']}"), 404)
    before = ok(family.get("/v1/offerings", params={"alliance_id": marnate, **EASTER_SEARCH}))
    assert draft["id"] not in {o["id"] for o in before["items"]}

    published = ok(totem.post(f"/v1/offerings/{draft['id']}/publish"))
    assert published["status"] == "published" and published["version"] == 2

    found = ok(family.get("/v1/offerings", params={"alliance_id": marnate, **EASTER_SEARCH}))
    assert draft["id"] in {o["id"] for o in found["items"]}
    assert ok(family.get(f"/v1/offerings/{draft['id']}"))["spec"]["title"] == draft["spec"]["title"]

    # An 11-to-14 child, or a need it does not support, does not find it.
    teen = {**EASTER_SEARCH, "child_birth_date": "2014-01-10"}
    assert draft["id"] not in {
        o["id"] for o in ok(family.get("/v1/offerings", params={"alliance_id": marnate, **teen}))["items"]
    }
    adhd = {**EASTER_SEARCH, "need": "adhd"}
    assert draft["id"] not in {
        o["id"] for o in ok(family.get("/v1/offerings", params={"alliance_id": marnate, **adhd}))["items"]
    }
    # Families search published offerings only.
    assert_problem(family.get("/v1/offerings", params={"alliance_id": marnate, "status": "draft"}), 403)
    assert_problem(family.post("/v1/offerings", json=holiday_camp(marnate)), 403)

    # Suspended: gone for families; resumed: back.
    ok(totem.post(f"/v1/offerings/{draft['id']}/suspend"))
    assert_problem(family.get(f"/v1/offerings/{draft['id']}"), 404)
    assert_problem(totem.post(f"/v1/offerings/{draft['id']}/publish"), 409)
    ok(totem.post(f"/v1/offerings/{draft['id']}/resume"))
    assert ok(family.get(f"/v1/offerings/{draft['id']}"))["status"] == "published"


def test_update_with_version_and_capacity(totem: httpx.Client, marnate: str) -> None:
    offering = ok(totem.post("/v1/offerings", json=holiday_camp(marnate)), 201)
    spec = {k: v for k, v in holiday_camp(marnate).items() if k != "alliance_id"}
    updated = ok(totem.put(f"/v1/offerings/{offering['id']}", json={**spec, "capacity": 12, "version": 1}))
    assert updated["version"] == 2 and updated["spec"]["capacity"] == 12
    stale = assert_problem(totem.put(f"/v1/offerings/{offering['id']}", json={**spec, "version": 1}), 409)
    assert "modificata" in stale["detail"]
    ok(totem.post(f"/v1/offerings/{offering['id']}/publish"))
    grown = ok(totem.put(f"/v1/offerings/{offering['id']}", json={**spec, "capacity": 40, "version": 3}))
    assert grown["spec"]["capacity"] == 40
    ok(totem.post(f"/v1/offerings/{offering['id']}/archive"))
    assert_problem(totem.put(f"/v1/offerings/{offering['id']}", json={**spec, "version": 5}), 409)


def test_tenant_isolation(
    stack: Stack,
    admin: httpx.Client,
    totem: httpx.Client,
    marnate: str,
    castellanza: str,
    partner_ids: dict[str, str],
) -> None:
    draft = ok(totem.post("/v1/offerings", json=holiday_camp(marnate)), 201)
    offering = ok(totem.post("/v1/offerings", json=holiday_camp(marnate)), 201)
    ok(totem.post(f"/v1/offerings/{offering['id']}/publish"))

    # Castellanza's staff: Marnate's offerings do not exist for them.
    other_manager = stack.user("cast.catalog.e2e", "alliance_manager", alliances=(castellanza,))
    for offering_id in (draft["id"], offering["id"]):
        assert_problem(other_manager.get(f"/v1/offerings/{offering_id}"), 404)
        assert_problem(other_manager.post(f"/v1/offerings/{offering_id}/archive"), 404)
    assert_problem(other_manager.get("/v1/offerings", params={"alliance_id": marnate}), 404)
    assert_problem(
        other_manager.post("/v1/offerings", json=holiday_camp(marnate, provider_partner_id=partner_ids["coop_totem"])),
        404,
    )

    # Rembrandt, another partner of Marnate: sees Totem's published offering, never
    # its draft, and changes neither.
    rembrandt = stack.user("rembrandt.catalog.e2e", "partner_operator", partner=partner_ids["coop_rembrandt"])
    assert ok(rembrandt.get(f"/v1/offerings/{offering['id']}"))["status"] == "published"
    assert_problem(rembrandt.get(f"/v1/offerings/{draft['id']}"), 404)
    assert_problem(rembrandt.post(f"/v1/offerings/{draft['id']}/publish"), 404)
    spec = {k: v for k, v in holiday_camp(marnate).items() if k != "alliance_id"}
    assert_problem(rembrandt.put(f"/v1/offerings/{offering['id']}", json={**spec, "version": 2}), 404)
    drafts = ok(rembrandt.get("/v1/offerings", params={"alliance_id": marnate, "status": "draft", "limit": 200}))
    assert draft["id"] not in {o["id"] for o in drafts["items"]}
    body = {**holiday_camp(marnate), "provider_partner_id": partner_ids["coop_totem"]}
    assert_problem(rembrandt.post("/v1/offerings", json=body), 403)

    # Marnate's own staff see the draft; Totem sees its own drafts.
    own_manager = stack.user("marn.catalog.e2e", "alliance_manager", alliances=(marnate,))
    assert ok(own_manager.get(f"/v1/offerings/{draft['id']}"))["status"] == "draft"
    mine = ok(totem.get("/v1/offerings", params={"alliance_id": marnate, "status": "draft", "limit": 200}))
    assert draft["id"] in {o["id"] for o in mine["items"]}
    # Nothing changed by the refused attempts.
    assert ok(admin.get(f"/v1/offerings/{draft['id']}"))["version"] == 1
    assert ok(admin.get(f"/v1/offerings/{offering['id']}"))["version"] == 2


def test_bad_input_is_refused_and_nothing_is_stored(admin: httpx.Client, totem: httpx.Client, marnate: str) -> None:
    title = f"Offerta sbagliata {uuid.uuid4().hex[:6]}"
    wrong = holiday_camp(
        marnate,
        title=title,
        age_range={"min_months": 100, "max_months": 80},
        capacity=0,
        price={"amount_cents": 1800, "unit": "fortnight"},
    )
    body = assert_problem(totem.post("/v1/offerings", json=wrong), 422)
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages["age_range.max_months"] == "l'età minima deve essere minore o uguale all'età massima"
    assert "capienza" in messages["capacity"]
    assert messages["price.unit"].startswith("valore non ammesso")

    # Valid shape, but the Comune is outside the alliance (checked by the service).
    outside = holiday_camp(marnate, title=title, comune_istat="012005")
    body = assert_problem(totem.post("/v1/offerings", json=outside), 422)
    assert body["errors"][0]["field"] == "comune_istat"

    # Publishing an incomplete draft lists every reason.
    incomplete = ok(totem.post("/v1/offerings", json=holiday_camp(marnate, title=title, description="")), 201)
    body = assert_problem(totem.post(f"/v1/offerings/{incomplete['id']}/publish"), 422)
    assert [e["field"] for e in body["errors"]] == ["description"]

    bad_search = assert_problem(
        totem.get("/v1/offerings", params={"alliance_id": marnate, "date_from": "2027-04-01", "date_to": "2027-03-01"}),
        422,
    )
    assert bad_search["errors"][0]["field"] == "date_to"
    assert_problem(totem.get("/v1/offerings", params={"alliance_id": marnate, "type": "doposcuola"}), 422)

    stored = ok(
        admin.get("/v1/offerings", params={"alliance_id": marnate, "q": title, "status": ["draft", "published"]})
    )
    assert [o["id"] for o in stored["items"]] == [incomplete["id"]]


def test_demo_offerings_load_idempotently(
    admin: httpx.Client, family: httpx.Client, marnate: str, castellanza: str, partner_ids: dict[str, str]
) -> None:
    alliance_ids = {"MARNATE-WLB": marnate, "CASTELLANZA": castellanza}
    load_offerings(admin, partner_ids, alliance_ids)
    load_offerings(admin, partner_ids, alliance_ids)
    titles = {o.title for o in OFFERINGS}
    for code, alliance_id in alliance_ids.items():
        page = ok(admin.get("/v1/offerings", params={"alliance_id": alliance_id, "q": "", "limit": 200}))
        demo = [o for o in page["items"] if o["spec"]["title"] in titles]
        expected = [o for o in OFFERINGS if o.alliance_code == code]
        assert len(demo) == len(expected) and all(o["status"] == "published" for o in demo)

    found = ok(family.get("/v1/offerings", params={"alliance_id": marnate, **EASTER_SEARCH}))
    demo_titles = [o["spec"]["title"] for o in found["items"] if o["spec"]["title"] in titles]
    assert demo_titles == ["Post scuola DSA: metodo di studio", "Vacanze insieme: Natale, Pasqua e inizio settembre"]

    summer = ok(
        family.get(
            "/v1/offerings",
            params={"alliance_id": castellanza, "date_from": "2027-07-01", "date_to": "2027-07-31", "q": "biblioteca"},
        )
    )
    assert [o["spec"]["title"] for o in summer["items"]] == ["Estate in biblioteca"]
    page = ok(
        family.get("/v1/offerings", params={"alliance_id": marnate, "type": "post_scuola_dsa_adhd_bes", "limit": 1})
    )
    assert page["total"] == 2 and len(page["items"]) == 1 and page["limit"] == 1
