"""Partners domain rules: tax codes, territories, memberships, project budgets.

Plain functions over contract models, no I/O: every rule of the partners service
lives here, and the service layer only loads, calls and stores.
"""

import hashlib
from collections.abc import Sequence
from datetime import date, datetime

from stdnum.it import codicefiscale, iva

from conciliare.contracts.partners import (
    Membership,
    MembershipRole,
    MembershipStatus,
    ProjectSpec,
)
from conciliare.errors import Conflict, FieldError, NotFound, ValidationFailed
from conciliare.geo import unknown_istat_codes


def euro(cents: int) -> str:
    """Italian formatting of an amount, for messages: 6074100 -> '60.741,00 €'."""
    whole, fraction = divmod(cents, 100)
    return f"{whole:,}".replace(",", ".") + f",{fraction:02d} €"


# --- idempotent creates -------------------------------------------------------


def request_id(kind: str, requested_by: str | None, request_key: str, *scope: str) -> str:
    """Stable id of what one request creates: a retry with the same key finds the first.

    ``request_key`` is the gateway's ``Idempotency-Key``, which belongs to its caller
    (``requested_by``); ``kind`` and ``scope`` (e.g. the alliance) keep a key reused
    for another kind of create, or in another alliance, from naming the same thing.
    """
    material = "\x00".join((kind, requested_by or "", request_key, *scope))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


# --- partners ---------------------------------------------------------------


def tax_code_problem(tax_code: str) -> str | None:
    """Why ``tax_code`` is not a valid Italian codice fiscale / partita IVA, or None.

    Organisations have an 11-digit numeric codice fiscale (same check digit as the
    partita IVA); people have the 16-character one.
    """
    if len(tax_code) == 11 and tax_code.isdigit():
        return None if iva.is_valid(tax_code) else "cifra di controllo del codice fiscale/P.IVA errata"
    if len(tax_code) == 16:
        return None if codicefiscale.is_valid(tax_code) else "codice fiscale di persona fisica non valido"
    return "il codice fiscale deve avere 11 cifre (enti) o 16 caratteri (persone)"


def check_istat_codes(codes: Sequence[str], field: str) -> list[FieldError]:
    return [
        {"field": field, "message": f"codice ISTAT {code} sconosciuto: nessun Comune con questo codice"}
        for code in unknown_istat_codes(list(codes))
    ]


def ensure_valid_partner(tax_code: str, comune_istat: str) -> None:
    errors: list[FieldError] = []
    problem = tax_code_problem(tax_code)
    if problem:
        errors.append({"field": "tax_code", "message": f"{tax_code}: {problem}"})
    errors += check_istat_codes([comune_istat], "comune_istat")
    if errors:
        raise ValidationFailed("Il partner non può essere registrato.", errors)


# --- alliances & memberships -------------------------------------------------


def ensure_valid_territory(ambiti_comuni: Sequence[Sequence[str]]) -> None:
    errors: list[FieldError] = []
    seen: dict[str, int] = {}
    for index, comuni in enumerate(ambiti_comuni):
        errors += check_istat_codes(comuni, f"ambiti.{index}.comuni_istat")
        for code in comuni:
            if code in seen:
                errors.append(
                    {
                        "field": f"ambiti.{index}.comuni_istat",
                        "message": f"il Comune {code} è già nell'ambito {seen[code] + 1}",
                    }
                )
            seen[code] = index
    if errors:
        raise ValidationFailed("Il territorio dell'alleanza non è valido.", errors)


def listed_member(member: Membership, status: MembershipStatus | None, include_withdrawn: bool) -> bool:
    """Whether a member list shows ``member``: one status if asked, else everyone but
    the withdrawn (unless asked for them too). ``member_count`` counts the default list."""
    if status is not None:
        return member.status is status
    return include_withdrawn or member.status is not MembershipStatus.WITHDRAWN


def _find(members: Sequence[Membership], partner_id: str) -> Membership | None:
    return next((m for m in members if m.partner_id == partner_id), None)


def add_member(
    members: Sequence[Membership],
    partner_id: str,
    role: MembershipRole,
    status: MembershipStatus,
    now: datetime,
) -> tuple[list[Membership], Membership, MembershipStatus | None]:
    """Add (or re-admit after withdrawal) a partner; one capofila per alliance.

    Returns the new member list, the membership and its previous status.
    """
    existing = _find(members, partner_id)
    if existing and existing.status is not MembershipStatus.WITHDRAWN:
        raise Conflict("Il partner è già membro dell'alleanza.")
    if role is MembershipRole.CAPOFILA and any(
        m.role is MembershipRole.CAPOFILA and m.status is not MembershipStatus.WITHDRAWN for m in members
    ):
        raise Conflict("L'alleanza ha già un capofila: ogni alleanza ne ha esattamente uno.")
    membership = Membership(
        partner_id=partner_id,
        role=role,
        status=status,
        joined_at=now,
        formalized_at=now if status is MembershipStatus.FORMALIZED else None,
    )
    others = [m for m in members if m.partner_id != partner_id]
    return [*others, membership], membership, existing.status if existing else None


