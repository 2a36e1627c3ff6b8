"""Seed 002's bando from the call to the redemption, through the gateway over HTTP.

A fresh tenant shaped like ASST Crema's partnership (capofila ASST, ATS, a provider
cooperative, a partner not yet formalized), its alliance manager, a provider
operator, the manager of another alliance and a few hundred generated families:
"Conciliare le responsabilità" (300 € a year per minor aged 0-16, employees of the
partners, 100,000 € FSE + 44,000 € ATS, scoring criteria, ranking by funds) is
opened, applied to, reviewed, closed, ranked (and recomputed), published once,
awarded within budget, and a voucher is redeemed at the provider's desk against a
confirmed enrolment. Then a small second bando runs out of money exactly (a partial
last award) and a child holding vouchers of both bandi is stopped at 300 € a year in
all; and 80 simultaneous redemption requests never overspend a voucher. The tests
run in file order and share the scenario's state.

Two family users log in with a password like anyone; the generated ones get the
token the gateway would issue them (``builders.family_token``), since hundreds of
argon2 logins are not what these tests measure.
"""

import csv
import io
import itertools
import random
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook

from conciliare.demo.families import codice_fiscale
from tests.e2e.builders import (
    assert_problem,
    enrol_and_wait,
    family_token,
    fresh_tax_code,
    ok,
    unique,
    wait_projected,
)
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

TODAY = datetime.now(ZoneInfo("Europe/Rome")).date()
YEAR = TODAY.year
CREMA_ISTAT = "019035"
CREMA_AMBITO = ["019035", "019005", "019012", "019054", "019055", "019062", "019072", "019081"]
CREMA_CADASTRAL = "D142"
HOUSEHOLDS = 150  # 1 to 3 children each: 300 applications
CAP = 30_000
FSE, ATS = 10_000_000, 4_400_000
ISEE_MAX = 4_000_000
PDF = b"%PDF-1.4\n% attestazione ISEE di prova\n"

CRITERIA: list[dict[str, Any]] = [
    {
        "kind": "isee_bands",
        "bands": [
            {"max_isee_cents": 1_000_000, "points": 30},
            {"max_isee_cents": 2_000_000, "points": 20},
            {"max_isee_cents": 4_000_000, "points": 10},
        ],
    },
    {"kind": "single_parent", "points": 15},
    {"kind": "child_disability", "points": 20},
    {"kind": "minors", "points": 12, "unit_max": 3},
    {"kind": "both_working", "points": 10},
    {"kind": "weekly_hours", "points": 8, "unit_max": 72},
]
ELIGIBLE_TYPES = ["post_scuola", "post_scuola_dsa_adhd_bes", "centro_estivo", "attivita_vacanze_scolastiche"]

_FIRST = ["Luca", "Marta", "Paolo", "Chiara", "Davide", "Elena", "Stefano", "Irene", "Fabio", "Silvia", "Nicola"]
_LAST = ["Bertoni", "Cattaneo", "Dossena", "Ferla", "Groppelli", "Inzoli", "Lupo", "Marazzi", "Nichetti", "Ogliari"]
_KIDS = ["Pietro", "Nina", "Tommaso", "Viola", "Filippo", "Aurora", "Matteo", "Ada", "Giacomo", "Bianca", "Samuele"]


# --- the generated population ----------------------------------------------------------


@dataclass
class Family:
    """One generated household and what the automatic checks should say about it."""

    index: int
    household: dict[str, Any]
    children: list[dict[str, Any]]
    weekly_hours: list[int]
    upload_isee: bool
    no_double_funding: bool
    disability_child: int | None  # which child claims the disability priority
    expected: list[set[str]]  # per child: the codes of the automatic reasons
    username: str = ""
    client: httpx.Client | None = None
    household_id: str = ""
    child_ids: list[str] = field(default_factory=list)
    applications: list[dict[str, Any]] = field(default_factory=list)


def generate(index: int, partners: "Partners", rng: random.Random, used_cfs: set[str]) -> Family:
    """A household of employees (mostly) of the alliance's partners, with faults now and then."""
    last = _LAST[index % len(_LAST)]
    single = index % 4 == 0
    employers = [partners.asst, partners.ats, partners.coop]
    reasons: set[str] = set()
    guardians = []
    for g in range(1 if single else 2):
        first = _FIRST[(index + 5 * g) % len(_FIRST)]
        sex: Literal["M", "F"] = "F" if (index + g) % 2 else "M"
        born = date(1972, 1, 1) + timedelta(days=index * 11 + g * 3)
        employer: str | None = employers[(index + g) % 3] if g == 0 else None
        if g == 0 and index % 23 == 5:
            employer = partners.pending  # a partner whose membership is not formalized
        if g == 0 and index % 29 == 7:
            employer = None
        guardians.append(
            {
                "first_name": first,
                "last_name": last,
                "codice_fiscale": codice_fiscale(last, first, sex, born, CREMA_CADASTRAL),
                "birth_date": born.isoformat(),
                "employment": "employed_by_partner" if employer else "employed_elsewhere",
                "employer_partner_id": employer,
            }
        )
    if index % 23 == 5 or index % 29 == 7:
        reasons.add("employment")
    isee = rng.randrange(300_000, 3_800_000, 100)
    if index % 17 == 3:
        isee = 4_550_000
        reasons.add("isee_ceiling")
    household = {
        "guardians": guardians,
        "residence_comune_istat": CREMA_AMBITO[index % len(CREMA_AMBITO)],
        "isee": {
            "value_cents": isee,
            "kind": "minorenni" if index % 10 == 0 else "ordinario",
            "expires_on": (TODAY + timedelta(days=200)).isoformat(),
        },
        "single_parent": single,
    }
    upload_isee = index % 41 != 20
    if not upload_isee:
        reasons.add("attachment_isee_certificate")
    no_double_funding = index % 37 != 13
    if not no_double_funding:
        reasons.add("double_funding")
    disability_child = 0 if index % 19 == 2 else None
    children, expected = [], []
    for k in range(1 + index % 3):
        age = 17 if (index % 31 == 11 and k == 0) else rng.randint(1, 15)
        first = _KIDS[(index + 3 * k) % len(_KIDS)]
        sex = "F" if (index + k) % 2 else "M"
        born = TODAY - timedelta(days=365 * age + rng.randint(10, 300))
        cf = codice_fiscale(last, first, sex, born, CREMA_CADASTRAL)
        while cf in used_cfs:
            born -= timedelta(days=1)
            cf = codice_fiscale(last, first, sex, born, CREMA_CADASTRAL)
        used_cfs.add(cf)
        needs = ["disabilita"] if disability_child == k else []
        children.append(
            {
                "first_name": first,
                "last_name": last,
                "codice_fiscale": cf,
                "birth_date": born.isoformat(),
                "needs": needs,
            }
        )
        expected.append(reasons | ({"age"} if age > 16 else set()))
    hours = [rng.choice([18, 24, 30, 36, 38, 40]) for _ in guardians]
    return Family(index, household, children, hours, upload_isee, no_double_funding, disability_child, expected)


