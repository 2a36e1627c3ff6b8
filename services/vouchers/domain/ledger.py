"""The budget ledger: every amount split per funding source, totals that reconcile.

Entries are award (a voucher's amount), redemption, reversal (a redemption undone)
and expiry release (what an expired voucher had left). Each carries its split per
funding source, computed here, so totals per source are sums of entries and the
whole always equals the sum of its sources.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conciliare.contracts.vouchers import LedgerKind, LedgerOut, SourceTotals
from conciliare.errors import Conflict


def split_by_source(amount_cents: int, weights: Sequence[int]) -> list[int]:
    """``amount_cents`` shared in proportion to ``weights`` (largest remainder, exact).

    The parts add up to the amount; on equal remainders the earlier source gets
    the cent. With no positive weight everything goes to the first source.
    """
    if not weights:
        raise ValueError("nessuna fonte di finanziamento")
    total = sum(weights)
    if total <= 0:
        return [amount_cents] + [0] * (len(weights) - 1)
    floors = [amount_cents * w // total for w in weights]
    remainders = [amount_cents * w % total for w in weights]
    left = amount_cents - sum(floors)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        floors[index] += 1
    return floors


def split_within(amount_cents: int, remaining: Sequence[int]) -> list[int]:
    """``amount_cents`` taken from per-source ``remaining`` amounts in proportion to them.

    No part exceeds what its source has left (when the amount fits the total): a
    floor plus at most one cent, and the extra cent only goes to a source whose
    exact share had a fractional part. So awards taken one after another never
    overdraw a funding source, and redemptions never overdraw a voucher's share of
    a source, whatever the rounding.
    """
    if amount_cents > sum(remaining):
        raise ValueError("importo oltre il disponibile")
    return split_by_source(amount_cents, remaining)


def allocate_awards(amounts: Sequence[int], budgets: Sequence[int]) -> list[list[int]]:
    """Each award's split per source, in ranking order, drawing on what each source has left."""
    remaining = list(budgets)
    splits = []
    for amount in amounts:
        split = split_within(amount, remaining)
        remaining = [r - p for r, p in zip(remaining, split, strict=True)]
        splits.append(split)
    return splits


@dataclass(frozen=True)
class Entry:
    kind: LedgerKind
    amount_cents: int
    split: tuple[int, ...]


@dataclass(frozen=True)
class VoucherTotals:
    """What the vouchers of a programme say, to check the ledger against."""

    amount_cents: int
    balance_cents: int
    released_cents: int


def summarize(
    programme_id: str,
    sources: Sequence[tuple[str, int]],
    entries: Iterable[Entry],
    vouchers: VoucherTotals | None = None,
) -> LedgerOut:
    """Budget, awarded, redeemed, released, available and outstanding, in all and per source."""
    n = len(sources)
    awarded = [0] * n
    redeemed = [0] * n
    released = [0] * n
    for entry in entries:
        target = {
            LedgerKind.AWARD: awarded,
            LedgerKind.REDEMPTION: redeemed,
            LedgerKind.REVERSAL: redeemed,
            LedgerKind.EXPIRY_RELEASE: released,
        }[entry.kind]
        sign = -1 if entry.kind is LedgerKind.REVERSAL else 1
        for index, part in enumerate(entry.split):
            target[index] += sign * part
    per_source = [
        SourceTotals(
            name=name,
            budget_cents=budget,
            awarded_cents=awarded[i],
            redeemed_cents=redeemed[i],
            released_cents=released[i],
            available_cents=budget - awarded[i] + released[i],
            outstanding_cents=awarded[i] - redeemed[i] - released[i],
        )
        for i, (name, budget) in enumerate(sources)
    ]
    total_awarded, total_redeemed, total_released = sum(awarded), sum(redeemed), sum(released)
    budget_total = sum(budget for _, budget in sources)
    reconciles = all(s.available_cents >= 0 and s.outstanding_cents >= 0 for s in per_source)
    if vouchers is not None:
        reconciles = reconciles and (
            vouchers.amount_cents == total_awarded
            and vouchers.amount_cents - vouchers.balance_cents == total_redeemed
            and vouchers.released_cents == total_released
        )
    return LedgerOut(
        programme_id=programme_id,
        budget_cents=budget_total,
        awarded_cents=total_awarded,
        redeemed_cents=total_redeemed,
        released_cents=total_released,
        available_cents=budget_total - total_awarded + total_released,
        outstanding_cents=total_awarded - total_redeemed - total_released,
        sources=per_source,
        reconciles=reconciles,
    )


def ensure_within_budget(budget_cents: int, already_awarded_cents: int, new_awards_cents: int) -> None:
    """The ledger never goes negative: awards beyond the budget are refused."""
    if already_awarded_cents + new_awards_cents > budget_cents:
        raise Conflict("Le assegnazioni supererebbero il budget del bando.")


def cap_headroom(cap_cents: int, used_cents: int) -> int:
    """What is left of a child's yearly cap."""
    return max(cap_cents - used_cents, 0)