def formalize_member(
    members: Sequence[Membership], partner_id: str, now: datetime
) -> tuple[list[Membership], Membership, MembershipStatus]:
    """A pending adhesion becomes formal (seed 003: 'a breve si formalizzerà')."""
    current = _find(members, partner_id)
    if current is None:
        raise NotFound("Il partner non è membro di questa alleanza.")
    if current.status is not MembershipStatus.PENDING:
        raise Conflict(f"Solo un'adesione in attesa può essere formalizzata (stato attuale: {current.status.value}).")
    updated = current.model_copy(update={"status": MembershipStatus.FORMALIZED, "formalized_at": now})
    return [updated if m.partner_id == partner_id else m for m in members], updated, current.status


def withdraw_member(
    members: Sequence[Membership], partner_id: str, now: datetime
) -> tuple[list[Membership], Membership, MembershipStatus]:
    """A partner leaves; the capofila cannot leave an alliance without a capofila."""
    current = _find(members, partner_id)
    if current is None:
        raise NotFound("Il partner non è membro di questa alleanza.")
    if current.status is MembershipStatus.WITHDRAWN:
        raise Conflict("Il partner ha già receduto dall'alleanza.")
    if current.role is MembershipRole.CAPOFILA:
        raise Conflict("Il capofila non può recedere: l'alleanza deve sempre avere un capofila.")
    updated = current.model_copy(update={"status": MembershipStatus.WITHDRAWN, "withdrawn_at": now})
    return [updated if m.partner_id == partner_id else m for m in members], updated, current.status


# --- projects ---------------------------------------------------------------


# Projects of the alliances run from the 2014-2020 programming period on; a date
# outside these years is a typo (or a form left at its zero values).
FIRST_PROJECT_YEAR = 2014
LAST_PROJECT_YEAR = 2100


def _it_date(day: date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def project_period_errors(spec: ProjectSpec) -> list[FieldError]:
    """Every way the period of a project is implausible (empty list: it is fine)."""
    errors: list[FieldError] = []
    for field, day in (("period_start", spec.period_start), ("period_end", spec.period_end)):
        if not FIRST_PROJECT_YEAR <= day.year <= LAST_PROJECT_YEAR:
            errors.append(
                {
                    "field": field,
                    "message": (
                        f"la data {_it_date(day)} è fuori dagli anni ammessi ({FIRST_PROJECT_YEAR}–{LAST_PROJECT_YEAR})"
                    ),
                }
            )
    if spec.period_end < spec.period_start:
        errors.append(
            {
                "field": "period_end",
                "message": (
                    f"la fine del progetto ({_it_date(spec.period_end)}) precede l'inizio "
                    f"({_it_date(spec.period_start)})"
                ),
            }
        )
    return errors


def project_budget_errors(spec: ProjectSpec) -> list[FieldError]:
    """Every way the period and amounts of a project fail (empty list: they are fine)."""
    errors = project_period_errors(spec)
    if spec.total_cost_cents <= 0:
        errors.append({"field": "total_cost_cents", "message": "il costo complessivo deve essere maggiore di zero"})
    if spec.requested_contribution_cents <= 0:
        errors.append(
            {"field": "requested_contribution_cents", "message": "il contributo richiesto deve essere maggiore di zero"}
        )
    cofinancing = spec.cofinancing.cash_cents + spec.cofinancing.valued_work_hours_cents
    covered = spec.requested_contribution_cents + cofinancing
    if covered != spec.total_cost_cents:
        errors.append(
            {
                "field": "total_cost_cents",
                "message": (
                    f"il costo complessivo ({euro(spec.total_cost_cents)}) deve essere uguale al "
                    f"contributo richiesto ({euro(spec.requested_contribution_cents)}) più il "
                    f"cofinanziamento ({euro(cofinancing)}), cioè {euro(covered)}"
                ),
            }
        )
    if spec.funding_sources:
        funded = sum(source.amount_cents for source in spec.funding_sources)
        if funded != spec.requested_contribution_cents:
            errors.append(
                {
                    "field": "funding_sources",
                    "message": (
                        f"le fonti di finanziamento sommano {euro(funded)} ma il contributo "
                        f"richiesto è {euro(spec.requested_contribution_cents)}"
                    ),
                }
            )
    codes = [action.code for action in spec.actions]
    duplicates = sorted({code for code in codes if codes.count(code) > 1})
    if duplicates:
        errors.append({"field": "actions", "message": f"azioni ripetute: {', '.join(duplicates)}"})
    return errors


def ensure_valid_project(spec: ProjectSpec) -> None:
    errors = project_budget_errors(spec)
    if errors:
        raise ValidationFailed("Il periodo o gli importi del progetto non sono validi.", errors)
