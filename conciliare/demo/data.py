"""Demo data drawn from the source documents in ``shared/seeds``.

Names, roles, territories and budgets come from the seeds (seed 003: the Castellanza
alliance; seed 000: the Marnate "Work Life Balance" project; seed 002: ASST Crema's
"Conciliare le responsabilità" with ATS Val Padana). The seeds give no tax
codes, so each organisation gets a *fictitious* but well-formed one (valid check
digit), stable across runs so loading is idempotent.
"""

from dataclasses import dataclass, field

from stdnum import luhn


def demo_tax_code(serial: int) -> str:
    """Fictitious 11-digit codice fiscale with a valid check digit (office code 012, Varese)."""
    body = f"{serial:07d}012"
    return body + luhn.calc_check_digit(body)


@dataclass(frozen=True)
class DemoPartner:
    key: str
    name: str
    kind: str
    comune_istat: str
    serial: int
    family_friendly: bool = False

    @property
    def tax_code(self) -> str:
        return demo_tax_code(self.serial)


PARTNERS = [
    DemoPartner(
        "asc_medio_olona",
        "Azienda Speciale Consortile Medio Olona Servizi alla Persona",
        "azienda_speciale_consortile",
        "012042",
        9000001,
    ),
    DemoPartner("comune_marnate", "Comune di Marnate", "comune", "012098", 9000002, family_friendly=True),
    DemoPartner("comune_fagnano", "Comune di Fagnano Olona", "comune", "012067", 9000003),
    DemoPartner("comune_castellanza", "Comune di Castellanza", "comune", "012042", 9000004),
    DemoPartner("comune_olgiate", "Comune di Olgiate Olona", "comune", "012108", 9000005),
    DemoPartner("comune_solbiate", "Comune di Solbiate Olona", "comune", "012122", 9000006),
    DemoPartner("comune_gorla_maggiore", "Comune di Gorla Maggiore", "comune", "012078", 9000007),
    DemoPartner("comune_gorla_minore", "Comune di Gorla Minore", "comune", "012079", 9000008),
    DemoPartner(
        "coop_totem", "Società Cooperativa Sociale Totem Onlus", "cooperativa", "012042", 9000009, family_friendly=True
    ),
    DemoPartner(
        "consorzio_coop", "Consorzio Cooperative Sociali - Società Cooperativa Onlus", "cooperativa", "012026", 9000010
    ),
    DemoPartner("udp_somma", "Ufficio di Piano di Somma Lombardo", "ufficio_di_piano", "012123", 9000011),
    DemoPartner("udp_busto", "Ufficio di Piano di Busto Arsizio", "ufficio_di_piano", "012026", 9000012),
    DemoPartner("coop_il_seme", "Cooperativa Sociale Il Seme", "cooperativa", "012026", 9000013),
    DemoPartner(
        "coop_dire_fare_giocare",
        "Società Cooperativa Sociale Dire Fare Giocare Onlus",
        "cooperativa",
        "012042",
        9000014,
    ),
    # Seed 000 adds these to the Marnate partnership.
    DemoPartner("parrocchia_sant_ilario", "Parrocchia Sant'Ilario", "parrocchia", "012098", 9000015),
    DemoPartner(
        "coop_solidarieta_servizi", "Cooperativa Sociale Solidarietà e Servizi", "cooperativa", "012026", 9000016
    ),
    DemoPartner("coop_rembrandt", "Cooperativa Sociale Rembrandt", "cooperativa", "012098", 9000017),
    # Seed 002: the capofila and the agency that signed the agreement in its Cremona seat.
    DemoPartner("asst_crema", "ASST di Crema", "asst", "019035", 9000018),
    DemoPartner("ats_val_padana", "ATS della Val Padana", "ats", "019036", 9000019),
]
PARTNER_BY_KEY = {p.key: p for p in PARTNERS}

AMBITO_CASTELLANZA = ["012067", "012042", "012079", "012078", "012098", "012122", "012108"]
# Ambito di Crema (seed 002 names only the town): Crema and a few Comuni of the Cremasco.
AMBITO_CREMA = ["019035", "019005", "019012", "019054", "019055", "019062", "019072", "019081"]
AMBITO_SOMMA = ["012005", "012012", "012032", "012039", "012068", "012077", "012090", "012123", "012140"]


@dataclass(frozen=True)
class DemoAlliance:
    code: str
    name: str
    ambiti: list[tuple[str, list[str]]]
    capofila: str
    formalized: list[str]
    pending: list[str]
    project: dict[str, object] = field(default_factory=dict)


CASTELLANZA = DemoAlliance(
    code="CASTELLANZA",
    name="Alleanza locale di Castellanza",
    ambiti=[("Ambito di Castellanza", AMBITO_CASTELLANZA), ("Ambito di Somma Lombardo", AMBITO_SOMMA)],
    capofila="asc_medio_olona",
    formalized=[
        "comune_marnate",
        "comune_fagnano",
        "comune_castellanza",
        "comune_olgiate",
        "comune_solbiate",
        "comune_gorla_maggiore",
        "comune_gorla_minore",
        "coop_totem",
        "consorzio_coop",
        "udp_somma",
    ],
    pending=["udp_busto", "coop_il_seme", "coop_dire_fare_giocare"],
    project={
        "title": "La conciliazione... pronti, via sperimentiamo...",
        "period_start": "2017-01-01",
        "period_end": "2018-12-31",
        "total_cost_cents": 6_074_100,
        "requested_contribution_cents": 3_200_000,
        "cofinancing": {"cash_cents": 0, "valued_work_hours_cents": 2_874_100},
        "funding_sources": [{"name": "Regione Lombardia", "amount_cents": 3_200_000}],
        "actions": [
            {
                "code": "A",
                "title": "Attività di assistenza, servizi di mobilità/trasporto per l'accesso a servizi "
                "rivolti a soggetti fragili e figli minori",
            },
            {
                "code": "B",
                "title": "Voucher per micronido, centro prima infanzia, nido famiglia, baby-sitting, "
                "baby-parking, ludoteca e altri servizi per l'infanzia",
            },
            {"code": "C1", "title": "Adozione di modalità di lavoro flessibili (smart working e co-working)"},
            {"code": "D", "title": "Contratti territoriali e accordi di secondo livello"},
            {"code": "E1", "title": "Piani di congedo, piani di flessibilità aziendale e misure flessibili di lavoro"},
        ],
    },
)

