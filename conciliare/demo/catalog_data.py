"""Demo offerings from seeds 000 and 001, for the 2026/2027 school year.

Seed 000 (Marnate, "Work Life Balance: crescere insieme cooperando") lists three kinds
of post scuola (two specific for DSA, ADHD and BES), a homework group and afternoon
workshops for the primary school, a space for pre-teens, play-and-learn activities
in the school holidays, courses for parents and the summer camp with support
educators; the Comune di Castellanza runs "Estate in biblioteca" and a homework space
during school suspensions. Seed 001 asks for cover in the breaks of the school year:
Christmas, Easter and the first half of September.

Providers, titles and services come from the seeds; addresses, timetables, prices
and capacities are plausible demo values. Calendars assume the 2026/2027 school year
in Lombardy (Christmas 23/12/2026-6/1/2027, Easter 25-30/3/2027 with Easter on 28
March, school ending 8/6/2027): publishing needs opening days still ahead.

``load_offerings`` creates and publishes them through the gateway, idempotently.
"""

from dataclasses import dataclass
from typing import Any

import httpx

MARNATE_ISTAT = "012098"
CASTELLANZA_ISTAT = "012042"

# Term time stops for the holidays, as the school calendar does.
TERM_TIME = [
    {"kind": "term_time", "start": "2026-09-14", "end": "2026-12-22"},
    {"kind": "term_time", "start": "2027-01-07", "end": "2027-03-24"},
    {"kind": "term_time", "start": "2027-03-31", "end": "2027-06-08"},
]
TERM_CLOSURES = ["2026-12-08", "2027-04-26", "2027-06-02"]  # Immacolata, ponte 25 aprile, Festa della Repubblica
CHRISTMAS = {"kind": "christmas", "start": "2026-12-23", "end": "2027-01-06"}
CHRISTMAS_CLOSURES = ["2026-12-25", "2026-12-26", "2027-01-01", "2027-01-06"]
EASTER = {"kind": "easter", "start": "2027-03-25", "end": "2027-03-30"}
EASTER_CLOSURES = ["2027-03-28", "2027-03-29"]  # Pasqua e Lunedì dell'Angelo
EARLY_SEPTEMBER = {"kind": "early_september", "start": "2027-09-01", "end": "2027-09-10"}
SUMMER = {"kind": "summer", "start": "2027-06-14", "end": "2027-07-30"}

PRIMARIA = {"min_months": 72, "max_months": 143}  # 6-11 anni
SECONDARIA = {"min_months": 132, "max_months": 179}  # 11-14 anni


def weekdays(start: str, end: str, days: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[dict[str, Any]]:
    return [{"weekday": day, "start": start, "end": end} for day in days]


@dataclass(frozen=True)
class DemoOffering:
    alliance_code: str
    provider_key: str
    spec: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.spec["title"])


