"""Demo voucher programmes from the seeds, and their loading through the gateway.

- Seed 002, ASST Crema / ATS Val Padana, "Conciliare le responsabilità": vouchers of
  at most 300 € a year per minor aged 0-16 for employees of the partners, "on precise
  and objective criteria"; the cash part of its 189,574 € is 100,000 € FSE POR
  2014-2020 + 44,000 € ATS (the rest is partners' valued work hours, not spendable on
  vouchers), so the voucher budget is 144,000 €.
- Seed 003, Alleanza locale di Castellanza, "La conciliazione... pronti, via
  sperimentiamo...": action A (assistance and transport for fragile people and minors)
  and action B (micronido, centro prima infanzia, nido famiglia, baby-sitting,
  baby-parking, ludoteca), for employees of the partners *and* working residents of
  the two ambiti, never for a cost another public measure pays (Nidi Gratis). The
  seed gives only the total contribution (32,000 € from Regione Lombardia); the
  split between A (12,000 €) and B (20,000 €) here is the demo's own choice.

``load_vouchers`` runs them from bando to redemption through the gateway, as the
people involved would (``make run``, after the offerings and the Rossi family): each
alliance's staff create and open the bandi; a dozen generated families
(``data.APPLICANTS``) and the Rossi family apply, uploading an ISEE certificate;
staff close the bandi, confirm the automatic eligibility checks, rank, publish and
award; the Rossi family enrols Giulia in Coop. Totem's accompaniment service and
Totem's operator redeems part of her voucher with an invoice. Idempotent: bandi by
title, households by owner, children by codice fiscale, applications by child,
enrolments by child and offering, the redemption by invoice; a bando already past a
step skips it, so a second run creates nothing new.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx

from conciliare.demo import data
from conciliare.demo.families import GIULIA, MARNATE_ISTAT, codice_fiscale

Request = Callable[..., Any]

CAP_CENTS = 30_000

ISEE_BANDS = [
    {"max_isee_cents": 1_000_000, "points": 30},
    {"max_isee_cents": 2_000_000, "points": 20},
    {"max_isee_cents": 4_000_000, "points": 10},
]

# "Precise and objective criteria" (seed 002): the usual ones of municipal bandi.
CRITERIA: list[dict[str, Any]] = [
    {"kind": "isee_bands", "bands": ISEE_BANDS},
    {"kind": "single_parent", "points": 15},
    {"kind": "child_disability", "points": 20},
    {"kind": "minors", "points": 12, "unit_max": 3},
    {"kind": "both_working", "points": 10},
    {"kind": "weekly_hours", "points": 8, "unit_max": 72},
]


def _window(now: datetime) -> dict[str, str]:
    return {
        "opens_at": (now - timedelta(days=1)).isoformat(),
        "closes_at": (now + timedelta(days=60)).isoformat(),
        "voucher_valid_until": (now + timedelta(days=365)).date().isoformat(),
    }


def seed002_programme(alliance_id: str, project_id: str, now: datetime | None = None) -> dict[str, Any]:
    """ASST Crema's bando: employees of the partners, 300 € per minor, FSE + ATS."""
    moment = now or datetime.now(UTC)
    return {
        "alliance_id": alliance_id,
        "project_id": project_id,
        "action_code": "A",
        "title": "Conciliare le responsabilità: voucher per i figli dei dipendenti degli enti partner",
        "year": moment.year,
        "budget_cents": 14_400_000,
        "funding_sources": [
            {"name": "FSE POR 2014-2020 (Regione Lombardia)", "amount_cents": 10_000_000},
            {"name": "ATS Val Padana", "amount_cents": 4_400_000},
        ],
        "cap_per_child_cents": CAP_CENTS,
        "eligible_service_types": [
            "post_scuola",
            "post_scuola_dsa_adhd_bes",
            "spazio_compiti",
            "centro_estivo",
            "attivita_vacanze_scolastiche",
            "baby_sitting",
            "ludoteca",
            "trasporto_accompagnamento",
        ],
        "who_may_apply": "employees",
        "isee_max_cents": 4_000_000,
        "criteria": CRITERIA,
        "ranking_mode": "funds",
        **_window(moment),
    }


