"""When a provider may redeem a voucher, and for how much."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from conciliare.contracts.taxonomy import ServiceType
from conciliare.contracts.vouchers import VoucherStatus
from conciliare.errors import Conflict, ValidationFailed
from services.vouchers.domain.programmes import euro


@dataclass(frozen=True)
class RedemptionContext:
    """What the provider presents: the voucher's state, the enrolment and its offering."""

    voucher_status: VoucherStatus
    voucher_child_id: str
    voucher_alliance_id: str
    valid_from: date
    valid_until: date
    eligible_types: Collection[ServiceType]
    enrolment_status: str
    enrolment_child_id: str
    enrolment_alliance_id: str
    enrolment_provider_id: str
    offering_type: str
    provider_partner_id: str


STATUS_REFUSALS = {
    VoucherStatus.EXHAUSTED: "Il voucher è esaurito.",
    VoucherStatus.EXPIRED: "Il voucher è scaduto.",
    VoucherStatus.REVOKED: "Il voucher è stato revocato.",
}


def ensure_redeemable(ctx: RedemptionContext, today: date) -> None:
    """The voucher is usable today for this enrolment at this provider, or a Conflict says why."""
    if ctx.voucher_status is not VoucherStatus.ACTIVE:
        raise Conflict(STATUS_REFUSALS[ctx.voucher_status])
    if not ctx.valid_from <= today <= ctx.valid_until:
        raise Conflict(
            f"Il voucher è valido dal {ctx.valid_from.strftime('%d/%m/%Y')} al {ctx.valid_until.strftime('%d/%m/%Y')}."
        )
    problems: list[str] = []
    if ctx.enrolment_provider_id != ctx.provider_partner_id:
        problems.append("l'iscrizione non è a un servizio di questo ente")
    if ctx.enrolment_child_id != ctx.voucher_child_id:
        problems.append("l'iscrizione è di un altro minore")
    if ctx.enrolment_alliance_id != ctx.voucher_alliance_id:
        problems.append("il servizio non è dell'alleanza del voucher")
    if ctx.enrolment_status != "confirmed":
        problems.append("l'iscrizione non è confermata")
    if ctx.offering_type not in {t.value for t in ctx.eligible_types}:
        problems.append("il tipo di servizio non è finanziato da questo bando")
    if problems:
        raise Conflict(
            "Il voucher non può essere usato per questa iscrizione: " + "; ".join(problems) + ".",
            [{"field": "enrolment_id", "message": p} for p in problems],
        )


def amount_from_attendance(price_cents: int, price_unit: str, days_present: int, hours: float) -> int:
    """What the attendance costs at the offering's price (hour or day prices only)."""
    if price_unit == "hour":
        return int((Decimal(price_cents) * Decimal(str(hours))).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if price_unit == "day":
        return price_cents * days_present
    raise ValidationFailed(
        "Per servizi a prezzo settimanale, mensile o forfettario indica l'importo.",
        [{"field": "amount_cents", "message": "importo obbligatorio"}],
    )


def ensure_positive(amount_cents: int, balance_cents: int) -> None:
    if amount_cents <= 0:
        raise ValidationFailed(
            "L'importo deve essere maggiore di zero.", [{"field": "amount_cents", "message": "deve essere > 0"}]
        )
    if amount_cents > balance_cents:
        raise Conflict(f"Importo ({euro(amount_cents)}) superiore al saldo del voucher ({euro(balance_cents)}).")
