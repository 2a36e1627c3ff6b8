"""Demo families, and synthetic ones for tests and the click-day benchmark.

The Rossi family lives in Marnate (ISTAT 012098, inside both demo alliances) and
has Giulia, seven at the 2027 Easter break and with DSA: the family of the issue's
"done means" scenario. Codici fiscali are computed, so they are well formed and
match the birth dates, but belong to nobody.

``load_families`` registers them through the gateway as the family user would,
idempotently (looked up first: running it twice creates nothing new).
"""

from datetime import date, timedelta
from typing import Any, Literal

import httpx
from codicefiscale import codicefiscale

MARNATE_ISTAT = "012098"
MARNATE_CADASTRAL = "E965"
BUSTO_ARSIZIO_CADASTRAL = "B300"
VARESE_CADASTRAL = "L682"


def codice_fiscale(last: str, first: str, sex: Literal["M", "F"], born: date, place: str) -> str:
    """A well-formed codice fiscale (valid check character, matching birth date)."""
    code: str = codicefiscale.encode(
        lastname=last, firstname=first, gender=sex, birthdate=born.strftime("%d/%m/%Y"), birthplace=place
    )
    return code


ROSSI_GUARDIANS = [
    {
        "first_name": "Laura",
        "last_name": "Rossi",
        "codice_fiscale": codice_fiscale("Rossi", "Laura", "F", date(1986, 7, 2), VARESE_CADASTRAL),
        "birth_date": "1986-07-02",
        "email": "laura.rossi@example.it",
        "phone": "+39 331 123 4567",
        "employment": "employed_elsewhere",
    },
    {
        "first_name": "Marco",
        "last_name": "Rossi",
        "codice_fiscale": codice_fiscale("Rossi", "Marco", "M", date(1984, 11, 23), BUSTO_ARSIZIO_CADASTRAL),
        "birth_date": "1984-11-23",
        "email": "marco.rossi@example.it",
        "employment": "self_employed",
    },
]

ROSSI_HOUSEHOLD: dict[str, Any] = {
    "guardians": ROSSI_GUARDIANS,
    "residence_comune_istat": MARNATE_ISTAT,
    "isee": {"value_cents": 1_850_000, "kind": "ordinario", "expires_on": "2026-12-31"},
    "single_parent": False,
}

GIULIA_BORN = date(2019, 9, 14)  # 7 anni e 6 mesi alla pausa di Pasqua 2027
GIULIA: dict[str, Any] = {
    "first_name": "Giulia",
    "last_name": "Rossi",
    "codice_fiscale": codice_fiscale("Rossi", "Giulia", "F", GIULIA_BORN, BUSTO_ARSIZIO_CADASTRAL),
    "birth_date": GIULIA_BORN.isoformat(),
    "needs": ["dsa"],
}


def _ok(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in (expected or (200,)):
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )
    return response.json()


def load_families(http_for_family: httpx.Client) -> None:
    """Register the Rossi household and Giulia, as user ``famiglia.rossi`` (idempotent).

    ``http_for_family`` carries that user's bearer token.
    """
    households = _ok(http_for_family.get("/v1/households"))["items"]
    if households:
        household_id = households[0]["id"]
    else:
        household_id = _ok(http_for_family.post("/v1/households", json=ROSSI_HOUSEHOLD), 201)["id"]
    children = _ok(http_for_family.get(f"/v1/households/{household_id}/children"))
    if not any(child["codice_fiscale"] == GIULIA["codice_fiscale"] for child in children):
        _ok(http_for_family.post(f"/v1/households/{household_id}/children", json=GIULIA), 201)
    print(f"    famiglia Rossi: nucleo {household_id}, Giulia (7 anni, DSA) registrata")


# --- synthetic families: many distinct, eligible children --------------------------------

_FIRST_NAMES = [
    "Alessandro", "Sofia", "Leonardo", "Giulia", "Francesco", "Aurora", "Lorenzo", "Alice",
    "Mattia", "Ginevra", "Andrea", "Emma", "Gabriele", "Giorgia", "Riccardo", "Greta",
    "Tommaso", "Beatrice", "Edoardo", "Anna",
]  # fmt: skip
_LAST_NAMES = [
    "Bianchi", "Colombo", "Ferrari", "Russo", "Romano", "Gallo", "Costa", "Fontana",
    "Conti", "Esposito", "Ricci", "Bruno", "Moretti", "Marino", "Greco", "Barbieri",
    "Lombardi", "Giordano", "Rinaldi", "Villa",
]  # fmt: skip


def synthetic_household(index: int, residence_istat: str = MARNATE_ISTAT) -> dict[str, Any]:
    """A one-guardian household resident in ``residence_istat`` (distinct per index)."""
    last = _LAST_NAMES[index % len(_LAST_NAMES)]
    first = _FIRST_NAMES[(index // len(_LAST_NAMES)) % len(_FIRST_NAMES)]
    born = date(1980, 1, 1) + timedelta(days=index)
    return {
        "guardians": [
            {
                "first_name": first,
                "last_name": last,
                "codice_fiscale": codice_fiscale(last, first, "F" if index % 2 else "M", born, VARESE_CADASTRAL),
                "employment": "employed_elsewhere",
            }
        ],
        "residence_comune_istat": residence_istat,
        "single_parent": True,
    }


def synthetic_child(index: int, born_around: date) -> dict[str, Any]:
    """A child distinct per ``index`` (up to 2,000 in one household), born near ``born_around``.

    Birth dates spread over at most a few days, so one age range fits them all.
    """
    pairs = len(_FIRST_NAMES) * len(_LAST_NAMES)
    last = _LAST_NAMES[index % len(_LAST_NAMES)]
    first = _FIRST_NAMES[(index // len(_LAST_NAMES)) % len(_FIRST_NAMES)]
    born = born_around + timedelta(days=index // pairs)
    sex: Literal["M", "F"] = "F" if (index // len(_LAST_NAMES)) % 2 else "M"
    return {
        "first_name": first,
        "last_name": last,
        "codice_fiscale": codice_fiscale(last, first, sex, born, MARNATE_CADASTRAL),
        "birth_date": born.isoformat(),
        "needs": [],
    }