def castellanza_programmes(alliance_id: str, project_id: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """Seed 003's actions A and B as two bandi of the Castellanza alliance."""
    moment = now or datetime.now(UTC)
    common: dict[str, Any] = {
        "alliance_id": alliance_id,
        "project_id": project_id,
        "year": moment.year,
        "cap_per_child_cents": CAP_CENTS,
        "who_may_apply": "both",
        "isee_max_cents": 3_500_000,
        "criteria": CRITERIA,
        **_window(moment),
    }
    action_a = {
        **common,
        "action_code": "A",
        "title": "Azione A: voucher per assistenza e trasporto di soggetti fragili e figli minori",
        "budget_cents": 1_200_000,
        "funding_sources": [{"name": "Regione Lombardia", "amount_cents": 1_200_000}],
        "eligible_service_types": ["trasporto_accompagnamento", "post_scuola_dsa_adhd_bes"],
        # Assistance for fragile minors: everyone eligible in order of arrival while funds last.
        "ranking_mode": "admission",
        "voucher_amount_cents": 20_000,
    }
    action_b = {
        **common,
        "action_code": "B",
        "title": "Azione B: voucher per micronido, nido famiglia, baby-sitting, baby-parking e ludoteca",
        "budget_cents": 2_000_000,
        "funding_sources": [{"name": "Regione Lombardia", "amount_cents": 2_000_000}],
        "eligible_service_types": [
            "micronido",
            "centro_prima_infanzia",
            "nido_famiglia",
            "baby_sitting",
            "baby_parking",
            "ludoteca",
        ],
        "min_age_years": 0,
        "max_age_years": 6,
        "ranking_mode": "funds",
        "partial_last_award": True,
    }
    return [action_a, action_b]


def load_programmes(request: Request, payloads: list[dict[str, Any]]) -> list[str]:
    """Create and open each programme not there yet (by title); their ids.

    ``request(method, url, **kwargs)`` answers the decoded JSON body (``DemoLoader.request``).
    """
    ids = []
    for payload in payloads:
        found = request("GET", "/v1/programmes", params={"alliance_id": payload["alliance_id"], "limit": 200})
        existing = next((p for p in found["items"] if p["title"] == payload["title"]), None)
        if existing is None:
            existing = request("POST", "/v1/programmes", json=payload)
        if existing["status"] == "draft":
            existing = request("POST", f"/v1/programmes/{existing['id']}/open")
        ids.append(str(existing["id"]))
    return ids


# --- the families who apply -----------------------------------------------------------

CREMA_CADASTRAL = "D142"
VARESE_CADASTRAL = "L682"
CASTELLANZA_ISTAT = "012042"
ISEE_PDF = b"%PDF-1.4\n% Attestazione ISEE (documento dimostrativo)\n%%EOF\n"


@dataclass(frozen=True)
class DemoGuardian:
    first_name: str
    sex: Literal["M", "F"]
    born: date
    employer: str | None  # key of a partner in data.PARTNERS, None: works elsewhere
    weekly_hours: int


@dataclass(frozen=True)
class DemoChild:
    first_name: str
    sex: Literal["M", "F"]
    born: date
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoApplicant:
    username: str  # one of data.APPLICANTS
    alliance_code: str
    last_name: str
    residence_istat: str
    isee_cents: int
    guardians: tuple[DemoGuardian, ...]
    children: tuple[DemoChild, ...]

    @property
    def birthplace(self) -> str:
        return CREMA_CADASTRAL if self.alliance_code == "CREMA" else VARESE_CADASTRAL

    def child_cf(self, child: DemoChild) -> str:
        return codice_fiscale(self.last_name, child.first_name, child.sex, child.born, self.birthplace)

    def household(self, partner_ids: dict[str, str], today: date) -> dict[str, Any]:
        return {
            "guardians": [
                {
                    "first_name": g.first_name,
                    "last_name": self.last_name,
                    "codice_fiscale": codice_fiscale(self.last_name, g.first_name, g.sex, g.born, self.birthplace),
                    "birth_date": g.born.isoformat(),
                    "employment": "employed_by_partner" if g.employer else "employed_elsewhere",
                    "employer_partner_id": partner_ids[g.employer] if g.employer else None,
                }
                for g in self.guardians
            ],
            "residence_comune_istat": self.residence_istat,
            "isee": {"value_cents": self.isee_cents, "kind": "ordinario", "expires_on": f"{today.year + 1}-01-15"},
            "single_parent": len(self.guardians) == 1,
        }

    def child_body(self, child: DemoChild) -> dict[str, Any]:
        return {
            "first_name": child.first_name,
            "last_name": self.last_name,
            "codice_fiscale": self.child_cf(child),
            "birth_date": child.born.isoformat(),
            "needs": list(child.needs),
        }


def _g(first: str, sex: Literal["M", "F"], born: str, employer: str | None, hours: int) -> DemoGuardian:
    return DemoGuardian(first, sex, date.fromisoformat(born), employer, hours)


def _c(first: str, sex: Literal["M", "F"], born: str, *needs: str) -> DemoChild:
    return DemoChild(first, sex, date.fromisoformat(born), needs)


# Seed 002: employees of ASST Crema and ATS Val Padana, living in the Cremasco.
# Seed 003: employees of the Castellanza partners or working residents of the ambiti;
# the Rinaldi family's ISEE is over the bandi's ceiling (the automatic checks say so).
APPLICANT_FAMILIES = [
    DemoApplicant(
        "famiglia.crema01", "CREMA", "Bertoni", "019035", 1_250_000,
        (_g("Chiara", "F", "1985-03-12", "asst_crema", 36), _g("Paolo", "M", "1983-07-02", None, 40)),
        (_c("Pietro", "M", "2015-05-20"), _c("Nina", "F", "2019-02-11")),
    ),
    DemoApplicant(
        "famiglia.crema02", "CREMA", "Cattaneo", "019062", 820_000,
        (_g("Elena", "F", "1988-10-30", "asst_crema", 30),),
        (_c("Tommaso", "M", "2017-09-04", "dsa"), _c("Viola", "F", "2020-06-18"), _c("Ada", "F", "2023-01-09")),
    ),
    DemoApplicant(
        "famiglia.crema03", "CREMA", "Dossena", "019055", 2_630_000,
        (_g("Davide", "M", "1981-01-25", "ats_val_padana", 38), _g("Irene", "F", "1984-12-03", "asst_crema", 24)),
        (_c("Filippo", "M", "2012-11-15"), _c("Bianca", "F", "2016-04-27")),
    ),
    DemoApplicant(
        "famiglia.crema04", "CREMA", "Groppelli", "019005", 1_890_000,
        (_g("Silvia", "F", "1990-08-08", "ats_val_padana", 36), _g("Nicola", "M", "1989-05-14", None, 40)),
        (_c("Matteo", "M", "2018-03-03"), _c("Aurora", "F", "2021-07-21")),
    ),
    DemoApplicant(
        "famiglia.crema05", "CREMA", "Inzoli", "019081", 3_420_000,
        (_g("Marta", "F", "1979-02-19", "asst_crema", 36), _g("Stefano", "M", "1977-06-30", "asst_crema", 38)),
        (_c("Giacomo", "M", "2011-10-10"), _c("Samuele", "M", "2014-01-28"), _c("Lia", "F", "2019-12-05")),
    ),
    DemoApplicant(
        "famiglia.crema06", "CREMA", "Ogliari", "019035", 640_000,
        (_g("Fabio", "M", "1986-04-04", "ats_val_padana", 40),),
        (_c("Emma", "F", "2016-08-16", "disabilita"), _c("Leo", "M", "2020-10-01")),
    ),
    DemoApplicant(
        "famiglia.castellanza01", "CASTELLANZA", "Colombo", CASTELLANZA_ISTAT, 1_480_000,
        (_g("Sara", "F", "1987-05-09", "comune_castellanza", 36), _g("Luca", "M", "1985-11-21", None, 40)),
        (_c("Alice", "F", "2021-03-14"), _c("Marco", "M", "2017-06-06")),
    ),
    DemoApplicant(
        "famiglia.castellanza02", "CASTELLANZA", "Ferrari", "012067", 930_000,
        (_g("Giorgia", "F", "1992-01-17", None, 30),),
        (_c("Greta", "F", "2022-09-30"), _c("Edoardo", "M", "2019-04-12")),
    ),
    DemoApplicant(
        "famiglia.castellanza03", "CASTELLANZA", "Brambilla", "012108", 2_210_000,
        (_g("Andrea", "M", "1984-07-07", "coop_totem", 38), _g("Beatrice", "F", "1986-02-02", None, 24)),
        (_c("Gabriele", "M", "2023-05-05"), _c("Anna", "F", "2020-12-12")),
    ),
    DemoApplicant(
        "famiglia.castellanza04", "CASTELLANZA", "Villa", MARNATE_ISTAT, 1_120_000,
        (_g("Federica", "F", "1983-09-23", "consorzio_coop", 36), _g("Riccardo", "M", "1982-03-08", None, 40)),
        (_c("Sofia", "F", "2014-02-22", "disabilita"), _c("Lorenzo", "M", "2021-11-11")),
    ),
    DemoApplicant(
        "famiglia.castellanza05", "CASTELLANZA", "Moretti", "012122", 2_870_000,
        (_g("Valentina", "F", "1989-06-15", None, 32), _g("Simone", "M", "1987-10-19", None, 40)),
        (_c("Mattia", "M", "2022-02-14"), _c("Ginevra", "F", "2016-07-01")),
    ),
    DemoApplicant(
        "famiglia.castellanza06", "CASTELLANZA", "Rinaldi", "012079", 4_150_000,
        (_g("Claudia", "F", "1980-12-01", "comune_castellanza", 36), _g("Alberto", "M", "1978-04-26", None, 40)),
        (_c("Giovanni", "M", "2019-08-08"),),
    ),
]  # fmt: skip

# Coop. Totem's service for action A in the Castellanza alliance, where Giulia's voucher is spent.
TOTEM_ACCOMPANIMENT: dict[str, Any] = {
    "type": "trasporto_accompagnamento",
    "title": "Accompagnamento ai servizi pomeridiani",
    "description": "Un educatore accompagna a piedi o col pulmino della cooperativa bambine e bambini dalla "
    "scuola ai servizi pomeridiani (post scuola, spazio compiti, terapie), anche con DSA o disabilità.",
    "comune_istat": MARNATE_ISTAT,
    "address": "Piazza Sant'Ilario, Marnate (VA)",
    "age_range": {"min_months": 36, "max_months": 191},
    "special_needs_supported": ["dsa", "adhd", "bes", "disabilita"],
    "calendar": {"periods": [{"kind": "term_time", "start": "2026-09-14", "end": "2027-06-08"}]},
    "weekly_slots": [{"weekday": d, "start": "16:00", "end": "16:45"} for d in range(1, 6)],
    "capacity": 15,
    "price": {"amount_cents": 400, "unit": "day"},
    "attendance_modes": ["full", "chosen_days"],
}
ROSSI_INVOICE = "TOTEM-FT-2026/0042"
ROSSI_REDEMPTION_CENTS = 8_000


def _ok(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in (expected or (200,)):
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )
    return response.json()


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


@dataclass
class VoucherDemo:
    """What ``load_vouchers`` needs: a logged-in client per username, and the resolved ids."""

    login: Callable[[str], httpx.Client]
    partner_ids: dict[str, str]
    alliance_ids: dict[str, str]


def _project_id(staff: httpx.Client, alliance_id: str, title: str) -> str:
    projects = _ok(staff.get(f"/v1/alliances/{alliance_id}/projects"))["items"]
    return str(next(p["id"] for p in projects if p["title"] == title))


def _request(client: httpx.Client) -> Request:
    def request(method: str, url: str, **kwargs: Any) -> Any:
        return _ok(client.request(method, url, **kwargs), 200, 201)

    return request


def _apply(family: httpx.Client, programme: dict[str, Any], household_id: str, children: list[dict[str, Any]]) -> int:
    """The family applies for each of its children the bando is for, once; how many new applications."""
    if programme["status"] != "open":
        return 0
    today = datetime.now(ZoneInfo("Europe/Rome")).date()
    pid = programme["id"]
    applied = {
        a["child_id"] for a in _ok(family.get(f"/v1/programmes/{pid}/applications", params={"limit": 200}))["items"]
    }
    wanted = [
        c
        for c in children
        if c["id"] not in applied
        and programme["min_age_years"] <= _age(date.fromisoformat(c["birth_date"]), today) <= programme["max_age_years"]
    ]
    if not wanted:
        return 0
    files = {"file": ("attestazione-isee.pdf", ISEE_PDF, "application/pdf")}
    isee = _ok(family.post(f"/v1/programmes/{pid}/attachments", files=files, data={"kind": "isee_certificate"}), 201)
    household = _ok(family.get(f"/v1/households/{household_id}"))
    hours = [36] * len(household["guardians"])
    for child in wanted:
        body = {
            "household_id": household_id,
            "child_id": child["id"],
            "weekly_hours": hours,
            "no_double_funding": True,
            "attachments": [isee],
        }
        _ok(family.post(f"/v1/programmes/{pid}/applications", json=body), 201)
    return len(wanted)


def _applicant(family: httpx.Client, demo: DemoApplicant, partner_ids: dict[str, str]) -> tuple[str, list[Any]]:
    """The household and children of a generated family, registered once."""
    today = datetime.now(ZoneInfo("Europe/Rome")).date()
    households = _ok(family.get("/v1/households"))["items"]
    if households:
        household_id = str(households[0]["id"])
    else:
        household_id = str(_ok(family.post("/v1/households", json=demo.household(partner_ids, today)), 201)["id"])
    children = _ok(family.get(f"/v1/households/{household_id}/children"))
    known = {c["codice_fiscale"] for c in children}
    for child in demo.children:
        if demo.child_cf(child) not in known:
            children.append(
                _ok(family.post(f"/v1/households/{household_id}/children", json=demo.child_body(child)), 201)
            )
    return household_id, children


def _to_awarded(staff: httpx.Client, programme: dict[str, Any]) -> dict[str, Any]:
    """Close, confirm the automatic reviews, rank, publish, award: each step once."""
    pid = programme["id"]
    if programme["status"] == "open":
        programme = _ok(staff.post(f"/v1/programmes/{pid}/close", json={"note": "Chiusura per la demo"}))
    if programme["status"] in ("closed", "ranked"):
        _ok(staff.post(f"/v1/programmes/{pid}/confirm-reviews"))
    if programme["status"] == "closed":
        programme = _ok(staff.post(f"/v1/programmes/{pid}/rank"))
    if programme["status"] == "ranked":
        programme = _ok(staff.post(f"/v1/programmes/{pid}/publish"))
    if programme["status"] == "published":
        programme = _ok(staff.post(f"/v1/programmes/{pid}/award"))
    return programme


def _totem_offering(totem: httpx.Client, alliance_id: str, totem_id: str) -> str:
    params = httpx.QueryParams(
        {"alliance_id": alliance_id, "status": ["draft", "published", "suspended", "archived"], "limit": 200}
    )
    offerings = _ok(totem.get("/v1/offerings", params=params))["items"]
    offering = next(
        (
            o
            for o in offerings
            if o["provider_partner_id"] == totem_id and o["spec"]["title"] == TOTEM_ACCOMPANIMENT["title"]
        ),
        None,
    )
    if offering is None:
        body = {**TOTEM_ACCOMPANIMENT, "alliance_id": alliance_id, "provider_partner_id": totem_id}
        offering = _ok(totem.post("/v1/offerings", json=body), 201)
    if offering["status"] == "draft":
        _ok(totem.post(f"/v1/offerings/{offering['id']}/publish"))
    deadline = time.monotonic() + 30
    while totem.get(f"/v1/offerings/{offering['id']}/enrolments").status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the enrolment service never received Totem's offering")
        time.sleep(0.3)
    return str(offering["id"])


def _giulia_enrolment(rossi: httpx.Client, giulia_id: str, offering_id: str) -> str:
    """Giulia's confirmed enrolment at Totem's service (requested once, waited for)."""
    mine = _ok(rossi.get("/v1/enrolments", params={"limit": 200}))["items"]
    found = next(
        (
            e
            for e in mine
            if e["child_id"] == giulia_id and e["offering_id"] == offering_id and e["status"] != "cancelled"
        ),
        None,
    )
    if found is None:
        today = datetime.now(ZoneInfo("Europe/Rome")).date()
        start = max(today, date(2026, 9, 14))
        body = {
            "child_id": giulia_id,
            "offering_id": offering_id,
            "period": {"start": start.isoformat(), "end": (start + timedelta(days=27)).isoformat()},
            "attendance_mode": "full",
        }
        found = _ok(rossi.post("/v1/enrolments", json=body, headers={"Prefer": "wait=10"}), 201, 202)
    deadline = time.monotonic() + 30
    while found["status"] == "requested" and time.monotonic() < deadline:
        time.sleep(0.3)
        found = _ok(rossi.get(f"/v1/enrolments/{found['id']}"))
    if found["status"] != "confirmed":
        raise RuntimeError(f"Giulia's enrolment at Totem is {found['status']}, not confirmed")
    return str(found["id"])


def load_vouchers(demo: VoucherDemo) -> None:
    """The seed 002 and seed 003 (A, B) bandi from the call to a redemption (idempotent)."""
    now = datetime.now(UTC)
    castellanza_staff = demo.login("castellanza.staff")
    crema_staff = demo.login("crema.staff")
    crema_id, castellanza_id = demo.alliance_ids["CREMA"], demo.alliance_ids["CASTELLANZA"]
    crema_project = _project_id(crema_staff, crema_id, str(data.CREMA.project["title"]))
    castellanza_project = _project_id(castellanza_staff, castellanza_id, str(data.CASTELLANZA.project["title"]))
    [seed002] = load_programmes(_request(crema_staff), [seed002_programme(crema_id, crema_project, now)])
    action_a, action_b = load_programmes(
        _request(castellanza_staff), castellanza_programmes(castellanza_id, castellanza_project, now)
    )
    bandi = {"CREMA": [seed002], "CASTELLANZA": [action_a, action_b]}
    staff = {"CREMA": crema_staff, "CASTELLANZA": castellanza_staff}
    programmes = {pid: _ok(staff[code].get(f"/v1/programmes/{pid}")) for code, ids in bandi.items() for pid in ids}

    submitted = 0
    for applicant in APPLICANT_FAMILIES:
        family = demo.login(applicant.username)
        household_id, children = _applicant(family, applicant, demo.partner_ids)
        for pid in bandi[applicant.alliance_code]:
            submitted += _apply(family, programmes[pid], household_id, children)
    rossi = demo.login("famiglia.rossi")
    [rossi_household] = _ok(rossi.get("/v1/households"))["items"]
    rossi_children = _ok(rossi.get(f"/v1/households/{rossi_household['id']}/children"))
    giulia = [c for c in rossi_children if c["codice_fiscale"] == GIULIA["codice_fiscale"]]
    submitted += _apply(rossi, programmes[action_a], rossi_household["id"], giulia)

    for code, ids in bandi.items():
        for pid in ids:
            programmes[pid] = _to_awarded(staff[code], programmes[pid])

    # Giulia's voucher, spent in part at Coop. Totem's desk with an invoice.
    totem = demo.login("totem.operatore")
    offering_id = _totem_offering(totem, castellanza_id, demo.partner_ids["coop_totem"])
    giulia_id = str(giulia[0]["id"])
    voucher = next(
        v
        for v in _ok(rossi.get("/v1/vouchers", params={"programme_id": action_a, "limit": 200}))["items"]
        if v["child_id"] == giulia_id
    )
    enrolment_id = _giulia_enrolment(rossi, giulia_id, offering_id)
    shown = _ok(totem.get(f"/v1/vouchers/by-code/{voucher['code']}"))
    # Totem lists its own redemptions (a voucher's own list opens to a provider once presented to it).
    redemptions = _ok(totem.get("/v1/redemptions", params={"limit": 200}))["items"]
    redeemed_now = not any(
        r["invoice_ref"] == ROSSI_INVOICE and r["voucher_id"] == voucher["id"] and r["status"] == "completed"
        for r in redemptions
    )
    if redeemed_now:
        body = {"enrolment_id": enrolment_id, "invoice_ref": ROSSI_INVOICE, "amount_cents": ROSSI_REDEMPTION_CENTS}
        _ok(totem.post(f"/v1/vouchers/{voucher['id']}/redemptions", json=body), 201)
    balance = _ok(rossi.get(f"/v1/vouchers/{voucher['id']}"))["balance_cents"]
    print(
        f"    domande nuove: {submitted}; voucher di Giulia Rossi {shown['code']}: "
        f"{'usato ora' if redeemed_now else 'già usato'} da Coop. Totem (fattura {ROSSI_INVOICE}), "
        f"saldo {balance / 100:.2f} €"
    )
    for code, ids in bandi.items():
        for pid in ids:
            programme = programmes[pid]
            applications = _ok(staff[code].get(f"/v1/programmes/{pid}/applications", params={"limit": 1}))["total"]
            vouchers = _ok(staff[code].get("/v1/vouchers", params={"programme_id": pid, "limit": 1}))["total"]
            ledger = _ok(staff[code].get(f"/v1/programmes/{pid}/ledger"))
            print(
                f"    bando «{programme['title'][:60]}»: {programme['status']}, {applications} domande, "
                f"{vouchers} voucher, assegnati {ledger['awarded_cents'] / 100:.2f} € "
                f"di {ledger['budget_cents'] / 100:.2f} €, spesi {ledger['redeemed_cents'] / 100:.2f} €"
            )
