"""Use cases of the graduatoria and the awards: rank (draft, recomputable), publish
(final, one-way), award vouchers within the budget, expire them."""

import secrets
from datetime import date, datetime

from conciliare.contracts.common import IntegrationEvent, new_id
from conciliare.contracts.identity import Viewer
from conciliare.contracts.vouchers import (
    LedgerKind,
    ProgrammeOut,
    ProgrammeStatus,
    RankingOut,
    RankingPublished,
    VoucherAwarded,
    VoucherExpired,
    VoucherStatus,
)
from conciliare.errors import Conflict
from services.vouchers import access
from services.vouchers.domain import codes, ledger, programmes, ranking
from services.vouchers.domain.programmes import ROME
from services.vouchers.programmes import change_status, require, require_managed
from services.vouchers.repository import RankedRow, Voucher, VouchersRepository, stored_time, voucher_id_for
from services.vouchers.views import programme_out, ranking_entry

CODE_ATTEMPTS = 5


def rank_programme(repo: VouchersRepository, viewer: Viewer, programme_id: str, now: datetime) -> ProgrammeOut:
    """Compute the draft ranking of the eligible applications (again, if already ranked)."""
    programme = require_managed(repo, viewer, programme_id)
    if programme.status not in (ProgrammeStatus.CLOSED, ProgrammeStatus.RANKED):
        programmes.transition(programme.status, ProgrammeStatus.RANKED, viewer.subject, now)
    eligible, unreviewed = repo.rankable(programme_id)
    if unreviewed:
        raise Conflict(f"{unreviewed} domande non sono ancora state istruite: verifica l'ammissibilità prima.")
    spec = programme.spec
    by_id = {row.application_id: row for row in eligible}
    candidates = [
        ranking.Candidate(
            application_id=row.application_id,
            protocol=programmes.protocol_number(spec.year, row.sequence),
            sequence=row.sequence,
            submitted_at=row.submitted_at,
            isee_cents=row.isee_cents,
            score=row.score,
        )
        for row in eligible
    ]
    placed = ranking.rank(
        candidates,
        spec.ranking_mode,
        spec.tie_breaks,
        spec.budget_cents,
        programmes.voucher_amount(spec),
        spec.places,
        spec.partial_last_award,
    )
    run_id = new_id()
    rows = []
    for p in placed:
        source = by_id[p.candidate.application_id]
        rows.append(
            RankedRow(
                run_id=run_id,
                programme_id=programme_id,
                position=p.position,
                application_id=source.application_id,
                protocol=p.candidate.protocol,
                cf_masked=source.cf_masked,
                score=source.score,
                placed_by=p.placed_by,
                outcome=p.outcome,
                award_cents=p.award_cents,
            )
        )
    # The new run is stored whole before the programme points at it: a reader sees
    # the old ranking or the new one, never half of one.
    repo.insert_ranking(rows)
    total = sum(p.award_cents for p in placed)
    updated = change_status(
        repo,
        viewer,
        programme_id,
        lambda s, status, by, at, note: programmes.transition(status, ProgrammeStatus.RANKED, by, at, note),
        now,
        note=f"{len(rows)} domande in graduatoria",
        extra={"ranking_run": run_id, "ranked_awards_cents": total},
    )
    repo.drop_other_runs(programme_id, run_id)
    return programme_out(updated)


def publish_ranking(repo: VouchersRepository, viewer: Viewer, programme_id: str, now: datetime) -> ProgrammeOut:
    """The draft ranking becomes final: one-way, audited, announced by ``ranking.published``."""
    programme = require_managed(repo, viewer, programme_id)
    if programme.ranking_run is None:
        raise Conflict("Non c'è una graduatoria da pubblicare: calcolala prima.")
    event = RankingPublished(
        alliance_id=programme.alliance_id,
        programme_id=programme_id,
        entries=repo.ranking_size(programme.ranking_run),
        awarded_cents=programme.ranked_awards_cents,
    )
    updated = change_status(
        repo,
        viewer,
        programme_id,
        lambda s, status, by, at, note: programmes.transition(status, ProgrammeStatus.PUBLISHED, by, at, note),
        now,
        events=[event],
    )
    if updated.ranking_run != programme.ranking_run:
        raise Conflict("La graduatoria è stata ricalcolata nel frattempo: ricontrollala.")
    return programme_out(updated)


def get_ranking(
    repo: VouchersRepository, viewer: Viewer, programme_id: str, limit: int | None, offset: int
) -> RankingOut:
    """The ranking: staff see drafts and the breakdown; others only the published list."""
    programme = require(repo, viewer, programme_id)
    staff = access.manages(viewer, programme.alliance_id)
    final = programme.status in (ProgrammeStatus.PUBLISHED, ProgrammeStatus.AWARDED)
    if programme.ranking_run is None or not (staff or final):
        raise Conflict("La graduatoria non è ancora stata pubblicata.")
    rows, total = repo.ranking(programme.ranking_run, limit, offset)
    breakdowns = repo.breakdowns([row.application_id for row in rows]) if staff else {}
    ranked_at = next((h.at for h in reversed(programme.history) if h.status is ProgrammeStatus.RANKED), None)
    return RankingOut(
        programme_id=programme_id,
        status=programme.status,
        final=final,
        computed_at=ranked_at or programme.created_at,
        entries=[ranking_entry(row, breakdowns.get(row.application_id) if staff else None) for row in rows],
        total=total,
        awarded_cents=programme.ranked_awards_cents,
    )


