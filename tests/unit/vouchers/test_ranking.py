from datetime import UTC, datetime, timedelta

import pytest

from conciliare.contracts.vouchers import Outcome, RankingMode, TieBreak
from services.vouchers.domain.ranking import Candidate, allocate, rank, score
from tests.unit.vouchers.builders import seed002_spec, snapshot

T0 = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
TIES = [TieBreak.LOWER_ISEE, TieBreak.EARLIER_SUBMISSION, TieBreak.PROTOCOL_NUMBER]


def cand(n: int, points: int, isee: int | None = 1_000_000, minutes: int | None = None) -> Candidate:
    return Candidate(
        application_id=f"a{n}",
        protocol=f"2027/{n:06d}",
        sequence=n,
        submitted_at=T0 + timedelta(minutes=n if minutes is None else minutes),
        isee_cents=isee,
        score=points,
    )


def test_score_breakdown_per_criterion() -> None:
    breakdown = score(seed002_spec().criteria, snapshot(), disability_priority=False)
    assert [(b.kind.value, b.points) for b in breakdown] == [
        ("isee_bands", 20),
        ("single_parent", 0),
        ("child_disability", 0),
        ("minors", 8),  # 12 * 2 // 3
        ("both_working", 10),
        ("weekly_hours", 7),  # 8 * 66 // 72
    ]
    assert breakdown[0].label == "Fascia ISEE"


def test_score_single_parent_disability_and_no_isee() -> None:
    single = snapshot(
        single_parent=True,
        isee_cents=None,
        isee_kind=None,
        isee_expires_on=None,
        minors_count=5,
        guardians=[
            {"codice_fiscale": "X", "employment": "self_employed", "employer_partner_id": None, "weekly_hours": 80}
        ],
    )
    points = {b.kind.value: b.points for b in score(seed002_spec().criteria, single, disability_priority=True)}
    assert points == {
        "isee_bands": 0,
        "single_parent": 15,
        "child_disability": 20,
        "minors": 12,
        "both_working": 10,
        "weekly_hours": 8,
    }


def test_tie_breaks_in_order_and_which_one_placed_each() -> None:
    candidates = [
        cand(4, 50, isee=900_000, minutes=1),  # same score and ISEE as 3, submitted earlier
        cand(3, 50, isee=900_000, minutes=2),
        cand(2, 50, isee=800_000),  # lower ISEE
        cand(1, 70),
        cand(6, 50, isee=900_000, minutes=2),  # same as 3 to the minute: protocol decides
    ]
    placed = rank(candidates, RankingMode.FUNDS, TIES, 10**9, 30_000, None, False)
    assert [p.candidate.application_id for p in placed] == ["a1", "a2", "a4", "a3", "a6"]
    assert [p.placed_by for p in placed] == [
        None,
        None,
        TieBreak.LOWER_ISEE,
        TieBreak.EARLIER_SUBMISSION,
        TieBreak.PROTOCOL_NUMBER,
    ]
    assert [p.position for p in placed] == [1, 2, 3, 4, 5]


def test_ranking_is_deterministic_whatever_the_input_order() -> None:
    candidates = [cand(n, points=n % 4, isee=(n * 7919) % 5 * 100_000) for n in range(1, 60)]
    first = rank(candidates, RankingMode.FUNDS, TIES, 300_000, 30_000, None, False)
    second = rank(list(reversed(candidates)), RankingMode.FUNDS, TIES, 300_000, 30_000, None, False)
    assert first == second


def test_missing_isee_loses_the_lower_isee_tie_break() -> None:
    placed = rank([cand(1, 10, isee=None), cand(2, 10, isee=3_000_000)], RankingMode.FUNDS, TIES, 0, 1, None, False)
    assert [p.candidate.application_id for p in placed] == ["a2", "a1"]


def test_funds_mode_stops_when_budget_is_spent() -> None:
    assert allocate(4, RankingMode.FUNDS, 70_000, 30_000, None, False) == [
        (Outcome.AWARDED, 30_000),
        (Outcome.AWARDED, 30_000),
        (Outcome.NOT_AWARDED, 0),
        (Outcome.NOT_AWARDED, 0),
    ]


def test_funds_mode_with_partial_last_award() -> None:
    assert allocate(4, RankingMode.FUNDS, 70_000, 30_000, None, True) == [
        (Outcome.AWARDED, 30_000),
        (Outcome.AWARDED, 30_000),
        (Outcome.PARTIAL, 10_000),
        (Outcome.NOT_AWARDED, 0),
    ]
    assert allocate(3, RankingMode.FUNDS, 60_000, 30_000, None, True)[2] == (Outcome.NOT_AWARDED, 0)


def test_places_mode_awards_a_fixed_number() -> None:
    result = allocate(5, RankingMode.PLACES, 10**9, 30_000, 3, False)
    assert [o for o, _ in result] == [Outcome.AWARDED] * 3 + [Outcome.NOT_AWARDED] * 2


def test_admission_mode_is_arrival_order_until_funds_run_out() -> None:
    candidates = [cand(1, 90, minutes=10), cand(2, 0, minutes=1), cand(3, 50, minutes=5)]
    placed = rank(candidates, RankingMode.ADMISSION, TIES, 60_000, 30_000, None, False)
    assert [p.candidate.application_id for p in placed] == ["a2", "a3", "a1"]
    assert [p.outcome for p in placed] == [Outcome.AWARDED, Outcome.AWARDED, Outcome.NOT_AWARDED]
    assert placed[1].placed_by is TieBreak.EARLIER_SUBMISSION


@pytest.mark.parametrize("budget", [0, 29_999, 30_000, 1_000_000])
def test_awards_never_exceed_budget(budget: int) -> None:
    for partial in (False, True):
        total = sum(amount for _, amount in allocate(50, RankingMode.FUNDS, budget, 30_000, None, partial))
        assert total <= budget