# --- the tenant --------------------------------------------------------------------------


@dataclass(frozen=True)
class Partners:
    asst: str
    ats: str
    coop: str
    pending: str


@dataclass
class Scenario:
    stack: Stack
    admin: httpx.Client
    alliance_id: str
    project_id: str
    partners: Partners
    manager: httpx.Client
    provider: httpx.Client
    other_manager: httpx.Client
    other_provider: httpx.Client
    offering_id: str
    families: list[Family] = field(default_factory=list)
    programme_id: str = ""
    ranking: list[dict[str, Any]] = field(default_factory=list)
    vouchers: dict[str, dict[str, Any]] = field(default_factory=dict)  # by application id


def _partner(admin: httpx.Client, name: str, kind: str, comune: str = CREMA_ISTAT) -> str:
    body = {
        "kind": kind,
        "name": f"{name} {uuid.uuid4().hex[:4]}",
        "tax_code": fresh_tax_code(),
        "comune_istat": comune,
    }
    return str(ok(admin.post("/v1/partners", json=body), 201)["id"])


def seed002_project() -> dict[str, Any]:
    """Seed 002's money: 189,574 € = 100,000 € FSE + 44,000 € ATS + partners' valued work hours."""
    return {
        "title": f"Conciliare le responsabilità {uuid.uuid4().hex[:4]}",
        "period_start": "2017-01-01",
        "period_end": "2018-12-31",
        "total_cost_cents": 18_957_400,
        "requested_contribution_cents": FSE + ATS,
        "cofinancing": {"cash_cents": 0, "valued_work_hours_cents": 18_957_400 - FSE - ATS},
        "funding_sources": [
            {"name": "FSE POR 2014-2020", "amount_cents": FSE},
            {"name": "ATS Val Padana", "amount_cents": ATS},
        ],
        "actions": [{"code": "A", "title": "Voucher per i servizi di conciliazione ai figli dei dipendenti"}],
    }


