"""Records as the contracts show them to callers."""

from typing import Any

from conciliare.contracts.vouchers import (
    ApplicationOut,
    CriterionScore,
    ProgrammeOut,
    RankingEntry,
    RedemptionOut,
    VoucherOut,
)
from services.vouchers.domain.codes import display_code
from services.vouchers.repository import Application, Programme, RankedRow, Redemption, Voucher


def programme_out(programme: Programme) -> ProgrammeOut:
    return ProgrammeOut(
        **programme.spec.model_dump(),
        alliance_id=programme.alliance_id,
        id=programme.id,
        status=programme.status,
        history=programme.history,
        awarded_cents=programme.awarded_cents,
        created_at=programme.created_at,
        version=programme.version,
    )


def application_out(app: Application) -> ApplicationOut:
    return ApplicationOut(
        id=app.id,
        programme_id=app.programme_id,
        alliance_id=app.alliance_id,
        protocol=app.protocol,
        sequence=app.sequence,
        submitted_at=app.submitted_at,
        applicant_subject=app.applicant_subject,
        household_id=app.household_id,
        child_id=app.child_id,
        snapshot=app.snapshot,
        claims_disability_priority=app.claims_disability_priority,
        no_double_funding=app.no_double_funding,
        attachments=app.attachments,
        status=app.status,
        automatic_reasons=app.automatic_reasons,
        review_note=app.review_note,
        reviewed_by=app.reviewed_by,
        score=app.score,
        breakdown=app.breakdown,
    )


def ranking_entry(row: RankedRow, breakdown: list[dict[str, Any]] | None) -> RankingEntry:
    """A row of the graduatoria; the breakdown (it may reveal a disability) only for staff."""
    return RankingEntry(
        position=row.position,
        application_id=row.application_id,
        protocol=row.protocol,
        codice_fiscale_masked=row.cf_masked,
        score=row.score,
        breakdown=[CriterionScore.model_validate(b) for b in breakdown or []],
        placed_by=row.placed_by,
        outcome=row.outcome,
        award_cents=row.award_cents,
    )


def voucher_out(voucher: Voucher) -> VoucherOut:
    return VoucherOut(
        id=voucher.id,
        code=display_code(voucher.code),
        programme_id=voucher.programme_id,
        alliance_id=voucher.alliance_id,
        application_id=voucher.application_id,
        child_id=voucher.child_id,
        holder_subject=voucher.holder_subject,
        amount_cents=voucher.amount_cents,
        balance_cents=voucher.balance_cents,
        valid_from=voucher.valid_from,
        valid_until=voucher.valid_until,
        status=voucher.status,
        eligible_service_types=voucher.service_types,
    )


def redemption_out(redemption: Redemption) -> RedemptionOut:
    return RedemptionOut(
        id=redemption.id,
        voucher_id=redemption.voucher_id,
        programme_id=redemption.programme_id,
        alliance_id=redemption.alliance_id,
        provider_partner_id=redemption.provider_partner_id,
        enrolment_id=redemption.enrolment_id,
        child_id=redemption.child_id,
        invoice_ref=redemption.invoice_ref,
        amount_cents=redemption.amount_cents,
        status=redemption.status,
        refusal=redemption.refusal,
        created_at=redemption.created_at,
        reversed_reason=redemption.reversed_reason,
    )
