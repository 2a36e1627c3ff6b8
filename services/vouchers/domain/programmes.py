"""The bando: rules checked when a programme opens, its status machine, its window."""

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Protocol
from zoneinfo import ZoneInfo

from conciliare.contracts.vouchers import (
    CriterionKind,
    ProgrammeSpec,
    ProgrammeStatus,
    RankingMode,
    StatusChange,
    TieBreak,
)
from conciliare.errors import Conflict, FieldError, ValidationFailed

ROME = ZoneInfo("Europe/Rome")
ISEE_KINDS = frozenset({"ordinario", "minorenni"})


def euro(cents: int) -> str:
    """Italian formatting of an amount: 18957400 -> '189.574,00 €'."""
    sign = "-" if cents < 0 else ""
    whole, fraction = divmod(abs(cents), 100)
    return sign + f"{whole:,}".replace(",", ".") + f",{fraction:02d} €"


def in_rome(moment: datetime) -> str:
    """A date-time as people in Lombardy read it: '01/03/2027 09:00'."""
    return moment.astimezone(ROME).strftime("%d/%m/%Y %H:%M")


def protocol_number(year: int, sequence: int) -> str:
    """The protocol number of the ``sequence``-th application of a bando: '2027/000123'."""
    return f"{year}/{sequence:06d}"


def voucher_amount(spec: ProgrammeSpec) -> int:
    """What each award is worth: the programme's voucher amount, or the child cap."""
    return spec.voucher_amount_cents if spec.voucher_amount_cents is not None else spec.cap_per_child_cents


class InvalidTransition(Conflict):
    """A programme status change the status machine does not allow."""


# --- rules checked at opening ---------------------------------------------------