def _new_code() -> str:
    number = secrets.randbelow(len(codes.ALPHABET) ** codes.BODY_LENGTH)
    digits = []
    for _ in range(codes.BODY_LENGTH):
        number, digit = divmod(number, len(codes.ALPHABET))
        digits.append(digit)
    return codes.make_code(digits)


def award(repo: VouchersRepository, viewer: Viewer, programme_id: str, now: datetime) -> ProgrammeOut:
    """One voucher per awarded row of the final ranking, within the budget, with the ledger.

    Idempotent: vouchers and ledger entries have ids derived from their application,
    so an award interrupted half-way is finished by running it again.
    """
    now = stored_time(now)
    programme = require_managed(repo, viewer, programme_id)
    programmes.transition(programme.status, ProgrammeStatus.AWARDED, viewer.subject, now)
    assert programme.ranking_run is not None
    winners = repo.awarded_rows(programme.ranking_run)
    holders = repo.holders(programme_id, [row.application_id for row in winners])
    total = sum(r.award_cents for r in winners)
    spec = programme.spec
    ledger.ensure_within_budget(spec.budget_cents, 0, total)
    splits = ledger.allocate_awards([r.award_cents for r in winners], [s.amount_cents for s in spec.funding_sources])
    valid_from = now.astimezone(ROME).date()
    vouchers: list[Voucher] = []
    events: dict[str, list[IntegrationEvent]] = {}
    for row, split in zip(winners, splits, strict=True):
        holder = holders[row.application_id]
        voucher = Voucher(
            id=voucher_id_for(row.application_id),
            code=_new_code(),
            programme_id=programme_id,
            alliance_id=programme.alliance_id,
            application_id=row.application_id,
            child_id=holder.child_id,
            household_id=holder.household_id,
            holder_subject=holder.applicant_subject,
            amount_cents=row.award_cents,
            balance_cents=row.award_cents,
            split=split,
            remaining_split=split,
            redemption_splits={},
            valid_from=valid_from,
            valid_until=spec.voucher_valid_until,
            status=VoucherStatus.ACTIVE,
            service_types=list(spec.eligible_service_types),
            cap_year=spec.year,
            providers=[],
            redemptions=[],
        )
        vouchers.append(voucher)
        events[voucher.id] = [
            VoucherAwarded(
                alliance_id=programme.alliance_id,
                programme_id=programme_id,
                voucher_id=voucher.id,
                application_id=row.application_id,
                holder_subject=holder.applicant_subject,
                amount_cents=row.award_cents,
                valid_until=spec.voucher_valid_until,
            )
        ]
    pending = vouchers
    for _ in range(CODE_ATTEMPTS):
        collided = set(repo.insert_vouchers(pending, events))
        if not collided:
            break
        pending = [Voucher(**{**v.__dict__, "code": _new_code()}) for v in pending if v.id in collided]
    else:
        raise Conflict("Impossibile generare codici voucher univoci: riprova.")
    # One ledger entry for the whole award (each voucher keeps its own split).
    award_split = [sum(parts) for parts in zip(*splits, strict=True)] if splits else [0] * len(spec.funding_sources)
    repo.record(programme_id, LedgerKind.AWARD, programme_id, total, award_split, now)
    updated = change_status(
        repo,
        viewer,
        programme_id,
        lambda s, status, by, at, note: programmes.transition(status, ProgrammeStatus.AWARDED, by, at, note),
        now,
        note=f"{len(vouchers)} voucher assegnati",
        extra={"awarded_cents": total},
    )
    return programme_out(updated)


def expire_vouchers(repo: VouchersRepository, today: date, now: datetime) -> int:
    """Close the vouchers whose validity ended and release what they had left to the budget."""
    expired = 0
    for voucher_id in repo.expirable_voucher_ids(today):
        voucher = repo.get_voucher(voucher_id)
        if voucher is None:
            continue

        def events_for(released: int, v: Voucher = voucher) -> list[IntegrationEvent]:
            return [
                VoucherExpired(
                    alliance_id=v.alliance_id, programme_id=v.programme_id, voucher_id=v.id, released_cents=released
                )
            ]

        released = repo.expire_voucher(voucher_id, events_for)
        if released is None:
            continue
        amount, split = released
        repo.record(voucher.programme_id, LedgerKind.EXPIRY_RELEASE, voucher.id, amount, split, stored_time(now))
        expired += 1
    return expired
