"""Use cases of redemption: a provider spends a voucher against a confirmed enrolment;
staff reverse a redemption. No multi-document transaction: ordered guarded writes.

A redemption is identified by its provider and invoice reference (``rid``), so the
invoice counts once and every step below is idempotent by ``rid``:

1. store the redemption ``pending`` under ``_id = rid`` (a duplicate invoice finds it);
2. reserve the amount on the child's yearly cap (``used + amount <= cap``, rid not yet in);
3. debit the voucher (``balance >= amount``, active, rid not yet in) with ``voucher.redeemed``;
4. write the ledger entry ``redemption:<rid>``;
5. mark the redemption ``completed``.

If step 2 or 3 is refused, the earlier steps are undone (the cap reservation is
released, guarded by rid) and the redemption is marked ``refused`` with the reason.
A crash between steps leaves it ``pending``: the same request again (or the relay
timer, for old pending ones) runs the steps again and each already-done step is
recognised by its rid, so a redemption is finished or compensated, never doubled.
"""

from datetime import datetime, timedelta

from conciliare.contracts.common import Page
from conciliare.contracts.identity import Viewer
from conciliare.contracts.vouchers import (
    LedgerKind,
    RedemptionCreate,
    RedemptionOut,
    ReversalRequest,
    VoucherOut,
    VoucherRedeemed,
)
from conciliare.errors import Conflict, NotFound
from services.vouchers import access
from services.vouchers.dependencies import CatalogClient, EnrolmentClient
from services.vouchers.domain import codes, ledger
from services.vouchers.domain.programmes import ROME, euro
from services.vouchers.domain.redemption import (
    RedemptionContext,
    amount_from_attendance,
    ensure_positive,
    ensure_redeemable,
)
from services.vouchers.repository import (
    Redemption,
    Step,
    Voucher,
    VouchersRepository,
    cap_key,
    redemption_id_for,
    stored_time,
)
from services.vouchers.views import redemption_out, voucher_out

PENDING, COMPLETED, REFUSED, REVERSING, REVERSED = "pending", "completed", "refused", "reversing", "reversed"
RESUME_AFTER = timedelta(seconds=30)
DEBIT_ATTEMPTS = 5


def get_voucher(repo: VouchersRepository, viewer: Viewer, voucher_id: str) -> VoucherOut:
    return voucher_out(access.ensure_sees_voucher(viewer, repo.get_voucher(voucher_id)))


def voucher_by_code(repo: VouchersRepository, viewer: Viewer, code: str) -> VoucherOut:
    """A provider reads the voucher a family presents (amount, balance, validity)."""
    if not codes.is_valid_code(code):
        raise NotFound("Codice voucher non valido: controlla di averlo trascritto correttamente.")
    voucher = repo.voucher_by_code(codes.normalize_code(code))
    if voucher is None:
        raise NotFound(access.VOUCHER_NOT_FOUND)
    if not access.sees_voucher(viewer, voucher):
        access.ensure_provider_in(viewer, voucher.alliance_id)
    return voucher_out(voucher)


def list_vouchers(
    repo: VouchersRepository, viewer: Viewer, programme_id: str | None, status: str | None, limit: int, offset: int
) -> Page[VoucherOut]:
    found, total = repo.find_vouchers(access.voucher_scope(viewer), programme_id, status, limit, offset)
    return Page(items=[voucher_out(v) for v in found], total=total, limit=limit, offset=offset)


def list_redemptions(
    repo: VouchersRepository, viewer: Viewer, voucher_id: str | None, limit: int, offset: int
) -> Page[RedemptionOut]:
    if voucher_id is not None:
        access.ensure_sees_voucher(viewer, repo.get_voucher(voucher_id))
    found, total = repo.find_redemptions(access.redemption_scope(viewer), voucher_id, None, limit, offset)
    return Page(items=[redemption_out(r) for r in found], total=total, limit=limit, offset=offset)


