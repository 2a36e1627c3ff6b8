from datetime import UTC, datetime, timedelta

import pytest

from conciliare.contracts.vouchers import ProgrammeStatus
from conciliare.errors import Conflict, ValidationFailed
from services.vouchers.domain import programmes
from tests.unit.vouchers.builders import CLOSES, OPENS, seed002_spec

NOW = datetime(2027, 1, 10, tzinfo=UTC)


def fields(spec_errors: list[dict[str, str]]) -> set[str]:
    return {e["field"] for e in spec_errors}


def test_seed002_programme_is_well_formed() -> None:
    assert programmes.programme_errors(seed002_spec()) == []
    assert programmes.voucher_amount(seed002_spec()) == 30_000


def test_funding_sources_must_add_up_to_the_budget() -> None:
    spec = seed002_spec(budget_cents=14_500_000)
    errors = programmes.programme_errors(spec)
    assert any(
        e["field"] == "funding_sources" and "144.000,00 €" in e["message"] and "145.000,00 €" in e["message"]
        for e in errors
    )


def test_cap_cannot_exceed_budget() -> None:
    spec = seed002_spec(
        budget_cents=20_000, funding_sources=[{"name": "ATS", "amount_cents": 20_000}], cap_per_child_cents=30_000
    )
    assert "cap_per_child_cents" in fields(programmes.programme_errors(spec))


def test_voucher_amount_not_above_cap() -> None:
    assert "voucher_amount_cents" in fields(programmes.programme_errors(seed002_spec(voucher_amount_cents=40_000)))


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ([{"kind": "single_parent", "points": 0}], "maggiore di zero"),
        ([{"kind": "single_parent", "points": 5}, {"kind": "single_parent", "points": 3}], "ripetuto"),
        ([{"kind": "isee_bands", "bands": []}], "almeno una fascia"),
        (
            [
                {
                    "kind": "isee_bands",
                    "bands": [{"max_isee_cents": 200, "points": 3}, {"max_isee_cents": 100, "points": 1}],
                }
            ],
            "crescenti",
        ),
        ([{"kind": "minors", "points": 5}], "unit_max"),
        ([{"kind": "single_parent", "points": 5, "unit_max": 2}], "unit_max"),
        ([{"kind": "both_working", "points": 5, "bands": [{"max_isee_cents": 1, "points": 1}]}], "fasce"),
    ],
)
def test_weights_must_be_well_formed(criteria: list[dict[str, object]], message: str) -> None:
    errors = programmes.programme_errors(seed002_spec(criteria=criteria))
    assert any(e["field"].startswith("criteria") and message in e["message"] for e in errors), errors


def test_places_mode_needs_places_within_budget() -> None:
    assert "places" in fields(programmes.programme_errors(seed002_spec(ranking_mode="places")))
    assert "places" in fields(programmes.programme_errors(seed002_spec(ranking_mode="places", places=481)))
    assert programmes.programme_errors(seed002_spec(ranking_mode="places", places=480)) == []
    assert "places" in fields(programmes.programme_errors(seed002_spec(places=10)))


def test_window_dates_ages_and_tie_breaks() -> None:
    assert "closes_at" in fields(programmes.programme_errors(seed002_spec(closes_at=OPENS.isoformat())))
    assert "min_age_years" in fields(programmes.programme_errors(seed002_spec(min_age_years=10, max_age_years=6)))
    assert "tie_breaks" in fields(programmes.programme_errors(seed002_spec(tie_breaks=["lower_isee"])))
    assert "isee_kinds" in fields(programmes.programme_errors(seed002_spec(isee_kinds=["corrente"])))


def test_opening_validates_and_is_audited() -> None:
    opened = programmes.open_programme(seed002_spec(), ProgrammeStatus.DRAFT, "castellanza.staff", NOW)
    assert opened.status is ProgrammeStatus.OPEN
    assert opened.change.by == "castellanza.staff" and opened.change.at == NOW
    with pytest.raises(ValidationFailed):
        programmes.open_programme(seed002_spec(budget_cents=1), ProgrammeStatus.DRAFT, "x", NOW)


def test_status_machine_is_one_way_after_publication() -> None:
    path = [ProgrammeStatus.OPEN, ProgrammeStatus.CLOSED, ProgrammeStatus.RANKED, ProgrammeStatus.RANKED]
    current = ProgrammeStatus.DRAFT
    for target in path:
        current = programmes.transition(current, target, "staff", NOW).status
    current = programmes.transition(current, ProgrammeStatus.PUBLISHED, "staff", NOW).status
    for back in (ProgrammeStatus.RANKED, ProgrammeStatus.OPEN, ProgrammeStatus.DRAFT, ProgrammeStatus.PUBLISHED):
        with pytest.raises(Conflict, match="non può passare"):
            programmes.transition(current, back, "staff", NOW)
    assert programmes.transition(current, ProgrammeStatus.AWARDED, "staff", NOW).status is ProgrammeStatus.AWARDED
    with pytest.raises(programmes.InvalidTransition):
        programmes.transition(ProgrammeStatus.DRAFT, ProgrammeStatus.RANKED, "staff", NOW)


def test_submission_window_in_rome_time() -> None:
    spec = seed002_spec()
    assert programmes.submission_window_problem(spec, ProgrammeStatus.DRAFT, OPENS) is not None
    early = programmes.submission_window_problem(spec, ProgrammeStatus.OPEN, OPENS - timedelta(minutes=1))
    assert early == "Il bando apre il 01/02/2027 09:00."
    assert programmes.submission_window_problem(spec, ProgrammeStatus.OPEN, OPENS) is None
    late = programmes.submission_window_problem(spec, ProgrammeStatus.OPEN, CLOSES)
    assert late == "Il bando è chiuso dal 01/03/2027 12:00."


def test_euro_formatting() -> None:
    assert programmes.euro(18_957_400) == "189.574,00 €"
    assert programmes.euro(-5) == "-0,05 €"
