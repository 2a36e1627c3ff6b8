"""Catalog domain: every rule about service offerings, with no I/O.

An *offering* is a service (post scuola, centro estivo, micronido ...) that a provider
partner publishes in an alliance's catalog. This module holds:

- the value objects describing an offering (`OfferingSpec` and its parts) and their
  validation rules, with Italian messages for the people who fill in the forms;
- children's age in completed months;
- calendar questions ("is it open during the Easter break?");
- the status machine draft -> published <-> suspended -> archived and the rules
  guarding publishing and edits;
- search: criteria, matching, text relevance, ordering and the tokens stored on
  each document for a database prefilter.

Conventions: money in integer cents; dates are `datetime.date` and times are naive
local times, both meaning Europe/Rome; "today" is always passed in by the caller so
that every function stays pure.
"""

from __future__ import annotations

import calendar as _gregorian
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from datetime import date, time, timedelta
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from conciliare.contracts.taxonomy import (
    AttendanceMode,
    OfferingStatus,
    PeriodKind,
    PriceUnit,
    SchoolLevel,
    ServiceType,
    SpecialNeed,
)

# ---------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------

MAX_AGE_MONTHS = 216  # 18 years: the catalog serves minors only
TITLE_MIN_CHARS = 3
TITLE_MAX_CHARS = 200
DESCRIPTION_MAX_CHARS = 5000
ADDRESS_MAX_CHARS = 300
MIN_CAPACITY = 1
MAX_CAPACITY = 10_000
# 10.000 EUR per unit: far above any real fee, low enough to catch euros typed as cents
MAX_PRICE_CENTS = 1_000_000
# Bounds keep a single document small; a school year needs far fewer.
MAX_PERIODS = 60
MAX_CLOSURES = 730
MAX_WEEKLY_SLOTS = 70
SEARCH_TEXT_MAX_CHARS = 200

# Services delivered at the family's home or on the move have no venue to show.
ADDRESS_OPTIONAL_TYPES: frozenset[ServiceType] = frozenset(
    {ServiceType.BABY_SITTING, ServiceType.TRASPORTO_ACCOMPAGNAMENTO}
)

# The needs that define a "post scuola DSA/ADHD/BES" (disabilità alone does not).
LEARNING_NEEDS: frozenset[SpecialNeed] = frozenset({SpecialNeed.DSA, SpecialNeed.ADHD, SpecialNeed.BES})

# Ages (completed months, inclusive) at which children plausibly attend each level.
# Deliberately generous (early entry, repeated years): only the clearly wrong
# combinations, such as a nido offering for 10-year-olds, are rejected.
SCHOOL_LEVEL_AGE_WINDOWS: Mapping[SchoolLevel, tuple[int, int]] = MappingProxyType(
    {
        SchoolLevel.NIDO: (0, 47),
        SchoolLevel.INFANZIA: (24, 83),
        SchoolLevel.PRIMARIA: (60, 143),
        SchoolLevel.SECONDARIA_PRIMO_GRADO: (120, 179),
        SchoolLevel.SECONDARIA_SECONDO_GRADO: (156, MAX_AGE_MONTHS),
    }
)

WEEKDAY_LABELS = (
    "lunedì",
    "martedì",
    "mercoledì",
    "giovedì",
    "venerdì",
    "sabato",
    "domenica",
)

# ---------------------------------------------------------------------------
# Errors raised by domain operations (validation errors are pydantic's)
# ---------------------------------------------------------------------------


class CatalogError(Exception):
    """Base of the catalog's business-rule errors; `str(error)` is Italian."""


class InvalidTransition(CatalogError):
    def __init__(self, current: OfferingStatus, target: OfferingStatus) -> None:
        self.current = current
        self.target = target
        if current is target:
            message = f"l'offerta è già nello stato «{current.label()}»"
        elif current is OfferingStatus.ARCHIVED:
            message = "un'offerta archiviata non può più cambiare stato"
        else:
            message = f"non è possibile passare dallo stato «{current.label()}» allo stato «{target.label()}»"
        super().__init__(message)


