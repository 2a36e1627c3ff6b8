"""The writable part of a catalog offering: `OfferingSpec` and its value objects.

Shared by the catalog service (which stores and reasons about offerings) and the
gateway (which validates request bodies with the very same rules and Italian
messages): one definition, imported by both, so a form, an integrator and the
service can never disagree on what a valid offering is. The catalog's *rules*
(status machine, publishability, search, capacity) stay in
``services/catalog/domain.py``.

Conventions: money in integer cents; dates are `datetime.date` and times are naive
local times, both meaning Europe/Rome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, time
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from conciliare.contracts.taxonomy import (
    AttendanceMode,
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


def invalid_value(code: str, message: str) -> PydanticCustomError:
    """A validation error whose Italian message reaches the user verbatim."""
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
# Value objects
# ---------------------------------------------------------------------------


class ValueObject(BaseModel):
    """Immutable, strict (unknown fields refused), validated also at defaults."""

    # validate_default: cross-field rules live in field validators and must also run
    # when a field is left at its default (e.g. no special needs declared).
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class AgeRange(ValueObject):
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
            raise invalid_value(
                "age_out_of_bounds",
                f"l'età deve essere compresa tra 0 e {MAX_AGE_MONTHS} mesi",
            )
        return value

    @field_validator("max_months")
    @classmethod
    def _min_not_above_max(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_months")
        if minimum is not None and minimum > value:
            raise invalid_value(
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


class CalendarPeriod(ValueObject):
    """A stretch of days (both ends included) in which the service runs."""

    kind: PeriodKind
    start: date
    end: date

    @field_validator("end")
    @classmethod
    def _start_not_after_end(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if start is not None and start > value:
            raise invalid_value(
                "period_order",
                "la data di inizio del periodo deve precedere o coincidere con la data di fine",
            )
        return value

    def overlaps(self, date_from: date, date_to: date) -> bool:
        return self.start <= date_to and date_from <= self.end

    def label(self) -> str:
        return f"{self.kind.label()} dal {_it_date(self.start)} al {_it_date(self.end)}"


class Calendar(ValueObject):
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
            raise invalid_value(
                "too_many_periods",
                f"il calendario può contenere al massimo {MAX_PERIODS} periodi",
            )
        ordered = tuple(sorted(value, key=lambda p: (p.start, p.end, p.kind)))
        last_of_kind: dict[PeriodKind, CalendarPeriod] = {}
        for period in ordered:
            previous = last_of_kind.get(period.kind)
            if previous is not None and previous.end >= period.start:
                raise invalid_value(
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
            raise invalid_value(
                "too_many_closures",
                f"il calendario può contenere al massimo {MAX_CLOSURES} giorni di chiusura",
            )
        periods: tuple[CalendarPeriod, ...] | None = info.data.get("periods")
        if periods is None:  # periods were invalid: already reported
            return closures
        for day in closures:
            if not any(p.start <= day <= p.end for p in periods):
                raise invalid_value(
                    "closure_outside_periods",
                    f"il giorno di chiusura {_it_date(day)} non cade in nessun periodo del calendario",
                )
        return closures


class WeeklySlot(ValueObject):
    """A recurring opening time: ISO weekday (1 = lunedì) and local times."""

    weekday: int
    start: time
    end: time

    @field_validator("weekday")
    @classmethod
    def _iso_weekday(cls, value: int) -> int:
        if not 1 <= value <= 7:
            raise invalid_value(
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
            raise invalid_value(
                "time_with_timezone",
                "l'orario va indicato come ora locale, senza fuso orario",
            )
        return value

    @field_validator("end")
    @classmethod
    def _start_before_end(cls, value: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and start >= value:
            raise invalid_value(
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


class Price(ValueObject):
    """Fee per unit in integer cents; 0 means the service is free."""

    amount_cents: int
    unit: PriceUnit

    @field_validator("amount_cents")
    @classmethod
    def _plausible_amount(cls, value: int) -> int:
        if value < 0:
            raise invalid_value("price_negative", "il prezzo non può essere negativo")
        if value > MAX_PRICE_CENTS:
            raise invalid_value(
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

ISTAT_CODE_RE = re.compile(r"[0-9]{6}")


class OfferingSpec(ValueObject):
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
            raise invalid_value(
                "title_length",
                f"il titolo deve contenere da {TITLE_MIN_CHARS} a {TITLE_MAX_CHARS} caratteri",
            )
        return value

    @field_validator("description")
    @classmethod
    def _description_length(cls, value: str) -> str:
        value = value.strip()
        if len(value) > DESCRIPTION_MAX_CHARS:
            raise invalid_value(
                "description_too_long",
                f"la descrizione può contenere al massimo {DESCRIPTION_MAX_CHARS} caratteri",
            )
        return value

    @field_validator("comune_istat")
    @classmethod
    def _istat_code(cls, value: str) -> str:
        value = value.strip()
        if not ISTAT_CODE_RE.fullmatch(value):
            raise invalid_value(
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
            raise invalid_value(
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
                raise invalid_value(
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
            raise invalid_value(
                "learning_needs_required",
                "un post scuola DSA/ADHD/BES deve supportare almeno uno tra DSA, ADHD e BES",
            )
        return needs

    @field_validator("weekly_slots")
    @classmethod
    def _slots_do_not_overlap(cls, value: tuple[WeeklySlot, ...]) -> tuple[WeeklySlot, ...]:
        if len(value) > MAX_WEEKLY_SLOTS:
            raise invalid_value(
                "too_many_slots",
                f"si possono indicare al massimo {MAX_WEEKLY_SLOTS} fasce orarie",
            )
        ordered = tuple(sorted(value, key=lambda s: (s.weekday, s.start, s.end)))
        for before, after in pairwise(ordered):
            # Touching slots (12:30-14:00, 14:00-16:00) are fine; overlaps are typos.
            if before.weekday == after.weekday and before.end > after.start:
                raise invalid_value(
                    "slots_overlap",
                    f"le fasce orarie «{before.label()}» e «{after.label()}» si sovrappongono",
                )
        return ordered

    @field_validator("capacity")
    @classmethod
    def _capacity_bounds(cls, value: int) -> int:
        if not MIN_CAPACITY <= value <= MAX_CAPACITY:
            raise invalid_value(
                "capacity_out_of_bounds",
                f"la capienza deve essere compresa tra {MIN_CAPACITY} e {MAX_CAPACITY} posti",
            )
        return value

    @field_validator("attendance_modes")
    @classmethod
    def _modes_fit_price(cls, value: tuple[AttendanceMode, ...], info: ValidationInfo) -> tuple[AttendanceMode, ...]:
        modes = _canonical(value, AttendanceMode)
        if not modes:
            raise invalid_value(
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
            raise invalid_value(
                "hour_package_needs_hourly_price",
                "la frequenza a pacchetto di ore richiede un prezzo orario",
            )
        return modes

    def weekdays(self) -> frozenset[int] | None:
        """ISO weekdays with a slot, or None when no weekly timetable is declared."""
        if not self.weekly_slots:
            return None
        return frozenset(slot.weekday for slot in self.weekly_slots)