OFFERINGS = [
    # --- Marnate (seed 000) ---------------------------------------------------------
    DemoOffering(
        "MARNATE-WLB",
        "coop_rembrandt",
        {
            "type": "post_scuola",
            "title": "Post scuola alla primaria",
            "description": "Accoglienza dopo le lezioni per alunni e alunne della scuola primaria: merenda, "
            "gioco libero e tempo per i compiti, con educatori della cooperativa. Si può frequentare tutta "
            "la settimana o solo nei giorni scelti.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Scuola primaria di Marnate, Marnate (VA)",
            "age_range": PRIMARIA,
            "school_levels": ["primaria"],
            "calendar": {"periods": TERM_TIME, "closures": TERM_CLOSURES},
            "weekly_slots": weekdays("16:00", "18:00"),
            "capacity": 30,
            "price": {"amount_cents": 500, "unit": "day"},
            "attendance_modes": ["full", "chosen_days"],
        },
    ),
    DemoOffering(
        "MARNATE-WLB",
        "coop_totem",
        {
            "type": "post_scuola_dsa_adhd_bes",
            "title": "Post scuola DSA: metodo di studio",
            "description": "Post scuola per bambini e bambine con DSA (dislessia, disgrafia, discalculia) e BES: "
            "piccoli gruppi con educatori formati, strumenti compensativi e metodo di studio. Prosegue anche "
            "nei giorni feriali delle vacanze di Pasqua, per non interrompere il percorso.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Centro educativo della Cooperativa Totem, Marnate (VA)",
            "age_range": PRIMARIA,
            "school_levels": ["primaria"],
            "special_needs_supported": ["dsa", "bes"],
            "calendar": {
                "periods": [*TERM_TIME, EASTER],
                "closures": [*TERM_CLOSURES, *EASTER_CLOSURES],
            },
            "weekly_slots": weekdays("14:00", "18:00"),
            "capacity": 10,
            "price": {"amount_cents": 700, "unit": "hour"},
            "attendance_modes": ["chosen_days", "hour_package"],
        },
    ),
    DemoOffering(
        "MARNATE-WLB",
        "coop_solidarieta_servizi",
        {
            "type": "post_scuola_dsa_adhd_bes",
            "title": "Post scuola ADHD e BES",
            "description": "Post scuola per alunni e alunne con ADHD e altri bisogni educativi speciali: "
            "attività strutturate, routine prevedibili e un educatore ogni quattro bambini.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Scuola primaria di Marnate, Marnate (VA)",
            "age_range": PRIMARIA,
            "school_levels": ["primaria"],
            "special_needs_supported": ["adhd", "bes"],
            "calendar": {"periods": TERM_TIME, "closures": TERM_CLOSURES},
            "weekly_slots": weekdays("16:00", "18:00", (1, 3, 5)),
            "capacity": 8,
            "price": {"amount_cents": 700, "unit": "hour"},
            "attendance_modes": ["chosen_days", "hour_package"],
        },
    ),
    DemoOffering(
        "MARNATE-WLB",
        "parrocchia_sant_ilario",
        {
            "type": "spazio_compiti",
            "title": "Gruppo di supporto compiti",
            "description": "Due pomeriggi alla settimana in oratorio per fare i compiti insieme, seguiti da "
            "volontari ed educatori, per alunni e alunne della scuola primaria.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Oratorio della Parrocchia Sant'Ilario, Marnate (VA)",
            "age_range": PRIMARIA,
            "school_levels": ["primaria"],
            "calendar": {"periods": TERM_TIME, "closures": TERM_CLOSURES},
            "weekly_slots": weekdays("14:30", "16:30", (2, 4)),
            "capacity": 20,
            "price": {"amount_cents": 0, "unit": "flat"},
            "attendance_modes": ["full", "chosen_days"],
        },
    ),
    DemoOffering(
        "MARNATE-WLB",
        "coop_totem",
        {
            "type": "spazio_preadolescenti",
            "title": "Spazio pre adolescenti",
            "description": "Uno spazio pomeridiano per ragazzi e ragazze della scuola secondaria di primo grado: "
            "aiuto nei compiti, laboratori, sport e uscite, con educatori.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Centro giovani, Marnate (VA)",
            "age_range": SECONDARIA,
            "school_levels": ["secondaria_primo_grado"],
            "calendar": {"periods": TERM_TIME, "closures": TERM_CLOSURES},
            "weekly_slots": weekdays("15:00", "18:30", (1, 3, 5)),
            "capacity": 25,
            "price": {"amount_cents": 3000, "unit": "month"},
            "attendance_modes": ["full", "chosen_days"],
        },
    ),
    DemoOffering(
        "MARNATE-WLB",
        "coop_rembrandt",
        {
            "type": "laboratorio_pomeridiano",
            "title": "Laboratori pomeridiani creativi",
            "description": "Cicli di laboratori di arte, teatro e scienze per alunni e alunne della scuola "
            "primaria, il mercoledì pomeriggio.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Scuola primaria di Marnate, Marnate (VA)",
            "age_range": PRIMARIA,
            "school_levels": ["primaria"],
            "calendar": {"periods": TERM_TIME, "closures": TERM_CLOSURES},
            "weekly_slots": weekdays("16:30", "18:00", (3,)),
            "capacity": 15,
            "price": {"amount_cents": 6000, "unit": "flat"},
            "attendance_modes": ["full"],
        },
    ),
    DemoOffering(
        "MARNATE-WLB",
        "coop_totem",
        {
            "type": "attivita_vacanze_scolastiche",
            "title": "Vacanze insieme: Natale, Pasqua e inizio settembre",
            "description": "Attività ludico-educative nei periodi di sospensione delle lezioni: vacanze di "
            "Natale, di Pasqua e i primi giorni di settembre prima dell'apertura delle scuole. Giochi, "
            "laboratori, uscite e un angolo compiti; educatori con esperienza di DSA e BES.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Centro educativo della Cooperativa Totem, Marnate (VA)",
            "age_range": PRIMARIA,
            "school_levels": ["primaria"],
            "special_needs_supported": ["dsa", "bes"],
            "calendar": {
                "periods": [CHRISTMAS, EASTER, EARLY_SEPTEMBER],
                "closures": [*CHRISTMAS_CLOSURES, *EASTER_CLOSURES],
            },
            "weekly_slots": weekdays("08:00", "16:30"),
            "capacity": 25,
            "price": {"amount_cents": 2000, "unit": "day"},
            "attendance_modes": ["full", "chosen_days"],
        },
    ),
    DemoOffering(
        "MARNATE-WLB",
        "asc_medio_olona",
        {
            "type": "percorso_genitori",
            "title": "Percorso genitori: tempi di famiglia, tempi di lavoro",
            "description": "Incontri serali per i genitori che usano i servizi del progetto: orientarsi "
            "nell'offerta, sperimentare nuove forme di work life balance e costruire una rete di mutuo aiuto.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Sala consiliare del Comune di Marnate, Marnate (VA)",
            "age_range": {"min_months": 0, "max_months": 179},
            "calendar": {"periods": [{"kind": "term_time", "start": "2027-01-14", "end": "2027-05-27"}]},
            "weekly_slots": weekdays("20:30", "22:30", (4,)),
            "capacity": 20,
            "price": {"amount_cents": 0, "unit": "flat"},
            "attendance_modes": ["full"],
        },
    ),
    DemoOffering(
        "MARNATE-WLB",
        "coop_solidarieta_servizi",
        {
            "type": "centro_estivo",
            "title": "Centro estivo ricreativo con educatori di sostegno",
            "description": "Il centro estivo di Marnate, potenziato con educatori ed educatrici di sostegno per "
            "bambini e bambine con diagnosi funzionale che hanno bisogno di un aiuto più mirato.",
            "comune_istat": MARNATE_ISTAT,
            "address": "Centro sportivo comunale, Marnate (VA)",
            "age_range": {"min_months": 36, "max_months": 143},
            "school_levels": ["infanzia", "primaria"],
            "special_needs_supported": ["disabilita"],
            "calendar": {"periods": [SUMMER]},
            "weekly_slots": weekdays("07:30", "17:00"),
            "capacity": 80,
            "price": {"amount_cents": 9000, "unit": "week"},
            "attendance_modes": ["full"],
        },
    ),
    # --- Castellanza (seed 000: the Comune's own actions) ------------------------------
    DemoOffering(
        "CASTELLANZA",
        "comune_castellanza",
        {
            "type": "estate_in_biblioteca",
            "title": "Estate in biblioteca",
            "description": "Mattine d'estate in biblioteca: letture animate, laboratori e compiti delle vacanze "
            "per bambini e ragazzi.",
            "comune_istat": CASTELLANZA_ISTAT,
            "address": "Biblioteca civica, Castellanza (VA)",
            "age_range": {"min_months": 72, "max_months": 155},
            "school_levels": ["primaria", "secondaria_primo_grado"],
            "calendar": {"periods": [{"kind": "summer", "start": "2027-06-21", "end": "2027-07-23"}]},
            "weekly_slots": weekdays("09:30", "12:00", (2, 4)),
            "capacity": 25,
            "price": {"amount_cents": 0, "unit": "flat"},
            "attendance_modes": ["full", "chosen_days"],
        },
    ),
    DemoOffering(
        "CASTELLANZA",
        "comune_castellanza",
        {
            "type": "spazio_compiti",
            "title": "Spazio compiti durante le sospensioni scolastiche",
            "description": "Uno spazio per i compiti nelle mattine in cui le scuole sono chiuse: vacanze di "
            "Natale, di Pasqua e inizio settembre.",
            "comune_istat": CASTELLANZA_ISTAT,
            "address": "Biblioteca civica, Castellanza (VA)",
            "age_range": {"min_months": 72, "max_months": 179},
            "school_levels": ["primaria", "secondaria_primo_grado"],
            "calendar": {
                "periods": [CHRISTMAS, EASTER, EARLY_SEPTEMBER],
                "closures": [*CHRISTMAS_CLOSURES, *EASTER_CLOSURES],
            },
            "weekly_slots": weekdays("09:00", "12:30"),
            "capacity": 20,
            "price": {"amount_cents": 500, "unit": "day"},
            "attendance_modes": ["chosen_days"],
        },
    ),
]