def redeem(
    repo: VouchersRepository,
    enrolment: EnrolmentClient,
    catalog: CatalogClient,
    viewer: Viewer,
    voucher_id: str,
    spec: RedemptionCreate,
    now: datetime,
) -> RedemptionOut:
    """A provider spends part of a voucher for an invoice of a confirmed enrolment."""
    now = stored_time(now)
    voucher = repo.get_voucher(voucher_id)
    if voucher is None:
        raise NotFound(access.VOUCHER_NOT_FOUND)
    provider = access.ensure_provider_in(viewer, voucher.alliance_id)
    rid = redemption_id_for(provider, spec.invoice_ref)
    existing = repo.get_redemption(rid)
    if existing is not None and existing.status in (COMPLETED, PENDING):
        return _retry(repo, existing, voucher_id, spec.amount_cents)
    # The enrolment service answers only for enrolments this provider may see.
    booking = enrolment.get_enrolment(spec.enrolment_id, viewer)
    if booking.offering_id is None or booking.child_id is None or booking.alliance_id is None:
        # Still being decided, or refused before naming an offering of ours: nothing to pay for.
        raise Conflict("Il voucher non può essere usato per questa iscrizione: l'iscrizione non è confermata.")
    offering = catalog.get_snapshot(booking.offering_id)
    ensure_redeemable(
        RedemptionContext(
            voucher_status=voucher.status,
            voucher_child_id=voucher.child_id,
            voucher_alliance_id=voucher.alliance_id,
            valid_from=voucher.valid_from,
            valid_until=voucher.valid_until,
            eligible_types=voucher.service_types,
            enrolment_status=booking.status,
            enrolment_child_id=booking.child_id,
            enrolment_alliance_id=booking.alliance_id,
            enrolment_provider_id=booking.provider_partner_id or "",
            offering_type=offering.type,
            provider_partner_id=provider,
        ),
        now.astimezone(ROME).date(),
    )
    amount = spec.amount_cents
    if amount is None:
        totals = enrolment.get_attendance(spec.enrolment_id, viewer).totals
        amount = amount_from_attendance(offering.price_cents, offering.price_unit, totals.days_present, totals.hours)
    ensure_positive(amount, voucher.balance_cents)
    redemption = Redemption(
        id=rid,
        voucher_id=voucher_id,
        programme_id=voucher.programme_id,
        alliance_id=voucher.alliance_id,
        provider_partner_id=provider,
        enrolment_id=spec.enrolment_id,
        child_id=voucher.child_id,
        invoice_ref=spec.invoice_ref,
        amount_cents=amount,
        split=[],  # known once the voucher is debited
        status=PENDING,
        refusal=None,
        reversed_reason=None,
        created_at=now,
    )
    stored = repo.insert_redemption(redemption)
    if stored is not None:
        if stored.status == REFUSED and stored.voucher_id == voucher_id and stored.amount_cents == amount:
            # A refused attempt counted nothing: the same invoice may be tried again.
            if repo.set_redemption_status(rid, [REFUSED], PENDING, refusal=None):
                return settle(repo, stored, now)
        return _retry(repo, stored, voucher_id, amount)
    return settle(repo, redemption, now)


def _retry(repo: VouchersRepository, stored: Redemption, voucher_id: str, amount: int | None) -> RedemptionOut:
    """The invoice was presented before: same request -> same answer; anything else -> 409."""
    if stored.voucher_id != voucher_id or (amount is not None and amount != stored.amount_cents):
        raise Conflict(
            f"La fattura «{stored.invoice_ref}» è già stata usata per {euro(stored.amount_cents)}: "
            "ogni fattura si rendiconta una volta sola."
        )
    if stored.status == REVERSED:
        raise Conflict(f"La fattura «{stored.invoice_ref}» è stata stornata: usa un nuovo riferimento.")
    if stored.status == PENDING:
        return settle(repo, stored, stored.created_at)
    if stored.status == REFUSED:
        raise Conflict(stored.refusal or "Utilizzo rifiutato.")
    return redemption_out(stored)