def programme_body(alliance_id: str, project_id: str, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body = {
        "alliance_id": alliance_id,
        "project_id": project_id,
        "action_code": "A",
        "title": "Conciliare le responsabilità: voucher per i figli dei dipendenti degli enti partner",
        "year": YEAR,
        "budget_cents": FSE + ATS,
        "funding_sources": [
            {"name": "FSE POR 2014-2020", "amount_cents": FSE},
            {"name": "ATS Val Padana", "amount_cents": ATS},
        ],
        "cap_per_child_cents": CAP,
        "eligible_service_types": ELIGIBLE_TYPES,
        "who_may_apply": "employees",
        "isee_max_cents": ISEE_MAX,
        "required_attachments": ["isee_certificate"],
        "opens_at": (now - timedelta(minutes=5)).isoformat(),
        "closes_at": (now + timedelta(days=30)).isoformat(),
        "ranking_mode": "funds",
        "criteria": CRITERIA,
        "voucher_valid_until": (TODAY + timedelta(days=365)).isoformat(),
    }
    return {**body, **overrides}


def offering_body(alliance_id: str, provider_id: str) -> dict[str, Any]:
    return {
        "alliance_id": alliance_id,
        "provider_partner_id": provider_id,
        "type": "post_scuola",
        "title": f"Post scuola a Crema {uuid.uuid4().hex[:4]}",
        "description": "Accoglienza dopo le lezioni con merenda, gioco e compiti, con educatori.",
        "comune_istat": CREMA_ISTAT,
        "address": "Via Mazzini 10, Crema (CR)",
        "age_range": {"min_months": 12, "max_months": 203},
        "calendar": {
            "periods": [
                {"kind": "term_time", "start": TODAY.isoformat(), "end": (TODAY + timedelta(days=150)).isoformat()}
            ]
        },
        "weekly_slots": [{"weekday": d, "start": "16:00", "end": "18:00"} for d in range(1, 8)],
        "capacity": 30,
        "price": {"amount_cents": 600, "unit": "day"},
        "attendance_modes": ["full"],
    }


@pytest.fixture(scope="module")
def scenario(stack: Stack, admin: httpx.Client) -> Scenario:
    asst = _partner(admin, "ASST di Crema", "asst")
    ats = _partner(admin, "ATS Val Padana", "ats")
    coop = _partner(admin, "Cooperativa sociale Il Cortile", "cooperativa")
    pending = _partner(admin, "Impresa di prova", "impresa")
    alliance = {
        "code": unique("CREMA"),
        "name": "Alleanza locale di Crema (prova)",
        "ambiti": [{"name": "Ambito di Crema", "comuni_istat": CREMA_AMBITO}],
        "capofila_partner_id": asst,
    }
    alliance_id = str(ok(admin.post("/v1/alliances", json=alliance), 201)["id"])
    for partner in (ats, coop):
        ok(
            admin.post(f"/v1/alliances/{alliance_id}/members", json={"partner_id": partner, "status": "formalized"}),
            201,
        )
    ok(admin.post(f"/v1/alliances/{alliance_id}/members", json={"partner_id": pending}), 201)
    project_id = str(ok(admin.post(f"/v1/alliances/{alliance_id}/projects", json=seed002_project()), 201)["id"])
    # Another alliance, with its own staff and provider.
    other_capofila = _partner(admin, "Comune di prova", "comune", "012098")
    other_body = {
        "code": unique("ALTRA"),
        "name": "Altra alleanza",
        "ambiti": [{"name": "Ambito di prova", "comuni_istat": ["012098"]}],
        "capofila_partner_id": other_capofila,
    }
    other_id = str(ok(admin.post("/v1/alliances", json=other_body), 201)["id"])
    tag = uuid.uuid4().hex[:6]
    manager = stack.user(f"crema.staff.{tag}", "alliance_manager", alliances=(alliance_id,))
    provider = stack.user(f"cortile.operatore.{tag}", "partner_operator", partner=coop)
    other_manager = stack.user(f"altra.staff.{tag}", "alliance_manager", alliances=(other_id,))
    other_provider = stack.user(f"altra.operatore.{tag}", "partner_operator", partner=other_capofila)
    offering_id = str(ok(provider.post("/v1/offerings", json=offering_body(alliance_id, coop)), 201)["id"])
    ok(provider.post(f"/v1/offerings/{offering_id}/publish"))
    wait_projected(provider, offering_id)
    return Scenario(
        stack,
        admin,
        alliance_id,
        project_id,
        Partners(asst, ats, coop, pending),
        manager,
        provider,
        other_manager,
        other_provider,
        offering_id,
    )


def _register_and_apply(scenario: Scenario, family: Family) -> None:
    """As the family: household, children, the ISEE certificate, one application per child."""
    assert family.client is not None
    http = family.client
    family.household_id = ok(http.post("/v1/households", json=family.household), 201)["id"]
    for child in family.children:
        family.child_ids.append(ok(http.post(f"/v1/households/{family.household_id}/children", json=child), 201)["id"])
    programme = scenario.programme_id
    attachments = []
    if family.upload_isee:
        files = {"file": ("isee.pdf", PDF, "application/pdf")}
        attachments.append(
            ok(
                http.post(f"/v1/programmes/{programme}/attachments", files=files, data={"kind": "isee_certificate"}),
                201,
            )
        )
    for k, child_id in enumerate(family.child_ids):
        claims = family.disability_child == k
        cited = list(attachments)
        if claims:
            files = {"file": ("diagnosi.pdf", PDF, "application/pdf")}
            cited.append(
                ok(http.post(f"/v1/programmes/{programme}/attachments", files=files, data={"kind": "diagnosis"}), 201)
            )
        body = {
            "household_id": family.household_id,
            "child_id": child_id,
            "weekly_hours": family.weekly_hours,
            "claims_disability_priority": claims,
            "no_double_funding": family.no_double_funding,
            "attachments": cited,
        }
        family.applications.append(ok(http.post(f"/v1/programmes/{programme}/applications", json=body), 201))


# --- 1. the bando -------------------------------------------------------------------------


def test_rules_are_checked_when_the_bando_opens(scenario: Scenario) -> None:
    manager = scenario.manager
    # Sources that do not add up to the budget: the bando is stored as a draft but never opens.
    wrong = programme_body(
        scenario.alliance_id,
        scenario.project_id,
        title="Bando con fonti sbagliate",
        funding_sources=[{"name": "FSE POR 2014-2020", "amount_cents": FSE}, {"name": "ATS", "amount_cents": 40_000}],
    )
    draft = ok(manager.post("/v1/programmes", json=wrong), 201)
    problem = assert_problem(manager.post(f"/v1/programmes/{draft['id']}/open"), 422)
    assert any(e["field"] == "funding_sources" for e in problem["errors"])
    assert ok(manager.get(f"/v1/programmes/{draft['id']}"))["status"] == "draft"
    too_big_cap = programme_body(
        scenario.alliance_id, scenario.project_id, budget_cents=20_000, cap_per_child_cents=CAP
    )
    too_big_cap["funding_sources"] = [{"name": "FSE POR 2014-2020", "amount_cents": 20_000}]
    capped = ok(manager.post("/v1/programmes", json=too_big_cap), 201)
    problem = assert_problem(manager.post(f"/v1/programmes/{capped['id']}/open"), 422)
    assert any(e["field"] == "cap_per_child_cents" for e in problem["errors"])
    # Only the alliance's staff create bandi; an action the project lacks is refused.
    body = programme_body(scenario.alliance_id, scenario.project_id)
    assert scenario.provider.post("/v1/programmes", json=body).status_code in (403, 404)
    assert_problem(scenario.other_manager.post("/v1/programmes", json=body), 404)
    assert_problem(manager.post("/v1/programmes", json={**body, "action_code": "B"}), 422)

    created = ok(manager.post("/v1/programmes", json=body), 201)
    assert created["status"] == "draft" and created["cap_per_child_cents"] == CAP
    opened = ok(manager.post(f"/v1/programmes/{created['id']}/open"))
    assert opened["status"] == "open"
    assert [h["status"] for h in opened["history"]] == ["draft", "open"]
    assert all(h["by"] and h["at"] for h in opened["history"])
    assert_problem(manager.post(f"/v1/programmes/{created['id']}/open"), 409)
    scenario.programme_id = created["id"]


# --- 2. applications ----------------------------------------------------------------------


def test_a_few_hundred_families_apply_and_get_protocol_numbers(scenario: Scenario) -> None:
    rng = random.Random(2017)
    used: set[str] = set()
    families = [generate(i, scenario.partners, rng, used) for i in range(HOUSEHOLDS)]
    # Two of them log in with a password, like anyone; the others hold the token the gateway issues.
    for index in (1, 2):
        families[index].username = f"famiglia.{uuid.uuid4().hex[:8]}"
        families[index].client = scenario.stack.user(families[index].username, "family")
    for family in families:
        if family.client is None:
            family.username = f"famiglia.{uuid.uuid4().hex[:8]}"
            family.client = scenario.stack.client(family_token(scenario.stack.env, family.username))
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(family: Family) -> None:
        try:
            _register_and_apply(scenario, family)
        except BaseException as error:  # reported below, with the family
            with lock:
                failures.append(error)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, families))
    assert not failures, failures[:3]
    scenario.families = families
    applications = [a for f in families for a in f.applications]
    assert len(applications) == sum(1 + i % 3 for i in range(HOUSEHOLDS)) == 300

    # Protocol numbers: one per application, contiguous from 1, with the time received.
    protocols = sorted(a["protocol"] for a in applications)
    assert protocols == [f"{YEAR}/{n:06d}" for n in range(1, len(applications) + 1)]
    assert all(a["status"] == "submitted" and a["submitted_at"] for a in applications)

    # The household's declared data is frozen with each application; the checks pre-fill reasons.
    for family in families:
        for k, application in enumerate(family.applications):
            snapshot = application["snapshot"]
            assert snapshot["isee_cents"] == family.household["isee"]["value_cents"]
            assert snapshot["child_codice_fiscale"] == family.children[k]["codice_fiscale"]
            assert snapshot["minors_count"] == len(family.children)
            assert [g["weekly_hours"] for g in snapshot["guardians"]] == family.weekly_hours
            assert {r["code"] for r in application["automatic_reasons"]} == family.expected[k], family.index
            assert sum(b["points"] for b in application["breakdown"]) == application["score"]

    alfa = families[1]
    assert alfa.client is not None
    # The same child in the same bando twice: 409, nothing stored.
    again = {
        "household_id": alfa.household_id,
        "child_id": alfa.child_ids[0],
        "weekly_hours": alfa.weekly_hours,
        "no_double_funding": True,
    }
    assert_problem(alfa.client.post(f"/v1/programmes/{scenario.programme_id}/applications", json=again), 409)
    # Another family's household is not this family's to apply with.
    beta = families[2]
    assert beta.client is not None
    foreign = {**again, "household_id": alfa.household_id}
    assert beta.client.post(f"/v1/programmes/{scenario.programme_id}/applications", json=foreign).status_code in (
        403,
        404,
    )
    # A family sees its own applications only.
    own = ok(alfa.client.get(f"/v1/programmes/{scenario.programme_id}/applications", params={"limit": 200}))
    assert {a["id"] for a in own["items"]} == {a["id"] for a in alfa.applications}
    assert_problem(beta.client.get(f"/v1/applications/{alfa.applications[0]['id']}"), 404)
    # The ISEE certificate stays private: a short-lived link for the family, 404 for anyone else's.
    attachment = f"/v1/applications/{alfa.applications[0]['id']}/attachments/0"
    link = alfa.client.get(attachment, follow_redirects=False)
    assert link.status_code == 307 and "X-Amz-Signature" in link.headers["location"]
    assert httpx.get(link.headers["location"]).content == PDF
    assert_problem(beta.client.get(attachment, follow_redirects=False), 404)
    assert_problem(scenario.other_manager.get(f"/v1/applications/{alfa.applications[0]['id']}"), 404)
    staff = ok(scenario.manager.get(f"/v1/programmes/{scenario.programme_id}/applications", params={"limit": 1}))
    assert staff["total"] == len(applications) + 0


