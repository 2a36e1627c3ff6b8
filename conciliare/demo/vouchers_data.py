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

``load_programmes`` creates and opens them through ``/v1/programmes`` (idempotent by
title), for a loader that has a staff token; it needs the vouchers routes
registered in the gateway and, for seed 002, an alliance with a project whose
actions include ``A`` (the Crema alliance is not among ``data.ALLIANCES`` yet).
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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
