"""The graduatoria: scores with a per-criterion breakdown, deterministic tie-breaks,
and the award modes (funds, places, admission) with an optional partial last award.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conciliare.contracts.vouchers import (
    ApplicantSnapshot,
    Criterion,
    CriterionKind,
    CriterionScore,
    Outcome,
    RankingMode,
    TieBreak,
)

CRITERION_LABELS = {
    CriterionKind.ISEE_BANDS: "Fascia ISEE",
    CriterionKind.SINGLE_PARENT: "Nucleo monoparentale",
    CriterionKind.CHILD_DISABILITY: "Minore con disabilità",
    CriterionKind.MINORS: "Numero di figli minori",
    CriterionKind.BOTH_WORKING: "Entrambi i genitori lavorano",
    CriterionKind.WEEKLY_HOURS: "Ore settimanali di lavoro",
}

WORKING = frozenset({"employed_by_partner", "employed_elsewhere", "self_employed"})
NO_ISEE = 10**15  # an application without ISEE loses the "lower ISEE" tie-break


def criterion_points(criterion: Criterion, snapshot: ApplicantSnapshot, disability_priority: bool) -> int:
    kind = criterion.kind
    if kind is CriterionKind.ISEE_BANDS:
        if snapshot.isee_cents is None:
            return 0
        return next((b.points for b in criterion.bands if snapshot.isee_cents <= b.max_isee_cents), 0)
    if kind is CriterionKind.SINGLE_PARENT:
        return criterion.points if snapshot.single_parent else 0
    if kind is CriterionKind.CHILD_DISABILITY:
        return criterion.points if disability_priority else 0
    unit_max = criterion.unit_max or 1
    if kind is CriterionKind.MINORS:
        return criterion.points * min(snapshot.minors_count, unit_max) // unit_max
    if kind is CriterionKind.BOTH_WORKING:
        working = [g for g in snapshot.guardians if g.employment in WORKING]
        all_work = bool(snapshot.guardians) and len(working) == len(snapshot.guardians)
        # A single parent who works counts as "every guardian working".
        return criterion.points if all_work else 0
    hours = sum(g.weekly_hours for g in snapshot.guardians)
    return criterion.points * min(hours, unit_max) // unit_max


def score(
    criteria: Sequence[Criterion], snapshot: ApplicantSnapshot, disability_priority: bool
) -> list[CriterionScore]:
    """Points per criterion, in the programme's order (the total is their sum)."""
    return [
        CriterionScore(
            kind=c.kind, label=CRITERION_LABELS[c.kind], points=criterion_points(c, snapshot, disability_priority)
        )
        for c in criteria
    ]


@dataclass(frozen=True)
class Candidate:
    """An eligible application as the ranking sees it."""

    application_id: str
    protocol: str
    sequence: int
    submitted_at: datetime
    isee_cents: int | None
    score: int


@dataclass(frozen=True)
class Placed:
    position: int
    candidate: Candidate
    placed_by: TieBreak | None
    outcome: Outcome
    award_cents: int


_TIE_KEYS: dict[TieBreak, Callable[[Candidate], Any]] = {
    TieBreak.LOWER_ISEE: lambda c: NO_ISEE if c.isee_cents is None else c.isee_cents,
    TieBreak.EARLIER_SUBMISSION: lambda c: c.submitted_at,
    TieBreak.PROTOCOL_NUMBER: lambda c: c.sequence,
}


def _ordering(mode: RankingMode, tie_breaks: Sequence[TieBreak]) -> tuple[bool, list[TieBreak]]:
    """Whether the score counts, and the tie-breaks in order (admission: arrival only)."""
    if mode is RankingMode.ADMISSION:
        return False, [TieBreak.EARLIER_SUBMISSION, TieBreak.PROTOCOL_NUMBER]
    breaks = list(tie_breaks)
    if TieBreak.PROTOCOL_NUMBER not in breaks:
        breaks.append(TieBreak.PROTOCOL_NUMBER)  # a total order, always
    return True, breaks


def order(candidates: Sequence[Candidate], mode: RankingMode, tie_breaks: Sequence[TieBreak]) -> list[Candidate]:
    by_score, breaks = _ordering(mode, tie_breaks)

    def key(c: Candidate) -> tuple[Any, ...]:
        head: tuple[Any, ...] = (-c.score,) if by_score else ()
        return head + tuple(_TIE_KEYS[b](c) for b in breaks)

    return sorted(candidates, key=key)


def placed_by(
    previous: Candidate | None, current: Candidate, mode: RankingMode, tie_breaks: Sequence[TieBreak]
) -> TieBreak | None:
    """The tie-break that put ``current`` after ``previous`` (None: the score did)."""
    if previous is None:
        return None
    by_score, breaks = _ordering(mode, tie_breaks)
    if by_score and previous.score != current.score:
        return None
    for tie_break in breaks:
        if _TIE_KEYS[tie_break](previous) != _TIE_KEYS[tie_break](current):
            return tie_break
    return None


def allocate(
    count: int, mode: RankingMode, budget_cents: int, amount_cents: int, places: int | None, partial: bool
) -> list[tuple[Outcome, int]]:
    """Outcome and amount of each of ``count`` ranked applications, in ranking order.

    Awards go strictly down the ranking: once one does not fit, none below it is
    awarded (no skipping to a cheaper one), except the optional partial last award.
    """
    remaining = budget_cents
    limit = places if mode is RankingMode.PLACES and places is not None else count
    result: list[tuple[Outcome, int]] = []
    stopped = False
    for index in range(count):
        if stopped or index >= limit:
            result.append((Outcome.NOT_AWARDED, 0))
            continue
        if remaining >= amount_cents:
            remaining -= amount_cents
            result.append((Outcome.AWARDED, amount_cents))
        elif partial and remaining > 0:
            result.append((Outcome.PARTIAL, remaining))
            remaining = 0
            stopped = True
        else:
            result.append((Outcome.NOT_AWARDED, 0))
            stopped = True
    return result


def rank(
    candidates: Sequence[Candidate],
    mode: RankingMode,
    tie_breaks: Sequence[TieBreak],
    budget_cents: int,
    amount_cents: int,
    places: int | None,
    partial: bool,
) -> list[Placed]:
    """The whole graduatoria: order, the tie-break behind each place, outcome and award."""
    ordered = order(candidates, mode, tie_breaks)
    outcomes = allocate(len(ordered), mode, budget_cents, amount_cents, places, partial)
    placed: list[Placed] = []
    previous: Candidate | None = None
    for index, (candidate, (outcome, award)) in enumerate(zip(ordered, outcomes, strict=True)):
        placed.append(
            Placed(
                position=index + 1,
                candidate=candidate,
                placed_by=placed_by(previous, candidate, mode, tie_breaks),
                outcome=outcome,
                award_cents=award,
            )
        )
        previous = candidate
    return placed