def _criteria_errors(spec: ProgrammeSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    kinds = [c.kind for c in spec.criteria]
    for kind in sorted({k for k in kinds if kinds.count(k) > 1}):
        errors.append({"field": "criteria", "message": f"criterio ripetuto: {kind.value}"})
    for index, criterion in enumerate(spec.criteria):
        field = f"criteria.{index}"
        if criterion.kind is CriterionKind.ISEE_BANDS:
            if not criterion.bands:
                errors.append({"field": field, "message": "le fasce ISEE servono almeno una fascia"})
            limits = [band.max_isee_cents for band in criterion.bands]
            if any(b <= a for a, b in pairwise(limits)):
                errors.append({"field": field, "message": "le fasce ISEE devono avere limiti crescenti"})
            if criterion.bands and all(band.points == 0 for band in criterion.bands):
                errors.append({"field": field, "message": "almeno una fascia ISEE deve dare punti"})
        else:
            if criterion.bands:
                errors.append({"field": field, "message": "le fasce valgono solo per il criterio isee_bands"})
            if criterion.points <= 0:
                errors.append({"field": field, "message": "il peso del criterio deve essere maggiore di zero"})
        needs_unit = criterion.kind in (CriterionKind.MINORS, CriterionKind.WEEKLY_HOURS)
        if needs_unit and criterion.unit_max is None:
            errors.append({"field": field, "message": "serve unit_max (figli o ore per il punteggio pieno)"})
        if not needs_unit and criterion.unit_max is not None:
            errors.append({"field": field, "message": "unit_max vale solo per i criteri minors e weekly_hours"})
    return errors


def programme_errors(spec: ProgrammeSpec) -> list[FieldError]:
    """Every way a programme's rules are not well formed (empty list: they are)."""
    errors: list[FieldError] = []
    funded = sum(source.amount_cents for source in spec.funding_sources)
    if funded != spec.budget_cents:
        errors.append(
            {
                "field": "funding_sources",
                "message": f"le fonti sommano {euro(funded)} ma il budget è {euro(spec.budget_cents)}",
            }
        )
    names = [source.name.casefold() for source in spec.funding_sources]
    if len(set(names)) != len(names):
        errors.append({"field": "funding_sources", "message": "fonte di finanziamento ripetuta"})
    if spec.cap_per_child_cents <= 0:
        errors.append({"field": "cap_per_child_cents", "message": "il tetto per minore deve essere maggiore di zero"})
    if spec.cap_per_child_cents > spec.budget_cents:
        errors.append(
            {
                "field": "cap_per_child_cents",
                "message": (
                    f"il tetto per minore ({euro(spec.cap_per_child_cents)}) "
                    f"supera il budget ({euro(spec.budget_cents)})"
                ),
            }
        )
    amount = voucher_amount(spec)
    if amount <= 0 or amount > spec.cap_per_child_cents:
        errors.append(
            {
                "field": "voucher_amount_cents",
                "message": (
                    "l'importo del voucher deve essere tra 0,01 € e il tetto per minore "
                    f"({euro(spec.cap_per_child_cents)})"
                ),
            }
        )
    if spec.min_age_years > spec.max_age_years:
        errors.append({"field": "min_age_years", "message": "l'età minima supera l'età massima"})
    if spec.opens_at.tzinfo is None or spec.closes_at.tzinfo is None:
        errors.append({"field": "opens_at", "message": "apertura e chiusura devono indicare il fuso orario"})
    elif spec.closes_at <= spec.opens_at:
        errors.append({"field": "closes_at", "message": "la chiusura deve seguire l'apertura"})
    if spec.voucher_valid_until < spec.closes_at.date():
        errors.append(
            {"field": "voucher_valid_until", "message": "i voucher scadrebbero prima della chiusura del bando"}
        )
    if spec.ranking_mode is RankingMode.PLACES:
        if spec.places is None:
            errors.append({"field": "places", "message": "la graduatoria per posti richiede il numero di posti"})
        elif spec.places * amount > spec.budget_cents:
            errors.append(
                {
                    "field": "places",
                    "message": (
                        f"{spec.places} voucher da {euro(amount)} superano il budget ({euro(spec.budget_cents)})"
                    ),
                }
            )
    elif spec.places is not None:
        errors.append({"field": "places", "message": "il numero di posti vale solo per la graduatoria per posti"})
    unknown = sorted(set(spec.isee_kinds) - ISEE_KINDS)
    if unknown or not spec.isee_kinds:
        errors.append({"field": "isee_kinds", "message": "tipi di ISEE ammessi: ordinario, minorenni"})
    if len(set(spec.eligible_service_types)) != len(spec.eligible_service_types):
        errors.append({"field": "eligible_service_types", "message": "tipo di servizio ripetuto"})
    if len(set(spec.tie_breaks)) != len(spec.tie_breaks):
        errors.append({"field": "tie_breaks", "message": "criterio di spareggio ripetuto"})
    if TieBreak.PROTOCOL_NUMBER not in spec.tie_breaks:
        errors.append(
            {
                "field": "tie_breaks",
                "message": "il numero di protocollo deve essere tra gli spareggi: rende l'ordine totale",
            }
        )
    return errors + _criteria_errors(spec)


def ensure_valid_programme(spec: ProgrammeSpec) -> None:
    errors = programme_errors(spec)
    if errors:
        raise ValidationFailed("Le regole del bando non sono coerenti.", errors)


# --- status machine -------------------------------------------------------------

TRANSITIONS: dict[ProgrammeStatus, frozenset[ProgrammeStatus]] = {
    ProgrammeStatus.DRAFT: frozenset({ProgrammeStatus.OPEN}),
    ProgrammeStatus.OPEN: frozenset({ProgrammeStatus.CLOSED}),
    ProgrammeStatus.CLOSED: frozenset({ProgrammeStatus.RANKED}),
    # A draft ranking can be recomputed; publishing it is final.
    ProgrammeStatus.RANKED: frozenset({ProgrammeStatus.RANKED, ProgrammeStatus.PUBLISHED}),
    ProgrammeStatus.PUBLISHED: frozenset({ProgrammeStatus.AWARDED}),
    ProgrammeStatus.AWARDED: frozenset(),
}

STATUS_LABELS: dict[ProgrammeStatus, str] = {
    ProgrammeStatus.DRAFT: "bozza",
    ProgrammeStatus.OPEN: "aperto",
    ProgrammeStatus.CLOSED: "chiuso",
    ProgrammeStatus.RANKED: "graduatoria provvisoria",
    ProgrammeStatus.PUBLISHED: "graduatoria definitiva pubblicata",
    ProgrammeStatus.AWARDED: "voucher assegnati",
}


@dataclass(frozen=True)
class Transition:
    status: ProgrammeStatus
    change: StatusChange


def transition(
    current: ProgrammeStatus, target: ProgrammeStatus, by: str, at: datetime, note: str | None = None
) -> Transition:
    """The audited change from ``current`` to ``target``, or InvalidTransition."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"Il bando è «{STATUS_LABELS[current]}»: non può passare a «{STATUS_LABELS[target]}».",
            [{"field": "status", "message": f"stato attuale: {current.value}"}],
        )
    return Transition(target, StatusChange(status=target, by=by, at=at, note=note))


def open_programme(spec: ProgrammeSpec, current: ProgrammeStatus, by: str, at: datetime) -> Transition:
    """Opening validates the rules: a bando whose amounts do not add up never opens."""
    result = transition(current, ProgrammeStatus.OPEN, by, at)
    ensure_valid_programme(spec)
    return result


def submission_window_problem(spec: ProgrammeSpec, status: ProgrammeStatus, now: datetime) -> str | None:
    """Why an application cannot be submitted now, in Italian, or None."""
    if status is not ProgrammeStatus.OPEN:
        return f"Il bando non accetta domande: è «{STATUS_LABELS[status]}»."
    if now < spec.opens_at:
        return f"Il bando apre il {in_rome(spec.opens_at)}."
    if now >= spec.closes_at:
        return f"Il bando è chiuso dal {in_rome(spec.closes_at)}."
    return None


class TransitionRule(Protocol):
    """A status change decided on the programme as stored (its rules and status)."""

    def __call__(
        self, spec: ProgrammeSpec, status: ProgrammeStatus, by: str, at: datetime, note: str | None
    ) -> Transition: ...