# --- 3. review, close, rank ---------------------------------------------------------------


def test_staff_review_close_and_rank_a_recomputable_draft(scenario: Scenario) -> None:
    manager, programme = scenario.manager, scenario.programme_id
    applications = [(f, k, a) for f in scenario.families for k, a in enumerate(f.applications)]
    flagged = [(f, a) for f, _, a in applications if {r["code"] for r in a["automatic_reasons"]} == {"isee_ceiling"}]
    clean = [(f, a) for f, _, a in applications if not a["automatic_reasons"]]
    assert flagged and len(clean) > 200

    # Overriding the automatic checks needs a reason; confirming them does not.
    review = f"/v1/applications/{flagged[0][1]['id']}/review"
    assert_problem(manager.post(review, json={"eligible": True}), 422)
    assert ok(manager.get(f"/v1/applications/{flagged[0][1]['id']}"))["status"] == "submitted"
    overridden = ok(manager.post(review, json={"eligible": True, "note": "ISEE corrente presentato: 31.000 €"}))
    assert overridden["status"] == "eligible" and overridden["review_note"] and overridden["reviewed_by"]
    excluded = ok(
        manager.post(
            f"/v1/applications/{clean[0][1]['id']}/review",
            json={"eligible": False, "note": "Rapporto di lavoro cessato prima della domanda"},
        )
    )
    assert excluded["status"] == "ineligible"
    confirmed = ok(manager.post(f"/v1/applications/{clean[1][1]['id']}/review", json={"eligible": True}))
    assert confirmed["status"] == "eligible"
    # Families and other tenants do not review.
    beta = scenario.families[2].client
    assert beta is not None
    assert beta.post(review, json={"eligible": True, "note": "io"}).status_code in (403, 404)
    assert_problem(scenario.other_manager.post(review, json={"eligible": True, "note": "x"}), 404)

    # Ranking needs a closed bando; closing stops the applications.
    assert_problem(manager.post(f"/v1/programmes/{programme}/rank"), 409)
    closed = ok(manager.post(f"/v1/programmes/{programme}/close", json={"note": "Termine anticipato"}))
    assert closed["status"] == "closed"
    late = scenario.families[3]
    assert late.client is not None
    body = {"household_id": late.household_id, "child_id": late.child_ids[0], "no_double_funding": True}
    assert_problem(late.client.post(f"/v1/programmes/{programme}/applications", json=body), 409)
    # Every application reviewed before ranking.
    assert_problem(manager.post(f"/v1/programmes/{programme}/rank"), 409)
    confirmed_count = ok(manager.post(f"/v1/programmes/{programme}/confirm-reviews"))["confirmed"]
    assert confirmed_count == len(applications) - 3
    eligible_ids = {a["id"] for _, _, a in applications if not a["automatic_reasons"]}
    eligible_ids = (eligible_ids - {clean[0][1]["id"]}) | {flagged[0][1]["id"]}
    listed = ok(manager.get(f"/v1/programmes/{programme}/applications", params={"status": "eligible", "limit": 1}))
    assert listed["total"] == len(eligible_ids)

    ranked = ok(manager.post(f"/v1/programmes/{programme}/rank"))
    assert ranked["status"] == "ranked"
    first = _whole_ranking(manager, programme)
    assert {e["application_id"] for e in first} == eligible_ids
    assert [e["position"] for e in first] == list(range(1, len(first) + 1))
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(first))
    assert all(e["breakdown"] and sum(b["points"] for b in e["breakdown"]) == e["score"] for e in first)
    # Equal scores: the tie-break that decided the place is shown (lower ISEE, then earlier submission).
    ties = [b for a, b in itertools.pairwise(first) if a["score"] == b["score"]]
    assert ties and all(t["placed_by"] in ("lower_isee", "earlier_submission", "protocol_number") for t in ties)
    # Within the budget: 300 € each for everyone eligible (144,000 € fund 480 vouchers).
    assert all(e["outcome"] == "awarded" and e["award_cents"] == CAP for e in first)
    # A draft ranking can be recomputed, and is the same ranking (deterministic).
    assert ok(manager.post(f"/v1/programmes/{programme}/rank"))["status"] == "ranked"
    again = _whole_ranking(manager, programme)
    assert [(e["application_id"], e["score"], e["placed_by"]) for e in again] == [
        (e["application_id"], e["score"], e["placed_by"]) for e in first
    ]
    # Families read only a published ranking.
    assert beta.get(f"/v1/programmes/{programme}/ranking").status_code == 409
    scenario.ranking = again