ALL_STATUSES = ("draft", "published", "suspended", "archived")


def _ok(response: httpx.Response) -> Any:
    if response.is_error:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )
    return response.json()


def load_offerings(http: httpx.Client, partner_ids: dict[str, str], alliance_ids: dict[str, str]) -> None:
    """Create and publish the demo offerings through the gateway (as the platform admin).

    Idempotent: an offering of the same alliance, provider and title is reused; a
    draft left by an interrupted run is published; suspended and archived ones are
    left as someone decided.
    """
    created = published = 0
    for code in sorted({o.alliance_code for o in OFFERINGS}):
        alliance_id = alliance_ids[code]
        params = httpx.QueryParams({"alliance_id": alliance_id, "status": list(ALL_STATUSES), "limit": 200})
        existing = {
            (o["provider_partner_id"], o["spec"]["title"]): o
            for o in _ok(http.get("/v1/offerings", params=params))["items"]
        }
        for demo in (o for o in OFFERINGS if o.alliance_code == code):
            provider_id = partner_ids[demo.provider_key]
            offering = existing.get((provider_id, demo.title))
            if offering is None:
                body = {**demo.spec, "alliance_id": alliance_id, "provider_partner_id": provider_id}
                offering = _ok(http.post("/v1/offerings", json=body))
                created += 1
            if offering["status"] == "draft":
                _ok(http.post(f"/v1/offerings/{offering['id']}/publish"))
                published += 1
    print(f"    offerings: {len(OFFERINGS)} ({created} new, {published} published now)")
