"""Eligibility: the automatic checks that pre-fill each review, and the review itself.

Each failed check is a ``Reason`` with an Italian message; an application with no
reason is eligible. Staff confirm the automatic result or override it with a note.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date

from conciliare.contracts.vouchers import (
    ApplicantSnapshot,
    ApplicationStatus,
    AttachmentKind,
    AttachmentRef,
    ProgrammeSpec,
    Reason,
    WhoMayApply,
)
from conciliare.errors import Conflict, ValidationFailed
from services.vouchers.domain.programmes import euro

ATTACHMENT_LABELS = {
    AttachmentKind.ISEE_CERTIFICATE: "attestazione ISEE",
    AttachmentKind.DIAGNOSIS: "diagnosi (per la priorità disabilità)",
    AttachmentKind.OTHER: "altro documento",
}


@dataclass(frozen=True)
class Territory:
    """The alliance as eligibility sees it: its Comuni and its formalized partners."""

    comuni_istat: frozenset[str]
    partner_ids: frozenset[str]


@dataclass(frozen=True)
class Declarations:
    claims_disability_priority: bool
    child_has_disability: bool
    no_double_funding: bool
    attachments: Sequence[AttachmentRef]


def age_in_years(birth_date: date, on_date: date) -> int:
    years = on_date.year - birth_date.year
    if (on_date.month, on_date.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def mask_codice_fiscale(cf: str) -> str:
    """A codice fiscale for published lists: first 3 and last 3 characters, the rest hidden."""
    code = cf.replace(" ", "").upper()
    if len(code) <= 6:
        return "*" * len(code)
    return code[:3] + "*" * (len(code) - 6) + code[-3:]


def _reason(code: str, message: str) -> Reason:
    return Reason(code=code, message=message)


def _territory_reasons(rules: ProgrammeSpec, snapshot: ApplicantSnapshot, territory: Territory) -> list[Reason]:
    resident = snapshot.residence_comune_istat in territory.comuni_istat
    employee = any(g.employer_partner_id in territory.partner_ids for g in snapshot.guardians if g.employer_partner_id)
    if rules.who_may_apply is WhoMayApply.RESIDENTS and not resident:
        return [_reason("residence", "Il nucleo non risiede in un Comune dell'alleanza.")]
    if rules.who_may_apply is WhoMayApply.EMPLOYEES and not employee:
        return [_reason("employment", "Nessun genitore è dipendente di un ente partner dell'alleanza.")]
    if rules.who_may_apply is WhoMayApply.BOTH and not (resident or employee):
        return [
            _reason(
                "residence_or_employment",
                "Il nucleo non risiede in un Comune dell'alleanza e nessun genitore è dipendente di un ente partner.",
            )
        ]
    return []


def _isee_reasons(rules: ProgrammeSpec, snapshot: ApplicantSnapshot, on_date: date) -> list[Reason]:
    needed = rules.isee_max_cents is not None or AttachmentKind.ISEE_CERTIFICATE in rules.required_attachments
    if snapshot.isee_cents is None:
        return [_reason("isee_missing", "Manca l'ISEE del nucleo.")] if needed else []
    reasons: list[Reason] = []
    if snapshot.isee_expires_on is not None and snapshot.isee_expires_on < on_date:
        reasons.append(_reason("isee_expired", f"L'ISEE è scaduto il {snapshot.isee_expires_on.strftime('%d/%m/%Y')}."))
    if snapshot.isee_kind not in rules.isee_kinds:
        accepted = ", ".join(rules.isee_kinds)
        reasons.append(_reason("isee_kind", f"ISEE di tipo «{snapshot.isee_kind}» non ammesso (ammessi: {accepted})."))
    if rules.isee_max_cents is not None and snapshot.isee_cents > rules.isee_max_cents:
        reasons.append(
            _reason(
                "isee_ceiling",
                f"ISEE di {euro(snapshot.isee_cents)} oltre il massimo del bando ({euro(rules.isee_max_cents)}).",
            )
        )
    return reasons


def _attachment_reasons(rules: ProgrammeSpec, declarations: Declarations) -> list[Reason]:
    present = {a.kind for a in declarations.attachments}
    required: list[AttachmentKind] = [k for k in rules.required_attachments if k is not AttachmentKind.DIAGNOSIS]
    if declarations.claims_disability_priority:
        required.append(AttachmentKind.DIAGNOSIS)
    return [
        _reason(f"attachment_{kind.value}", f"Manca l'allegato: {ATTACHMENT_LABELS[kind]}.")
        for kind in required
        if kind not in present
    ]


def automatic_checks(
    rules: ProgrammeSpec,
    snapshot: ApplicantSnapshot,
    declarations: Declarations,
    territory: Territory,
    on_date: date,
) -> list[Reason]:
    """Why the application is not eligible, check by check (empty: it is)."""
    reasons: list[Reason] = []
    age = age_in_years(snapshot.child_birth_date, on_date)
    if not rules.min_age_years <= age <= rules.max_age_years:
        reasons.append(
            _reason(
                "age",
                f"Il minore ha {age} anni: il bando è per età tra {rules.min_age_years} e {rules.max_age_years} anni.",
            )
        )
    reasons += _territory_reasons(rules, snapshot, territory)
    reasons += _isee_reasons(rules, snapshot, on_date)
    if not declarations.no_double_funding:
        reasons.append(
            _reason(
                "double_funding",
                "Manca la dichiarazione che lo stesso costo non è già sostenuto da altre misure pubbliche "
                "(es. Nidi Gratis).",
            )
        )
    if declarations.claims_disability_priority and not declarations.child_has_disability:
        reasons.append(_reason("disability", "La disabilità non risulta tra i bisogni registrati del minore."))
    reasons += _attachment_reasons(rules, declarations)
    return reasons


def review(
    status: ApplicationStatus, automatic_reasons: Collection[Reason], eligible: bool, note: str | None
) -> ApplicationStatus:
    """Staff decide eligibility: confirming the automatic result, or overriding it with a note."""
    if status is ApplicationStatus.WITHDRAWN:
        raise Conflict("La domanda è stata ritirata: non si può istruire.")
    automatic = not automatic_reasons
    if eligible != automatic and not (note and note.strip()):
        raise ValidationFailed(
            "Per discostarsi dai controlli automatici serve una motivazione.",
            [{"field": "note", "message": "motivazione obbligatoria"}],
        )
    return ApplicationStatus.ELIGIBLE if eligible else ApplicationStatus.INELIGIBLE
