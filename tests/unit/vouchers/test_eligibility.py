from datetime import date

import pytest

from conciliare.contracts.vouchers import ApplicationStatus, Reason
from conciliare.errors import Conflict, ValidationFailed
from services.vouchers.domain.eligibility import (
    Declarations,
    Territory,
    age_in_years,
    automatic_checks,
    mask_codice_fiscale,
    review,
)
from tests.unit.vouchers.builders import DIAGNOSIS, ISEE_ATTACHMENT, seed002_spec, snapshot

TERRITORY = Territory(comuni_istat=frozenset({"019035", "019036"}), partner_ids=frozenset({"asst-crema", "ats"}))
ON = date(2027, 2, 15)


def declarations(**changes: object) -> Declarations:
    data: dict[str, object] = {
        "claims_disability_priority": False,
        "child_has_disability": False,
        "no_double_funding": True,
        "attachments": [ISEE_ATTACHMENT],
    }
    data.update(changes)
    return Declarations(**data)  # type: ignore[arg-type]


def codes(reasons: list[Reason]) -> list[str]:
    return [r.code for r in reasons]


def test_eligible_employee_of_a_partner() -> None:
    assert automatic_checks(seed002_spec(), snapshot(), declarations(), TERRITORY, ON) == []


def test_age_0_16_by_default() -> None:
    assert age_in_years(date(2010, 2, 16), ON) == 16
    assert (
        automatic_checks(seed002_spec(), snapshot(child_birth_date=date(2010, 2, 16)), declarations(), TERRITORY, ON)
        == []
    )
    reasons = automatic_checks(
        seed002_spec(), snapshot(child_birth_date=date(2010, 2, 15)), declarations(), TERRITORY, ON
    )
    assert codes(reasons) == ["age"]
    assert reasons[0].message == "Il minore ha 17 anni: il bando è per età tra 0 e 16 anni."


def test_who_may_apply() -> None:
    not_partner = snapshot(
        guardians=[
            {"codice_fiscale": "X", "employment": "employed_elsewhere", "employer_partner_id": None, "weekly_hours": 40}
        ]
    )
    assert codes(automatic_checks(seed002_spec(), not_partner, declarations(), TERRITORY, ON)) == ["employment"]
    residents = seed002_spec(who_may_apply="residents")
    assert automatic_checks(residents, not_partner, declarations(), TERRITORY, ON) == []
    elsewhere = snapshot(residence_comune_istat="015146")
    assert codes(automatic_checks(residents, elsewhere, declarations(), TERRITORY, ON)) == ["residence"]
    both = seed002_spec(who_may_apply="both")
    assert automatic_checks(both, elsewhere, declarations(), TERRITORY, ON) == []
    nobody = not_partner.model_copy(update={"residence_comune_istat": "015146"})
    assert codes(automatic_checks(both, nobody, declarations(), TERRITORY, ON)) == ["residence_or_employment"]


def test_isee_ceiling_kind_and_expiry() -> None:
    spec = seed002_spec()
    rich = snapshot(isee_cents=4_000_001)
    reasons = automatic_checks(spec, rich, declarations(), TERRITORY, ON)
    assert codes(reasons) == ["isee_ceiling"] and "40.000,01 €" in reasons[0].message
    expired = snapshot(isee_expires_on=date(2027, 2, 14))
    assert codes(automatic_checks(spec, expired, declarations(), TERRITORY, ON)) == ["isee_expired"]
    only_minors = seed002_spec(isee_kinds=["minorenni"])
    assert codes(automatic_checks(only_minors, snapshot(), declarations(), TERRITORY, ON)) == ["isee_kind"]
    missing = snapshot(isee_cents=None, isee_kind=None, isee_expires_on=None)
    assert codes(automatic_checks(spec, missing, declarations(), TERRITORY, ON)) == ["isee_missing"]


def test_double_funding_declaration_and_attachments() -> None:
    reasons = automatic_checks(
        seed002_spec(), snapshot(), declarations(no_double_funding=False, attachments=[]), TERRITORY, ON
    )
    assert codes(reasons) == ["double_funding", "attachment_isee_certificate"]
    assert "Nidi Gratis" in reasons[0].message


def test_disability_priority_needs_the_need_and_the_diagnosis() -> None:
    claim = declarations(claims_disability_priority=True, child_has_disability=True)
    assert codes(automatic_checks(seed002_spec(), snapshot(), claim, TERRITORY, ON)) == ["attachment_diagnosis"]
    with_diagnosis = declarations(
        claims_disability_priority=True, child_has_disability=True, attachments=[ISEE_ATTACHMENT, DIAGNOSIS]
    )
    assert automatic_checks(seed002_spec(), snapshot(), with_diagnosis, TERRITORY, ON) == []
    unfounded = declarations(claims_disability_priority=True, attachments=[ISEE_ATTACHMENT, DIAGNOSIS])
    assert codes(automatic_checks(seed002_spec(), snapshot(), unfounded, TERRITORY, ON)) == ["disability"]


def test_review_confirms_or_overrides_with_a_note() -> None:
    reasons = [Reason(code="isee_expired", message="L'ISEE è scaduto")]
    assert review(ApplicationStatus.SUBMITTED, [], True, None) is ApplicationStatus.ELIGIBLE
    assert review(ApplicationStatus.SUBMITTED, reasons, False, None) is ApplicationStatus.INELIGIBLE
    with pytest.raises(ValidationFailed, match="motivazione"):
        review(ApplicationStatus.SUBMITTED, reasons, True, "  ")
    assert (
        review(ApplicationStatus.SUBMITTED, reasons, True, "ISEE rinnovato, verificato") is ApplicationStatus.ELIGIBLE
    )
    with pytest.raises(ValidationFailed):
        review(ApplicationStatus.ELIGIBLE, [], False, None)
    with pytest.raises(Conflict):
        review(ApplicationStatus.WITHDRAWN, [], True, None)


def test_masked_codice_fiscale_keeps_first_and_last_three() -> None:
    assert mask_codice_fiscale("rssmra80a01h501u") == "RSS**********01U"
    assert mask_codice_fiscale("ABC") == "***"
