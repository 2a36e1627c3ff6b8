"""Seed-based test data for the vouchers domain: the seed 002 bando and its applicants."""

from datetime import UTC, date, datetime
from typing import Any

from conciliare.contracts.vouchers import (
    ApplicantSnapshot,
    AttachmentKind,
    AttachmentRef,
    GuardianSnapshot,
    ProgrammeSpec,
)

OPENS = datetime(2027, 2, 1, 8, 0, tzinfo=UTC)
CLOSES = datetime(2027, 3, 1, 11, 0, tzinfo=UTC)


def seed002_spec(**changes: Any) -> ProgrammeSpec:
    """ASST Crema's "Conciliare le responsabilità": 100,000 FSE + 44,000 ATS for vouchers, 300 € per minor."""
    data: dict[str, Any] = {
        "project_id": "p-crema",
        "action_code": "A",
        "title": "Conciliare le responsabilità: voucher 2027",
        "year": 2027,
        "budget_cents": 14_400_000,
        "funding_sources": [
            {"name": "FSE POR 2014-2020", "amount_cents": 10_000_000},
            {"name": "ATS Val Padana", "amount_cents": 4_400_000},
        ],
        "eligible_service_types": ["baby_sitting", "centro_estivo", "post_scuola"],
        "who_may_apply": "employees",
        "isee_max_cents": 4_000_000,
        "opens_at": OPENS.isoformat(),
        "closes_at": CLOSES.isoformat(),
        "criteria": [
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
        ],
        "voucher_valid_until": "2027-12-31",
    }
    data.update(changes)
    return ProgrammeSpec.model_validate(data)


def snapshot(**changes: Any) -> ApplicantSnapshot:
    data: dict[str, Any] = {
        "residence_comune_istat": "019035",
        "single_parent": False,
        "isee_cents": 1_500_000,
        "isee_kind": "ordinario",
        "isee_expires_on": date(2027, 12, 31),
        "guardians": [
            GuardianSnapshot(
                codice_fiscale="RSSMRA80A01H501U",
                employment="employed_by_partner",
                employer_partner_id="asst-crema",
                weekly_hours=36,
            ),
            GuardianSnapshot(
                codice_fiscale="BNCLRA82B41H501Q",
                employment="employed_elsewhere",
                employer_partner_id=None,
                weekly_hours=30,
            ),
        ],
        "minors_count": 2,
        "child_codice_fiscale": "RSSGLI19P45H501X",
        "child_birth_date": date(2019, 9, 5),
    }
    data.update(changes)
    return ApplicantSnapshot.model_validate(data)


ISEE_ATTACHMENT = AttachmentRef(kind=AttachmentKind.ISEE_CERTIFICATE, object_key="k/isee.pdf", filename="isee.pdf")
DIAGNOSIS = AttachmentRef(kind=AttachmentKind.DIAGNOSIS, object_key="k/diagnosi.pdf", filename="diagnosi.pdf")