MARNATE = DemoAlliance(
    code="MARNATE-WLB",
    name="Partenariato Work Life Balance - Marnate",
    ambiti=[("Ambito di Castellanza", AMBITO_CASTELLANZA)],
    capofila="comune_marnate",
    formalized=[
        "comune_castellanza",
        "parrocchia_sant_ilario",
        "asc_medio_olona",
        "coop_totem",
        "coop_solidarieta_servizi",
        "coop_rembrandt",
    ],
    pending=[],
    project={
        "title": "Work Life Balance: crescere insieme cooperando",
        "period_start": "2017-09-01",
        "period_end": "2018-08-31",
        "total_cost_cents": 9_000_000,
        "requested_contribution_cents": 7_000_000,
        "cofinancing": {"cash_cents": 0, "valued_work_hours_cents": 2_000_000},
        "funding_sources": [{"name": "Regione Lombardia - FSE POR 2014-2020", "amount_cents": 7_000_000}],
        "actions": [
            {
                "code": "A",
                "title": "Post scuola (anche specifici per DSA, ADHD e BES), supporto compiti, spazio "
                "pre-adolescenti, laboratori pomeridiani, attività nelle vacanze scolastiche",
            },
            {"code": "B", "title": "Percorsi per i genitori e centro estivo con educatori di sostegno"},
        ],
    },
)

CREMA = DemoAlliance(
    code="CREMA",
    name="Alleanza locale di conciliazione dell'ambito di Crema",
    ambiti=[("Ambito di Crema", AMBITO_CREMA)],
    capofila="asst_crema",
    formalized=["ats_val_padana"],
    pending=[],
    project={
        "title": "Conciliare le responsabilità",
        "period_start": "2017-01-01",
        "period_end": "2018-12-31",
        # 189,574 € = 100,000 € FSE (POR 2014-2020) + 44,000 € ATS + partners' valued work hours.
        "total_cost_cents": 18_957_400,
        "requested_contribution_cents": 14_400_000,
        "cofinancing": {"cash_cents": 0, "valued_work_hours_cents": 4_557_400},
        "funding_sources": [
            {"name": "FSE POR 2014-2020 (Regione Lombardia)", "amount_cents": 10_000_000},
            {"name": "ATS Val Padana", "amount_cents": 4_400_000},
        ],
        "actions": [
            {
                "code": "A",
                "title": "Voucher per i servizi socio-educativi ai figli (0-16 anni) dei dipendenti degli enti "
                "partner, a copertura totale dei costi",
            },
        ],
    },
)

ALLIANCES = [CASTELLANZA, MARNATE, CREMA]


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str
    display_name: str
    alliance_codes: list[str] = field(default_factory=list)
    partner_key: str | None = None


# Demo credentials only: `make run` prints them; never used outside a demo stack.
USERS = [
    DemoUser("regione.admin", "demo-admin-2026", "platform_admin", "Operatore regionale"),
    DemoUser(
        "castellanza.staff",
        "demo-castellanza-2026",
        "alliance_manager",
        "Staff alleanza di Castellanza",
        alliance_codes=["CASTELLANZA"],
    ),
    DemoUser(
        "marnate.staff",
        "demo-marnate-2026",
        "alliance_manager",
        "Staff partenariato di Marnate",
        alliance_codes=["MARNATE-WLB"],
    ),
    DemoUser(
        "totem.operatore", "demo-totem-2026", "partner_operator", "Operatore Coop. Totem", partner_key="coop_totem"
    ),
    DemoUser("famiglia.rossi", "demo-famiglia-2026", "family", "Famiglia Rossi"),
    DemoUser("crema.staff", "demo-crema-2026", "alliance_manager", "Staff alleanza di Crema", alliance_codes=["CREMA"]),
]

# Generated families who apply to the demo voucher bandi (conciliare/demo/vouchers_data.py).
APPLICANTS_PASSWORD = "demo-domande-2026"  # noqa: S105 - demo credential
APPLICANTS = [
    *(DemoUser(f"famiglia.crema{n:02d}", APPLICANTS_PASSWORD, "family", f"Famiglia Crema {n}") for n in range(1, 7)),
    *(
        DemoUser(f"famiglia.castellanza{n:02d}", APPLICANTS_PASSWORD, "family", f"Famiglia Castellanza {n}")
        for n in range(1, 7)
    ),
]


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    client_secret: str
    partner_key: str
    scopes: tuple[str, ...]
    name: str


INTEGRATOR_CLIENT = DemoClient(
    client_id="totem-gestionale",
    client_secret="demo-totem-client-secret-2026",  # noqa: S106 - demo credential, printed by make run
    partner_key="coop_totem",
    scopes=(
        "catalog:read",
        "catalog:write",
        "enrolments:read",
        "attendance:read",
        "attendance:write",
        "webhooks:read",
        "webhooks:write",
    ),
    name="Gestionale della Cooperativa Totem",
)