def settle(repo: VouchersRepository, redemption: Redemption, now: datetime) -> RedemptionOut:
    """Run (or finish) the steps of a pending redemption; compensate a refused one."""
    rid = redemption.id
    voucher = repo.get_voucher(redemption.voucher_id)
    programme = repo.get_programme(redemption.programme_id)
    if voucher is None or programme is None:
        raise NotFound(access.VOUCHER_NOT_FOUND)
    key = cap_key(voucher.alliance_id, voucher.cap_year, voucher.child_id)
    amount = redemption.amount_cents

    if repo.reserve_cap(key, programme.spec.cap_per_child_cents, rid, amount) is Step.REFUSED:
        used = repo.cap_used(key)
        headroom = ledger.cap_headroom(programme.spec.cap_per_child_cents, used)
        return _refuse(
            repo,
            rid,
            f"Superato il tetto annuo per minore ({euro(programme.spec.cap_per_child_cents)}): "
            f"restano {euro(headroom)} per il {voucher.cap_year}.",
        )
    event = VoucherRedeemed(
        alliance_id=voucher.alliance_id,
        programme_id=voucher.programme_id,
        voucher_id=voucher.id,
        redemption_id=rid,
        provider_partner_id=redemption.provider_partner_id,
        amount_cents=amount,
    )
    current: Voucher | None = voucher
    step = Step.REFUSED
    for _ in range(DEBIT_ATTEMPTS):
        if current is None or sum(current.remaining_split) < amount:
            break
        split = ledger.split_within(amount, current.remaining_split)
        step, current = repo.debit_voucher(voucher.id, rid, amount, split, redemption.provider_partner_id, [event])
        if step is not Step.REFUSED or current is None or current.balance_cents < amount:
            break
        # Enough in all but not in a source's share: another debit moved the shares; split again.
    if step is Step.REFUSED or current is None:
        repo.release_cap(key, rid, amount)  # compensate step 2
        balance = current.balance_cents if current else 0
        return _refuse(repo, rid, f"Saldo del voucher insufficiente ({euro(balance)}) o voucher non più attivo.")
    split = current.redemption_splits[rid]
    repo.record(redemption.programme_id, LedgerKind.REDEMPTION, rid, amount, split, stored_time(now))
    repo.set_redemption_status(rid, [PENDING], COMPLETED, split=split)
    done = repo.get_redemption(rid)
    assert done is not None
    return redemption_out(done)


def _refuse(repo: VouchersRepository, rid: str, reason: str) -> RedemptionOut:
    repo.set_redemption_status(rid, [PENDING], REFUSED, refusal=reason)
    raise Conflict(reason)


def reverse(
    repo: VouchersRepository, viewer: Viewer, redemption_id: str, request: ReversalRequest, now: datetime
) -> RedemptionOut:
    """Staff undo a completed redemption, with a reason: voucher, cap and ledger are given back."""
    redemption = repo.get_redemption(redemption_id)
    if redemption is None or not access.manages(viewer, redemption.alliance_id):
        raise NotFound(access.REDEMPTION_NOT_FOUND)
    if redemption.status == REVERSED:
        return redemption_out(redemption)
    if redemption.status not in (COMPLETED, REVERSING):
        raise Conflict("Si può stornare solo un utilizzo completato.")
    repo.set_redemption_status(redemption_id, [COMPLETED], REVERSING, reversed_reason=request.reason)
    return finish_reversal(repo, redemption, now)


def finish_reversal(repo: VouchersRepository, redemption: Redemption, now: datetime) -> RedemptionOut:
    voucher = repo.get_voucher(redemption.voucher_id)
    assert voucher is not None
    split = redemption.split or voucher.redemption_splits.get(redemption.id, [])
    if repo.credit_voucher(voucher.id, redemption.id, redemption.amount_cents, split) is Step.REFUSED:
        repo.set_redemption_status(redemption.id, [REVERSING], COMPLETED, reversed_reason=None)
        raise Conflict("Il voucher è scaduto o revocato: lo storno non è più possibile.")
    repo.release_cap(
        cap_key(voucher.alliance_id, voucher.cap_year, voucher.child_id), redemption.id, redemption.amount_cents
    )
    repo.record(
        redemption.programme_id,
        LedgerKind.REVERSAL,
        redemption.id,
        redemption.amount_cents,
        split,
        stored_time(now),
    )
    repo.set_redemption_status(redemption.id, [REVERSING], REVERSED)
    done = repo.get_redemption(redemption.id)
    assert done is not None
    return redemption_out(done)


def resume_stale(repo: VouchersRepository, now: datetime) -> int:
    """Finish or compensate redemptions a crash left half-way (run by the relay timer)."""
    resumed = 0
    for redemption in repo.stale_pending_redemptions(now - RESUME_AFTER):
        try:
            if redemption.status == PENDING:
                settle(repo, redemption, redemption.created_at)
            else:
                finish_reversal(repo, redemption, now)
        except Conflict:
            pass  # refused and compensated: recorded on the redemption
        resumed += 1
    return resumed