class NotPublishable(CatalogError):
    """Carries every reason at once so the form can show them all."""

    def __init__(self, reasons: list[str], fields: list[str] | None = None) -> None:
        self.reasons = list(reasons)
        # The spec field each reason is about, so a form can highlight it.
        self.fields = list(fields) if fields is not None else ["spec"] * len(self.reasons)
        super().__init__("l'offerta non può essere pubblicata: " + "; ".join(self.reasons))


class CapacityBelowConfirmed(CatalogError):
    def __init__(self, new_capacity: int, confirmed_count: int) -> None:
        self.new_capacity = new_capacity
        self.confirmed_count = confirmed_count
        super().__init__(
            f"la capienza ({new_capacity}) non può essere inferiore ai posti già confermati ({confirmed_count})"
        )


class NotEditable(CatalogError):
    def __init__(self, status: OfferingStatus) -> None:
        self.status = status
        super().__init__(f"un'offerta nello stato «{status.label()}» non può essere modificata")


def _invalid(code: str, message: str) -> PydanticCustomError:
    # A custom error keeps the Italian message verbatim (no "Value error, " prefix)
    # and gives the gateway a stable `type` to map.
    return PydanticCustomError(code, message)


def _it_date(day: date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def _it_time(moment: time) -> str:
    return f"{moment.hour:02d}:{moment.minute:02d}"


_E = TypeVar("_E", bound=StrEnum)


def _canonical(values: Iterable[_E], order: type[_E]) -> tuple[_E, ...]:
    # Deduplicated, in declaration order: stored documents stay stable and comparable.
    chosen = set(values)
    return tuple(member for member in order if member in chosen)


# ---------------------------------------------------------------------------
# Text normalisation (shared by the stored tokens and by queries)
# ---------------------------------------------------------------------------

ITALIAN_STOPWORDS: frozenset[str] = frozenset(
    """
    a ad al all alla alle allo ai agli c che ci col con d da dal dall dalla dalle
    dallo dai dagli de dei degli del dell della delle dello di e ed fra gli i il in
    l la le lo ne negli nei nel nell nella nelle nello non o od per s si su sul sull
    sulla sulle sullo sui sugli tra un una uno
    """.split()
)

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def normalize_text(text: str) -> str:
    """Lowercase and strip accents ("Attività" -> "attivita")."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.casefold()


def tokenize(text: str) -> list[str]:
    """Normalised words without Italian stopwords, deduplicated, in text order.

    Anything but ASCII letters and digits separates words, so "ludico-educative" and
    "dell'infanzia" split; one-letter leftovers carry no meaning and are dropped.
    """
    words = _TOKEN_RE.findall(normalize_text(text))
    kept = (w for w in words if len(w) > 1 and w not in ITALIAN_STOPWORDS)
    return list(dict.fromkeys(kept))


# ---------------------------------------------------------------------------
# Value objects
# ---------------------------------------------------------------------------


class _Frozen(BaseModel):
    # validate_default: cross-field rules live in field validators and must also run
    # when a field is left at its default (e.g. no special needs declared).
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class AgeRange(_Frozen):
    """Accepted ages in completed months, both bounds inclusive.

    "Da 3 a 6 anni" is min 36, max 83: a child is accepted until the day before
    turning 7. `from_years` builds ranges with that convention.
    """

    min_months: int
    max_months: int

    @field_validator("min_months", "max_months")
    @classmethod
    def _within_childhood(cls, value: int) -> int:
        if not 0 <= value <= MAX_AGE_MONTHS:
            raise _invalid(
                "age_out_of_bounds",
                f"l'età deve essere compresa tra 0 e {MAX_AGE_MONTHS} mesi",
            )
        return value

    @field_validator("max_months")
    @classmethod
    def _min_not_above_max(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_months")
        if minimum is not None and minimum > value:
            raise _invalid(
                "age_range_order",
                "l'età minima deve essere minore o uguale all'età massima",
            )
        return value

    @classmethod
    def from_years(cls, min_years: int, max_years: int) -> AgeRange:
        """From `min_years` birthday up to the whole year of age `max_years`."""
        return cls(
            min_months=min_years * 12,
            max_months=min(max_years * 12 + 11, MAX_AGE_MONTHS),
        )

    def contains(self, months: int) -> bool:
        return self.min_months <= months <= self.max_months

    def overlaps(self, low: int, high: int) -> bool:
        return self.min_months <= high and low <= self.max_months


class CalendarPeriod(_Frozen):
    """A stretch of days (both ends included) in which the service runs."""

    kind: PeriodKind
    start: date
    end: date

    @field_validator("end")
    @classmethod
    def _start_not_after_end(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if start is not None and start > value:
            raise _invalid(
                "period_order",
                "la data di inizio del periodo deve precedere o coincidere con la data di fine",
            )
        return value

    def overlaps(self, date_from: date, date_to: date) -> bool:
        return self.start <= date_to and date_from <= self.end

    def label(self) -> str:
        return f"{self.kind.label()} dal {_it_date(self.start)} al {_it_date(self.end)}"


class Calendar(_Frozen):
    """Opening periods plus single closure days (holidays, strikes, ...).

    Periods are kept sorted by start; closures are kept sorted and deduplicated.
    Periods of *different* kinds may overlap: providers describe e.g. "inizio
    settembre" loosely against term time, and nothing breaks if they do.
    """

    periods: tuple[CalendarPeriod, ...] = ()
    closures: tuple[date, ...] = ()

    @field_validator("periods")
    @classmethod
    def _same_kind_periods_do_not_overlap(cls, value: tuple[CalendarPeriod, ...]) -> tuple[CalendarPeriod, ...]:
        if len(value) > MAX_PERIODS:
            raise _invalid(
                "too_many_periods",
                f"il calendario può contenere al massimo {MAX_PERIODS} periodi",
            )
        ordered = tuple(sorted(value, key=lambda p: (p.start, p.end, p.kind)))
        last_of_kind: dict[PeriodKind, CalendarPeriod] = {}
        for period in ordered:
            previous = last_of_kind.get(period.kind)
            if previous is not None and previous.end >= period.start:
                raise _invalid(
                    "periods_overlap",
                    f"i periodi «{previous.label()}» e «{period.label()}» si sovrappongono",
                )
            last_of_kind[period.kind] = period
        return ordered

    @field_validator("closures")
    @classmethod
    def _closures_fall_inside_periods(cls, value: tuple[date, ...], info: ValidationInfo) -> tuple[date, ...]:
        closures = tuple(sorted(set(value)))
        if len(closures) > MAX_CLOSURES:
            raise _invalid(
                "too_many_closures",
                f"il calendario può contenere al massimo {MAX_CLOSURES} giorni di chiusura",
            )
        periods: tuple[CalendarPeriod, ...] | None = info.data.get("periods")
        if periods is None:  # periods were invalid: already reported
            return closures
        for day in closures:
            if not any(p.start <= day <= p.end for p in periods):
                raise _invalid(
                    "closure_outside_periods",
                    f"il giorno di chiusura {_it_date(day)} non cade in nessun periodo del calendario",
                )
        return closures


class WeeklySlot(_Frozen):
    """A recurring opening time: ISO weekday (1 = lunedì) and local times."""

    weekday: int
    start: time
    end: time

    @field_validator("weekday")
    @classmethod
    def _iso_weekday(cls, value: int) -> int:
        if not 1 <= value <= 7:
            raise _invalid(
                "weekday_out_of_bounds",
                "il giorno della settimana deve essere compreso tra 1 (lunedì) e 7 (domenica)",
            )
        return value

    @field_validator("start", "end")
    @classmethod
    def _local_time(cls, value: time) -> time:
        # Opening hours are Europe/Rome wall-clock times; an offset would be ambiguous
        # across daylight saving changes.
        if value.tzinfo is not None:
            raise _invalid(
                "time_with_timezone",
                "l'orario va indicato come ora locale, senza fuso orario",
            )
        return value

    @field_validator("end")
    @classmethod
    def _start_before_end(cls, value: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and start >= value:
            raise _invalid(
                "slot_order",
                "l'orario di inizio deve precedere l'orario di fine",
            )
        return value

    def label(self) -> str:
        return f"{WEEKDAY_LABELS[self.weekday - 1]} {_it_time(self.start)}–{_it_time(self.end)}"


def format_cents(amount_cents: int) -> str:
    """Italian money format: 123450 -> "1.234,50 €"."""
    euros, cents = divmod(amount_cents, 100)
    return f"{euros:,}".replace(",", ".") + f",{cents:02d} €"


class Price(_Frozen):
    """Fee per unit in integer cents; 0 means the service is free."""

    amount_cents: int
    unit: PriceUnit

    @field_validator("amount_cents")
    @classmethod
    def _plausible_amount(cls, value: int) -> int:
        if value < 0:
            raise _invalid("price_negative", "il prezzo non può essere negativo")
        if value > MAX_PRICE_CENTS:
            raise _invalid(
                "price_too_high",
                f"il prezzo non può superare {format_cents(MAX_PRICE_CENTS)} (importi in centesimi)",
            )
        return value

    @property
    def is_free(self) -> bool:
        return self.amount_cents == 0

    def label(self) -> str:
        if self.is_free:
            return "gratuito"
        return f"{format_cents(self.amount_cents)} {self.unit.label()}"


# ---------------------------------------------------------------------------
# The offering
# ---------------------------------------------------------------------------

_ISTAT_RE = re.compile(r"[0-9]{6}")


class OfferingSpec(_Frozen):
    """The writable part of an offering, as entered by the provider partner.

    Field order matters: cross-field rules are field validators that read the
    fields declared above them (type, age_range, price), so that each error is
    reported at the field a person has to correct.
    """

    type: ServiceType
    title: str
    description: str = ""
    comune_istat: str
    address: str | None = None
    age_range: AgeRange
    school_levels: tuple[SchoolLevel, ...] = ()
    special_needs_supported: tuple[SpecialNeed, ...] = ()
    calendar: Calendar = Field(default_factory=Calendar)
    weekly_slots: tuple[WeeklySlot, ...] = ()
    capacity: int
    price: Price
    attendance_modes: tuple[AttendanceMode, ...]

    @field_validator("title")
    @classmethod
    def _title_length(cls, value: str) -> str:
        value = value.strip()
        if not TITLE_MIN_CHARS <= len(value) <= TITLE_MAX_CHARS:
            raise _invalid(
                "title_length",
                f"il titolo deve contenere da {TITLE_MIN_CHARS} a {TITLE_MAX_CHARS} caratteri",
            )
        return value

    @field_validator("description")
    @classmethod
    def _description_length(cls, value: str) -> str:
        value = value.strip()
        if len(value) > DESCRIPTION_MAX_CHARS:
            raise _invalid(
                "description_too_long",
                f"la descrizione può contenere al massimo {DESCRIPTION_MAX_CHARS} caratteri",
            )
        return value

    @field_validator("comune_istat")
    @classmethod
    def _istat_code(cls, value: str) -> str:
        value = value.strip()
        if not _ISTAT_RE.fullmatch(value):
            raise _invalid(
                "istat_code",
                "il codice ISTAT del Comune deve essere composto da 6 cifre",
            )
        return value

    @field_validator("address")
    @classmethod
    def _address_length(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if len(value) > ADDRESS_MAX_CHARS:
            raise _invalid(
                "address_too_long",
                f"l'indirizzo può contenere al massimo {ADDRESS_MAX_CHARS} caratteri",
            )
        return value or None

    @field_validator("school_levels")
    @classmethod
    def _levels_fit_age_range(cls, value: tuple[SchoolLevel, ...], info: ValidationInfo) -> tuple[SchoolLevel, ...]:
        levels = _canonical(value, SchoolLevel)
        age_range: AgeRange | None = info.data.get("age_range")
        if age_range is None:
            return levels
        for level in levels:
            low, high = SCHOOL_LEVEL_AGE_WINDOWS[level]
            if not age_range.overlaps(low, high):
                raise _invalid(
                    "school_level_age_mismatch",
                    f"il livello scolastico «{level.label()}» non è compatibile "
                    f"con la fascia d'età indicata ({age_range.min_months}–"
                    f"{age_range.max_months} mesi)",
                )
        return levels

    @field_validator("special_needs_supported")
    @classmethod
    def _learning_needs_for_dsa_post_scuola(
        cls, value: tuple[SpecialNeed, ...], info: ValidationInfo
    ) -> tuple[SpecialNeed, ...]:
        needs = _canonical(value, SpecialNeed)
        is_dsa_post_scuola = info.data.get("type") is ServiceType.POST_SCUOLA_DSA_ADHD_BES
        if is_dsa_post_scuola and not LEARNING_NEEDS.intersection(needs):
            raise _invalid(
                "learning_needs_required",
                "un post scuola DSA/ADHD/BES deve supportare almeno uno tra DSA, ADHD e BES",
            )
        return needs

    @field_validator("weekly_slots")
    @classmethod
    def _slots_do_not_overlap(cls, value: tuple[WeeklySlot, ...]) -> tuple[WeeklySlot, ...]:
        if len(value) > MAX_WEEKLY_SLOTS:
            raise _invalid(
                "too_many_slots",
                f"si possono indicare al massimo {MAX_WEEKLY_SLOTS} fasce orarie",
            )
        ordered = tuple(sorted(value, key=lambda s: (s.weekday, s.start, s.end)))
        for before, after in pairwise(ordered):
            # Touching slots (12:30-14:00, 14:00-16:00) are fine; overlaps are typos.
            if before.weekday == after.weekday and before.end > after.start:
                raise _invalid(
                    "slots_overlap",
                    f"le fasce orarie «{before.label()}» e «{after.label()}» si sovrappongono",
                )
        return ordered

    @field_validator("capacity")
    @classmethod
    def _capacity_bounds(cls, value: int) -> int:
        if not MIN_CAPACITY <= value <= MAX_CAPACITY:
            raise _invalid(
                "capacity_out_of_bounds",
                f"la capienza deve essere compresa tra {MIN_CAPACITY} e {MAX_CAPACITY} posti",
            )
        return value

    @field_validator("attendance_modes")
    @classmethod
    def _modes_fit_price(cls, value: tuple[AttendanceMode, ...], info: ValidationInfo) -> tuple[AttendanceMode, ...]:
        modes = _canonical(value, AttendanceMode)
        if not modes:
            raise _invalid(
                "attendance_modes_required",
                "indicare almeno una modalità di frequenza",
            )
        price: Price | None = info.data.get("price")
        # A package of hours is bought by the hour: any other unit leaves its cost
        # undefined for the family and for voucher redemption.
        if (
            AttendanceMode.HOUR_PACKAGE in modes
            and price is not None
            and not price.is_free
            and price.unit is not PriceUnit.HOUR
        ):
            raise _invalid(
                "hour_package_needs_hourly_price",
                "la frequenza a pacchetto di ore richiede un prezzo orario",
            )
        return modes

    def weekdays(self) -> frozenset[int] | None:
        """ISO weekdays with a slot, or None when no weekly timetable is declared."""
        if not self.weekly_slots:
            return None
        return frozenset(slot.weekday for slot in self.weekly_slots)


# ---------------------------------------------------------------------------
# Children's age
# ---------------------------------------------------------------------------


def age_in_months(birth_date: date, on_date: date) -> int:
    """Completed months of age on `on_date`.

    A month is completed on the day with the birth day's number or, when the month
    is too short for it, on its last day (as art. 2963 c.c. counts terms): a child
    born on 31 January is 1 month old on 28 (or 29) February.
    """
    if on_date < birth_date:
        raise ValueError("la data di riferimento precede la data di nascita")
    months = (on_date.year - birth_date.year) * 12 + on_date.month - birth_date.month
    days_in_month = _gregorian.monthrange(on_date.year, on_date.month)[1]
    if on_date.day < min(birth_date.day, days_in_month):
        months -= 1
    return months


def accepts_age(age_range: AgeRange, birth_date: date, on_date: date) -> bool:
    """Whether a child born on `birth_date` fits `age_range` on `on_date`.

    A child not yet born on `on_date` is never accepted.
    """
    if on_date < birth_date:
        return False
    return age_range.contains(age_in_months(birth_date, on_date))


# ---------------------------------------------------------------------------
# Calendar questions
# ---------------------------------------------------------------------------


def _check_range(date_from: date, date_to: date) -> None:
    if date_from > date_to:
        raise ValueError("la data iniziale deve precedere o coincidere con la finale")


def periods_overlapping(calendar: Calendar, date_from: date, date_to: date) -> list[CalendarPeriod]:
    """Periods sharing at least one day with [date_from, date_to] (inclusive)."""
    _check_range(date_from, date_to)
    return [p for p in calendar.periods if p.overlaps(date_from, date_to)]


def is_open_between(
    calendar: Calendar,
    date_from: date,
    date_to: date,
    weekdays: Collection[int] | None = None,
) -> bool:
    """Whether the service runs on at least one day of [date_from, date_to].

    A day is open when it lies in a period, is not a closure and, if `weekdays`
    (ISO numbers) is given, falls on one of them. So an offering is open "during the
    Easter break" unless the break misses all its periods or every shared day is
    closed.
    """
    closures = set(calendar.closures)
    for period in periods_overlapping(calendar, date_from, date_to):
        first = max(period.start, date_from)
        last = min(period.end, date_to)
        if weekdays is None:
            days = (last - first).days + 1
            closed = sum(1 for c in calendar.closures if first <= c <= last)
            if days > closed:
                return True
            continue
        if not weekdays:
            return False
        # Terminates quickly: each week holds a wanted weekday, so at most
        # (closures + 1) weeks are scanned before an open day turns up.
        day = first
        while day <= last:
            if day.isoweekday() in weekdays and day not in closures:
                return True
            day += timedelta(days=1)
    return False


def is_open_on(calendar: Calendar, day: date, weekdays: Collection[int] | None = None) -> bool:
    return is_open_between(calendar, day, day, weekdays)


def upcoming_start(calendar: Calendar, reference: date) -> date | None:
    """First day on or after `reference` inside a period (closures ignored).

    A period already running counts as starting on `reference`.
    """
    starts = [max(p.start, reference) for p in calendar.periods if p.end >= reference]
    return min(starts, default=None)


# ---------------------------------------------------------------------------
# Status machine
# ---------------------------------------------------------------------------

ALLOWED_TRANSITIONS: Mapping[OfferingStatus, frozenset[OfferingStatus]] = MappingProxyType(
    {
        OfferingStatus.DRAFT: frozenset({OfferingStatus.PUBLISHED, OfferingStatus.ARCHIVED}),
        OfferingStatus.PUBLISHED: frozenset({OfferingStatus.SUSPENDED, OfferingStatus.ARCHIVED}),
        OfferingStatus.SUSPENDED: frozenset({OfferingStatus.PUBLISHED, OfferingStatus.ARCHIVED}),
        OfferingStatus.ARCHIVED: frozenset(),  # final
    }
)


def transition(current: OfferingStatus, target: OfferingStatus) -> OfferingStatus:
    """Return `target` if the move is allowed; asking for the same state is an error
    so that a repeated command is noticed rather than silently re-applied."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(current, target)
    return target


def ensure_publishable(spec: OfferingSpec, today: date) -> None:
    """Raise `NotPublishable` listing every reason `spec` cannot be shown to families.

    Capacity >= 1 is already guaranteed by `OfferingSpec`.
    """
    problems: list[tuple[str, str]] = []
    if not spec.calendar.periods:
        problems.append(("calendar", "il calendario non contiene alcun periodo di apertura"))
    elif not is_open_between(spec.calendar, today, date.max, spec.weekdays()):
        problems.append(
            (
                "calendar",
                "il calendario non ha più giorni di apertura: i periodi sono "
                "terminati o tutti i giorni rimasti sono di chiusura",
            )
        )
    if not spec.description:
        problems.append(("description", "manca la descrizione del servizio"))
    if spec.address is None and spec.type not in ADDRESS_OPTIONAL_TYPES:
        problems.append(("address", "manca l'indirizzo della sede del servizio"))
    if problems:
        raise NotPublishable([reason for _, reason in problems], [field for field, _ in problems])


def change_status(current: OfferingStatus, target: OfferingStatus, spec: OfferingSpec, today: date) -> OfferingStatus:
    """`transition` plus the publishing precondition (also when resuming)."""
    new_status = transition(current, target)
    if new_status is OfferingStatus.PUBLISHED:
        ensure_publishable(spec, today)
    return new_status


def validate_capacity_change(new_capacity: int, confirmed_count: int) -> None:
    """Capacity may shrink, but never below the seats already confirmed."""
    if new_capacity < confirmed_count:
        raise CapacityBelowConfirmed(new_capacity, confirmed_count)


def check_update(status: OfferingStatus, new_spec: OfferingSpec, confirmed_count: int, today: date) -> None:
    """Rules for replacing an offering's spec.

    Archived offerings are read-only; a published offering must stay publishable
    (families see it at once); drafts and suspended offerings may be incomplete
    until they are (re)published.
    """
    if status is OfferingStatus.ARCHIVED:
        raise NotEditable(status)
    validate_capacity_change(new_spec.capacity, confirmed_count)
    if status is OfferingStatus.PUBLISHED:
        ensure_publishable(new_spec, today)


# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------


class OfferingLike(Protocol):
    """What search needs to know about a stored offering."""

    @property
    def id(self) -> str: ...
    @property
    def alliance_id(self) -> str: ...
    @property
    def provider_partner_id(self) -> str: ...
    @property
    def status(self) -> OfferingStatus: ...
    @property
    def spec(self) -> OfferingSpec: ...


class OfferingView(_Frozen):
    """A stored offering as search sees it (satisfies `OfferingLike`)."""

    id: str
    alliance_id: str
    provider_partner_id: str
    status: OfferingStatus
    spec: OfferingSpec


class SearchCriteria(_Frozen):
    """A family's or an operator's search; every given criterion must hold.

    The child's age is given either as `child_birth_date` with the `on_date` on
    which it matters, or directly as `child_age_months`. A date range may be open
    on one side; without dates the calendar is not checked.
    """

    alliance_id: str  # required: search never crosses tenants
    provider_partner_id: str | None = None
    comune_istat: str | None = None
    child_birth_date: date | None = None
    on_date: date | None = None
    child_age_months: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    types: tuple[ServiceType, ...] = ()  # any of
    needs: tuple[SpecialNeed, ...] = ()  # all of
    text: str | None = None
    only_published: bool = True

    @field_validator("alliance_id")
    @classmethod
    def _alliance_given(cls, value: str) -> str:
        if not value.strip():
            raise _invalid("alliance_required", "indicare l'alleanza")
        return value

    @field_validator("comune_istat")
    @classmethod
    def _istat_code(cls, value: str | None) -> str | None:
        if value is not None and not _ISTAT_RE.fullmatch(value.strip()):
            raise _invalid(
                "istat_code",
                "il codice ISTAT del Comune deve essere composto da 6 cifre",
            )
        return None if value is None else value.strip()

    @field_validator("on_date")
    @classmethod
    def _on_date_goes_with_birth_date(cls, value: date | None, info: ValidationInfo) -> date | None:
        birth = info.data.get("child_birth_date")
        if birth is not None and value is None:
            raise _invalid(
                "on_date_required",
                "con la data di nascita indicare anche la data di riferimento",
            )
        if birth is None and value is not None:
            raise _invalid(
                "birth_date_required",
                "la data di riferimento richiede la data di nascita del bambino",
            )
        if birth is not None and value is not None and value < birth:
            raise _invalid(
                "on_date_before_birth",
                "la data di riferimento precede la data di nascita",
            )
        return value

    @field_validator("child_age_months")
    @classmethod
    def _age_or_birth_date(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        if info.data.get("child_birth_date") is not None:
            raise _invalid(
                "age_given_twice",
                "indicare la data di nascita oppure l'età in mesi, non entrambe",
            )
        if not 0 <= value <= MAX_AGE_MONTHS:
            raise _invalid(
                "age_out_of_bounds",
                f"l'età deve essere compresa tra 0 e {MAX_AGE_MONTHS} mesi",
            )
        return value

    @field_validator("date_to")
    @classmethod
    def _range_order(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("date_from")
        if value is not None and start is not None and start > value:
            raise _invalid(
                "date_range_order",
                "la data iniziale deve precedere o coincidere con la data finale",
            )
        return value

    @field_validator("text")
    @classmethod
    def _text_length(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if len(value) > SEARCH_TEXT_MAX_CHARS:
            raise _invalid(
                "search_text_too_long",
                f"il testo da cercare può contenere al massimo {SEARCH_TEXT_MAX_CHARS} caratteri",
            )
        return value or None

    def child_age(self) -> int | None:
        """The child's age in completed months, if the search is about a child."""
        if self.child_birth_date is not None and self.on_date is not None:
            return age_in_months(self.child_birth_date, self.on_date)
        return self.child_age_months


def _searchable_fields(spec: OfferingSpec) -> tuple[list[str], list[str], list[str]]:
    return tokenize(spec.title), tokenize(spec.type.label()), tokenize(spec.description)


def search_tokens(spec: OfferingSpec) -> list[str]:
    """Tokens of title, type label and description, to store on the document.

    A query matches when each of its tokens (`tokenize(text)`) is a prefix of a
    stored token, so a database prefilter on these tokens must use anchored
    prefixes; `matches` remains the authority.
    """
    title, type_label, description = _searchable_fields(spec)
    return list(dict.fromkeys([*title, *type_label, *description]))


def _text_matches(spec: OfferingSpec, text: str) -> bool:
    stored = search_tokens(spec)
    return all(any(t.startswith(q) for t in stored) for q in tokenize(text))


def matches(offering: OfferingLike, criteria: SearchCriteria) -> bool:
    """Whether `offering` satisfies every criterion given."""
    spec = offering.spec
    if offering.alliance_id != criteria.alliance_id:
        return False
    if criteria.only_published and offering.status is not OfferingStatus.PUBLISHED:
        return False
    if criteria.provider_partner_id is not None and offering.provider_partner_id != criteria.provider_partner_id:
        return False
    if criteria.comune_istat is not None and spec.comune_istat != criteria.comune_istat:
        return False
    if criteria.types and spec.type not in criteria.types:
        return False
    if not set(criteria.needs).issubset(spec.special_needs_supported):
        return False
    age = criteria.child_age()
    if age is not None and not spec.age_range.contains(age):
        return False
    if (criteria.date_from is not None or criteria.date_to is not None) and (
        not is_open_between(
            spec.calendar,
            criteria.date_from or date.min,
            criteria.date_to or date.max,
            spec.weekdays(),
        )
    ):
        return False
    return criteria.text is None or _text_matches(spec, criteria.text)


# Per query token the best hit counts: a title word says more than a word lost in
# the description, and a whole word more than a prefix of one.
TITLE_WORD_WEIGHT = 3.0
TITLE_PREFIX_WEIGHT = 2.0
TYPE_WORD_WEIGHT = 1.5
TYPE_PREFIX_WEIGHT = 1.0
DESCRIPTION_WORD_WEIGHT = 1.0
DESCRIPTION_PREFIX_WEIGHT = 0.5


def _hit(query: str, tokens: list[str], word: float, prefix: float) -> float:
    if query in tokens:
        return word
    if any(t.startswith(query) for t in tokens):
        return prefix
    return 0.0


def relevance(offering: OfferingLike, text: str) -> float:
    """Mean best-hit score of the query tokens, from 0 to `TITLE_WORD_WEIGHT`."""
    queries = tokenize(text)
    if not queries:
        return 0.0
    title, type_label, description = _searchable_fields(offering.spec)
    total = 0.0
    for query in queries:
        total += max(
            _hit(query, title, TITLE_WORD_WEIGHT, TITLE_PREFIX_WEIGHT),
            _hit(query, type_label, TYPE_WORD_WEIGHT, TYPE_PREFIX_WEIGHT),
            _hit(query, description, DESCRIPTION_WORD_WEIGHT, DESCRIPTION_PREFIX_WEIGHT),
        )
    return total / len(queries)


_O = TypeVar("_O", bound=OfferingLike)


def sort_results(offerings: Iterable[_O], criteria: SearchCriteria, today: date) -> list[_O]:
    """Most relevant first (when there is text), then soonest available, then title.

    "Soonest" is the first period day on or after `criteria.date_from`, or `today`
    when no date was asked; offerings with nothing upcoming go last. The id breaks
    the remaining ties so that pages never shuffle.
    """
    reference = criteria.date_from or today
    text = criteria.text or ""

    def key(offering: _O) -> tuple[float, date, str, str]:
        score = relevance(offering, text) if text else 0.0
        start = upcoming_start(offering.spec.calendar, reference) or date.max
        return (-score, start, normalize_text(offering.spec.title), offering.id)

    return sorted(offerings, key=key)