def _whole_ranking(client: httpx.Client, programme: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while True:
        page = ok(client.get(f"/v1/programmes/{programme}/ranking", params={"limit": 200, "offset": len(entries)}))
        entries += page["entries"]
        if len(entries) >= page["total"] or not page["entries"]:
            return entries


# --- 4. publication -----------------------------------------------------------------------


def test_publication_is_final_and_the_public_ranking_masks_the_codice_fiscale(scenario: Scenario) -> None:
    manager, programme = scenario.manager, scenario.programme_id
    alfa, beta = scenario.families[1], scenario.families[2]
    assert alfa.client is not None and beta.client is not None
    assert alfa.client.post(f"/v1/programmes/{programme}/publish").status_code in (403, 404)
    assert scenario.provider.post(f"/v1/programmes/{programme}/publish").status_code in (403, 404)
    assert_problem(scenario.other_manager.post(f"/v1/programmes/{programme}/publish"), 404)
    published = ok(manager.post(f"/v1/programmes/{programme}/publish"))
    assert published["status"] == "published"
    assert [h["status"] for h in published["history"]][-1] == "published"
    # One-way: no second publication, no new ranking, no more reviews or withdrawals.
    assert_problem(manager.post(f"/v1/programmes/{programme}/publish"), 409)
    assert_problem(manager.post(f"/v1/programmes/{programme}/rank"), 409)
    some = scenario.ranking[0]["application_id"]
    assert_problem(manager.post(f"/v1/applications/{some}/review", json={"eligible": False, "note": "tardi"}), 409)
    assert_problem(alfa.client.post(f"/v1/applications/{alfa.applications[0]['id']}/withdraw", json={}), 409)
    assert _whole_ranking(manager, programme) == scenario.ranking

    # The public ranking: protocol number, masked codice fiscale (first 3 and last 3), score, outcome.
    public = _whole_ranking(beta.client, programme)
    assert [(e["protocol"], e["score"], e["outcome"]) for e in public] == [
        (e["protocol"], e["score"], e["outcome"]) for e in scenario.ranking
    ]
    codes = {cf for f in scenario.families for cf in [g["codice_fiscale"] for g in f.household["guardians"]]} | {
        c["codice_fiscale"] for f in scenario.families for c in f.children
    }
    by_application = {a["id"]: a for f in scenario.families for a in f.applications}
    for entry in public:
        masked = entry["codice_fiscale_masked"]
        assert re.fullmatch(r"[A-Z0-9]{3}\*{10}[A-Z0-9]{3}", masked), masked
        cf = by_application[entry["application_id"]]["snapshot"]["guardians"][0]["codice_fiscale"]
        assert masked == cf[:3] + "*" * 10 + cf[-3:]
        assert entry["breakdown"] == []
    text = beta.client.get(f"/v1/programmes/{programme}/ranking", params={"limit": 200}).text
    assert not any(cf in text for cf in codes)

    csv_response = beta.client.get(f"/v1/programmes/{programme}/ranking.csv")
    assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig")), delimiter=";"))
    assert len(rows[0]) >= 4 and all(len(r) == len(rows[0]) for r in rows)
    assert len(rows) - 1 == len(public)
    assert {e["protocol"] for e in public} <= {cell for row in rows for cell in row}
    assert not any(cf in csv_response.text for cf in codes)
    pdf = manager.get(f"/v1/programmes/{programme}/ranking.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"


# --- 5. awards and the ledger -------------------------------------------------------------


def test_award_within_budget_and_the_ledger_reconciles(scenario: Scenario) -> None:
    manager, programme = scenario.manager, scenario.programme_id
    assert_problem(scenario.other_manager.post(f"/v1/programmes/{programme}/award"), 404)
    awarded = ok(manager.post(f"/v1/programmes/{programme}/award"))
    assert awarded["status"] == "awarded"
    total = sum(e["award_cents"] for e in scenario.ranking)
    assert awarded["awarded_cents"] == total <= FSE + ATS
    assert_problem(manager.post(f"/v1/programmes/{programme}/award"), 409)
    # Every transition is audited with who and when.
    history = awarded["history"]
    assert [h["status"] for h in history] == ["draft", "open", "closed", "ranked", "ranked", "published", "awarded"]
    assert all(h["by"] == history[0]["by"] and h["at"] for h in history)
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)

    vouchers: list[dict[str, Any]] = []
    while True:
        params: dict[str, str | int] = {"programme_id": programme, "limit": 200, "offset": len(vouchers)}
        page = ok(manager.get("/v1/vouchers", params=params))
        vouchers += page["items"]
        if len(vouchers) >= page["total"]:
            break
    winners = {e["application_id"]: e for e in scenario.ranking if e["outcome"] in ("awarded", "partial")}
    assert {v["application_id"] for v in vouchers} == set(winners)
    assert len({v["code"] for v in vouchers}) == len(vouchers)
    for voucher in vouchers:
        assert voucher["amount_cents"] == voucher["balance_cents"] == winners[voucher["application_id"]]["award_cents"]
        assert voucher["status"] == "active" and voucher["amount_cents"] <= CAP
        assert re.fullmatch(r"[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]{4}-[2-9A-HJKMNP-TV-Z]", voucher["code"])
    scenario.vouchers = {v["application_id"]: v for v in vouchers}

    ledger = ok(manager.get(f"/v1/programmes/{programme}/ledger"))
    assert ledger["reconciles"] is True
    assert ledger["budget_cents"] == FSE + ATS
    assert ledger["awarded_cents"] == total and ledger["redeemed_cents"] == 0
    assert ledger["budget_cents"] == ledger["awarded_cents"] + ledger["available_cents"]
    assert [(s["name"], s["budget_cents"]) for s in ledger["sources"]] == [
        ("FSE POR 2014-2020", FSE),
        ("ATS Val Padana", ATS),
    ]
    for source in ledger["sources"]:
        assert source["budget_cents"] == source["awarded_cents"] + source["available_cents"] - source["released_cents"]
        assert source["outstanding_cents"] == source["awarded_cents"] - source["redeemed_cents"]
    assert sum(s["awarded_cents"] for s in ledger["sources"]) == total
    assert sum(v["balance_cents"] for v in vouchers) == ledger["outstanding_cents"]

    xlsx = manager.get(f"/v1/programmes/{programme}/ledger.xlsx")
    assert xlsx.status_code == 200
    workbook = load_workbook(io.BytesIO(xlsx.content), read_only=True)
    cells = {str(c) for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True) for c in row}
    assert "FSE POR 2014-2020" in cells and "ATS Val Padana" in cells
    ledger_csv = manager.get(f"/v1/programmes/{programme}/ledger.csv")
    assert ledger_csv.status_code == 200
    rows = list(csv.reader(io.StringIO(ledger_csv.content.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) >= 2 and len(rows[0]) >= 3
    # The ledger is the staff's: families and other alliances do not read it.
    beta = scenario.families[2].client
    assert beta is not None
    assert beta.get(f"/v1/programmes/{programme}/ledger").status_code in (403, 404)
    assert_problem(scenario.other_manager.get(f"/v1/programmes/{programme}/ledger"), 404)


# --- 6. redemption at the provider's desk -------------------------------------------------


def test_provider_redeems_a_voucher_against_a_confirmed_enrolment(scenario: Scenario) -> None:
    provider, manager, programme = scenario.provider, scenario.manager, scenario.programme_id
    alfa, beta = scenario.families[1], scenario.families[2]
    assert alfa.client is not None and beta.client is not None
    voucher = scenario.vouchers[alfa.applications[0]["id"]]
    # The family sees its own vouchers only, and their QR code.
    mine = ok(alfa.client.get("/v1/vouchers", params={"limit": 200}))["items"]
    assert {v["id"] for v in mine} == {
        scenario.vouchers[a["id"]]["id"] for a in alfa.applications if a["id"] in scenario.vouchers
    }
    assert all(v["holder_subject"] == f"user:{alfa.username}" for v in mine)
    assert_problem(beta.client.get(f"/v1/vouchers/{voucher['id']}"), 404)
    qr = alfa.client.get(f"/v1/vouchers/{voucher['id']}/qr.svg")
    assert qr.status_code == 200 and b"<svg" in qr.content

    # At the desk: the code (as a person types it) shows amount, balance and validity.
    shown = ok(provider.get(f"/v1/vouchers/by-code/{voucher['code'].lower()}"))
    assert shown["id"] == voucher["id"] and shown["balance_cents"] == CAP and shown["valid_until"]
    assert_problem(scenario.other_provider.get(f"/v1/vouchers/by-code/{voucher['code']}"), 404)

    # The child is enrolled (confirmed) at the provider's service, through the gateway.
    enrolment = enrol_and_wait(
        alfa.client,
        {
            "child_id": alfa.child_ids[0],
            "offering_id": scenario.offering_id,
            "period": {"start": TODAY.isoformat(), "end": (TODAY + timedelta(days=30)).isoformat()},
            "attendance_mode": "full",
        },
    )
    assert enrolment["status"] == "confirmed"
    redeem = f"/v1/vouchers/{voucher['id']}/redemptions"
    invoice = f"FT-{YEAR}/{uuid.uuid4().hex[:6]}"
    first = ok(
        provider.post(redeem, json={"enrolment_id": enrolment["id"], "invoice_ref": invoice, "amount_cents": 12_000}),
        201,
    )
    assert first["status"] == "completed" and first["amount_cents"] == 12_000
    # The same invoice again counts once.
    again = provider.post(
        redeem, json={"enrolment_id": enrolment["id"], "invoice_ref": invoice, "amount_cents": 12_000}
    )
    assert again.status_code in (200, 201) and again.json()["id"] == first["id"]
    assert_problem(
        provider.post(redeem, json={"enrolment_id": enrolment["id"], "invoice_ref": invoice, "amount_cents": 5_000}),
        409,
    )
    assert ok(provider.get(f"/v1/vouchers/{voucher['id']}"))["balance_cents"] == 18_000

    # Beyond the balance: refused, and nothing half-stored (balance, ledger, redemptions).
    ledger_before = ok(manager.get(f"/v1/programmes/{programme}/ledger"))
    over = provider.post(
        redeem, json={"enrolment_id": enrolment["id"], "invoice_ref": f"{invoice}-bis", "amount_cents": 18_001}
    )
    assert over.status_code in (409, 422), over.text
    assert ok(provider.get(f"/v1/vouchers/{voucher['id']}"))["balance_cents"] == 18_000
    assert ok(manager.get(f"/v1/programmes/{programme}/ledger")) == ledger_before
    completed = [
        r for r in ok(provider.get(f"/v1/vouchers/{voucher['id']}/redemptions"))["items"] if r["status"] == "completed"
    ]
    assert [r["id"] for r in completed] == [first["id"]]

    # Not for an enrolment of another child, nor by the family, nor by another alliance's provider.
    other_child = {"enrolment_id": enrolment["id"], "invoice_ref": f"{invoice}-ter", "amount_cents": 1_000}
    sibling = next(scenario.vouchers[a["id"]] for a in beta.applications if a["id"] in scenario.vouchers)
    assert_problem(provider.post(f"/v1/vouchers/{sibling['id']}/redemptions", json=other_child), 409)
    assert alfa.client.post(redeem, json=other_child).status_code in (403, 404)
    assert_problem(scenario.other_provider.post(redeem, json=other_child), 404)

    # The rest of the balance: the voucher is exhausted; the ledger follows.
    rest = ok(
        provider.post(
            redeem, json={"enrolment_id": enrolment["id"], "invoice_ref": f"{invoice}-2", "amount_cents": 18_000}
        ),
        201,
    )
    assert ok(alfa.client.get(f"/v1/vouchers/{voucher['id']}"))["status"] == "exhausted"
    ledger = ok(manager.get(f"/v1/programmes/{programme}/ledger"))
    assert ledger["redeemed_cents"] == CAP and ledger["reconciles"] is True
    assert sum(s["redeemed_cents"] for s in ledger["sources"]) == CAP
    for source in ledger["sources"]:
        assert source["budget_cents"] == source["awarded_cents"] + source["available_cents"] - source["released_cents"]

    # Staff reverse a redemption with a reason: balance and ledger given back.
    reversed_ = ok(manager.post(f"/v1/redemptions/{rest['id']}/reverse", json={"reason": "Fattura emessa per errore"}))
    assert reversed_["status"] == "reversed"
    back = ok(provider.get(f"/v1/vouchers/{voucher['id']}"))
    assert back["balance_cents"] == 18_000 and back["status"] == "active"
    ledger = ok(manager.get(f"/v1/programmes/{programme}/ledger"))
    assert ledger["redeemed_cents"] == 12_000 and ledger["reconciles"] is True
    mine_redeemed = ok(provider.get("/v1/redemptions", params={"limit": 200}))["items"]
    assert {r["provider_partner_id"] for r in mine_redeemed} == {scenario.partners.coop}


# --- 7. tenancy ---------------------------------------------------------------------------


def test_other_tenants_and_families_see_nothing_of_it(scenario: Scenario) -> None:
    programme, other = scenario.programme_id, scenario.other_manager
    assert_problem(other.get(f"/v1/programmes/{programme}"), 404)
    assert_problem(other.get(f"/v1/programmes/{programme}/ranking"), 404)
    assert_problem(other.get(f"/v1/programmes/{programme}/applications"), 404)
    assert_problem(other.get(f"/v1/programmes/{programme}/ledger.csv"), 404)
    assert programme not in {p["id"] for p in ok(other.get("/v1/programmes", params={"limit": 200}))["items"]}
    assert ok(other.get("/v1/vouchers", params={"programme_id": programme}))["total"] == 0
    voucher = next(iter(scenario.vouchers.values()))
    assert_problem(other.get(f"/v1/vouchers/{voucher['id']}"), 404)
    # Each family: its own applications and vouchers, nobody else's.
    for family in scenario.families[:12]:
        assert family.client is not None
        own_apps = ok(family.client.get(f"/v1/programmes/{programme}/applications", params={"limit": 200}))
        assert {a["id"] for a in own_apps["items"]} == {a["id"] for a in family.applications}
        own_vouchers = ok(family.client.get("/v1/vouchers", params={"limit": 200}))["items"]
        expected = {scenario.vouchers[a["id"]]["id"] for a in family.applications if a["id"] in scenario.vouchers}
        assert {v["id"] for v in own_vouchers} == expected


# --- 8. a second, small bando: the budget runs out; the child's cap spans both -----------


def test_a_small_second_bando_spends_its_budget_exactly_and_the_child_cap_spans_both(scenario: Scenario) -> None:
    manager, provider = scenario.manager, scenario.provider
    fse, ats = 60_000, 40_000  # 1,000 €: three vouchers of 300 € and a last one of 100 €
    body = programme_body(
        scenario.alliance_id,
        scenario.project_id,
        title="Conciliare le responsabilità: secondo bando (risorse residue)",
        budget_cents=fse + ats,
        funding_sources=[
            {"name": "FSE POR 2014-2020", "amount_cents": fse},
            {"name": "ATS Val Padana", "amount_cents": ats},
        ],
        required_attachments=[],
        partial_last_award=True,
    )
    programme = ok(manager.post("/v1/programmes", json=body), 201)["id"]
    ok(manager.post(f"/v1/programmes/{programme}/open"))
    applicants = [
        f
        for f in scenario.families
        if f.index >= 4 and not f.expected[0] and f.applications[0]["id"] in scenario.vouchers
    ][:8]
    assert len(applicants) == 8
    by_application: dict[str, Family] = {}
    for family in applicants:
        assert family.client is not None
        application = {
            "household_id": family.household_id,
            "child_id": family.child_ids[0],
            "weekly_hours": family.weekly_hours,
            "no_double_funding": True,
        }
        created = ok(family.client.post(f"/v1/programmes/{programme}/applications", json=application), 201)
        assert not created["automatic_reasons"]
        by_application[created["id"]] = family
    ok(manager.post(f"/v1/programmes/{programme}/close"))
    assert ok(manager.post(f"/v1/programmes/{programme}/confirm-reviews"))["confirmed"] == 8
    ok(manager.post(f"/v1/programmes/{programme}/rank"))
    ok(manager.post(f"/v1/programmes/{programme}/publish"))
    ranking = _whole_ranking(manager, programme)
    assert [e["outcome"] for e in ranking] == ["awarded"] * 3 + ["partial"] + ["not_awarded"] * 4
    assert [e["award_cents"] for e in ranking] == [CAP] * 3 + [10_000] + [0] * 4
    ok(manager.post(f"/v1/programmes/{programme}/award"))
    ledger = ok(manager.get(f"/v1/programmes/{programme}/ledger"))
    assert ledger["awarded_cents"] == ledger["budget_cents"] == fse + ats and ledger["available_cents"] == 0
    assert [(s["awarded_cents"], s["available_cents"]) for s in ledger["sources"]] == [(fse, 0), (ats, 0)]
    assert ledger["reconciles"] is True
    second = ok(manager.get("/v1/vouchers", params={"programme_id": programme, "limit": 200}))["items"]
    assert sorted(v["amount_cents"] for v in second) == [10_000, CAP, CAP, CAP]

    # The top child holds a voucher of each bando: 300 € a year in all, whatever the balances say.
    top = by_application[ranking[0]["application_id"]]
    assert top.client is not None
    first_voucher = scenario.vouchers[top.applications[0]["id"]]
    second_voucher = next(v for v in second if v["application_id"] == ranking[0]["application_id"])
    enrolment = enrol_and_wait(
        top.client,
        {
            "child_id": top.child_ids[0],
            "offering_id": scenario.offering_id,
            "period": {"start": TODAY.isoformat(), "end": (TODAY + timedelta(days=20)).isoformat()},
            "attendance_mode": "full",
        },
    )
    assert enrolment["status"] == "confirmed"

    def redeem(voucher: dict[str, Any], invoice: str, amount: int) -> httpx.Response:
        body = {"enrolment_id": enrolment["id"], "invoice_ref": invoice, "amount_cents": amount}
        return provider.post(f"/v1/vouchers/{voucher['id']}/redemptions", json=body)

    ok(redeem(first_voucher, f"CAP-{uuid.uuid4().hex[:6]}", 20_000), 201)
    assert_problem(redeem(second_voucher, f"CAP-{uuid.uuid4().hex[:6]}", 15_000), 409)
    assert ok(top.client.get(f"/v1/vouchers/{second_voucher['id']}"))["balance_cents"] == CAP
    ok(redeem(second_voucher, f"CAP-{uuid.uuid4().hex[:6]}", 10_000), 201)
    assert_problem(redeem(second_voucher, f"CAP-{uuid.uuid4().hex[:6]}", 1), 409)
    balances = [ok(top.client.get(f"/v1/vouchers/{v['id']}"))["balance_cents"] for v in (first_voucher, second_voucher)]
    assert balances == [10_000, 20_000]
    for pid, spent in ((scenario.programme_id, None), (programme, 10_000)):
        current = ok(manager.get(f"/v1/programmes/{pid}/ledger"))
        assert current["reconciles"] is True
        if spent is not None:
            assert current["redeemed_cents"] == spent


# --- 9. many providers' requests at once --------------------------------------------------


def test_simultaneous_redemptions_never_overspend_a_voucher(scenario: Scenario) -> None:
    """80 requests at once (40 invoices of 10 €, each sent twice) against a 300 € voucher."""
    provider, manager, programme = scenario.provider, scenario.manager, scenario.programme_id
    beta = scenario.families[2]
    assert beta.client is not None
    voucher = scenario.vouchers[beta.applications[1]["id"]]
    enrolment = enrol_and_wait(
        beta.client,
        {
            "child_id": beta.child_ids[1],
            "offering_id": scenario.offering_id,
            "period": {"start": TODAY.isoformat(), "end": (TODAY + timedelta(days=20)).isoformat()},
            "attendance_mode": "full",
        },
    )
    assert enrolment["status"] == "confirmed"
    before = ok(manager.get(f"/v1/programmes/{programme}/ledger"))["redeemed_cents"]
    invoices = [f"RIC-{uuid.uuid4().hex[:8]}" for _ in range(40)]

    def redeem(invoice: str) -> tuple[int, dict[str, Any]]:
        body = {"enrolment_id": enrolment["id"], "invoice_ref": invoice, "amount_cents": 1_000}
        response = provider.post(f"/v1/vouchers/{voucher['id']}/redemptions", json=body)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(redeem, invoices + invoices))
    assert {status for status, _ in answers} <= {201, 409}, answers
    accepted = {body["invoice_ref"]: body["id"] for status, body in answers if status == 201}
    assert len(accepted) == 30  # 300 € in 10 € invoices: exactly thirty, each counted once
    after = ok(beta.client.get(f"/v1/vouchers/{voucher['id']}"))
    assert after["balance_cents"] == 0 and after["status"] == "exhausted"
    listed = ok(provider.get(f"/v1/vouchers/{voucher['id']}/redemptions", params={"limit": 200}))["items"]
    completed = [r for r in listed if r["status"] == "completed"]
    assert sorted(r["id"] for r in completed) == sorted(accepted.values())
    assert sum(r["amount_cents"] for r in completed) == CAP
    ledger = ok(manager.get(f"/v1/programmes/{programme}/ledger"))
    assert ledger["redeemed_cents"] == before + CAP and ledger["reconciles"] is True
